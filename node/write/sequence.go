package write

import (
	"context"
	"sync"
)

// Job is one client append submitted to a Sequence.
type Job struct {
	Payloads [][]byte
	// Reply receives the outcome (First, or Err), exactly once, on any goroutine.
	Reply func(Result)

	id   uint64 // request id, the same on every attempt
	seq  uint64 // position on the connection
	wseq uint64 // sequence number on the wire (Tag.Seq), set when first sent
	// stream is the stream it was sent in.
	stream uint64
	res    Result // the failure a retry starts from
}

// Sequence keeps one client connection's appends to one topic in request order while
// they are pipelined, across roll-overs and leader changes.
//
// In the normal case every append is routed and handed off at once (fast path), and
// the segment leader writes them in hand-off order. Two things could reorder them,
// and both switch the sequence to a slow path run by one goroutine (drain):
//   - the route changes while appends to the old route are in flight: the new append
//     waits until those are settled;
//   - an append fails with a retryable error: every in-flight append settles first
//     (failures on one route are a suffix of what was sent there, since a leader that
//     stops writing stops for good), then the failed ones are retried one at a time, in
//     order, before anything that came later is sent.
//
// Once nothing is left to retry or hold, the fast path resumes.
type Sequence struct {
	w      *Writer
	topic  string
	stream uint64 // identifies this sequence to the appenders (Tag.Stream)

	mu       sync.Mutex
	cond     *sync.Cond
	nextSeq  uint64
	nextWire uint64 // last wire sequence number handed out
	inflight int    // handed off, outcome not known yet
	cur      route  // the route of the in-flight appends
	slow     bool   // drain is running
	failed   []*Job // failed retryably, by seq, waiting for their retry
	held     []*Job // submitted while slow, in order
}

