package node

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"floe/meta"
	"floe/node/rpc"
	"floe/node/segment"
)

// appendResult is the outcome of one append request.
type appendResult struct {
	first   uint64 // offset of the first payload
	segment uint64
	err     error
	// node is where the append was sent; ambiguous is set when it may have been
	// written there although no reply came (a timeout or a lost connection after the
	// request left): a retry must then ask that node again, with the same id.
	node      uint64
	ambiguous bool
	boot      uint64 // with ambiguous: the boot id of node when the request was sent
}

// appendReq is one client append (one or more payloads, kept contiguous and in order).
type appendReq struct {
	payloads [][]byte
	bytes    int64
	segment  uint64 // the segment the sender expects; 0 = whichever is active
	tag      appendTag
	done     func(appendResult)
}

// appendTag identifies an append across retries and orders it within its stream.
type appendTag struct {
	// id identifies the request across retries (0: none). The appender remembers the
	// outcome of recent ids and answers a retry with it instead of appending twice.
	id uint64
	// stream and seq order the appends of one client connection to one topic (stream
	// 0: unordered). The appender writes a stream's appends only in seq order without
	// gaps: once one fails, the later ones fail too until it is retried, so a failure
	// is always a suffix of what a connection has in flight (Kafka's producer
	// sequence numbers, for the same reason).
	stream, seq uint64
	// base is set when every earlier append of the stream has settled (succeeded,
	// failed for good, or is this very append's retry): seq may then start the
	// stream afresh on this appender. Without it, the appender writes seq only right
	// after seq-1 of a stream it knows, so that an append that never arrived (lost
	// with a broken connection, say) cannot be overtaken by the ones sent behind it.
	base bool
	// boot is set on a retry after an ambiguous failure: the target's boot id at the
	// first attempt. A target that has restarted since cannot know whether it wrote
	// the first attempt, so it answers ErrOutcomeUnknown instead of writing again.
	boot uint64
}

// appender is the single writer of one topic's active segment on its leader. Requests
// are taken in arrival order; everything queued while one batch is being written and
// fsynced goes out in the next batch, as one segment.AppendBatch: one WriteAt and one
// fdatasync, made by the appender's goroutine. This is the group commit, the only
// batching stage on the write path (the segment does none of its own), so the order of
// a connection's pipelined requests is the order of their entries, and a batch is
// acknowledged, or failed, as a whole once its fdatasync has returned. The appender
// also rolls the segment over when it reaches a limit. All its fields belong to its
// goroutine.
type appender struct {
	n     *Node
	topic string
	ch    chan *appendReq

	seg     *segment.Segment // the open active segment, nil until needed
	segMeta meta.Segment     // its replicated record
	// firstAt is when seg's first entry was written (zero: none), for the age limit:
	// the time of that write on this node, or after a restart (which does not know it)
	// the segment's replicated creation time, which is never later.
	firstAt time.Time
	// first mirrors firstAt for the RPO gauges, read by others: nil while seg is
	// empty or closed.
	first    atomic.Pointer[firstEntry]
	sealing  bool      // seg is sealed locally; the Seal command is not applied yet
	sealedAt [3]uint64 // count, bytes, crc of the local seal while sealing

	done      map[uint64]appendResult // outcomes of recent request ids
	doneOrder []uint64                // ring of those ids, oldest evicted first
	doneNext  int
	streams   map[uint64]uint64 // stream -> seq of its last written append, in streamsSeg
	// streamsSeg is the segment the stream sequences belong to: sequencing holds
	// within one segment on one leader (the sender orders across segments), so they
	// start afresh with each segment.
	streamsSeg uint64
}

// firstEntry is when the first entry of an active segment was written.
type firstEntry struct {
	segment uint64
	unixMS  int64
}

// maxStreams bounds the streams an appender tracks; past it, it forgets them all (a
// forgotten stream starts afresh at its next append).
const maxStreams = 1 << 14

// dedupWindow is how many recent forwarded request ids an appender remembers (about
// 1.5 MiB once full). A retry is deduplicated if fewer appends than this came between
// it and its original, which a retry soon after a timeout or a lost connection is.
const dedupWindow = 1 << 15

