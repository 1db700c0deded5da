package node

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"floe/meta"
	"floe/tiering"
)

// Topic retention (docs/ARCHITECTURE.md, "Topic retention"): the Raft leader expires a topic's oldest sealed
// segments through Raft while the topic's sealed bytes exceed retention_bytes, or once
// they were sealed longer ago than retention_ms, then deletes their objects; every
// node deletes the local files of the expired segments it led. An object whose delete
// fails is left to the orphan sweeper.

// retentionPeriod is how often retention is checked.
const retentionPeriod = 5 * time.Second

// segmentFilesLoop keeps the segment files of this node in step with the metadata,
// every retentionPeriod: on the Raft leader it first runs topic retention and deletes
// the objects of deleted topics; then every node lets go of what it holds of deleted
// topics, removes its files of expired segments and sets aside (abandoned/) its files
// of segments that recover-segment abandoned.
func (n *Node) segmentFilesLoop() {
	gone := map[segKey]bool{}     // expired segments whose files this node has removed
	setAside := map[segKey]bool{} // abandoned segments whose files it has set aside
	removeSalvageTemps(filepath.Join(n.cfg.DataDir, "abandoned"), n.log)
	t := time.NewTicker(retentionPeriod)
	defer t.Stop()
	for {
		if n.raft.IsLeader() {
			n.expireSegments()
			n.purgeDeletedTopics()
		}
		n.removeDeletedTopics(gone, setAside)
		n.removeExpiredFiles(gone)
		n.setAsideAbandoned(setAside)
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// expireSegments runs one pass of topic retention on the Raft leader.
func (n *Node) expireSegments() {
	ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
	defer cancel()
	now := time.Now()
	for _, name := range n.fsm.TopicKeys() {
		var cfg meta.TopicConfig
		var kept []meta.Segment
		var total int64
		n.fsm.View(name, func(t *meta.Topic) { // under the FSM's lock: no copies of topics without retention
			cfg = t.Config
			if cfg.RetentionBytes <= 0 && cfg.RetentionMS <= 0 {
				return
			}
			for _, s := range t.Segments[:len(t.Segments)-1] { // the active segment never expires
				if s.State != meta.Expired {
					kept = append(kept, *s)
					total += s.Bytes
				}
			}
		})
		for _, s := range kept {
			tooMany := cfg.RetentionBytes > 0 && total > cfg.RetentionBytes
			tooOld := cfg.RetentionMS > 0 && now.Sub(time.UnixMilli(s.SealedUnixMS)) > time.Duration(cfg.RetentionMS)*time.Millisecond
			if !tooMany && !tooOld {
				break
			}
			if _, err := n.propose(ctx, &meta.Command{Op: meta.OpExpire, Topic: name, Segment: s.ID, UnixMS: now.UnixMilli()}); err != nil {
				n.log.Warn("cannot commit segment expiry", "topic", name, "segment", s.ID, "err", err)
				return
			}
			total -= s.Bytes
			n.log.Info("segment expired", "topic", name, "segment", s.ID, "base", s.Base, "count", s.Count,
				"bytes", s.Bytes, "by", map[bool]string{true: "retention_bytes", false: "retention_ms"}[tooMany])
			if s.ArchiveKey != "" && n.bucket != nil {
				if err := n.archiveWritable(ctx); err != nil {
					n.log.Warn("the object of an expired segment is kept for now; the orphan sweeper deletes it once the archive's claim names this cluster",
						"key", s.ArchiveKey, "err", err)
				} else if err := n.bucket.Delete(ctx, s.ArchiveKey); err != nil {
					n.log.Warn("cannot delete the object of an expired segment; the orphan sweeper will", "key", s.ArchiveKey, "err", err)
				}
			}
		}
	}
}

type segKey struct {
	topic string
	id    uint64
}

// removeExpiredFiles deletes this node's local files of expired segments, skipping
// those it removed before.
func (n *Node) removeExpiredFiles(gone map[segKey]bool) {
	for _, name := range n.fsm.TopicKeys() {
		var ids []uint64
		n.fsm.View(name, func(t *meta.Topic) {
			for _, s := range t.Segments {
				if s.State != meta.Expired {
					break // expired segments are a prefix
				}
				if s.Owner() == n.cfg.NodeID && !gone[segKey{name, s.ID}] {
					ids = append(ids, s.ID)
				}
			}
		})
		for _, id := range ids {
			if n.HasLocal(name, id) {
				if err := n.RemoveLocal(name, id); err != nil {
					n.log.Warn("cannot remove the file of an expired segment", "topic", name, "segment", id, "err", err)
					continue
				}
			}
			gone[segKey{name, id}] = true
		}
	}
}

// leaderEvery runs fn every interval (def when 0, never when negative) while this node
// is the Raft leader, until the node closes.
func (n *Node) leaderEvery(interval, def time.Duration, fn func()) {
	n.every(interval, def, func() {
		if n.raft.IsLeader() {
			fn()
		}
	})
}

// every runs fn every interval (def when 0, never when negative) until the node
// closes.
func (n *Node) every(interval, def time.Duration, fn func()) {
	if interval == 0 {
		interval = def
	}
	if interval < 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		fn()
	}
}

// sweepLoop runs the orphan sweeper on the Raft leader every SweepInterval.
func (n *Node) sweepLoop() {
	n.leaderEvery(n.cfg.SweepInterval, 10*time.Minute, func() {
		if _, err := n.Sweep(n.ctx, n.cfg.SweepDryRun); err != nil {
			n.log.Warn("orphan sweep failed", "err", err)
		}
	})
}

// Sweep runs one pass of the orphan sweeper, on the Raft leader only (its metadata is
// never behind a committed Archived).
func (n *Node) Sweep(ctx context.Context, dryRun bool) (*tiering.SweepReport, error) {
	if n.sweeper == nil {
		return nil, fmt.Errorf("%w: this node has no --archive", ErrBadRequest)
	}
	if !n.raft.IsLeader() {
		return nil, meta.ErrNotRaftLeader
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if !dryRun {
		if err := n.checkOwnClaim(ctx); err != nil {
			return nil, fmt.Errorf("the orphan sweeper deletes nothing: %w", err)
		}
	}
	rep, err := n.sweeper.Sweep(ctx, dryRun)
	if err == nil && len(rep.Orphans) > 0 {
		n.log.Info("orphan sweep", "dry_run", dryRun, "scanned", rep.Scanned, "orphans", len(rep.Orphans),
			"orphan_bytes", rep.OrphanBytes, "deleted", rep.Deleted)
	}
	return rep, err
}
