package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"floe/internal/fsutil"
	"floe/meta"
	"floe/node/rpc"
)

// A node that comes back with an empty data dir under its old member id (its disk
// was lost and it was restarted before floe cluster remove-node) finds itself the
// leader of active segments whose entries it does not have. Writing them would give
// new entries the offsets of acknowledged ones, and, in a replicated topic, other
// data than its followers' copies hold at the same indexes. So each data dir gets a
// random incarnation id (incarnationFile, beside its Raft state), registered with
// the node's addresses; the metadata records the Raft index at which an incarnation replaced another one of
// the same member (meta.NodeInfo.Incarnated). An active segment this node leads that
// was made active before that index, or while its new incarnation is not registered
// yet, is lost here: the node neither opens nor writes nor reads it locally, and
// recovers it as floe cluster recover-segment --force does (a replicated segment is
// sealed at its followers' copies, losing nothing acknowledged; a segment of factor
// 1 is abandoned: its entries were on the lost disk only). A segment never written
// (made active while the node was coming back) is recovered too, at no cost but a
// roll-over.

// incarnationFile, in the Raft state's directory, holds its incarnation id.
const incarnationFile = "incarnation"

// loadIncarnation returns the incarnation id of the Raft state in dir, creating it
// (random, non-zero, durable) when there is none: a new data dir, or one written by
// a version without incarnations.
func loadIncarnation(dir string) (uint64, error) {
	path := filepath.Join(dir, incarnationFile)
	b, err := os.ReadFile(path)
	if err == nil {
		id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || id == 0 {
			return 0, fmt.Errorf("%s does not hold an incarnation id (%q); it names this Raft state: remove it only with the raft directory (the node then comes back as a new data dir)", path, b)
		}
		return id, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("cannot read the data dir's incarnation: %w", err)
	}
	var id uint64
	for id == 0 {
		var buf [8]byte
		if _, err := rand.Read(buf[:]); err != nil {
			return 0, err
		}
		id = binary.BigEndian.Uint64(buf[:])
	}
	if err := fsutil.WriteFile(dir, incarnationFile, []byte(strconv.FormatUint(id, 10)+"\n")); err != nil {
		return 0, fmt.Errorf("cannot record the data dir's incarnation: %w", err)
	}
	return id, nil
}

// lostSegments are the lost segments being recovered, one goroutine each.
type lostSegments struct {
	mu         sync.Mutex
	recovering map[segKey]bool
}

// lostSegment returns an error (ErrUnavailable) if s, an active segment this node
// leads, is lost here, and starts its recovery; nil otherwise.
func (n *Node) lostSegment(topic string, s *meta.Segment) error {
	if !n.beforeDataDir(s) {
		return nil
	}
	n.recoverLost(topic, s.ID, "this node leads an active segment made active before its data dir was created: recovering it from the other nodes")
	return rpc.Unavailable(fmt.Sprintf("segment %d of %q was made active before this node's data dir was created (node %d came back with an empty disk): its entries are not here, and it is being recovered on the other nodes",
		s.ID, topic, n.cfg.NodeID), nil)
}

// handOff is write.Config.HandOff: a replicated segment this node cannot seal on its
// disk is recovered (failed over) from its followers' copies.
func (n *Node) handOff(topic string, id uint64) {
	n.recoverLost(topic, id, "this node cannot seal an active segment it leads on its disk: failing it over to its followers' copies")
}

// beforeDataDir reports whether segment s was made active before this node's data
// dir was registered in place of an earlier one of the same member: what this node
// held of it went with the earlier data dir. A new member, or one whose earlier data
// dir did not say (an older version), is never.
func (n *Node) beforeDataDir(s *meta.Segment) bool {
	info, ok := n.fsm.Node(n.cfg.NodeID)
	switch {
	case !ok, info.Incarnation == 0:
		return false
	case info.Incarnation != n.incarnation.Load():
		return true // this data dir is not registered yet
	}
	return info.Incarnated != 0 && s.LeaderIndex <= info.Incarnated
}

// recoverLost recovers segment id of topic, which this node leads but cannot serve
// (why), in the background (once at a time), until it is no longer the active
// segment this node leads.
func (n *Node) recoverLost(topic string, id uint64, why string) {
	k := segKey{topic, id}
	n.lost.mu.Lock()
	if n.lost.recovering[k] {
		n.lost.mu.Unlock()
		return
	}
	if n.lost.recovering == nil {
		n.lost.recovering = map[segKey]bool{}
	}
	n.lost.recovering[k] = true
	n.lost.mu.Unlock()
	n.log.Error(why, "topic", topic, "segment", id)
	n.goLoop(func() {
		defer func() {
			n.lost.mu.Lock()
			delete(n.lost.recovering, k)
			n.lost.mu.Unlock()
		}()
		for attempt := 0; ; attempt++ {
			if act, _, ok := n.fsm.ActiveOf(topic); !ok || act.ID != id || act.Leader != n.cfg.NodeID {
				return
			}
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
			next, err := n.recoverSegment(ctx, topic, 0, id, true)
			cancel()
			if err == nil {
				n.log.Warn("lost segment recovered", "topic", topic, "segment", id, "next_segment", next.ID, "next_leader", next.Leader)
				return
			}
			n.log.Warn("cannot recover a lost segment yet; will try again", "topic", topic, "segment", id, "err", err)
			if n.backoff(n.ctx, attempt+3, nil) != nil {
				return
			}
		}
	})
}
