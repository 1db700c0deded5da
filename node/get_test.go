package node

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"floe/meta"
	"floe/node/rpc"
)

// TestGetThroughFollowerJoinsLeaderBatch: a GET that reaches a follower is forwarded
// whole to the Raft leader and served by the leader's batch: the follower proposes no
// cursor advance of its own (before, it read its own cursor and forwarded one advance
// per entry). Entries come out once each, in order, whichever node is asked; a node
// that is not the leader refuses a forwarded GET.
func TestGetThroughFollowerJoinsLeaderBatch(t *testing.T) {
	nodes := startTestCluster(t, 3, nil)
	ctx := context.Background()
	if err := nodes[0].Register(ctx, "t", nil); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		if _, err := nodes[0].Append(ctx, "t", [][]byte{[]byte(fmt.Sprint("e", i))}); err != nil {
			t.Fatal(err)
		}
	}
	leader, follower := raftLeader(t, nodes)
	var forwarded atomic.Int64
	fault := func(c *meta.Command) error {
		if c.Op == meta.OpAdvanceCursor {
			forwarded.Add(1)
		}
		return nil
	}
	leader.applyFault.Store(&fault)

	var got []string
	for _, step := range []struct {
		via   *Node
		limit int
	}{{follower, 3}, {leader, 2}, {follower, 1}, {follower, 5}, {follower, 1}} {
		es, err := step.via.Get(ctx, "t", step.limit)
		if err != nil {
			t.Fatalf("GET %d after %q: %v", step.limit, got, err)
		}
		if len(es) > step.limit {
			t.Fatalf("GET %d returned %d entries", step.limit, len(es))
		}
		for _, e := range es {
			if want := uint64(len(got)); e.Offset != want {
				t.Fatalf("GET returned offset %d, want %d", e.Offset, want)
			}
			got = append(got, string(e.Payload))
		}
		// A STATE through the node that answered shows the cursor moved (it waits
		// for the index the leader answered the GET at).
		if st, err := step.via.State(ctx, "t"); err != nil || st.Cursor != uint64(len(got)) {
			t.Fatalf("after GETs of %d entries, STATE through the node that answered: %+v, %v", len(got), st, err)
		}
	}
	if fmt.Sprint(got) != "[e0 e1 e2 e3 e4 e5 e6 e7]" {
		t.Fatalf("GETs returned %q, want e0..e7 once each", got)
	}
	if n := forwarded.Load(); n != 0 {
		t.Fatalf("%d cursor advances were forwarded to the leader as commands; want none (GETs join its batch)", n)
	}

	_, err := leader.peers.Get(follower.RaftAddr()).Call(ctx, rpc.OpGet, rpc.Get{Topic: "t", Max: 1}.Encode(), 5*time.Second)
	if !errors.Is(err, meta.ErrNotRaftLeader) {
		t.Fatalf("a GET forwarded to a follower: %v; want meta.ErrNotRaftLeader", err)
	}
}
