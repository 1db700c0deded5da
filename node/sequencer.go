package node

import (
	"context"
	"fmt"
	"sync"
)

// putJob is one client append waiting for its reply.
type putJob struct {
	cmd      string // PUT, PUTOFF or PUTBATCH: the reply's form
	payloads [][]byte
	slot     chan<- []byte
	id       uint64
	seq      uint64       // position on the connection
	wseq     uint64       // sequence number on the wire (appendTag.seq), set when first sent
	stream   uint64       // the stream it was sent in
	res      appendResult // the failure a retry starts from
}

// tag is the appendTag of j; base says that every earlier append of the sequence has
// settled (see appendTag.base). s.mu is held.
func (s *putSeq) tag(j *putJob, base bool) appendTag {
	return appendTag{id: j.id, stream: j.stream, seq: j.wseq, base: base}
}

func (j *putJob) reply(r appendResult) {
	if r.err != nil {
		j.slot <- errReply(r.err)
		return
	}
	j.slot <- putReply(j.cmd, r.first)
}

// putSeq keeps one client connection's appends to one topic in request order while
// they are pipelined, across roll-overs and leader changes.
//
// In the normal case every append is routed and handed off at once (fast path), and the
// segment leader writes them in hand-off order. Two things could reorder them, and both
// switch the sequence to a slow path run by one goroutine (drain):
//   - the route changes while appends to the old route are in flight: the new append
//     waits until those are settled;
//   - an append fails with a retryable error: every in-flight append settles first
//     (failures on one route are a suffix of what was sent there, since a leader that
//     stops writing stops for good), then the failed ones are retried one at a time, in
//     order, before anything that came later is sent.
//
// Once nothing is left to retry or hold, the fast path resumes.
type putSeq struct {
	n      *Node
	topic  string
	stream uint64 // identifies this sequence to the appenders (appendTag.stream)

	mu       sync.Mutex
	cond     *sync.Cond
	nextSeq  uint64
	nextWire uint64 // last wire sequence number handed out
	inflight int    // handed off, outcome not known yet
	cur      route  // the route of the in-flight appends
	slow     bool   // drain is running
	failed   []*putJob
	held     []*putJob
}

func newPutSeq(n *Node, topic string) *putSeq {
	s := &putSeq{n: n, topic: topic, stream: n.newRequestID()}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// submit is called by the connection's reader goroutine, in request order.
func (s *putSeq) submit(j *putJob) {
	rt, err := s.n.routeFor(s.n.ctx, s.topic, 0)
	s.mu.Lock()
	j.seq = s.nextSeq
	s.nextSeq++
	if err != nil && !s.slow && s.inflight == 0 {
		s.mu.Unlock()
		if !retryable(err) {
			j.reply(appendResult{err: err})
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
	s.n.dispatch(s.topic, rt, j.payloads, tag, func(r appendResult) { s.settle(j, r) })
}

// assignWire gives j the next wire sequence number when it is first sent, so that
// appends that never left (refused before routing) leave no gap; s.mu is held.
func (s *putSeq) assignWire(j *putJob) {
	if j.wseq == 0 {
		s.nextWire++
		j.wseq, j.stream = s.nextWire, s.stream
	}
}

// rotate starts a new stream after an append failed for good: the appender still
// expects that append's sequence number in the old stream, and it will never come.
// The given jobs (failed ones waiting for their retry, in order) move to the new
// stream. s.mu is held.
func (s *putSeq) rotate(pending []*putJob) {
	s.stream, s.nextWire = s.n.newRequestID(), 0
	for _, j := range pending {
		s.nextWire++
		j.wseq, j.stream = s.nextWire, s.stream
	}
}

// startDrain starts the slow path if it is not running; s.mu is held.
func (s *putSeq) startDrain() {
	if !s.slow {
		s.slow = true
		go s.drain()
	}
}

// settle records the outcome of a handed-off append.
func (s *putSeq) settle(j *putJob, r appendResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight--
	s.cond.Broadcast()
	if r.err == nil || !retryable(r.err) {
		if r.err != nil {
			s.rotate(nil)
		}
		j.reply(r)
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

// drain is the slow path: settle, retry failures in order, then send what was held,
// one route at a time.
func (s *putSeq) drain() {
	s.mu.Lock()
	for {
		for s.inflight > 0 {
			s.cond.Wait()
		}
		if len(s.failed) > 0 {
			failed := s.failed
			s.failed = nil
			s.mu.Unlock()
			// The failed appends share one request timeout: when the cause lasts (a node
			// cut off from the quorum), they all get their error within it, not one
			// timeout after another.
			ctx, cancel := context.WithTimeout(s.n.ctx, s.n.cfg.RequestTimeout)
			for i, j := range failed {
				var pin uint64
				if j.res.ambiguous {
					pin = j.res.node
				}
				s.mu.Lock()
				tag := s.tag(j, true) // the ones before it have settled
				s.mu.Unlock()
				if j.res.ambiguous {
					tag.boot = j.res.boot
				}
				first, err := s.n.appendRetry(ctx, s.topic, j.payloads, tag, pin)
				if err != nil {
					s.mu.Lock()
					s.rotate(failed[i+1:])
					s.mu.Unlock()
					if ctx.Err() != nil && j.res.err != nil {
						err = fmt.Errorf("%w (first failure: %v)", err, j.res.err)
					}
				}
				j.reply(appendResult{first: first, err: err})
			}
			cancel()
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
		rt, err := s.n.routeFor(s.n.ctx, s.topic, 0)
		s.mu.Lock()
		if err != nil {
			s.held = s.held[1:]
			s.assignWire(j)
			tag := s.tag(j, true) // drain sends one at a time: the ones before it have settled
			s.mu.Unlock()
			// Route errors (unknown topic, no leader) get the retrying path.
			first, err := s.n.appendRetry(s.n.ctx, s.topic, j.payloads, tag, 0)
			if err != nil {
				s.mu.Lock()
				s.rotate(nil)
				s.mu.Unlock()
			}
			j.reply(appendResult{first: first, err: err})
			s.mu.Lock()
			continue
		}
		if s.inflight > 0 && rt != s.cur {
			continue // wait for the old route to settle first
		}
		s.held = s.held[1:]
		s.cur = rt
		s.inflight++
		s.assignWire(j)
		tag := s.tag(j, true) // drain sends one at a time: the ones before it have settled
		s.mu.Unlock()
		s.n.dispatch(s.topic, rt, j.payloads, tag, func(r appendResult) { s.settle(j, r) })
		s.mu.Lock()
	}
}
