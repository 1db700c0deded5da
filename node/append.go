package node

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"floe/meta"
	"floe/node/segment"
)

// appendResult is the outcome of one append request.
type appendResult struct {
	first   uint64 // offset of the first payload
	segment uint64
	err     error
}

// appendReq is one client append (one or more payloads, kept contiguous and in order).
type appendReq struct {
	payloads [][]byte
	bytes    int64
	segment  uint64 // the segment the sender expects; 0 = whichever is active
	done     func(appendResult)
}

// appender is the single writer of one topic's active segment on its leader. Requests
// are taken in arrival order; everything queued while one batch is being written and
// fsynced goes out in the next batch (group commit), so the order of a connection's
// pipelined requests is the order of their entries. The appender also rolls the
// segment over when it reaches a limit. All its fields belong to its goroutine.
type appender struct {
	n     *Node
	topic string
	ch    chan *appendReq

	seg      *segment.Segment // the open active segment, nil until needed
	segMeta  meta.Segment     // its replicated record
	firstAt  time.Time        // when its first entry was written (for the age limit)
	sealing  bool             // seg is sealed locally; the Seal command is not applied yet
	sealedAt [3]uint64        // count, bytes, crc of the local seal while sealing
}

const (
	appendQueue    = 8192
	maxBatchReqs   = 4096
	maxBatchBytes  = 8 << 20
	ageCheckPeriod = time.Second
)

// appenderFor returns the topic's appender, starting it if needed.
func (n *Node) appenderFor(topic string) *appender {
	n.mu.Lock()
	defer n.mu.Unlock()
	a, ok := n.appenders[topic]
	if !ok {
		a = &appender{n: n, topic: topic, ch: make(chan *appendReq, appendQueue)}
		n.appenders[topic] = a
		n.goLoop(a.run)
	}
	return a
}

// enqueue hands r to the appender; it never blocks past shutdown.
func (a *appender) enqueue(r *appendReq) {
	select {
	case a.ch <- r:
	case <-a.n.ctx.Done():
		r.done(appendResult{err: ErrClosed})
	}
}

func (a *appender) run() {
	tick := time.NewTicker(ageCheckPeriod)
	defer tick.Stop()
	batch := make([]*appendReq, 0, 64)
	for {
		select {
		case <-a.n.ctx.Done():
			a.drain(ErrClosed)
			return
		case <-tick.C:
			a.checkAge()
			continue
		case r := <-a.ch:
			batch = append(batch[:0], r)
		}
		size := batch[0].bytes
	more:
		for len(batch) < maxBatchReqs && size < maxBatchBytes {
			select {
			case r := <-a.ch:
				batch = append(batch, r)
				size += r.bytes
			default:
				break more
			}
		}
		a.process(batch)
		clear(batch)
	}
}

func (a *appender) drain(err error) {
	for {
		select {
		case r := <-a.ch:
			r.done(appendResult{err: err})
		default:
			return
		}
	}
}

func (a *appender) limits(t *meta.Topic) (entries uint64, bytes int64, age time.Duration) {
	cfg := a.n.cfg
	entries, bytes, age = cfg.MaxSegmentEntries, cfg.MaxSegmentBytes, cfg.MaxSegmentAge
	if t.Config.MaxSegmentEntries > 0 {
		entries = t.Config.MaxSegmentEntries
	}
	if t.Config.MaxSegmentBytes > 0 {
		bytes = t.Config.MaxSegmentBytes
	}
	if t.Config.MaxSegmentAgeMS > 0 {
		age = time.Duration(t.Config.MaxSegmentAgeMS) * time.Millisecond
	}
	return
}

// current makes sure the appender holds the topic's active segment if this node leads
// it, and returns the topic. It returns ErrNotLeader when another node leads it.
func (a *appender) current() (*meta.Topic, error) {
	t, ok := a.n.fsm.Topic(a.topic)
	if !ok {
		return nil, fmt.Errorf("%w: %q", meta.ErrNoTopic, a.topic)
	}
	act := t.Active()
	if a.seg != nil && a.segMeta.ID != act.ID {
		// Our segment was sealed (by our own Seal); it stays open for reads, within
		// the open-segment bound.
		a.n.sealed.touch(a.seg)
		a.seg, a.sealing, a.firstAt = nil, false, time.Time{}
	}
	if act.Leader != a.n.cfg.NodeID {
		return t, fmt.Errorf("%w: segment %d of %q is led by node %d", ErrNotLeader, act.ID, a.topic, act.Leader)
	}
	if a.seg == nil {
		seg, err := a.n.store.Create(a.topic, act.ID)
		if err != nil {
			return t, fmt.Errorf("%w: cannot open segment %d of %q: %v", ErrUnavailable, act.ID, a.topic, err)
		}
		a.seg, a.segMeta = seg, *act
		if seg.Count() > 0 {
			a.firstAt = time.Now() // restart: age counts from now (conservative: never too late)
		}
	}
	return t, nil
}

