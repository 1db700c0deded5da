package write

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"floe/internal/testenv"
	"floe/meta"
	"floe/node/rpc"
)

// TestDedupWindow: a retry of a request the appender wrote gets the original outcome
// and is not written again, as long as fewer than DedupWindow other ids came since;
// the answer needs the lease, and a segment that is still part of the topic.
func TestDedupWindow(t *testing.T) {
	t.Run("hit", func(t *testing.T) {
		h := newHarness(t, Limits{})
		h.md.register("d", self, meta.TopicConfig{})
		a := h.appender("d")
		r, ch := req(Tag{ID: 42}, "once")
		a.process([]*Request{r})
		first := outcome(t, ch)
		r, ch = req(Tag{ID: 42}, "once")
		a.process([]*Request{r})
		if got := outcome(t, ch); got != first || got.Err != nil {
			t.Fatalf("retry: %+v, want the original outcome %+v", got, first)
		}
		if got := h.store.seg("d", 1).written(); len(got) != 1 {
			t.Fatalf("WAL holds %q, want the entry once", got)
		}
	})
	t.Run("retry queued behind its original", func(t *testing.T) {
		h := newHarness(t, Limits{})
		h.md.register("d", self, meta.TopicConfig{})
		a := h.appender("d")
		r1, ch1 := req(Tag{ID: 42}, "once")
		r2, ch2 := req(Tag{ID: 42}, "once")
		a.process([]*Request{r1, r2})
		if o, r := outcome(t, ch1), outcome(t, ch2); o != r || o.Err != nil {
			t.Fatalf("original %+v, retry %+v: want the same success", o, r)
		}
		if got := h.store.seg("d", 1).written(); len(got) != 1 {
			t.Fatalf("WAL holds %q, want the entry once", got)
		}
	})
	t.Run("eviction at the window size", func(t *testing.T) {
		h := newHarness(t, Limits{})
		h.md.register("d", self, meta.TopicConfig{})
		a := h.appender("d")
		batch := make([]*Request, 0, DedupWindow+1)
		for id := uint64(1); id <= DedupWindow+1; id++ {
			r, _ := req(Tag{ID: id}, "x")
			batch = append(batch, r)
		}
		a.process(batch) // ids 1 .. DedupWindow+1: id 1 is the oldest, evicted
		r, ch := req(Tag{ID: 2}, "x")
		a.process([]*Request{r})
		if got := outcome(t, ch); got.First != 1 {
			t.Fatalf("retry of id 2 (the oldest in the window): offset %d, want the original 1", got.First)
		}
		r, ch = req(Tag{ID: 1}, "x")
		a.process([]*Request{r})
		if got := outcome(t, ch); got.First != DedupWindow+1 {
			t.Fatalf("retry of id 1 (evicted): offset %d, want it written anew at %d", got.First, DedupWindow+1)
		}
	})
	t.Run("no lease, no answer", func(t *testing.T) {
		h := newHarness(t, Limits{})
		h.md.register("d", self, meta.TopicConfig{})
		a := h.appender("d")
		r, ch := req(Tag{ID: 42}, "once")
		a.process([]*Request{r})
		outcome(t, ch)
		h.lease.Store(false)
		r, ch = req(Tag{ID: 42}, "once")
		a.process([]*Request{r})
		if got := outcome(t, ch); !errors.Is(got.Err, rpc.ErrUnavailable) || !strings.Contains(got.Err.Error(), "no write lease") {
			t.Fatalf("retry without the lease: %+v, want ErrUnavailable (no write lease)", got)
		}
	})
	t.Run("abandoned segment", func(t *testing.T) {
		h := newHarness(t, Limits{})
		h.md.register("d", self, meta.TopicConfig{})
		a := h.appender("d")
		r, ch := req(Tag{ID: 42}, "once")
		a.process([]*Request{r})
		outcome(t, ch)
		h.md.moveTo("d", 2, 0, true) // recover-segment: writes move to node 2
		r, ch = req(Tag{ID: 42}, "once")
		a.process([]*Request{r})
		if got := outcome(t, ch); !errors.Is(got.Err, rpc.ErrNotSegmentLeader) {
			t.Fatalf("retry of an append into an abandoned segment: %+v, want ErrNotSegmentLeader", got)
		}
	})
}

