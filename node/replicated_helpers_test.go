package node

import (
	"context"
	"testing"
	"time"

	"floe/meta"
)

// startReplicated starts an in-process cluster of 3 whose failover timeout is longer
// than any test, creates topic with replication factor 3, appends each payload
// through nodes[0], and returns the nodes and the topic's active segment.
func startReplicated(t *testing.T, topic string, payloads ...string) ([]*Node, meta.Segment) {
	t.Helper()
	nodes := startTestCluster(t, 3, func(c *Config) { c.SegmentFailoverTimeout = time.Hour })
	ctx := context.Background()
	if err := nodes[0].Register(ctx, topic, &meta.TopicConfig{ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	for _, p := range payloads {
		if _, err := nodes[0].Append(ctx, topic, [][]byte{[]byte(p)}); err != nil {
			t.Fatal(err)
		}
	}
	act, _, ok := nodes[0].fsm.ActiveOf(nodes[0].key(topic))
	if !ok {
		t.Fatalf("%q has no active segment", topic)
	}
	return nodes, act
}

// followerIndex returns the index in nodes of a follower of segment s (a replica
// that does not lead it).
func followerIndex(t *testing.T, nodes []*Node, s meta.Segment) int {
	t.Helper()
	for i, n := range nodes {
		if s.HasReplica(n.cfg.NodeID) && s.Leader != n.cfg.NodeID {
			return i
		}
	}
	t.Fatalf("segment %d has no follower among the nodes", s.ID)
	return -1
}

// key is the key of the live topic named name on n, what the node's internals take
// where a client gives a name; it waits up to 10 s for n to know the topic ("" if it
// does not by then).
func (n *Node) key(name string) string {
	deadline := time.Now().Add(10 * time.Second)
	for {
		k, ok := n.fsm.Resolve(name)
		if ok || time.Now().After(deadline) {
			return k
		}
		select {
		case <-n.fsm.Changed():
		case <-time.After(100 * time.Millisecond):
		}
	}
}
