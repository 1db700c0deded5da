package write

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"floe/internal/testenv"
	"floe/meta"
	"floe/node/rpc"
)

// job submits payload to s; its outcome goes to the returned channel.
func job(s *Sequence, payload string) chan Result {
	ch := make(chan Result, 1)
	s.Submit(&Job{Payloads: [][]byte{[]byte(payload)}, Reply: func(r Result) { ch <- r }})
	return ch
}

// reply waits for the outcome on ch.
func reply(t *testing.T, ch chan Result) Result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no reply")
		return Result{}
	}
}

// expectSent checks that the next forwarded append carries payload to node with Base
// as given, and returns it.
func expectSent(t *testing.T, p *fakePeers, node uint64, payload string, base bool) sent {
	t.Helper()
	s := p.next(t)
	if s.node != node || string(s.a.Payloads[0]) != payload || s.a.Base != base {
		t.Fatalf("forwarded %q to node %d (seq %d, base %v), want %q to node %d with base %v",
			s.a.Payloads, s.node, s.a.Seq, s.a.Base, payload, node, base)
	}
	return s
}

// TestSequenceHoldsNewRouteUntilInFlightSettle: a connection's appends are pipelined
// to the segment leader; when the route changes while some are in flight, the next
// append waits until they have settled, so it can never overtake them.
func TestSequenceHoldsNewRouteUntilInFlightSettle(t *testing.T) {
	h := newHarness(t, Limits{})
	h.md.register("q", 2, meta.TopicConfig{})
	s := h.w.NewSequence("q")

	c1, c2 := job(s, "1"), job(s, "2")
	s1 := expectSent(t, h.peers, 2, "1", true)
	s2 := expectSent(t, h.peers, 2, "2", false) // pipelined behind 1: not a base
	if s1.a.Stream != s2.a.Stream || s1.a.Seq != 1 || s2.a.Seq != 2 {
		t.Fatalf("stream %d seq %d, stream %d seq %d: want one stream, seqs 1 and 2", s1.a.Stream, s1.a.Seq, s2.a.Stream, s2.a.Seq)
	}

	h.md.moveTo("q", 3, 2, false) // roll-over: node 3 leads segment 2
	c3 := job(s, "3")
	h.peers.none(t, "a new route while two appends are in flight")

	s1.ok(0, 1)
	h.peers.none(t, "a new route while one append is in flight")
	s2.ok(1, 1)
	s3 := expectSent(t, h.peers, 3, "3", true) // everything before it settled
	s3.ok(2, 2)
	for i, ch := range []chan Result{c1, c2, c3} {
		if got := reply(t, ch); got.Err != nil || got.First != uint64(i) {
			t.Fatalf("append %d: %+v, want offset %d", i+1, got, i)
		}
	}

	c4 := job(s, "4") // the fast path again
	expectSent(t, h.peers, 3, "4", true).ok(3, 2)
	if got := reply(t, c4); got.Err != nil || got.First != 3 {
		t.Fatalf("append 4: %+v, want offset 3", got)
	}
}

// TestSequencePipelinesAfterRouteChange: appends held while the route changed are
// pipelined to the new route once the old one has settled, as on the fast path, not
// sent one at a time. (They were, and a pipelined connection that kept submitting
// stayed on that serial path for good: after a roll-over moved a topic's segment to
// another node, 16 connections x 32 in flight ran at one forwarded append per
// connection per round trip.)
func TestSequencePipelinesAfterRouteChange(t *testing.T) {
	h := newHarness(t, Limits{})
	h.md.register("q", 2, meta.TopicConfig{})
	s := h.w.NewSequence("q")

	c1 := job(s, "1")
	s1 := expectSent(t, h.peers, 2, "1", true)
	h.md.moveTo("q", 3, 1, false) // roll-over: node 3 leads segment 2
	held := []chan Result{job(s, "2"), job(s, "3"), job(s, "4")}
	h.peers.none(t, "a new route while append 1 is in flight")
	s1.ok(0, 1)

	s2 := expectSent(t, h.peers, 3, "2", true)  // everything before it settled
	s3 := expectSent(t, h.peers, 3, "3", false) // pipelined behind 2, unanswered
	c5 := job(s, "5")                           // submitted while 2 and 3 are in flight
	s4 := expectSent(t, h.peers, 3, "4", false)
	s5 := expectSent(t, h.peers, 3, "5", false)
	for i, x := range []sent{s2, s3, s4, s5} {
		x.ok(uint64(1+i), 2)
	}
	for i, ch := range append([]chan Result{c1}, append(held, c5)...) {
		if got := reply(t, ch); got.Err != nil || got.First != uint64(i) {
			t.Fatalf("append %d: %+v, want offset %d", i+1, got, i)
		}
	}
	if s2.a.Stream != s5.a.Stream || s5.a.Seq != s2.a.Seq+3 {
		t.Fatalf("appends 2 and 5: stream %d seq %d, stream %d seq %d; want one stream, consecutive", s2.a.Stream, s2.a.Seq, s5.a.Stream, s5.a.Seq)
	}
}