// TestStreamSequencing: the appender writes a stream's appends in Seq order without
// gaps; a gap fails the append and every later one of its stream in the batch; Base
// starts a stream afresh; a retryable failure keeps the sequence where it was (the
// sender retries), a final one consumes it.
func TestStreamSequencing(t *testing.T) {
	h := newHarness(t, Limits{})
	h.md.register("s", self, meta.TopicConfig{})
	a := h.appender("s")
	run := func(reqs ...*Request) {
		t.Helper()
		a.process(reqs)
	}
	expect := func(what string, ch chan Result, wantErr bool) {
		t.Helper()
		got := outcome(t, ch)
		if (got.Err != nil) != wantErr {
			t.Fatalf("%s: %+v, want error %v", what, got, wantErr)
		}
		if wantErr && !Retryable(got.Err) {
			t.Fatalf("%s: %v, want a retryable refusal", what, got.Err)
		}
	}

	r1, c1 := req(Tag{Stream: 5, Seq: 1}, "1")
	run(r1)
	expect("seq 1 of an unknown stream without Base", c1, true)

	r1, c1 = req(Tag{Stream: 5, Seq: 1, Base: true}, "1")
	r3, c3 := req(Tag{Stream: 5, Seq: 3}, "3")
	r4, c4 := req(Tag{Stream: 5, Seq: 4}, "4")
	other, cOther := req(Tag{Stream: 6, Seq: 1, Base: true}, "other")
	run(r1, r3, r4, other)
	expect("seq 1 with Base", c1, false)
	expect("seq 3 after 1 (gap)", c3, true)
	expect("seq 4 behind the gap", c4, true)
	expect("another stream in the same batch", cOther, false)

	r2, c2 := req(Tag{Stream: 5, Seq: 2}, "2")
	r3, c3 = req(Tag{Stream: 5, Seq: 3}, "3")
	run(r2, r3)
	expect("seq 2", c2, false)
	expect("seq 3 after 2", c3, false)

	// A failed group commit fails the whole batch: a suffix of the stream.
	h.store.seg("s", 1).failNext = fmt.Errorf("%w: injected", rpc.ErrUnavailable)
	r4, c4 = req(Tag{Stream: 5, Seq: 4}, "4")
	r5, c5 := req(Tag{Stream: 5, Seq: 5}, "5")
	run(r4, r5)
	expect("seq 4 in a failed batch", c4, true)
	expect("seq 5 in a failed batch", c5, true)
	// Retryable: the sender retries 4, then 5; 5 alone does not pass.
	r5, c5 = req(Tag{Stream: 5, Seq: 5}, "5")
	run(r5)
	expect("seq 5 before the retry of 4", c5, true)
	r4, c4 = req(Tag{Stream: 5, Seq: 4}, "4")
	r5, c5 = req(Tag{Stream: 5, Seq: 5}, "5")
	run(r4, r5)
	expect("retried seq 4", c4, false)
	expect("retried seq 5", c5, false)

	// A final failure consumes the sequence numbers: the sender will not retry them.
	h.store.seg("s", 1).failNext = errDisk
	r6, c6 := req(Tag{Stream: 5, Seq: 6}, "6")
	run(r6)
	if got := outcome(t, c6); !errors.Is(got.Err, errDisk) || Retryable(got.Err) {
		t.Fatalf("seq 6 in a batch whose fdatasync failed: %+v, want the final failure", got)
	}
	r7, c7 := req(Tag{Stream: 5, Seq: 7}, "7")
	run(r7)
	expect("seq 7 after a final failure of 6", c7, false)

	want := []string{"1", "other", "2", "3", "4", "5", "7"}
	if got := h.store.seg("s", 1).written(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("WAL holds %q, want %q", got, want)
	}

	// Sequencing starts afresh with each segment: on the next one, seq 8 needs Base.
	h.md.moveTo("s", self, 7, false)
	r8, c8 := req(Tag{Stream: 5, Seq: 8}, "8")
	run(r8)
	expect("seq 8 on a new segment without Base", c8, true)
}

