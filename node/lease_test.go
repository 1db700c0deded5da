package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"floe/internal/testenv"
	"floe/meta"
	"floe/node/write"
)

// TestDedupAnswerOfAbandonedSegment: a retry of an append that its segment leader
// wrote into a segment abandoned since (floe cluster recover-segment) must not get the
// remembered "written at offset N" answer: the entry is not part of the topic. The
// leader answers ErrNotSegmentLeader instead, which sends the retry to the segment that
// replaced it.
func TestDedupAnswerOfAbandonedSegment(t *testing.T) {
	nodes := startTestCluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := nodes[0].Register(ctx, "d", nil); err != nil {
		t.Fatal(err)
	}
	act, _, ok := nodes[0].fsm.ActiveOf(nodes[0].key("d"))
	if !ok {
		t.Fatal("topic d not known after REGISTER")
	}
	x := nodes[act.Leader-1]
	testenv.WaitFor(t, 10*time.Second, "the segment leader to hold its write lease", x.hasLease)

	appendAt := func(id uint64) write.Result {
		ch := make(chan write.Result, 1)
		x.writer.Appender(x.key("d")).Enqueue(&write.Request{Payloads: [][]byte{[]byte("once")}, Bytes: 12, Segment: act.ID,
			Tag: write.Tag{ID: id}, Done: func(r write.Result) { ch <- r }})
		return <-ch
	}
	const id = 4242
	if r := appendAt(id); r.Err != nil || r.Segment != act.ID {
		t.Fatalf("first append: segment %d, %v; want segment %d", r.Segment, r.Err, act.ID)
	}

	to := act.Leader%3 + 1
	if _, err := nodes[to-1].RecoverSegment(ctx, "d", to, act.ID, true); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the segment leader to apply the recovery", func() bool {
		s, ok := x.fsm.SegmentOf(x.key("d"), act.ID)
		return ok && s.Abandoned
	})

	r := appendAt(id)
	if r.Err == nil {
		t.Fatalf("retry after the recovery answered written at offset %d of segment %d, which is abandoned; want ErrNotSegmentLeader", r.First, r.Segment)
	}
	if !errors.Is(r.Err, ErrNotSegmentLeader) {
		t.Fatalf("retry after the recovery: %v, want ErrNotSegmentLeader", r.Err)
	}
	if s, _ := x.fsm.SegmentOf(x.key("d"), act.ID+1); s.Leader != to || s.State != meta.Active {
		t.Fatalf("segment after the recovery: %+v, want active on node %d", s, to)
	}
}