func (a *appender) remember(id uint64, r appendResult) {
	if id == 0 {
		return
	}
	if a.done == nil {
		a.done = make(map[uint64]appendResult)
		a.doneOrder = make([]uint64, dedupWindow)
	}
	if old := a.doneOrder[a.doneNext]; old != 0 {
		delete(a.done, old)
	}
	a.doneOrder[a.doneNext] = id
	a.doneNext = (a.doneNext + 1) % dedupWindow
	a.done[id] = r
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

// existingAppender returns the topic's appender if this node has one.
func (n *Node) existingAppender(topic string) *appender {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.appenders[topic]
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
	a.checkAge()
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
// it, and returns the topic. It returns ErrNotSegmentLeader when another node leads it.
//
// The topic it returns holds only the config and the active segment (a cheap view).
func (a *appender) current() (*meta.Topic, error) {
	actSeg, cfg, ok := a.n.fsm.ActiveOf(a.topic)
	if !ok {
		return nil, fmt.Errorf("%w: %q", meta.ErrNoTopic, a.topic)
	}
	act := &actSeg
	t := &meta.Topic{Name: a.topic, Config: cfg, Segments: []*meta.Segment{act}}
	if a.seg != nil && a.segMeta.ID != act.ID {
		// Our segment was sealed (by our own Seal): the store keeps it open for
		// reads, within its bound on idle sealed segments.
		a.n.store.Release(a.seg)
		a.seg, a.sealing = nil, false
		a.setFirst(time.Time{})
	}
	if act.Leader != a.n.cfg.NodeID {
		return t, fmt.Errorf("%w: segment %d of %q is led by node %d", ErrNotSegmentLeader, act.ID, a.topic, act.Leader)
	}
	if a.seg == nil {
		// Neither create nor open the file before the metadata has caught up.
		if !a.n.hasLease() {
			return t, a.noLease()
		}
		seg, err := a.n.store.Create(a.topic, act.ID)
		if err != nil {
			return t, fmt.Errorf("%w: cannot open segment %d of %q: %v", ErrUnavailable, act.ID, a.topic, err)
		}
		a.n.reportDamaged(a.topic, act, seg)
		a.seg, a.segMeta = seg, *act
		if seg.Count() > 0 {
			// Entries written before a restart: the age counts from the segment's
			// creation, durable in the metadata, so that restarts never reset it.
			a.setFirst(createdAt(act))
		}
	}
	return t, nil
}

func (a *appender) process(batch []*appendReq) {
	// A retry of a request this appender already wrote gets the original outcome. A
	// retry queued behind its original (both waiting while this node stalled) is held
	// until the original is done, then answered the same way.
	if act, _, ok := a.n.fsm.ActiveOf(a.topic); ok && act.ID != a.streamsSeg {
		a.streams, a.streamsSeg = nil, act.ID
	}
	var retries []*appendReq
	var seen map[uint64]bool // allocated only for batches with forwarded requests
	var next map[uint64]uint64
	kept := batch[:0]
	for _, r := range batch {
		if id := r.tag.id; id != 0 {
			if seen == nil {
				seen = map[uint64]bool{}
			}
			if res, ok := a.done[id]; ok {
				// The original outcome stands only as long as this node may still
				// acknowledge writes, and only if its segment is still part of the
				// topic: what went into a segment abandoned since is not, so the
				// request is taken as new (and refused with ErrNotSegmentLeader, which sends
				// it to the segment that replaced it).
				if !a.n.hasLease() {
					r.done(appendResult{err: a.noLease()})
					continue
				}
				if s, ok := a.n.fsm.SegmentOf(a.topic, res.segment); !ok || !s.Abandoned {
					r.done(res)
					continue
				}
				delete(a.done, id)
			}
			if seen[id] {
				retries = append(retries, r)
				continue
			}
			seen[id] = true
		}
		if st := r.tag.stream; st != 0 {
			if next == nil {
				next = map[uint64]uint64{}
			}
			want, ok := next[st]
			if !ok {
				last, known := a.streams[st]
				want, ok = last+1, known
			}
			switch {
			case r.tag.base:
			case !ok:
				r.done(appendResult{err: fmt.Errorf("%w: append %d of its connection came first here, but an earlier one is unsettled",
					ErrUnavailable, r.tag.seq), node: a.n.cfg.NodeID})
				next[st] = r.tag.seq // later ones of the stream fail too
				continue
			case r.tag.seq != want:
				r.done(appendResult{err: fmt.Errorf("%w: append %d of its connection is out of sequence (next is %d, an earlier one failed)",
					ErrUnavailable, r.tag.seq, want), node: a.n.cfg.NodeID})
				next[st] = want // later ones of the stream fail too
				continue
			}
			next[st] = r.tag.seq + 1
		}
		kept = append(kept, r)
	}
	a.write(kept)
	if len(retries) > 0 {
		a.process(retries)
	}
}

// noLease is the error of an append this node may not acknowledge now.
func (a *appender) noLease() error {
	return fmt.Errorf("%w: node %d has no write lease (cut off from the raft leader, or its metadata not caught up yet)", ErrUnavailable, a.n.cfg.NodeID)
}

// write appends a batch of distinct requests, rolling over as limits are reached.
func (a *appender) write(batch []*appendReq) {
	for len(batch) > 0 {
		t, err := a.current()
		if err != nil {
			a.fail(batch, err)
			return
		}
		// Without the lease, fail at once: neither write nor try to seal (a node cut
		// off from the quorum must answer quickly, not wait for a Raft commit).
		if !a.n.hasLease() {
			a.fail(batch, a.noLease())
			return
		}
		if a.sealing {
			if err := a.finishRoll(t); err != nil {
				a.fail(batch, err)
				return
			}
			continue
		}
		// A sender that expects a newer segment than ours knows more than this node:
		// our metadata is behind, so we must not write (the segment may be sealed).
		// An older expectation is fine: the client asked for a topic append.
		// It fails the rest of the batch too: a failure is always a suffix.
		if r := batch[0]; r.segment > a.segMeta.ID {
			a.fail(batch, fmt.Errorf("%w: node %d has segment %d of %q active, sender expects %d (metadata behind)",
				ErrUnavailable, a.n.cfg.NodeID, a.segMeta.ID, a.topic, r.segment))
			return
		}
		maxEntries, maxBytes, _ := a.limits(t)
		count, size := a.seg.Count(), a.seg.Bytes()
		take, n := 0, 0
		var nbytes int64
		for _, r := range batch {
			if r.segment > a.segMeta.ID {
				break // handled on the next turn of the loop
			}
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
				a.fail(batch, err)
				return
			}
			continue
		}
		payloads := make([][]byte, 0, n)
		for _, r := range batch[:take] {
			payloads = append(payloads, r.payloads...)
		}
		// The group commit: returns once the fdatasync covering every payload has,
		// or with the error that failed all of them (the file is then back at its
		// last durable size).
		first, err := a.seg.AppendBatch(payloads)
		if err != nil {
			if errors.Is(err, segment.ErrSealed) {
				err = fmt.Errorf("%w: segment %d of %q is sealing", ErrNotSegmentLeader, a.segMeta.ID, a.topic)
			}
			a.n.log.Error("append failed", "topic", a.topic, "segment", a.segMeta.ID, "err", err)
			a.fail(batch, err) // the rest too: a failure is always a suffix
			return
		}
		if a.firstAt.IsZero() {
			a.setFirst(time.Now())
		}
		a.n.metrics.appended(len(payloads), nbytes)
		off := a.segMeta.Base + first
		for _, r := range batch[:take] {
			res := appendResult{first: off, segment: a.segMeta.ID, node: a.n.cfg.NodeID}
			a.remember(r.tag.id, res)
			if r.tag.stream != 0 {
				if a.streams == nil || len(a.streams) >= maxStreams {
					a.streams = map[uint64]uint64{}
				}
				a.streams[r.tag.stream] = r.tag.seq
			}
			r.done(res)
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

// fail answers a batch with err. A final (not retryable) error consumes the requests'
// sequence numbers, since the sender will not retry them.
func (a *appender) fail(batch []*appendReq, err error) {
	final := !retryable(err)
	for _, r := range batch {
		if final && r.tag.stream != 0 {
			if a.streams == nil || len(a.streams) >= maxStreams {
				a.streams = map[uint64]uint64{}
			}
			a.streams[r.tag.stream] = r.tag.seq
		}
		r.done(appendResult{err: err})
	}
}

// checkAge rolls the active segment over once its first entry is older than the age
// limit. It runs every ageCheckPeriod whether or not writes come, also for a non-empty
// segment this node leads but has not written to since it started (a restart).
func (a *appender) checkAge() {
	if a.seg == nil && a.n.nonEmptyActive(a.topic) == nil {
		return
	}
	if (a.seg != nil && a.firstAt.IsZero()) || !a.n.hasLease() {
		return
	}
	t, err := a.current()
	if err != nil || a.seg == nil || a.firstAt.IsZero() || a.seg.Damaged() != nil {
		return // a damaged segment is never sealed (reportDamaged)
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
	a.n.store.Release(a.seg)
	a.seg, a.sealing = nil, false
	a.setFirst(time.Time{})
	return nil
}

func (a *appender) setFirst(t time.Time) {
	a.firstAt = t
	if t.IsZero() {
		a.first.Store(nil)
	} else {
		a.first.Store(&firstEntry{segment: a.segMeta.ID, unixMS: t.UnixMilli()})
	}
}

// createdAt is when segment s became active, by the replicated metadata: a durable
// lower bound of the time of its first entry (up to the clock skew between the node
// that proposed it and this one).
func createdAt(s *meta.Segment) time.Time {
	if s.CreatedUnixMS <= 0 {
		return time.Now() // metadata without the field: the best this node knows
	}
	return time.UnixMilli(s.CreatedUnixMS)
}

// nonEmptyActive returns the topic's active segment if this node leads it and holds
// entries of it in its open file; nil otherwise.
func (n *Node) nonEmptyActive(topic string) *meta.Segment {
	act, _, ok := n.fsm.ActiveOf(topic)
	if !ok || act.Leader != n.cfg.NodeID {
		return nil
	}
	if seg, open := n.store.Get(topic, act.ID); !open || seg.Count() == 0 {
		return nil
	}
	return &act
}

// oldestUnsealedMS returns the time (Unix ms, 0 if none) of the oldest entry in an
// active segment this node leads: the time its appender wrote the segment's first
// entry, or the segment's creation time when this process has not written to it (it
// restarted since), which is never later.
func (n *Node) oldestUnsealedMS() int64 {
	var oldest int64
	for _, name := range n.fsm.TopicNames() {
		act := n.nonEmptyActive(name)
		if act == nil {
			continue
		}
		ms := createdAt(act).UnixMilli()
		if a := n.existingAppender(name); a != nil {
			if f := a.first.Load(); f != nil && f.segment == act.ID {
				ms = f.unixMS
			}
		}
		if oldest == 0 || ms < oldest {
			oldest = ms
		}
	}
	return oldest
}

// oldestLocalOnly returns the time of the oldest entry this node holds on its disk
// only, zero if none: the first entry of an active segment it leads (oldestUnsealedMS)
// and, with an archive, the creation of a sealed segment it led that is not archived
// yet. Without an archive sealed segments are never uploaded; only the unsealed
// entries, which --max-segment-age bounds, count.
func (n *Node) oldestLocalOnly() time.Time {
	oldest := n.oldestUnsealedMS()
	if n.uploader != nil {
		if t := n.uploader.OldestUnarchived(); !t.IsZero() && (oldest == 0 || t.UnixMilli() < oldest) {
			oldest = t.UnixMilli()
		}
	}
	if oldest == 0 {
		return time.Time{}
	}
	return time.UnixMilli(oldest)
}

// clusterOldestLocalOnly returns the time of the oldest entry that any node holds on
// its disk only, zero if none. It counts every topic's active segment: by the oldest
// unsealed entry its leader reports (opUnsealed), or, for a leader that does not
// answer within a short timeout, from the segment's creation time, since what a node
// that is down holds is unknown (it may hold entries). With an archive it also counts
// every sealed segment not archived yet, from its creation time (the metadata).
func (n *Node) clusterOldestLocalOnly() time.Time {
	var oldest int64
	keep := func(ms int64) {
		if ms > 0 && (oldest == 0 || ms < oldest) {
			oldest = ms
		}
	}
	leaders := map[uint64]int64{} // leader of active segments -> oldest creation
	for _, name := range n.fsm.TopicNames() {
		t, ok := n.fsm.Topic(name)
		if !ok {
			continue
		}
		for _, s := range t.Segments {
			switch {
			case s.State == meta.Sealed && s.Count > 0 && n.bucket != nil:
				keep(s.CreatedUnixMS)
			case s.State == meta.Active && s.Leader != n.cfg.NodeID:
				if ms, ok := leaders[s.Leader]; !ok || createdAt(s).UnixMilli() < ms {
					leaders[s.Leader] = createdAt(s).UnixMilli()
				}
			}
		}
	}
	keep(n.oldestUnsealedMS())
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id, created := range leaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms, err := n.peerOldestUnsealed(id)
			if err != nil {
				ms = created
			}
			mu.Lock()
			keep(int64(ms))
			mu.Unlock()
		}()
	}
	wg.Wait()
	if oldest == 0 {
		return time.Time{}
	}
	return time.UnixMilli(oldest)
}

// peerOldestUnsealed asks node id for its oldestUnsealedMS.
func (n *Node) peerOldestUnsealed(id uint64) (int64, error) {
	p, err := n.nodePeer(id)
	if err != nil {
		return 0, err
	}
	body, err := p.Call(n.ctx, rpc.OpUnsealed, nil, 500*time.Millisecond)
	if err != nil {
		return 0, err
	}
	d := rpc.NewDecoder(body)
	ms := d.U64()
	return int64(ms), d.Err
}

// nextLeader picks the leader of the next segment: the voter after current in id order
// (round-robin), skipping voters that do not answer a status call within
// nextLeaderProbe.
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
		if n.peerAnswers(n.ctx, id, nextLeaderProbe, 1) {
			return id
		}
	}
	return n.cfg.NodeID
}

// nextLeaderProbe is how long nextLeader waits for a voter to answer.
const nextLeaderProbe = 500 * time.Millisecond

// route is where an append goes: the node leading the topic's active segment.
type route struct {
	node    uint64
	segment uint64
}

// routeFor returns the route of an append to topic; pin forces the node (a retry after
// an ambiguous failure must ask the same node).
func (n *Node) routeFor(ctx context.Context, topic string, pin uint64) (route, error) {
	act, _, err := n.segmentAt(ctx, topic, 0, true)
	if err != nil {
		return route{}, err
	}
	r := route{node: act.Leader, segment: act.ID}
	if pin != 0 {
		r.node = pin
	}
	return r, nil
}

// dispatch sends one append along rt: to this node's appender, or over RPC. It is
// synchronous up to the hand-off, so calls made in order from one goroutine reach the
// log in order; done runs exactly once, possibly before dispatch returns.
func (n *Node) dispatch(topic string, rt route, payloads [][]byte, tag appendTag, done func(appendResult)) {
	if rt.node == n.cfg.NodeID {
		var size int64
		for _, p := range payloads {
			size += int64(len(p)) + 8
		}
		// A local hand-off cannot be lost, so it is never retried ambiguously and needs
		// no id (ids cost memory in the appender's window).
		tag.id = 0
		n.appenderFor(topic).enqueue(&appendReq{payloads: payloads, bytes: size, segment: rt.segment, tag: tag, done: done})
		return
	}
	p, err := n.nodePeer(rt.node)
	if err != nil {
		done(appendResult{err: err, node: rt.node})
		return
	}
	ch, err := p.Send(rpc.OpAppend, encodeAppend(topic, rt.segment, tag, payloads))
	boot := p.BootID()
	if err != nil {
		done(appendResult{err: err, node: rt.node, ambiguous: !errors.Is(err, rpc.ErrNotSent), boot: boot})
		return
	}
	go func() {
		var r rpc.Reply
		t := time.NewTimer(n.cfg.RequestTimeout)
		defer t.Stop()
		select {
		case r = <-ch:
		case <-t.C:
			r.Err = fmt.Errorf("%w: node %d did not answer an append within %v", ErrUnavailable, rt.node, n.cfg.RequestTimeout)
		}
		if r.Err != nil {
			// No answer from the node (as opposed to an error it sent): the append may
			// or may not have been written there.
			done(appendResult{err: r.Err, node: rt.node, ambiguous: !rpc.IsRemote(r.Err), boot: boot})
			return
		}
		d := rpc.NewDecoder(r.Body)
		res := appendResult{first: d.U64(), segment: d.U64(), node: rt.node}
		if d.Err != nil {
			res = appendResult{err: fmt.Errorf("%w: bad append reply from node %d", ErrUnavailable, rt.node), node: rt.node, ambiguous: true, boot: boot}
		}
		n.metrics.forwarded.Inc()
		done(res)
	}()
}

// newRequestID returns an id for an append that is unique across the cluster with
// overwhelming probability (a random 64-bit start per process, then a counter).
func (n *Node) newRequestID() uint64 {
	for {
		if id := n.reqIDs.Add(1); id != 0 {
			return id
		}
	}
}

// Append appends payloads to topic as one contiguous run and returns the offset of the
// first, once it is fsynced on the segment leader. Routing errors (roll-over, leader
// change, election) are retried until the request timeout, without duplicates: see
// appendRetry.
func (n *Node) Append(ctx context.Context, topic string, payloads [][]byte) (uint64, error) {
	return n.appendRetry(ctx, topic, payloads, appendTag{id: n.newRequestID()}, 0)
}

// appendRetry appends with retries. After an ambiguous failure (the request may have
// been written) it asks the same node again with the same id, until that node answers:
// with the original outcome (it remembers recent ids), or with ErrNotSegmentLeader, which
// proves it never wrote the request; only then does it follow the new route. So a
// retry never duplicates an entry, except across a restart of the segment leader
// (which forgets its ids): at-least-once there.
func (n *Node) appendRetry(ctx context.Context, topic string, payloads [][]byte, tag appendTag, pin uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	var lastErr error
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			// Never hand off an append whose caller has given up: its outcome would
			// be unknown.
			if lastErr == nil {
				lastErr = ctx.Err()
			}
			return 0, fmt.Errorf("%w: append to %q not sent: %v", ErrUnavailable, topic, lastErr)
		}
		changed := n.fsm.Changed()
		rt, err := n.routeFor(ctx, topic, pin)
		var r appendResult
		if err != nil {
			r.err = err
		} else {
			ch := make(chan appendResult, 1)
			n.dispatch(topic, rt, payloads, tag, func(r appendResult) { ch <- r })
			select {
			case r = <-ch:
			case <-ctx.Done():
				return 0, fmt.Errorf("%w: append to %q: %v", ErrUnavailable, topic, ctx.Err())
			}
		}
		if r.err == nil {
			return r.first, nil
		}
		if !retryable(r.err) {
			return 0, r.err
		}
		switch {
		case r.ambiguous:
			pin = r.node
			if tag.boot == 0 {
				tag.boot = r.boot
			}
		case pin != 0 && errors.Is(r.err, ErrNotSegmentLeader):
			pin = 0 // the pinned node never wrote it: route afresh
		}
		lastErr = r.err
		if err := n.backoff(ctx, attempt, changed); err != nil {
			if pin != 0 {
				return 0, fmt.Errorf("%w: append to %q: outcome unknown, node %d did not answer: %v", ErrUnavailable, topic, pin, lastErr)
			}
			return 0, fmt.Errorf("append to %q gave up: %w", topic, lastErr)
		}
	}
}