func (a *appender) process(batch []*appendReq) {
	for len(batch) > 0 {
		t, err := a.current()
		if err != nil {
			fail(batch, err)
			return
		}
		if a.sealing {
			if err := a.finishRoll(t); err != nil {
				fail(batch, err)
				return
			}
			continue
		}
		// Requests that expect an older segment were routed on stale metadata; their
		// payloads are still appended in order to the active segment, which is what the
		// client asked for (a topic append). A mismatch only matters for diagnostics.
		if !a.n.hasLease() {
			fail(batch, fmt.Errorf("%w: node %d has no quorum lease (cut off from the raft leader)", ErrUnavailable, a.n.cfg.NodeID))
			return
		}
		maxEntries, maxBytes, _ := a.limits(t)
		count, size := a.seg.Count(), a.seg.Bytes()
		take, n := 0, 0
		var nbytes int64
		for _, r := range batch {
			if take > 0 || count > 0 {
				if count+uint64(n+len(r.payloads)) > maxEntries || size+nbytes+r.bytes > maxBytes {
					break
				}
			}
			take++
			n += len(r.payloads)
			nbytes += r.bytes
		}
		if take == 0 {
			if err := a.roll(t); err != nil {
				fail(batch, err)
				return
			}
			continue
		}
		payloads := make([][]byte, 0, n)
		for _, r := range batch[:take] {
			payloads = append(payloads, r.payloads...)
		}
		first, err := a.seg.AppendBatch(payloads)
		if err != nil {
			if errors.Is(err, segment.ErrSealed) {
				err = fmt.Errorf("%w: segment %d of %q is sealing", ErrNotLeader, a.segMeta.ID, a.topic)
			}
			a.n.log.Error("append failed", "topic", a.topic, "segment", a.segMeta.ID, "err", err)
			fail(batch[:take], err)
			batch = batch[take:]
			continue
		}
		if a.firstAt.IsZero() {
			a.firstAt = time.Now()
		}
		a.n.metrics.appended(len(payloads), nbytes)
		off := a.segMeta.Base + first
		for _, r := range batch[:take] {
			r.done(appendResult{first: off, segment: a.segMeta.ID})
			off += uint64(len(r.payloads))
		}
		batch = batch[take:]
		if a.seg.Count() >= maxEntries || a.seg.Bytes() >= maxBytes {
			if err := a.roll(t); err != nil {
				a.n.log.Warn("roll-over postponed", "topic", a.topic, "segment", a.segMeta.ID, "err", err)
			}
		}
	}
}

func fail(batch []*appendReq, err error) {
	for _, r := range batch {
		r.done(appendResult{err: err})
	}
}

func (a *appender) checkAge() {
	if a.seg == nil || a.firstAt.IsZero() {
		return
	}
	t, err := a.current()
	if err != nil || a.seg == nil {
		return
	}
	_, _, maxAge := a.limits(t)
	if a.sealing || time.Since(a.firstAt) >= maxAge {
		if err := a.roll(t); err != nil {
			a.n.log.Warn("age roll-over postponed", "topic", a.topic, "err", err)
		}
	}
}

// roll seals the active segment locally and commits Seal through Raft, naming the next
// segment's leader. New appends wait (in the queue) until it is done.
func (a *appender) roll(t *meta.Topic) error {
	if !a.sealing {
		count, bytes, crc, err := a.seg.Seal()
		if err != nil {
			return fmt.Errorf("%w: cannot seal segment %d of %q: %v", ErrUnavailable, a.segMeta.ID, a.topic, err)
		}
		a.sealing = true
		a.sealedAt = [3]uint64{count, uint64(bytes), uint64(crc)}
	}
	return a.finishRoll(t)
}

func (a *appender) finishRoll(t *meta.Topic) error {
	next := a.n.nextLeader(t.Active().Leader)
	ctx, cancel := context.WithTimeout(a.n.ctx, a.n.cfg.RequestTimeout)
	defer cancel()
	cmd := &meta.Command{
		Op: meta.OpSeal, Topic: a.topic, Segment: a.segMeta.ID,
		Count: a.sealedAt[0], Bytes: int64(a.sealedAt[1]), CRC: uint32(a.sealedAt[2]), NextLeader: next,
	}
	if _, err := a.n.propose(ctx, cmd); err != nil {
		return fmt.Errorf("%w: cannot commit seal of segment %d of %q: %v", ErrUnavailable, a.segMeta.ID, a.topic, err)
	}
	a.n.log.Info("segment sealed", "topic", a.topic, "segment", a.segMeta.ID,
		"count", cmd.Count, "bytes", cmd.Bytes, "next_leader", next)
	a.n.metrics.rolls.Inc()
	a.n.sealed.touch(a.seg)
	a.seg, a.sealing, a.firstAt = nil, false, time.Time{}
	return nil
}

