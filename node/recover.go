package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"floe/internal/fsutil"
	"floe/meta"
	"floe/node/rpc"
)

// RecoverSegment moves a topic's writes off its active segment's leader while that
// node is down (floe cluster recover-segment): the segment is sealed empty and
// abandoned through Raft, and the next one starts at its base on node to (0: the next
// live voter; any other node must be a voter, else ErrBadRequest). What the old leader
// wrote into it and had not archived (its active segment is never archived) is no
// longer part of the topic; when the node returns, it sets the file aside under
// <data-dir>/abandoned/. Unless force, a leader that answers is not recovered from:
// its segment is not lost.
//
// segment (0: any) names the active segment the caller means to abandon. If that
// segment was abandoned already, the call succeeds without changing anything (a
// repeated command, say after a lost reply, never abandons the segment that replaced
// it); if it is any other segment, ErrBadRequest. force requires segment.
func (n *Node) RecoverSegment(ctx context.Context, name string, to, segment uint64, force bool) (*meta.Segment, error) {
	if force && segment == 0 {
		return nil, fmt.Errorf("%w: --force abandons a segment whose leader may be alive: name it with --segment <id> (the active segment in floe state %s), so that a repeated command cannot abandon the next one", ErrBadRequest, name)
	}
	key, err := n.resolve(ctx, name)
	if err != nil {
		return nil, err
	}
	return n.recoverSegment(ctx, key, to, segment, force)
}

// recoverSegment is RecoverSegment of the topic whose key is topic: what the node's own
// recoveries call (recoverLost), with the key they hold.
func (n *Node) recoverSegment(ctx context.Context, topic string, to, segment uint64, force bool) (*meta.Segment, error) {
	t, err := n.topic(ctx, topic)
	if err != nil {
		return nil, err
	}
	act := *t.Active()
	if segment != 0 && segment != act.ID {
		for _, s := range t.Segments {
			if s.ID == segment && s.Abandoned {
				n.log.Info("recover-segment of a segment abandoned already: nothing to do", "topic", topic, "segment", segment, "active", act.ID)
				return &act, nil
			}
		}
		return nil, fmt.Errorf("%w: segment %d is not the active segment of %q (segment %d is, led by node %d)", ErrBadRequest, segment, topic, act.ID, act.Leader)
	}
	if to != 0 {
		if err := n.checkVoter(to); err != nil {
			return nil, err
		}
	}
	if !force && n.peerAnswers(ctx, act.Leader, n.cfg.LeaseTimeout, recoverProbes) {
		return nil, fmt.Errorf("%w: node %d, leader of segment %d of %q, answers (a status probe within --lease-timeout %v, or it leads Raft) and may still acknowledge writes; recovering would abandon what it holds (force it if that node must go)",
			ErrBadRequest, act.Leader, act.ID, topic, n.cfg.LeaseTimeout)
	}
	if len(act.Replicas) > 1 {
		// A replicated segment: sealed at what its followers hold, not abandoned.
		return n.failoverSegment(ctx, topic, act.ID, to)
	}
	if to == 0 {
		to = n.nextLeader(act.Leader)
	}
	if to == act.Leader {
		return nil, rpc.Unavailable(fmt.Sprintf("no live voter besides node %d to move segment %d of %q to", act.Leader, act.ID, topic), nil)
	}
	cmd := &meta.Command{Op: meta.OpRecover, Topic: topic, Segment: act.ID, NextLeader: to, Replicas: n.replicaSet(to, t.Config.Replication())}
	if _, err := n.propose(ctx, cmd); err != nil {
		return nil, err
	}
	n.log.Warn("segment abandoned: writes moved to another node", "topic", topic, "segment", act.ID, "base", act.Base,
		"old_leader", act.Leader, "new_leader", to)
	t, err = n.topic(ctx, topic)
	if err != nil {
		return nil, err
	}
	next := *t.Active()
	return &next, nil
}

// checkVoter returns ErrBadRequest unless node id is a voter of the Raft
// configuration: a segment led by any other node would take no writes.
func (n *Node) checkVoter(id uint64) error {
	members, err := n.raft.Members()
	if err != nil {
		return rpc.Unavailable(fmt.Sprintf("cannot check that node %d is a voter", id), err)
	}
	var voters []uint64
	for _, m := range members {
		if m.ID == id && m.Voter {
			return nil
		}
		if m.Voter {
			voters = append(voters, m.ID)
		}
	}
	return fmt.Errorf("%w: node %d is not a voter of the cluster (voters: %v); a segment must be led by one", ErrBadRequest, id, voters)
}

// peerAnswers reports whether node id may be alive, for recover-segment, which must
// never take a live node for dead: it is this node or the Raft leader as this node
// knows it, or it answers a status call within window, out of at least probes sent
// (rpc.Peer.Answers). recover-segment asks for recoverProbes over a whole
// --lease-timeout: a node that stayed silent that long has lost any write lease it
// had, unless it still hears from the Raft leader while this node cannot reach it (a
// one-sided partition), which the probes cannot see. A cancelled ctx counts as an
// answer: nothing was proven dead.
func (n *Node) peerAnswers(ctx context.Context, id uint64, window time.Duration, probes int) bool {
	if leader, _ := n.raft.Leader(); leader == id {
		return true
	}
	return n.peerProbe(ctx, id, window, probes)
}