// TestSequenceFailureAmongPipelinedHeld: when one of the held appends pipelined to a
// new route fails, the ones behind it (which fail too) and the ones submitted
// meanwhile wait; the failures are retried one at a time, in order, and only then is
// the rest sent.
func TestSequenceFailureAmongPipelinedHeld(t *testing.T) {
	h := newHarness(t, Limits{})
	h.md.register("q", 2, meta.TopicConfig{})
	s := h.w.NewSequence("q")

	c1 := job(s, "1")
	s1 := expectSent(t, h.peers, 2, "1", true)
	h.md.moveTo("q", 3, 1, false)
	c2, c3 := job(s, "2"), job(s, "3")
	s1.ok(0, 1)
	s2 := expectSent(t, h.peers, 3, "2", true)
	s3 := expectSent(t, h.peers, 3, "3", false)

	s2.fail(fmt.Errorf("%w: not caught up", rpc.ErrNotSegmentLeader))
	// Once the failure is known (before, append 4 would take the fast path, and fail
	// behind it at the appender like 3), a new append is held.
	testenv.WaitFor(t, 10*time.Second, "the failure of 2 to settle", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.failed) == 1
	})
	c4 := job(s, "4") // submitted while 3 is still in flight behind the failure
	h.peers.none(t, "a retry or append 4 while append 3 is in flight")
	s3.fail(fmt.Errorf("%w: out of sequence", rpc.ErrUnavailable))

	r2 := expectSent(t, h.peers, 3, "2", true)
	h.peers.none(t, "append 3 or 4 while the retry of 2 is unanswered")
	r2.ok(1, 2)
	r3 := expectSent(t, h.peers, 3, "3", true)
	h.peers.none(t, "append 4 while the retry of 3 is unanswered")
	r3.ok(2, 2)
	expectSent(t, h.peers, 3, "4", true).ok(3, 2)
	for i, ch := range []chan Result{c1, c2, c3, c4} {
		if got := reply(t, ch); got.Err != nil || got.First != uint64(i) {
			t.Fatalf("append %d: %+v, want offset %d", i+1, got, i)
		}
	}
}

