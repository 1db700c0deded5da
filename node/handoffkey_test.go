package node

import (
	"context"
	"testing"
	"time"

	"floe/internal/testenv"
	"floe/meta"
)

// TestHandOffTopicWithIncarnation: the node's own recoveries (handOff, recoverLost)
// hold the topic's key and recover the segment by key: a segment whose leader cannot
// seal it is failed over for a topic with an incarnation id too (they once passed the
// key where a client's name is resolved, and retried forever).
func TestHandOffTopicWithIncarnation(t *testing.T) {
	nodes := startTestCluster(t, 3, func(c *Config) { c.SegmentFailoverTimeout = time.Hour })
	ctx := context.Background()
	if err := nodes[0].Register(ctx, "d", &meta.TopicConfig{ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	key := nodes[0].key("d")
	if key == "d" {
		t.Fatalf("key %q: want an incarnation id", key)
	}
	for i := 0; i < 5; i++ {
		if _, err := nodes[0].Append(ctx, "d", [][]byte{[]byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	act, _, _ := nodes[0].fsm.ActiveOf(key)
	var leader *Node
	for _, n := range nodes {
		if n.cfg.NodeID == act.Leader {
			leader = n
		}
	}
	// What the appender calls when its disk cannot seal the segment.
	leader.handOff(key, act.ID)
	testenv.WaitFor(t, 30*time.Second, "the handed-off segment to be failed over", func() bool {
		now, _, _ := nodes[0].fsm.ActiveOf(key)
		return now.ID != act.ID
	})
}