// TestRollOver: the appender seals the active segment and commits Seal (with its
// totals, naming the next leader) once it reaches its entry or byte limit, or once
// its first entry is older than the age limit; writes go on in the next segment.
func TestRollOver(t *testing.T) {
	t.Run("entries", func(t *testing.T) {
		h := newHarness(t, Limits{Entries: 3, Bytes: 1 << 20, Age: time.Hour})
		h.md.register("r", self, meta.TopicConfig{})
		a := h.appender("r")
		var chs []chan Result
		var batch []*Request
		for i := 0; i < 5; i++ {
			r, ch := req(Tag{}, fmt.Sprint(i))
			batch, chs = append(batch, r), append(chs, ch)
		}
		a.process(batch)
		for i, ch := range chs {
			got := outcome(t, ch)
			wantSeg := uint64(1 + i/3)
			if got.Err != nil || got.First != uint64(i) || got.Segment != wantSeg {
				t.Fatalf("append %d: %+v, want offset %d in segment %d", i, got, i, wantSeg)
			}
		}
		c := <-h.proposed
		if c.Segment != 1 || c.Count != 3 || c.Bytes != 3*9 || c.NextLeader != self {
			t.Fatalf("seal proposed: %+v, want segment 1 with 3 entries and 27 bytes", c)
		}
		if h.store.seg("r", 1).refs != 0 {
			t.Fatalf("the sealed segment still holds %d references of the appender", h.store.seg("r", 1).refs)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		h := newHarness(t, Limits{Entries: 100, Bytes: 30, Age: time.Hour})
		h.md.register("r", self, meta.TopicConfig{})
		a := h.appender("r")
		big, cBig := req(Tag{}, strings.Repeat("b", 40)) // alone over the limit: an empty segment takes it
		a.process([]*Request{big})
		if got := outcome(t, cBig); got.Err != nil || got.Segment != 1 {
			t.Fatalf("an append larger than the byte limit: %+v, want written to the empty segment 1", got)
		}
		if c := <-h.proposed; c.Segment != 1 || c.Count != 1 {
			t.Fatalf("seal proposed: %+v, want segment 1 with 1 entry", c)
		}
		r1, c1 := req(Tag{}, "0123456") // 15 bytes stored
		r2, c2 := req(Tag{}, "0123456")
		r3, c3 := req(Tag{}, "0123456")
		a.process([]*Request{r1, r2, r3})
		for i, want := range []uint64{2, 2, 3} {
			if got := outcome(t, []chan Result{c1, c2, c3}[i]); got.Err != nil || got.Segment != want {
				t.Fatalf("append %d: %+v, want segment %d", i, got, want)
			}
		}
	})
	t.Run("topic config overrides", func(t *testing.T) {
		h := newHarness(t, Limits{Entries: 100, Bytes: 1 << 20, Age: time.Hour})
		h.md.register("r", self, meta.TopicConfig{MaxSegmentEntries: 1})
		a := h.appender("r")
		r, ch := req(Tag{}, "x")
		a.process([]*Request{r})
		outcome(t, ch)
		if c := <-h.proposed; c.Count != 1 {
			t.Fatalf("seal proposed: %+v, want it after 1 entry (the topic's limit)", c)
		}
	})
	t.Run("age", func(t *testing.T) {
		h := newHarness(t, Limits{Entries: 100, Bytes: 1 << 20, Age: time.Minute})
		h.md.register("r", self, meta.TopicConfig{})
		h.next.Store(2)
		a := h.appender("r")
		a.checkAge() // empty: nothing to do
		r, ch := req(Tag{}, "x")
		a.process([]*Request{r})
		outcome(t, ch)
		a.checkAge() // younger than the limit
		select {
		case c := <-h.proposed:
			t.Fatalf("sealed a segment younger than its age limit: %+v", c)
		default:
		}
		a.firstAt = time.Now().Add(-time.Minute) // the first entry is a minute old
		a.checkAge()
		if c := <-h.proposed; c.Segment != 1 || c.Count != 1 || c.NextLeader != 2 {
			t.Fatalf("seal proposed: %+v, want segment 1 with 1 entry, next on node 2", c)
		}
		if act, _, _ := h.md.ActiveOf("r"); act.ID != 2 || act.Leader != 2 {
			t.Fatalf("active segment after the age roll-over: %+v", act)
		}
		if a.first.Load() != nil {
			t.Fatal("the RPO gauge still sees an unsealed entry after the roll-over")
		}
	})
	t.Run("damaged segment never sealed by age", func(t *testing.T) {
		h := newHarness(t, Limits{Entries: 100, Bytes: 1 << 20, Age: time.Minute})
		h.md.register("r", self, meta.TopicConfig{})
		a := h.appender("r")
		r, ch := req(Tag{}, "x")
		a.process([]*Request{r})
		outcome(t, ch)
		h.store.seg("r", 1).damaged = errors.New("damaged")
		a.firstAt = time.Now().Add(-time.Hour)
		a.checkAge()
		select {
		case c := <-h.proposed:
			t.Fatalf("sealed a damaged segment: %+v", c)
		default:
		}
	})
	t.Run("seal not committed", func(t *testing.T) {
		h := newHarness(t, Limits{Entries: 1, Bytes: 1 << 20, Age: time.Hour})
		h.md.register("r", self, meta.TopicConfig{})
		a := h.appender("r")
		errNoQuorum := errors.New("no quorum")
		h.proposeErr.Store(&errNoQuorum)
		r1, c1 := req(Tag{}, "1")
		a.process([]*Request{r1})
		if got := outcome(t, c1); got.Err != nil {
			t.Fatalf("append before the failed seal: %v", got.Err)
		}
		r2, c2 := req(Tag{}, "2")
		a.process([]*Request{r2})
		if got := outcome(t, c2); !errors.Is(got.Err, rpc.ErrUnavailable) {
			t.Fatalf("append while the seal cannot commit: %+v, want ErrUnavailable", got)
		}
		if a.sealed == nil || a.sealed.count != 1 {
			t.Fatalf("local seal: %+v, want it kept with 1 entry until it commits", a.sealed)
		}
		h.proposeErr.Store(nil)
		r3, c3 := req(Tag{}, "3")
		a.process([]*Request{r3})
		if got := outcome(t, c3); got.Err != nil || got.Segment != 2 || got.First != 1 {
			t.Fatalf("append once the seal commits: %+v, want offset 1 in segment 2", got)
		}
	})
}

// TestAppenderRefusals: the appender writes only the active segment this node leads,
// with the lease, and not when the sender knows a newer segment than it does.
func TestAppenderRefusals(t *testing.T) {
	h := newHarness(t, Limits{})
	h.md.register("x", 2, meta.TopicConfig{})
	a := h.appender("x")
	r, ch := req(Tag{}, "x")
	a.process([]*Request{r})
	if got := outcome(t, ch); !errors.Is(got.Err, rpc.ErrNotSegmentLeader) {
		t.Fatalf("append to a segment node 2 leads: %+v, want ErrNotSegmentLeader", got)
	}

	h.md.register("y", self, meta.TopicConfig{})
	a = h.appender("y")
	h.lease.Store(false)
	r, ch = req(Tag{}, "y")
	a.process([]*Request{r})
	if got := outcome(t, ch); !errors.Is(got.Err, rpc.ErrUnavailable) {
		t.Fatalf("append without the lease: %+v, want ErrUnavailable", got)
	}
	if _, open := h.store.Get("y", 1); open {
		t.Fatal("the segment file was opened without the lease")
	}
	h.lease.Store(true)
	r, ch = req(Tag{}, "y")
	r.Segment = 2
	a.process([]*Request{r})
	if got := outcome(t, ch); !errors.Is(got.Err, rpc.ErrUnavailable) || !strings.Contains(got.Err.Error(), "metadata behind") {
		t.Fatalf("append for segment 2 while 1 is active here: %+v, want ErrUnavailable (metadata behind)", got)
	}
}

// TestDedupWindowRememberedAgain: an id forgotten and remembered again keeps its
// outcome for a whole window from the second time; the slot it held first evicts
// nothing when its turn comes.
func TestDedupWindowRememberedAgain(t *testing.T) {
	d := newDedupWindow(4)
	d.remember(1, Result{First: 10})
	d.forget(1)
	d.remember(1, Result{First: 11})
	for id := uint64(2); id <= 4; id++ { // the ring wraps to the slot id 1 held first
		d.remember(id, Result{First: id})
	}
	if r, ok := d.lookup(1); !ok || r.First != 11 {
		t.Fatalf("id 1 after 3 other ids since it was remembered again: %+v, %v; want its second outcome", r, ok)
	}
	d.remember(5, Result{First: 5}) // now a whole window has passed since the second time
	if _, ok := d.lookup(1); ok {
		t.Fatal("id 1 still remembered after a whole window")
	}
	for id := uint64(2); id <= 5; id++ {
		if r, ok := d.lookup(id); !ok || r.First != id {
			t.Fatalf("id %d: %+v, %v; want it remembered", id, r, ok)
		}
	}
}

// TestGatherWaitsForExpectedRequests: a batch that has fewer requests than the
// last one carried waits for the missing ones (clients that keep one request in
// flight come back on their reply), so that they share one fdatasync instead of
// taking turns; the wait is bounded, and never happens without an expectation.
func TestGatherWaitsForExpectedRequests(t *testing.T) {
	gather := func(a *Appender, first *Request) []*Request {
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		return a.gather([]*Request{first}, timer)
	}
	t.Run("waits for the missing ones", func(t *testing.T) {
		h := newHarness(t, Limits{})
		h.w.cfg.CommitWait = time.Hour
		a := h.appender("g")
		a.expect, a.commitAvg = 3, 2*time.Hour // the bound never runs out here
		r1, _ := req(Tag{}, "1")
		r2, _ := req(Tag{}, "2")
		r3, _ := req(Tag{}, "3")
		a.ch <- r2
		late := make(chan struct{})
		go func() {
			defer close(late)
			// r3 comes after gather has taken r2, the way a client's next request
			// comes after its reply.
			testenv.WaitFor(t, 10*time.Second, "gather to take r2", func() bool { return len(a.ch) == 0 })
			a.ch <- r3
		}()
		got := gather(a, r1)
		<-late
		if len(got) != 3 || got[0] != r1 || got[1] != r2 || got[2] != r3 {
			t.Fatalf("batch of %d requests, want r1, r2 and the late r3 in order", len(got))
		}
	})
	t.Run("bounded", func(t *testing.T) {
		h := newHarness(t, Limits{})
		h.w.cfg.CommitWait = time.Hour
		a := h.appender("g")
		a.expect, a.commitAvg = 16, time.Millisecond // waits at most 1ms
		r1, _ := req(Tag{}, "1")
		if got := gather(a, r1); len(got) != 1 {
			t.Fatalf("batch of %d requests, want r1 alone once the wait ran out", len(got))
		}
	})
	t.Run("disabled", func(t *testing.T) {
		h := newHarness(t, Limits{})
		h.w.cfg.CommitWait = -1
		a := h.appender("g")
		a.expect, a.commitAvg = 16, 2*time.Hour
		r1, _ := req(Tag{}, "1")
		if got := gather(a, r1); len(got) != 1 {
			t.Fatalf("batch of %d requests, want r1 alone", len(got))
		}
	})
	t.Run("expectation follows the load", func(t *testing.T) {
		// Through the appender's own loop, after a batch of 16: the first append of
		// a lone client waits for 15 that never come, once; after that it expects
		// only itself and never waits again.
		h := newHarness(t, Limits{})
		h.w.cfg.CommitWait = time.Hour
		h.md.register("g", self, meta.TopicConfig{})
		a := h.appender("g")
		a.expect, a.commitAvg = 16, 2*time.Millisecond
		h.w.cfg.Go(a.run)
		for i := range 5 {
			r, ch := req(Tag{}, fmt.Sprint(i))
			a.Enqueue(r)
			select {
			case res := <-ch:
				if res.Err != nil || res.First != uint64(i) {
					t.Fatalf("append %d: %+v", i, res)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("append %d of a lone client was not answered", i)
			}
		}
		if ran, filled := h.metrics.ranOut.Load(), h.metrics.filled.Load(); ran != 1 || filled != 0 {
			t.Fatalf("%d waits ran out and %d filled, want the first append's wait to run out and no other wait", ran, filled)
		}
	})
}
