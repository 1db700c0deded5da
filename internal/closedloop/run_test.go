package closedloop

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeConn answers each request delay after it was flushed, in order. It counts the
// requests sent and not yet answered, as a server behind the connection would see them.
type fakeConn struct {
	delay time.Duration
	// refuseEvery > 0 refuses every refuseEvery-th reply; failAfter > 0 breaks the
	// connection at that reply.
	refuseEvery, failAfter int

	mu              sync.Mutex
	buffered        int
	unanswered, max int
	replies         int
	sends, calls    int
	closed          bool

	due      chan time.Time // flushed requests' reply times, in order
	closedCh chan struct{}
}

func newFake(delay time.Duration) *fakeConn {
	return &fakeConn{delay: delay, due: make(chan time.Time, 1<<12), closedCh: make(chan struct{})}
}

func (f *fakeConn) Send() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sends++
	f.buffered++
	f.unanswered++
	f.max = max(f.max, f.unanswered)
	return nil
}

func (f *fakeConn) Flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ; f.buffered > 0; f.buffered-- {
		f.due <- time.Now().Add(f.delay)
	}
	return nil
}

func (f *fakeConn) Recv() error {
	var due time.Time
	select {
	case due = <-f.due:
	case <-f.closedCh:
		return errors.New("fake: closed")
	}
	time.Sleep(time.Until(due)) // the server's service time, not synchronisation
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unanswered--
	f.replies++
	switch {
	case f.failAfter > 0 && f.replies >= f.failAfter:
		return errors.New("fake: connection reset")
	case f.refuseEvery > 0 && f.replies%f.refuseEvery == 0:
		return Refused(errors.New("ERR busy"))
	}
	return nil
}

func (f *fakeConn) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.closedCh)
	}
	return nil
}

// fakeCaller is a fakeConn with a call of its own.
type fakeCaller struct{ *fakeConn }

func (f fakeCaller) Call() error {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	time.Sleep(f.delay) // the server's service time
	return nil
}

func fakes(n int, delay time.Duration) ([]*fakeConn, []Conn) {
	var fs []*fakeConn
	var cs []Conn
	for range n {
		f := newFake(delay)
		fs, cs = append(fs, f), append(cs, f)
	}
	return fs, cs
}

// TestPipelineBoundsInFlight pins the client pattern: at most Pipeline requests are
// unanswered per connection (and that many are, so the pipeline is used), every latency
// includes the whole service time (the clock starts before the write), and the report's
// Little's law check agrees with the configured in-flight count.
func TestPipelineBoundsInFlight(t *testing.T) {
	const delay = 10 * time.Millisecond
	for _, depth := range []int{1, 4, 16} {
		fs, cs := fakes(3, delay)
		opts := Options{Pipeline: depth, Warmup: 50 * time.Millisecond, Duration: 500 * time.Millisecond}
		res, err := Run(cs, opts)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range fs {
			if f.max != depth {
				t.Errorf("pipeline %d, conn %d: at most %d requests unanswered, want %d", depth, i, f.max, depth)
			}
			if !f.closed {
				t.Errorf("pipeline %d, conn %d: not closed by Run", depth, i)
			}
		}
		if res.Errors != 0 || len(res.Latencies) == 0 {
			t.Fatalf("pipeline %d: %d errors (%v), %d latencies", depth, res.Errors, res.FirstErr, len(res.Latencies))
		}
		if res.Latencies[0] < delay {
			t.Errorf("pipeline %d: shortest latency %v, below the service time %v", depth, res.Latencies[0], delay)
		}
		r, err := NewReport("fake", len(cs), 10, opts, res)
		if err != nil {
			t.Fatal(err)
		}
		if r.InFlight != 3*depth || r.LittleRatio < 0.8 || r.LittleRatio > 1.1 {
			t.Errorf("pipeline %d: in flight %d, throughput x mean latency %.2f (ratio %.3f), want 3 x %d and a ratio near 1",
				depth, r.InFlight, r.LittleInFlight, r.LittleRatio, depth)
		}
	}
}

// TestCallerUsesItsCall: with pipeline 1 a connection's own blocking call is what runs.
func TestCallerUsesItsCall(t *testing.T) {
	f := fakeCaller{newFake(time.Millisecond)}
	res, err := Run([]Conn{f}, Options{Pipeline: 1, Duration: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if f.calls == 0 || f.sends != 0 || int64(f.calls) != res.AckedTotal {
		t.Errorf("calls %d, sends %d, acked %d: want every request through Call", f.calls, f.sends, res.AckedTotal)
	}
}

// TestRefusalsAndFailures: a refused request is counted and the connection goes on; a
// broken connection ends without hanging the run, its error reported.
func TestRefusalsAndFailures(t *testing.T) {
	for _, depth := range []int{1, 8} {
		refusing, broken := newFake(time.Millisecond), newFake(time.Millisecond)
		refusing.refuseEvery, broken.failAfter = 3, 5
		res, err := Run([]Conn{refusing, broken}, Options{Pipeline: depth, Duration: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if refusing.replies <= refusing.refuseEvery {
			t.Errorf("pipeline %d: the refusing connection stopped at its first refusal (%d replies)", depth, refusing.replies)
		}
		if broken.replies != 5 {
			t.Errorf("pipeline %d: the broken connection read %d replies, want 5", depth, broken.replies)
		}
		wantErrs := int64(refusing.replies/3 + 1)
		if res.Errors != wantErrs || res.FirstErr == nil {
			t.Errorf("pipeline %d: %d errors (first %v), want %d", depth, res.Errors, res.FirstErr, wantErrs)
		}
		if want := int64(refusing.replies - refusing.replies/3 + 4); res.AckedTotal != want {
			t.Errorf("pipeline %d: acked %d, want %d", depth, res.AckedTotal, want)
		}
	}
}