// TestSequenceRetriesFailuresInOrder: appends that fail with a retryable error are
// retried one at a time, in request order, after every in-flight append settled and
// before anything submitted later is sent; an ambiguous failure is retried on the
// node it went to, with that node's boot id, and the same request id.
func TestSequenceRetriesFailuresInOrder(t *testing.T) {
	h := newHarness(t, Limits{})
	h.md.register("q", 2, meta.TopicConfig{})
	s := h.w.NewSequence("q")

	c1, c2, c3 := job(s, "1"), job(s, "2"), job(s, "3")
	s1 := expectSent(t, h.peers, 2, "1", true)
	s2 := expectSent(t, h.peers, 2, "2", false)
	s3 := expectSent(t, h.peers, 2, "3", false)
	h.md.moveTo("q", 3, 1, false)

	// 3 fails first, then 2 is lost on the way (ambiguous), then 1 succeeds.
	s3.fail(fmt.Errorf("%w: sealing", rpc.ErrNotSegmentLeader))
	c4 := job(s, "4") // submitted while the sequence is on its slow path
	s2.reply <- rpc.Reply{Err: fmt.Errorf("%w: connection lost", rpc.ErrUnavailable)}
	h.peers.none(t, "a retry while append 1 is in flight")
	s1.ok(0, 1)

	r2 := expectSent(t, h.peers, 2, "2", true) // pinned: it may have been written there
	if r2.a.ID != s2.a.ID || r2.a.Boot != 102 {
		t.Fatalf("retry of 2: id %d boot %d, want id %d and node 2's boot id 102", r2.a.ID, r2.a.Boot, s2.a.ID)
	}
	h.peers.none(t, "append 3 while the retry of 2 is unanswered")
	r2.ok(1, 1) // node 2 had written it: its dedup window answers
	r3 := expectSent(t, h.peers, 3, "3", true)
	if r3.a.ID != s3.a.ID || r3.a.Boot != 0 {
		t.Fatalf("retry of 3: id %d boot %d, want id %d and no boot id (node 2 answered)", r3.a.ID, r3.a.Boot, s3.a.ID)
	}
	h.peers.none(t, "append 4 while the retry of 3 is unanswered")
	r3.ok(0+1+1, 2)
	expectSent(t, h.peers, 3, "4", true).ok(3, 2)
	for i, ch := range []chan Result{c1, c2, c3, c4} {
		if got := reply(t, ch); got.Err != nil || got.First != uint64(i) {
			t.Fatalf("append %d: %+v, want offset %d", i+1, got, i)
		}
	}
}

// TestSequenceFinalFailureStartsNewStream: an append refused for good is answered
// with its error, and the next append starts a new stream (the appender would wait
// for the refused sequence number forever).
func TestSequenceFinalFailureStartsNewStream(t *testing.T) {
	h := newHarness(t, Limits{})
	h.md.register("q", 2, meta.TopicConfig{})
	s := h.w.NewSequence("q")
	c1 := job(s, "1")
	s1 := expectSent(t, h.peers, 2, "1", true)
	s1.fail(fmt.Errorf("%w: restarted", rpc.ErrOutcomeUnknown))
	if got := reply(t, c1); !errors.Is(got.Err, rpc.ErrOutcomeUnknown) {
		t.Fatalf("append 1: %+v, want ErrOutcomeUnknown", got)
	}
	job(s, "2")
	s2 := expectSent(t, h.peers, 2, "2", true)
	if s2.a.Stream == s1.a.Stream || s2.a.Seq != 1 {
		t.Fatalf("after a final failure: stream %d seq %d, want a new stream from seq 1 (old stream %d)", s2.a.Stream, s2.a.Seq, s1.a.Stream)
	}
	s2.ok(0, 1)
}

// TestSequenceUnknownTopic: an append to a topic nobody knows is refused at once
// (not retried), and the sequence keeps working.
func TestSequenceUnknownTopic(t *testing.T) {
	h := newHarness(t, Limits{})
	s := h.w.NewSequence("nope")
	if got := reply(t, job(s, "1")); !errors.Is(got.Err, meta.ErrNoTopic) {
		t.Fatalf("append to an unknown topic: %+v, want ErrNoTopic", got)
	}
	h.md.register("nope", self, meta.TopicConfig{})
	if got := reply(t, job(s, "2")); got.Err != nil || got.First != 0 {
		t.Fatalf("append once the topic exists: %+v, want offset 0", got)
	}
}