// NewSequence returns the sequence of one connection's appends to topic.
func (w *Writer) NewSequence(topic string) *Sequence {
	s := &Sequence{w: w, topic: topic, stream: w.NewRequestID()}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// tag is the Tag of j; base says that every earlier append of the sequence has
// settled (see Tag.Base). s.mu is held.
func (s *Sequence) tag(j *Job, base bool) Tag {
	return Tag{ID: j.id, Stream: j.stream, Seq: j.wseq, Base: base}
}

// Submit appends j after every job submitted before it. It is called by the
// connection's reader goroutine, in request order, and returns once j is handed off
// (or held); j.Reply comes later.
func (s *Sequence) Submit(j *Job) {
	j.id = s.w.NewRequestID()
	rt, err := s.w.routeFor(s.w.ctx, s.topic, 0)
	s.mu.Lock()
	j.seq = s.nextSeq
	s.nextSeq++
	if err != nil && !s.slow && s.inflight == 0 {
		s.mu.Unlock()
		if !Retryable(err) {
			j.Reply(Result{Err: err})
			return
		}
		s.mu.Lock()
	}
	if s.slow || err != nil || (s.inflight > 0 && rt != s.cur) {
		s.held = append(s.held, j)
		s.startDrain()
		s.mu.Unlock()
		return
	}
	s.cur = rt
	base := s.inflight == 0
	s.inflight++
	s.assignWire(j)
	tag := s.tag(j, base)
	s.mu.Unlock()
	s.w.dispatch(s.topic, rt, j.Payloads, tag, func(r Result) { s.settle(j, r) })
}

// assignWire gives j the next wire sequence number when it is first sent, so that
// appends that never left (refused before routing) leave no gap; s.mu is held.
func (s *Sequence) assignWire(j *Job) {
	if j.wseq == 0 {
		s.nextWire++
		j.wseq, j.stream = s.nextWire, s.stream
	}
}

// rotate starts a new stream after an append failed for good: the appender still
// expects that append's sequence number in the old stream, and it will never come.
// The given jobs (failed ones waiting for their retry, in order) move to the new
// stream. s.mu is held.
func (s *Sequence) rotate(pending []*Job) {
	s.stream, s.nextWire = s.w.NewRequestID(), 0
	for _, j := range pending {
		s.nextWire++
		j.wseq, j.stream = s.nextWire, s.stream
	}
}

// startDrain starts the slow path if it is not running; s.mu is held.
func (s *Sequence) startDrain() {
	if !s.slow {
		s.slow = true
		go s.drain()
	}
}

// settle records the outcome of a handed-off append.
func (s *Sequence) settle(j *Job, r Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight--
	s.cond.Broadcast()
	if r.Err == nil || !Retryable(r.Err) {
		if r.Err != nil {
			s.rotate(nil)
		}
		j.Reply(r)
		return
	}
	j.res = r
	i := len(s.failed)
	for i > 0 && s.failed[i-1].seq > j.seq {
		i--
	}
	s.failed = append(s.failed, nil)
	copy(s.failed[i+1:], s.failed[i:])
	s.failed[i] = j
	s.startDrain()
}

// drain is the slow path: settle, retry failures in order, then send what was held.
// Held appends that share a route are pipelined as on the fast path; one for a new
// route waits until every append in flight has settled. Once nothing is held or
// failed, the fast path resumes, with whatever is still in flight (a failure among it
// starts the slow path again).
func (s *Sequence) drain() {
	s.mu.Lock()
	for {
		if len(s.failed) > 0 {
			// Failures are retried once everything in flight has settled: a failure is
			// a suffix of what went to its route, so the ones behind it fail too.
			if s.inflight > 0 {
				s.cond.Wait()
				continue
			}
			failed := s.failed
			s.failed = nil
			s.mu.Unlock()
			s.retryFailed(failed)
			s.mu.Lock()
			continue
		}
		if len(s.held) == 0 {
			s.slow = false
			s.mu.Unlock()
			return
		}
		j := s.held[0]
		s.mu.Unlock()
		rt, err := s.w.routeFor(s.w.ctx, s.topic, 0)
		s.mu.Lock()
		if s.inflight > 0 && (err != nil || rt != s.cur) {
			s.cond.Wait() // the old route settles first
			continue
		}
		if len(s.failed) > 0 {
			continue // something in flight failed meanwhile: its retry goes first
		}
		if err != nil {
			s.held = s.held[1:]
			s.assignWire(j)
			tag := s.tag(j, true) // nothing is in flight: the ones before it have settled
			s.mu.Unlock()
			// Route errors (unknown topic, no leader) get the retrying path.
			first, err := s.w.retry(s.w.ctx, s.topic, j.Payloads, tag, 0, nil)
			if err != nil {
				s.mu.Lock()
				s.rotate(nil)
				s.mu.Unlock()
			}
			j.Reply(Result{First: first, Err: err})
			s.mu.Lock()
			continue
		}
		s.held = s.held[1:]
		s.cur = rt
		base := s.inflight == 0
		s.inflight++
		s.assignWire(j)
		tag := s.tag(j, base)
		s.mu.Unlock()
		s.w.dispatch(s.topic, rt, j.Payloads, tag, func(r Result) { s.settle(j, r) })
		s.mu.Lock()
	}
}

// retryFailed retries failed jobs one at a time, in order, each from where its first
// attempt left it (the same node after an ambiguous failure), and replies to each.
// They share one request timeout: when the cause lasts (a node cut off from the
// quorum), they all get their error within it, not one timeout after another. Once
// one fails for good, the rest move to a new stream. s.mu is not held.
func (s *Sequence) retryFailed(failed []*Job) {
	ctx, cancel := context.WithTimeout(s.w.ctx, s.w.cfg.RequestTimeout)
	defer cancel()
	for i, j := range failed {
		var pin uint64
		if j.res.Ambiguous {
			pin = j.res.Node
		}
		s.mu.Lock()
		tag := s.tag(j, true) // the ones before it have settled
		s.mu.Unlock()
		if j.res.Ambiguous {
			tag.Boot = j.res.Boot
		}
		// The first failure goes along: a retry that the shared deadline stops
		// before it fails on its own reports it.
		first, err := s.w.retry(ctx, s.topic, j.Payloads, tag, pin, j.res.Err)
		if err != nil {
			s.mu.Lock()
			s.rotate(failed[i+1:])
			s.mu.Unlock()
		}
		j.Reply(Result{First: first, Err: err})
	}
}