// nextLeader picks the leader of the next segment: the voter after current in id order
// (round-robin), skipping voters that do not answer a status call.
func (n *Node) nextLeader(current uint64) uint64 {
	members, err := n.raft.Members()
	if err != nil || len(members) == 0 {
		return n.cfg.NodeID
	}
	var ids []uint64
	for _, m := range members {
		if m.Voter {
			ids = append(ids, m.ID)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	start := sort.Search(len(ids), func(i int) bool { return ids[i] > current })
	for i := 0; i < len(ids); i++ {
		id := ids[(start+i)%len(ids)]
		if id == n.cfg.NodeID || n.alive(id) {
			return id
		}
	}
	return n.cfg.NodeID
}

// alive reports whether a member answers a status call quickly.
func (n *Node) alive(id uint64) bool {
	p, err := n.nodePeer(id)
	if err != nil {
		return false
	}
	_, err = p.call(opStatus, nil, 500*time.Millisecond)
	return err == nil
}

// appendAsync routes one append: to this node's appender when it leads the topic's
// active segment, else to the leader over RPC. Routing happens before it returns, so
// calls made in order from one goroutine reach the log in order; done runs once.
func (n *Node) appendAsync(topic string, payloads [][]byte, done func(appendResult)) {
	t, ok := n.fsm.Topic(topic)
	if !ok {
		done(appendResult{err: fmt.Errorf("%w: %q (REGISTER it first)", meta.ErrNoTopic, topic)})
		return
	}
	act := t.Active()
	if act.Leader == n.cfg.NodeID {
		var size int64
		for _, p := range payloads {
			size += int64(len(p)) + 8
		}
		n.appenderFor(topic).enqueue(&appendReq{payloads: payloads, bytes: size, segment: act.ID, done: done})
		return
	}
	p, err := n.nodePeer(act.Leader)
	if err != nil {
		done(appendResult{err: err})
		return
	}
	var e encoder
	e.str(topic)
	e.u64(act.ID)
	e.u64(uint64(len(payloads)))
	for _, pl := range payloads {
		e.bytes(pl)
	}
	ch, err := p.send(opAppend, e.b)
	if err != nil {
		done(appendResult{err: err})
		return
	}
	go func() {
		var r rpcReply
		select {
		case r = <-ch:
		case <-time.After(n.cfg.RequestTimeout):
			r.err = fmt.Errorf("%w: node %d did not answer", ErrUnavailable, act.Leader)
		}
		if r.err != nil {
			done(appendResult{err: r.err})
			return
		}
		d := decoder{b: r.body}
		res := appendResult{first: d.u64(), segment: d.u64()}
		if d.err != nil {
			res.err = fmt.Errorf("%w: bad append reply from node %d", ErrUnavailable, act.Leader)
		}
		n.metrics.forwarded.Inc()
		done(res)
	}()
}

// Append appends payloads to topic as one contiguous run and returns the offset of the
// first, once it is fsynced on the segment leader. Routing errors (roll-over, leader
// change, election) are retried until the request timeout.
func (n *Node) Append(ctx context.Context, topic string, payloads [][]byte) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	var lastErr error
	for attempt := 0; ; attempt++ {
		changed := n.fsm.Changed()
		ch := make(chan appendResult, 1)
		n.appendAsync(topic, payloads, func(r appendResult) { ch <- r })
		var r appendResult
		select {
		case r = <-ch:
		case <-ctx.Done():
			return 0, fmt.Errorf("%w: append to %q: %v", ErrUnavailable, topic, ctx.Err())
		}
		if r.err == nil {
			return r.first, nil
		}
		if !retryable(r.err) {
			return 0, r.err
		}
		lastErr = r.err
		if err := n.backoff(ctx, attempt, changed); err != nil {
			return 0, fmt.Errorf("append to %q gave up: %w", topic, lastErr)
		}
	}
}

func retryable(err error) bool {
	return errors.Is(err, ErrNotLeader) || errors.Is(err, ErrUnavailable) ||
		errors.Is(err, meta.ErrNotLeader) || errors.Is(err, meta.ErrStaleSegment)
}

// ownershipLoop opens, at start and after every metadata change, the active segments
// this node leads, so that a restarted leader recovers its WAL before the first write.
func (n *Node) ownershipLoop() {
	for {
		ch := n.fsm.Changed()
		for _, name := range n.fsm.TopicNames() {
			t, ok := n.fsm.Topic(name)
			if !ok || t.Active().Leader != n.cfg.NodeID {
				continue
			}
			if _, open := n.store.Get(name, t.Active().ID); !open {
				if _, err := n.store.Create(name, t.Active().ID); err != nil {
					n.log.Error("cannot open active segment", "topic", name, "segment", t.Active().ID, "err", err)
				}
			}
		}
		select {
		case <-ch:
		case <-n.ctx.Done():
			return
		}
	}
}
