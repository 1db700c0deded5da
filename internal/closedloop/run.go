package closedloop

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Conn is one client connection under load. Run calls Send and Flush from one goroutine
// and Recv from another, so an implementation must allow a write and a read to proceed
// at the same time (a net.Conn with separate read and write buffers does).
type Conn interface {
	// Send starts one request; it may stay buffered until Flush.
	Send() error
	// Flush writes every buffered request.
	Flush() error
	// Recv waits for the reply to the oldest unanswered request. A reply that refuses
	// the request is returned as Refused(err); any other error ends the connection.
	Recv() error
	// Close ends the connection; Run closes each connection when it is done with it.
	Close() error
}

// Caller is a Conn that also has a blocking request/response call of its own (for
// example a client library's synchronous publish). With Pipeline 1 Run uses Call instead
// of Send, Flush and Recv, so the benchmark measures that call as applications use it.
type Caller interface {
	Conn
	// Call sends one request and waits for its reply; errors as for Recv.
	Call() error
}

// refusedError marks a reply that refused its request: counted, and the connection goes on.
type refusedError struct{ err error }

func (e refusedError) Error() string { return "refused: " + e.err.Error() }
func (e refusedError) Unwrap() error { return e.err }

// Refused wraps the error of a reply that refused its request, as opposed to a failure
// of the connection.
func Refused(err error) error { return refusedError{err} }

// Options shapes a run.
type Options struct {
	// Pipeline is the most requests unanswered per connection (1 = request/response).
	Pipeline int
	// Warmup runs before the measured window; its replies are not measured.
	Warmup time.Duration
	// Duration is the measured window.
	Duration time.Duration
}

// Result is what a run observed.
type Result struct {
	// Latencies of the acknowledged replies read within the measured window, sorted.
	Latencies []time.Duration
	// Window is the measured window's length.
	Window time.Duration
	// AckedTotal counts every acknowledged request, warm-up and the replies read after
	// the window included, so that a server's CPU time over the whole run can be divided
	// by the requests it served in that time.
	AckedTotal int64
	// Errors counts refused requests and failed connections; FirstErr is the first.
	Errors   int64
	FirstErr error
}

// Run drives every connection in conns closed-loop as opts says. It returns once every
// connection has read the replies to everything it sent, or has failed, and it closes
// each connection.
func Run(conns []Conn, opts Options) (*Result, error) {
	if len(conns) == 0 || opts.Pipeline < 1 || opts.Duration <= 0 || opts.Warmup < 0 {
		return nil, errors.New("closedloop: need a connection, a positive pipeline and duration, and a warm-up not below zero")
	}
	start := time.Now().Add(opts.Warmup)
	w := window{start: start, end: start.Add(opts.Duration)}
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		res = &Result{Window: opts.Duration}
	)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			t := tally{w: w}
			if cl, ok := c.(Caller); ok && opts.Pipeline == 1 {
				t.calls(cl)
			} else {
				t.pipelined(c, opts.Pipeline)
			}
			mu.Lock()
			defer mu.Unlock()
			res.Latencies = append(res.Latencies, t.lat...)
			res.AckedTotal += t.acked
			res.Errors += t.errs
			if res.FirstErr == nil {
				res.FirstErr = t.firstErr
			}
		}()
	}
	wg.Wait()
	slices.Sort(res.Latencies)
	return res, nil
}

// window is the measured window [start, end); no request is sent at or after end.
type window struct{ start, end time.Time }

// tally is one connection's count, kept by one goroutine: a pipelined connection's
// receiver keeps a tally of its own, merged into the sender's once it has stopped.
type tally struct {
	w        window
	lat      []time.Duration
	acked    int64
	errs     int64
	firstErr error
}

// reply accounts for the reply to a request sent at sent, read just now with the error
// err; it reports whether the connection may go on.
func (t *tally) reply(sent time.Time, err error) bool {
	got := time.Now()
	if err != nil {
		t.errs++
		if t.firstErr == nil {
			t.firstErr = err
		}
		var r refusedError
		return errors.As(err, &r)
	}
	t.acked++
	if !got.Before(t.w.start) && got.Before(t.w.end) {
		t.lat = append(t.lat, got.Sub(sent))
	}
	return true
}

func (t *tally) fail(err error) {
	t.errs++
	if t.firstErr == nil {
		t.firstErr = err
	}
}

// calls is the strict request/response loop: one request, its reply, the next.
func (t *tally) calls(c Caller) {
	for {
		sent := time.Now()
		if !sent.Before(t.w.end) {
			return
		}
		if !t.reply(sent, c.Call()) {
			return
		}
	}
}

// pipelined keeps up to depth requests unanswered on c: a request takes a free slot
// before its clock starts and is written, and a slot is freed only when its reply has
// been read, so the slots bound what is in flight.
func (t *tally) pipelined(c Conn, depth int) {
	slots := make(chan struct{}, depth)
	for range depth {
		slots <- struct{}{}
	}
	// sent carries each request's send time to the receiver, in request order. It never
	// blocks: the sender holds a slot for every entry in it.
	sent := make(chan time.Time, depth)
	recvDone := make(chan struct{})
	rt := tally{w: t.w}
	go func() {
		defer close(recvDone)
		for s := range sent {
			if !rt.reply(s, c.Recv()) {
				return
			}
			slots <- struct{}{}
		}
	}()
	if err := t.send(c, slots, sent, recvDone); err != nil {
		t.fail(err)
		// Requests that never left the client would be waited for forever.
		c.Close()
	}
	close(sent)
	<-recvDone
	t.lat, t.acked = rt.lat, rt.acked
	t.errs += rt.errs
	if t.firstErr == nil {
		t.firstErr = rt.firstErr
	}
}

// send is pipelined's sender: it writes requests while slots are free and the window is
// open. Buffered requests are flushed when no slot is free (so a full pipeline goes out
// in one write) and at the end. It returns when the window closes, the receiver stops
// (the connection failed) or a write fails.
func (t *tally) send(c Conn, slots chan struct{}, sent chan<- time.Time, recvDone <-chan struct{}) error {
	for {
		select {
		case <-slots:
		default:
			if err := c.Flush(); err != nil {
				return fmt.Errorf("flush: %w", err)
			}
			select {
			case <-slots:
			case <-recvDone:
				return nil
			}
		}
		s := time.Now()
		if !s.Before(t.w.end) {
			break
		}
		sent <- s
		if err := c.Send(); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}
