package node

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"floe/internal/testenv"
	"floe/meta"
	"floe/node/segment"
)

// TestDeadDiskMovesWritesOff: the disk under a replicated segment's leader dies while
// the process lives on (every write, fsync and truncate fails). The leader answers
// probes, so the failover timeout (an hour here) never passes; its failed write makes
// it roll the segment over (sealing needs no write when its followers hold what it
// has; when they do not, the seal's cut fails and it hands the segment to them:
// TestUnsealableSegmentHandedOff), and the next segment starts on another node.
// Writes go on, and every acknowledged entry is read back at its offset through
// every node.
func TestDeadDiskMovesWritesOff(t *testing.T) {
	disks := map[uint64]*segment.FaultFS{}
	nodes := startTestCluster(t, 3, func(c *Config) {
		disks[c.NodeID] = &segment.FaultFS{}
		c.segmentFS = disks[c.NodeID]
		c.SegmentFailoverTimeout = time.Hour
	})
	ctx := context.Background()
	if err := nodes[0].Register(ctx, "d", &meta.TopicConfig{ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	acked := map[uint64]string{}
	put := func(p string) error {
		off, err := nodes[0].Append(ctx, "d", [][]byte{[]byte(p)})
		if err == nil {
			acked[off] = p
		}
		return err
	}
	for i := 0; i < 20; i++ {
		if err := put(fmt.Sprintf("before%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	act, _, _ := nodes[0].fsm.ActiveOf(nodes[0].key("d"))
	disks[act.Leader].Break(syscall.EIO)
	i := 0
	testenv.WaitFor(t, 60*time.Second, "writes to go on after the segment leader's disk died", func() bool {
		i++
		return put(fmt.Sprintf("after%d", i)) == nil
	})
	now, _, _ := nodes[0].fsm.ActiveOf(nodes[0].key("d"))
	if now.Leader == act.Leader || now.ID == act.ID {
		t.Fatalf("active segment %d led by node %d; want a new one off node %d", now.ID, now.Leader, act.Leader)
	}
	for _, n := range nodes {
		es, _, err := n.reader.Read(ctx, n.key("d"), 0, 1000)
		if err != nil {
			t.Fatalf("read through node %d: %v", n.cfg.NodeID, err)
		}
		got := map[uint64]string{}
		for _, e := range es {
			got[e.Offset] = string(e.Payload)
		}
		for off, p := range acked {
			if got[off] != p {
				t.Fatalf("node %d: offset %d holds %q, acknowledged %q", n.cfg.NodeID, off, got[off], p)
			}
		}
	}
}