// TestAppendRetriesPinnedAfterAmbiguousFailure: Append asks the node it sent an
// append to again after an ambiguous failure, until that node proves it never wrote
// it (ErrNotSegmentLeader); only then does it follow the new route, with the same id.
func TestAppendRetriesPinnedAfterAmbiguousFailure(t *testing.T) {
	h := newHarness(t, Limits{})
	h.md.register("a", 2, meta.TopicConfig{})
	done := make(chan error, 1)
	var off uint64
	go func() {
		var err error
		off, err = h.w.Append(context.Background(), "a", [][]byte{[]byte("x")})
		done <- err
	}()
	first := expectSent(t, h.peers, 2, "x", false)
	h.md.moveTo("a", 3, 0, false)
	first.reply <- rpc.Reply{Err: fmt.Errorf("%w: timeout", rpc.ErrUnavailable)}
	again := expectSent(t, h.peers, 2, "x", false)
	if again.a.ID != first.a.ID || again.a.Boot != 102 {
		t.Fatalf("retry: id %d boot %d, want id %d boot 102", again.a.ID, again.a.Boot, first.a.ID)
	}
	again.fail(fmt.Errorf("%w: sealed", rpc.ErrNotSegmentLeader))
	last := expectSent(t, h.peers, 3, "x", false)
	if last.a.ID != first.a.ID {
		t.Fatalf("retry on the new route: id %d, want %d", last.a.ID, first.a.ID)
	}
	last.ok(0, 2)
	if err := <-done; err != nil || off != 0 {
		t.Fatalf("Append: offset %d, %v; want 0, nil", off, err)
	}
	if h.metrics.forwarded.Load() != 1 {
		t.Fatalf("forwarded appends counted: %d, want 1", h.metrics.forwarded.Load())
	}
}

// TestAppendNotSentIsNotAmbiguous: an append that never left this node is routed
// afresh (no pin), and a final error is returned as is.
func TestAppendNotSentIsNotAmbiguous(t *testing.T) {
	h := newHarness(t, Limits{})
	h.md.register("a", 2, meta.TopicConfig{})
	h.peers.mu.Lock()
	h.peers.sendErr = fmt.Errorf("%w: cannot reach: %w", rpc.ErrUnavailable, rpc.ErrNotSent)
	h.peers.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		_, err := h.w.Append(context.Background(), "a", [][]byte{[]byte("x")})
		done <- err
	}()
	s := expectSent(t, h.peers, 2, "x", false)
	if s.a.Boot != 0 {
		t.Fatalf("retry after a send that never left: boot %d, want 0 (not ambiguous)", s.a.Boot)
	}
	s.fail(fmt.Errorf("%w: restarted", rpc.ErrOutcomeUnknown))
	if err := <-done; !errors.Is(err, rpc.ErrOutcomeUnknown) {
		t.Fatalf("Append: %v, want ErrOutcomeUnknown", err)
	}
}

// TestReceived: a forwarded append is taken by the topic's appender on its segment
// leader; a retry naming an earlier boot of this node is refused as
// ErrOutcomeUnknown, one for a topic this node does not know yet as ErrUnavailable,
// one for a topic another node leads as ErrNotSegmentLeader.
func TestReceived(t *testing.T) {
	h := newHarness(t, Limits{})
	h.md.register("mine", self, meta.TopicConfig{})
	h.md.register("theirs", 2, meta.TopicConfig{})
	noop := func(Result) {}
	for _, c := range []struct {
		a    rpc.Append
		want error
	}{
		{rpc.Append{Topic: "mine", Boot: 6}, rpc.ErrOutcomeUnknown},
		{rpc.Append{Topic: "unknown"}, rpc.ErrUnavailable},
		{rpc.Append{Topic: "theirs"}, rpc.ErrNotSegmentLeader},
	} {
		if _, _, err := h.w.Received(&c.a, noop); !errors.Is(err, c.want) {
			t.Errorf("Received(%+v): %v, want %v", c.a, err, c.want)
		}
	}
	ch := make(chan Result, 1)
	to, r, err := h.w.Received(&rpc.Append{Topic: "mine", ID: 9, Boot: 7, Payloads: [][]byte{[]byte("p")}},
		func(r Result) { ch <- r })
	if err != nil || r.Bytes != 9 || r.Tag.ID != 9 {
		t.Fatalf("Received for the leader: request %+v, %v", r, err)
	}
	to.Enqueue(r)
	if got := reply(t, ch); got.Err != nil || got.First != 0 {
		t.Fatalf("forwarded append: %+v, want offset 0", got)
	}
	if h.w.OldestUnsealedMS() == 0 {
		t.Fatal("OldestUnsealedMS: 0 with an unsealed entry")
	}
}