// peerProbe reports whether node id is this node or answers a status call within
// window, out of at least probes sent: for choosing a live node (nextLeader,
// replicaSet), where the Raft leader gets no benefit of the doubt. A follower takes
// a Raft leader that has just died for its leader until its heartbeat timeout
// elects another, and a segment handed to it then would wait for an operator's
// recover-segment (TestResilience caught it: four topics rolled over onto the
// killed leader in the second after its death).
func (n *Node) peerProbe(ctx context.Context, id uint64, window time.Duration, probes int) bool {
	if id == n.cfg.NodeID {
		return true
	}
	p, err := n.nodePeer(id)
	if err != nil {
		return false
	}
	return p.Answers(ctx, window, probes)
}

// recoverProbes is the fewest status probes before recover-segment takes a segment
// leader for dead.
const recoverProbes = 3

// setAsideAbandoned moves this node's files of abandoned segments it led or followed
// (closing a follower's open copy first) out of the segment store, to <data-dir>/abandoned/<topic>/, for salvage with floe wal dump. It
// acts only on metadata caught up with the Raft leader's (a stale view could not name
// an abandoned segment wrongly, but the store must be the one the metadata describes).
// A copy never replaces a file there: it gets a name of its own (see salvageCopy),
// and the segment's file is removed only once the copy and its directory are fsynced.
// done (segments already handled) lives in memory: after a restart, a file already set
// aside is simply not in the store any more.
func (n *Node) setAsideAbandoned(done map[segKey]bool) {
	if !n.synced.Load() {
		return
	}
	for _, name := range n.fsm.TopicKeys() {
		var ids []uint64
		n.fsm.View(name, func(t *meta.Topic) {
			for _, s := range t.Segments {
				if s.Abandoned && s.HasReplica(n.cfg.NodeID) && !done[segKey{name, s.ID}] {
					ids = append(ids, s.ID)
				}
			}
		})
		for _, id := range ids {
			n.closeReplica(segKey{name, id})
			if !n.HasLocal(name, id) {
				done[segKey{name, id}] = true
				continue
			}
			// The count for the log line; the file is opened as sealed so that
			// nothing (not even a torn tail) is changed before it is copied.
			count := "unknown (the file is damaged: see floe wal dump)"
			if seg, err := n.store.Acquire(name, id, true); err == nil {
				count = strconv.FormatUint(seg.Count(), 10)
				n.store.Release(seg)
			}
			src := n.store.Path(name, id)
			dst, err := salvageCopy(src, filepath.Join(n.cfg.DataDir, "abandoned"), name)
			if err != nil {
				n.log.Error("cannot set aside the file of an abandoned segment", "topic", name, "segment", id, "err", err)
				continue
			}
			if err := n.RemoveLocal(name, id); err != nil {
				n.log.Error("cannot remove the file of an abandoned segment", "topic", name, "segment", id, "err", err)
				continue
			}
			done[segKey{name, id}] = true
			n.log.Error("segment was abandoned while this node was down (floe cluster recover-segment): its entries are not part of the topic; file kept for salvage",
				"topic", name, "segment", id, "entries", count, "file", dst)
		}
	}
}

// removeSalvageTemps deletes the temporary files of salvage copies that a crash
// interrupted (<root>/<topic>/.salvage-*): the segment file they were copied from is
// still in the store (it is removed only after a copy is complete), so the next pass
// copies it again. Only the goroutine that makes salvage copies may call it, before
// its first copy.
func removeSalvageTemps(root string, log *slog.Logger) {
	temps, _ := filepath.Glob(filepath.Join(root, "*", ".salvage-*"))
	for _, f := range temps {
		if err := os.Remove(f); err != nil {
			log.Warn("cannot remove the temporary file of an interrupted salvage copy", "file", f, "err", err)
		}
	}
}

// salvageCopy copies the file src into <root>/<topic>/ under a name no file there has
// (src's base name, else that name with .1, .2, ... appended) and returns its path.
// The copy is written under a temporary name and fsynced, then linked to its final
// name, which fails rather than replace a file; the directories are fsynced, so the
// copy is durable when it returns. It never writes to an existing file.
func salvageCopy(src, root, topic string) (string, error) {
	dir := filepath.Join(root, topic)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, d := range []string{filepath.Dir(root), root, dir} { // the new entries, if any
		if err := fsutil.SyncDir(d); err != nil {
			return "", err
		}
	}
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(dir, ".salvage-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return "", fmt.Errorf("cannot copy %q: %w", src, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	base := filepath.Base(src)
	for i := 0; ; i++ {
		dst := filepath.Join(dir, base)
		if i > 0 {
			dst = fmt.Sprintf("%s.%d", dst, i)
		}
		err := os.Link(tmp.Name(), dst)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		return dst, fsutil.SyncDir(dir)
	}
}
