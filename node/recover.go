package node

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"floe/meta"
)

// RecoverSegment moves a topic's writes off its active segment's leader while that
// node is down (DESIGN section 7, floe cluster recover-segment): the segment is sealed
// empty and abandoned through Raft, and the next one starts at its base on node to (0:
// the next live voter). What the old leader wrote into it and had not archived (its
// active segment is never archived) is no longer part of the topic; when the node
// returns, it sets the file aside under <data-dir>/abandoned/. Unless force, a leader
// that answers is not recovered from: its segment is not lost.
func (n *Node) RecoverSegment(ctx context.Context, topic string, to uint64, force bool) (*meta.Segment, error) {
	t, err := n.topic(ctx, topic)
	if err != nil {
		return nil, err
	}
	act := *t.Active()
	if !force && n.peerAnswers(act.Leader) {
		return nil, fmt.Errorf("%w: node %d, leader of segment %d of %q, answers; recovering would abandon what it holds (force it if that node must go)",
			ErrBadRequest, act.Leader, act.ID, topic)
	}
	if to == 0 {
		to = n.nextLeader(act.Leader)
	}
	if to == act.Leader {
		return nil, fmt.Errorf("%w: no live voter besides node %d to move segment %d of %q to", ErrUnavailable, act.Leader, act.ID, topic)
	}
	if _, err := n.propose(ctx, &meta.Command{Op: meta.OpRecover, Topic: topic, Segment: act.ID, NextLeader: to}); err != nil {
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

// peerAnswers reports whether node id answers a status call within a second.
func (n *Node) peerAnswers(id uint64) bool {
	if id == n.cfg.NodeID {
		return true
	}
	p, err := n.nodePeer(id)
	if err != nil {
		return false
	}
	_, err = p.call(opStatus, nil, time.Second)
	return err == nil
}

// setAsideAbandoned moves this node's files of abandoned segments it led out of the
// segment store, to <data-dir>/abandoned/<topic>/, for salvage with floe wal dump.
func (n *Node) setAsideAbandoned(done map[segKey]bool) {
	for _, name := range n.fsm.TopicNames() {
		var ids []uint64
		n.fsm.View(name, func(t *meta.Topic) {
			for _, s := range t.Segments {
				if s.Abandoned && s.Leader == n.cfg.NodeID && !done[segKey{name, s.ID}] {
					ids = append(ids, s.ID)
				}
			}
		})
		for _, id := range ids {
			if !n.HasLocal(name, id) {
				done[segKey{name, id}] = true
				continue
			}
			count := uint64(0)
			if seg, ok := n.store.Get(name, id); ok {
				count = seg.Count()
			}
			src := n.store.Path(name, id)
			dst := filepath.Join(n.cfg.DataDir, "abandoned", name, filepath.Base(src))
			if err := copyFile(src, dst); err != nil {
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

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
