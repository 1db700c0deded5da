package node

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"floe/internal/testenv"
	"floe/meta"
)

// TestWipedFollowerFence (found by review): a follower that lost its disk and came
// back under its old id (before remove-node) holds none of what its earlier data dir
// counted in acknowledgements: it does not answer a failover's fence (its count could
// seal the segment without them) until its copy holds what the leader had
// acknowledged when it first heard from it again; then it answers like any follower.
func TestWipedFollowerFence(t *testing.T) {
	// A topic whose active segment (5 entries) is led by a node that is not the Raft
	// leader; fol is its other follower, neither leader.
	setup := func(t *testing.T) (nodes []*Node, topic string, act meta.Segment, leader, rl, fol *Node) {
		nodes = startTestCluster(t, 3, func(c *Config) { c.SegmentFailoverTimeout = time.Hour })
		ctx := context.Background()
		rl, _ = raftLeader(t, nodes)
		for i := 0; ; i++ {
			topic = fmt.Sprintf("w%d", i)
			if err := nodes[0].Register(ctx, topic, &meta.TopicConfig{ReplicationFactor: 3}); err != nil {
				t.Fatal(err)
			}
			if act, _, _ = nodes[0].fsm.ActiveOf(nodes[0].key(topic)); act.Leader != rl.cfg.NodeID {
				break
			}
		}
		for _, n := range nodes {
			switch {
			case n.cfg.NodeID == act.Leader:
				leader = n
			case n != rl:
				fol = n
			}
		}
		for i := 0; i < 5; i++ {
			if _, err := leader.Append(ctx, topic, [][]byte{[]byte(fmt.Sprintf("e%d", i))}); err != nil {
				t.Fatal(err)
			}
		}
		return nodes, topic, act, leader, rl, fol
	}
	// wipeRestart restarts n with an empty data dir, same id and address, joining via.
	wipeRestart := func(t *testing.T, nodes []*Node, n, via *Node) *Node {
		t.Helper()
		cfg := n.cfg
		_, port, _ := net.SplitHostPort(n.RaftAddr())
		cfg.RaftPort, _ = strconv.Atoi(port)
		cfg.Join = via.RaftAddr()
		n.Close()
		if err := os.RemoveAll(cfg.DataDir); err != nil {
			t.Fatal(err)
		}
		m, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i := range nodes {
			if nodes[i] == n {
				nodes[i] = m
			}
		}
		return m
	}

	t.Run("refused while the copy lacks what was acknowledged", func(t *testing.T) {
		nodes, topic, act, leader, rl, fol := setup(t)
		leader.Close() // nothing can bring the wiped copy level
		fol = wipeRestart(t, nodes, fol, rl)
		testenv.WaitFor(t, 30*time.Second, "the wiped follower to know the segment", func() bool {
			_, ok := fol.fsm.SegmentOf(fol.key(topic), act.ID)
			return ok
		})
		_, _, _, err := fol.fenceReplica(fol.key(topic), act.ID, act.Epoch())
		if err == nil || !strings.Contains(err.Error(), "started afresh") {
			t.Fatalf("fence of the wiped follower's copy: %v; want it refused", err)
		}
	})
	t.Run("answered once the copy is level", func(t *testing.T) {
		nodes, topic, act, _, rl, fol := setup(t)
		fol = wipeRestart(t, nodes, fol, rl)
		testenv.WaitFor(t, 30*time.Second, "the wiped follower's copy to be level and answer a fence", func() bool {
			count, _, _, err := fol.fenceReplica(fol.key(topic), act.ID, act.Epoch())
			if err != nil {
				return false
			}
			if err := fol.unfence(fol.key(topic), act.ID); err != nil {
				t.Fatal(err)
			}
			return count == 5
		})
	})
}

// TestDroppedCopyFence (found by review): a follower whose copy was removed as damaged
// (dropCopy) and started afresh does not answer a failover's fence until the new copy
// holds what the leader had acknowledged when it first heard from it again: the
// entries the removed copy held may have counted in acknowledgements.
func TestDroppedCopyFence(t *testing.T) {
	nodes, act := startReplicated(t, "d", "e0", "e1", "e2", "e3", "e4")
	fol := nodes[followerIndex(t, nodes, act)]
	k := segKey{fol.key("d"), act.ID}
	// Told that all 5 are committed: no tell is on its way that would fill the new
	// copy before the first fence below.
	testenv.WaitFor(t, 30*time.Second, "the follower's copy to hold the 5 entries, and be told they are committed", func() bool {
		c, err := fol.replicaCopy(fol.key("d"), act.ID)
		return err == nil && c.seg.Count() == 5 && c.committed.Load() == 5
	})
	c, _ := fol.replicaCopy(fol.key("d"), act.ID)
	c.mu.Lock()
	fol.dropCopy(k, c, fmt.Errorf("damaged (test)"))
	c.mu.Unlock()
	if _, _, _, err := fol.fenceReplica(fol.key("d"), act.ID, act.Epoch()); err == nil || !strings.Contains(err.Error(), "started afresh") {
		t.Fatalf("fence right after the copy was dropped: %v; want it refused", err)
	}
	testenv.WaitFor(t, 30*time.Second, "the new copy to be level and answer a fence", func() bool {
		count, _, _, err := fol.fenceReplica(fol.key("d"), act.ID, act.Epoch())
		if err != nil {
			return false
		}
		if err := fol.unfence(fol.key("d"), act.ID); err != nil {
			t.Fatal(err)
		}
		return count == 5
	})
}