func retryable(err error) bool {
	return errors.Is(err, ErrNotSegmentLeader) || errors.Is(err, ErrUnavailable) ||
		errors.Is(err, meta.ErrNotRaftLeader) || errors.Is(err, meta.ErrStaleSegment)
}

// ownershipLoop, once the metadata has caught up after start and after every
// metadata change, opens the active segments this node leads, so that a restarted
// leader recovers its WAL before the first write, and starts the appender of each that
// holds entries, so that its age limit is checked although no write may ever come. It
// creates no file while the metadata may be stale: a node returning from a partition
// or a restart may still see itself as the leader of a segment that was sealed or
// abandoned meanwhile.
func (n *Node) ownershipLoop() {
	for {
		ch, synced := n.fsm.Changed(), n.syncedChanged()
		if n.synced.Load() {
			n.openLedSegments()
		}
		select {
		case <-ch:
		case <-synced:
		case <-n.ctx.Done():
			return
		}
	}
}

func (n *Node) openLedSegments() {
	for _, name := range n.fsm.TopicNames() {
		act, _, ok := n.fsm.ActiveOf(name)
		if !ok || act.Leader != n.cfg.NodeID {
			continue
		}
		if _, open := n.store.Get(name, act.ID); !open {
			if seg, err := n.store.Create(name, act.ID); err != nil {
				n.log.Error("cannot open active segment", "topic", name, "segment", act.ID, "err", err)
			} else {
				n.reportDamaged(name, &act, seg)
				n.store.Release(seg) // unsealed: stays open for the appender
			}
		}
		if n.nonEmptyActive(name) != nil {
			n.appenderFor(name)
		}
	}
}
