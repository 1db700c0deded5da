package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"floe/internal/testenv"
	"floe/meta"
)

// TestDedupAnswerOfAbandonedSegment: a retry of an append that its segment leader
// wrote into a segment abandoned since (floe cluster recover-segment) must not get the
// remembered "written at offset N" answer: the entry is not part of the topic. The
// leader answers ErrNotSegmentLeader instead, which sends the retry to the segment that
// replaced it.
func TestDedupAnswerOfAbandonedSegment(t *testing.T) {
	nodes := startTestCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := nodes[0].Register(ctx, "d", nil); err != nil {
		t.Fatal(err)
	}
	act, _, ok := nodes[0].fsm.ActiveOf("d")
	if !ok {
		t.Fatal("topic d not known after REGISTER")
	}
	x := nodes[act.Leader-1]
	testenv.WaitFor(t, 10*time.Second, "the segment leader to hold its write lease", x.hasLease)

	appendAt := func(id uint64) appendResult {
		ch := make(chan appendResult, 1)
		x.appenderFor("d").enqueue(&appendReq{payloads: [][]byte{[]byte("once")}, bytes: 12, segment: act.ID,
			tag: appendTag{id: id}, done: func(r appendResult) { ch <- r }})
		return <-ch
	}
	const id = 4242
	if r := appendAt(id); r.err != nil || r.segment != act.ID {
		t.Fatalf("first append: segment %d, %v; want segment %d", r.segment, r.err, act.ID)
	}

	to := act.Leader%3 + 1
	if _, err := nodes[to-1].RecoverSegment(ctx, "d", to, act.ID, true); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the segment leader to apply the recovery", func() bool {
		s, ok := x.fsm.SegmentOf("d", act.ID)
		return ok && s.Abandoned
	})

	r := appendAt(id)
	if r.err == nil {
		t.Fatalf("retry after the recovery answered written at offset %d of segment %d, which is abandoned; want ErrNotSegmentLeader", r.first, r.segment)
	}
	if !errors.Is(r.err, ErrNotSegmentLeader) {
		t.Fatalf("retry after the recovery: %v, want ErrNotSegmentLeader", r.err)
	}
	if s, _ := x.fsm.SegmentOf("d", act.ID+1); s.Leader != to || s.State != meta.Active {
		t.Fatalf("segment after the recovery: %+v, want active on node %d", s, to)
	}
}
