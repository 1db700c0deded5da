package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"floe/internal/testenv"
	"floe/meta"
)

// startTestCluster starts n in-process nodes on loopback (node 1 bootstraps, the
// others join it) and waits until every node knows all members and a Raft leader.
// tweak (may be nil) edits each node's config first.
func startTestCluster(t *testing.T, size int, tweak func(*Config)) []*Node {
	t.Helper()
	dir := t.TempDir()
	var nodes []*Node
	t.Cleanup(func() {
		for _, n := range nodes {
			n.Close()
		}
	})
	for i := 1; i <= size; i++ {
		cfg := Config{
			NodeID: uint64(i), DataDir: filepath.Join(dir, fmt.Sprint("node", i)),
			HeartbeatTimeout: 300 * time.Millisecond, LeaseTimeout: time.Second, RequestTimeout: 20 * time.Second,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RaftLogLevel: "error",
		}
		if i > 1 {
			cfg.Join = nodes[0].RaftAddr()
		}
		if tweak != nil {
			tweak(&cfg)
		}
		n, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	testenv.WaitFor(t, 30*time.Second, "every node registered and a raft leader known", func() bool {
		for _, n := range nodes {
			if id, _ := n.raft.Leader(); id == 0 || len(n.fsm.Nodes()) != size {
				return false
			}
		}
		return true
	})
	return nodes
}

// TestGetSurvivesLeaderChangeAfterCursorCommit (issue 7 item 6): a GET's cursor
// advance commits, then the Raft leader loses leadership before the GET's node hears
// the answer, and the node retries through the new leader. Before request ids, the
// retry answered ErrCursorMoved and the GET returned entry 1: entry 0 reached no
// reader. Now the retry gets the first attempt's result and every entry is handed
// out exactly once, in order.
func TestGetSurvivesLeaderChangeAfterCursorCommit(t *testing.T) {
	nodes := startTestCluster(t, 3, nil)
	ctx := context.Background()
	if err := nodes[0].Register(ctx, "t", nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"e0", "e1", "e2"}
	for _, p := range want {
		if _, err := nodes[0].Append(ctx, "t", [][]byte{[]byte(p)}); err != nil {
			t.Fatal(err)
		}
	}
	leader, follower := raftLeader(t, nodes)
	crossed := failAfterCommit(t, leader, meta.OpAdvanceCursor)

	var got []string
	for {
		es, err := follower.reader.Get(ctx, follower.key("t"), 1)
		if err != nil {
			t.Fatalf("GET after %q: %v", got, err)
		}
		if len(es) == 0 {
			break
		}
		got = append(got, string(es[0].Payload))
	}
	crossed()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("GETs returned %q, want %q (each entry exactly once)", got, want)
	}
}

// TestRecoverSegmentSurvivesLeaderChangeAfterCommit (issue 7 item 6): the
// recover_segment command commits, the Raft leader changes before the answer, and the
// retry answers success with the new active segment; before request ids it answered
// ErrStaleSegment, which invites an operator to re-run it with --force.
func TestRecoverSegmentSurvivesLeaderChangeAfterCommit(t *testing.T) {
	nodes := startTestCluster(t, 3, nil)
	ctx := context.Background()
	if err := nodes[0].Register(ctx, "r", nil); err != nil {
		t.Fatal(err)
	}
	act, _, _ := nodes[0].fsm.ActiveOf(nodes[0].key("r"))
	to := act.Leader%3 + 1
	leader, reader := raftLeader(t, nodes)
	crossed := failAfterCommit(t, leader, meta.OpRecover)
	next, err := reader.RecoverSegment(ctx, "r", to, act.ID, true)
	if err != nil {
		t.Fatalf("recover-segment: %v", err)
	}
	crossed()
	top, _ := reader.fsm.Topic(reader.key("r"))
	if next.ID != 2 || next.Leader != to || len(top.Segments) != 2 || !top.Segments[0].Abandoned {
		t.Fatalf("after one recover-segment: answered %+v, segments %+v; want segment 1 abandoned and 2 active on node %d", next, top.Segments, to)
	}

	// The operator, who got no answer, runs the same command again, with --force:
	// segment 1 is abandoned already, so nothing changes (segment 2 stays live).
	again, err := reader.RecoverSegment(ctx, "r", 0, act.ID, true)
	if top, _ := reader.fsm.Topic(reader.key("r")); err != nil || again.ID != 2 || len(top.Segments) != 2 || top.Segments[1].Abandoned {
		t.Fatalf("recover-segment --force --segment %d repeated: answered %+v, %v; segments %+v; want segment 2 untouched", act.ID, again, err, top.Segments)
	}
	// --force without --segment, and a segment that is neither active nor abandoned,
	// are refused.
	if _, err := reader.RecoverSegment(ctx, "r", 0, 0, true); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("recover-segment --force without --segment: %v, want ErrBadRequest", err)
	}
	if _, err := reader.RecoverSegment(ctx, "r", 0, 7, false); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("recover-segment --segment 7 (no such segment): %v, want ErrBadRequest", err)
	}
	if top, _ := reader.fsm.Topic(reader.key("r")); len(top.Segments) != 2 || top.Segments[1].Abandoned {
		t.Fatalf("after refused recover-segments: segments %+v, want segment 2 untouched", top.Segments)
	}
}

// raftLeader returns the Raft leader and another node.
func raftLeader(t *testing.T, nodes []*Node) (leader, other *Node) {
	t.Helper()
	for _, n := range nodes {
		if n.raft.IsLeader() {
			leader = n
		} else if other == nil {
			other = n
		}
	}
	if leader == nil {
		t.Fatal("no raft leader")
	}
	return leader, other
}

// failAfterCommit makes leader, after it applied the first forwarded command of op,
// hand leadership over and answer an error, as a leader that crashes right after the
// commit would. The returned check fails the test unless that happened.
func failAfterCommit(t *testing.T, leader *Node, op string) (check func()) {
	var fired, transferred atomic.Bool
	fault := func(c *meta.Command) error {
		if c.Op != op || !fired.CompareAndSwap(false, true) {
			return nil
		}
		if err := leader.raft.TransferLeadership(); err != nil {
			return fmt.Errorf("%w: leadership transfer: %v", ErrUnavailable, err)
		}
		transferred.Store(true)
		return fmt.Errorf("%w: leader lost after the commit (test fault)", ErrUnavailable)
	}
	leader.applyFault.Store(&fault)
	return func() {
		t.Helper()
		if !fired.Load() || !transferred.Load() {
			t.Fatalf("fault fired %v, leadership transferred %v: the retry did not cross a leader change", fired.Load(), transferred.Load())
		}
	}
}
