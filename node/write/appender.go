package write

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"floe/meta"
	"floe/node/rpc"
	"floe/node/segment"
)

// Result is the outcome of one append request.
type Result struct {
	First   uint64 // offset of the first payload
	Segment uint64
	Err     error
	// Node is where the append was sent; Ambiguous is set when it may have been
	// written there although no reply came (a timeout or a lost connection after the
	// request left): a retry must then ask that node again, with the same id.
	Node      uint64
	Ambiguous bool
	Boot      uint64 // with Ambiguous: the boot id of Node when the request was sent
}

// Request is one append (one or more payloads, kept contiguous and in order) queued
// for an appender.
type Request struct {
	Payloads [][]byte
	Bytes    int64  // as stored: each payload plus its 8-byte header
	Segment  uint64 // the segment the sender expects; 0 = whichever is active
	Tag      Tag
	// Done receives the outcome, exactly once, on the appender's goroutine.
	Done func(Result)
}

// Tag identifies an append across retries and orders it within its stream.
type Tag struct {
	// ID identifies the request across retries (0: none). The appender remembers the
	// outcome of recent ids and answers a retry with it instead of appending twice.
	ID uint64
	// Stream and Seq order the appends of one client connection to one topic (stream
	// 0: unordered). The appender writes a stream's appends only in Seq order without
	// gaps: once one fails, the later ones fail too until it is retried, so a failure
	// is always a suffix of what a connection has in flight (Kafka's producer
	// sequence numbers, for the same reason).
	Stream, Seq uint64
	// Base is set when every earlier append of the stream has settled (succeeded,
	// failed for good, or is this very append's retry): Seq may then start the
	// stream afresh on this appender. Without it, the appender writes Seq only right
	// after Seq-1 of a stream it knows, so that an append that never arrived (lost
	// with a broken connection, say) cannot be overtaken by the ones sent behind it.
	Base bool
	// Boot is set on a retry after an ambiguous failure: the target's boot id at the
	// first attempt. A target that has restarted since cannot know whether it wrote
	// the first attempt, so it answers rpc.ErrOutcomeUnknown instead of writing again.
	Boot uint64
}

const (
	appendQueue    = 8192    // requests queued per appender (Config.QueueLen)
	maxBatchReqs   = 4096    // requests per group commit
	maxBatchBytes  = 8 << 20 // bytes per group commit (the first request may pass it)
	ageCheckPeriod = time.Second
	// maxStreams bounds the streams an appender tracks; past it, it forgets them all
	// (a forgotten stream starts afresh at its next append, with Base).
	maxStreams = 1 << 14
)

// Appender is the single writer of one topic's active segment on its leader.
// Requests are taken in arrival order; everything queued while one batch is being
// written and fsynced goes out in the next batch, as one Segment.AppendBatch: one
// WriteAt and one fdatasync, made by the appender's goroutine. This is the group
// commit, the only batching stage on the write path (the segment does none of its
// own), so the order of a connection's pipelined requests is the order of their
// entries, and a batch is acknowledged, or failed, as a whole once its fdatasync has
// returned. The appender also rolls the segment over when it reaches a limit. All
// its fields but ch and first belong to its goroutine.
type Appender struct {
	w     *Writer
	topic string
	ch    chan *Request
	// gone is closed when the topic was deleted (Writer.Drop), goneErr then being
	// the answer to every request; goneMu orders Enqueue's sends before the close,
	// so that nothing is left in ch once the goroutine has drained it.
	gone    chan struct{}
	goneMu  sync.RWMutex
	goneErr error

	seg     Segment      // the open active segment, nil until needed
	segMeta meta.Segment // its replicated record
	// sealed holds seg's totals while it is sealed locally and the Seal command is
	// not committed yet; nil otherwise.
	sealed *sealTotals
	// firstAt is when seg's first entry was written (zero: none), for the age limit:
	// the time of that write on this node, or after a restart (which does not know it)
	// the segment's replicated creation time, which is never later.
	firstAt time.Time
	// first mirrors firstAt for the RPO gauges, read by others: nil while seg is
	// empty or closed.
	first atomic.Pointer[firstEntry]

	// expect is how many requests the next batch should carry (gather), commitAvg
	// the moving average of a group commit's duration.
	expect    int
	commitAvg time.Duration
	// behind is how many requests were queued when the last group commit of a
	// batch was durable, before its replies went out.
	behind int

	// repl is the replication of seg to its followers (nil: not replicated);
	// mustRoll is set when seg may hold, on a follower, entries this node does not
	// have (a failed write, or a segment opened after a restart): it is sealed before
	// anything more is written, so no index ever gets two contents.
	repl     *replication
	mustRoll bool
	// pending is the last batch written to a replicated segment and not answered
	// yet (waiting for a majority); pendingFresh is set while the run loop has not
	// come round since it was written.
	pending      *pendingBatch
	pendingFresh bool
	// visible is how many entries of seg readers may see, when it is replicated;
	// lagging is set while one of its followers holds fewer entries than this node
	// (or has not answered yet).
	visible atomic.Pointer[watermark]
	lagging atomic.Bool

	dedup dedupWindow
	// lastSeq maps a stream to the Seq of its last written (or finally failed)
	// append in segment seqSegment: sequencing holds within one segment on one
	// leader (the sender orders across segments), so it starts afresh with each.
	lastSeq    map[uint64]uint64
	seqSegment uint64
}

// sealTotals are a locally sealed segment's totals, proposed in its Seal command.
type sealTotals struct {
	count uint64
	bytes int64
	crc   uint32
}

// firstEntry is when the first entry of an active segment was written.
type firstEntry struct {
	segment uint64
	unixMS  int64
}

func newAppender(w *Writer, topic string) *Appender {
	return &Appender{w: w, topic: topic, ch: make(chan *Request, w.cfg.QueueLen), gone: make(chan struct{}), dedup: newDedupWindow(DedupWindow)}
}

// Enqueue hands r to the appender, waiting while its queue is full; it never blocks
// past shutdown (r is then answered ErrClosed) nor once the topic is deleted.
func (a *Appender) Enqueue(r *Request) {
	a.goneMu.RLock()
	defer a.goneMu.RUnlock()
	select {
	case <-a.gone:
		r.Done(Result{Err: a.goneErr})
		return
	default:
	}
	select {
	case a.ch <- r:
	case <-a.w.ctx.Done():
		r.Done(Result{Err: ErrClosed})
	}
}

// retire stops the appender of a deleted topic: what is queued, and every later
// request, is answered err, and its segment is let go.
func (a *Appender) retire(err error) {
	a.goneMu.Lock()
	defer a.goneMu.Unlock()
	select {
	case <-a.gone:
	default:
		a.goneErr = err
		close(a.gone)
	}
}

// Queued is the number of requests waiting in the appender's queue, and its capacity.
func (a *Appender) Queued() (n, capacity int) { return len(a.ch), cap(a.ch) }

func (a *Appender) run() {
	tick := time.NewTicker(a.w.ageCheck)
	defer tick.Stop()
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	notice := time.NewTimer(time.Hour)
	notice.Stop()
	a.checkAge()
	batch := make([]*Request, 0, 64)
	for {
		// Followers whose last entries are committed are told so once nothing more
		// comes for noticeDelay (the next batch would tell them).
		var noticeC <-chan time.Time
		var replies <-chan struct{}
		if a.repl != nil && a.seg != nil && a.pending == nil {
			replies = a.repl.poke // a follower's late reply: catch it up, tell it
			if len(a.ch) == 0 && a.untold(a.repl) {
				notice.Reset(noticeDelay)
				noticeC = notice.C
			}
		}
		if noticeC == nil {
			notice.Stop()
		}
		select {
		case <-a.w.ctx.Done():
			a.finishPending()
			a.drain(ErrClosed)
			return
		case <-a.gone:
			if a.seg != nil {
				a.closeSegment()
			}
			a.drain(a.goneErr)
			return
		case <-tick.C:
			a.finishPending()
			a.checkAge()
			continue
		case <-noticeC:
			if a.repl != nil && a.seg != nil {
				a.repl.collect()
				a.tellCommitted(a.repl)
			}
			continue
		case <-replies:
			// A follower that answers late (its first probe, or a send after a
			// failure) is sent what it misses now.
			a.repl.collect()
			a.catchUp(a.repl, a.seg.Count())
			continue
		case r := <-a.ch:
			batch = a.gather(append(batch[:0], r), wait)
		}
		a.behind = 0
		a.pendingFresh = false
		a.process(batch)
		if a.pending != nil && (!a.pendingFresh || len(a.ch) == 0) {
			a.finishPending() // nothing more to overlap its wait with
		}
		// The requests this batch answered are the ones likely to come back next
		// (their clients send again on the reply), and the ones queued behind it
		// before it answered are the rest. (Counting the queue after the replies
		// would count a client that already came back twice.)
		a.expect = min(len(batch)+a.behind, maxBatchReqs)
		clear(batch)
	}
}

// gather completes a batch that starts with one request: it takes what is queued
// behind it and then, if fewer requests came than a.expect (the last batch plus what
// was queued behind it when it was durable), waits for the missing ones, at most commitWait. Without the
// wait, clients that each keep one request in flight split into two groups that take
// turns: one group's requests arrive while the other's commit runs, so each commit
// carries half of them and every request waits for two fdatasyncs. The wait is
// bounded by the recent commit time (and Config.CommitWait), so a request waits at
// most one commit longer than it would have; a lone client, expecting itself only,
// never waits.
func (a *Appender) gather(batch []*Request, wait *time.Timer) []*Request {
	size := batch[0].Bytes
	full := func() bool { return len(batch) >= maxBatchReqs || size >= maxBatchBytes }
	for !full() {
		select {
		case r := <-a.ch:
			batch = append(batch, r)
			size += r.Bytes
			continue
		default:
		}
		break
	}
	if len(batch) >= a.expect || full() || a.pending != nil {
		// (The clients of a batch waiting for its majority wait for their answers:
		// none of them will come before it is finished.)
		return batch
	}
	d := a.commitWait()
	if d <= 0 {
		return batch
	}
	wait.Reset(d)
	defer wait.Stop()
	for len(batch) < a.expect && !full() {
		select {
		case r := <-a.ch:
			batch = append(batch, r)
			size += r.Bytes
		case <-wait.C:
			a.w.cfg.Metrics.Waited(false)
			return batch
		case <-a.w.ctx.Done():
			return batch
		}
	}
	a.w.cfg.Metrics.Waited(true)
	return batch
}

// commitWait is how long gather may wait for expected requests: the recent
// group-commit time, at most Config.CommitWait. (Half of it, as before 2026-12-07,
// ran out in a quarter of the commits at 16 x 1 and split the clients; the whole
// commit time runs out in 4% of them: 4% more entries/s, 15.7 instead of 14.1 per
// commit.)
func (a *Appender) commitWait() time.Duration {
	return min(a.commitAvg, a.w.cfg.CommitWait)
}

// timed records how long one group commit's write and fdatasync took, in a moving
// average over about the last eight.
func (a *Appender) timed(d time.Duration) {
	if a.commitAvg == 0 {
		a.commitAvg = d
		return
	}
	a.commitAvg += (d - a.commitAvg) / 8
}

func (a *Appender) drain(err error) {
	for {
		select {
		case r := <-a.ch:
			r.Done(Result{Err: err})
		default:
			return
		}
	}
}

// current makes sure the appender holds the topic's active segment if this node
// leads it, and returns that segment's record and the topic's limits. It returns
// rpc.ErrNotSegmentLeader when another node leads it.
func (a *Appender) current() (meta.Segment, Limits, error) {
	md := a.w.cfg.Metadata
	act, cfg, ok := md.ActiveOf(a.topic)
	if !ok {
		return act, Limits{}, fmt.Errorf("%w: %q", meta.ErrNoTopic, a.topic)
	}
	limits := a.w.cfg.Limits.of(cfg)
	if a.seg != nil && a.segMeta.ID != act.ID {
		// Our segment was sealed (by our own Seal): the store keeps it open for
		// reads, within its bound on idle sealed segments.
		a.closeSegment()
	}
	if act.Leader != a.w.cfg.NodeID {
		return act, limits, fmt.Errorf("%w: segment %d of %q is led by node %d", rpc.ErrNotSegmentLeader, act.ID, a.topic, act.Leader)
	}
	if a.repl != nil && !a.mustRoll && a.w.cfg.IsVoter != nil {
		for _, f := range a.repl.follow {
			if !a.w.cfg.IsVoter(f.id) {
				// A follower removed from the cluster: the segment's replicas never
				// change, the next segment's are picked among the voters.
				a.w.cfg.Logger.Info("rolling a replicated segment over: a follower is no longer a member", "topic", a.topic,
					"segment", act.ID, "node", f.id)
				a.mustRoll = true
			}
		}
	}
	if a.seg == nil {
		// Neither create nor open the file before the metadata has caught up.
		if !a.w.cfg.Lease() {
			return act, limits, a.w.noLease()
		}
		if a.w.cfg.Lost != nil {
			// Writing it would give new entries the offsets (and, replicated, the
			// indexes in the followers' copies) of entries that exist elsewhere.
			if err := a.w.cfg.Lost(a.topic, &act); err != nil {
				return act, limits, err
			}
		}
		seg, err := a.w.cfg.Store.Open(a.topic, &act)
		if err != nil {
			return act, limits, rpc.Unavailable(fmt.Sprintf("cannot open segment %d of %q", act.ID, a.topic), err)
		}
		a.seg, a.segMeta = seg, act
		if len(act.Replicas) > 1 {
			// Created before this process started: an earlier life may have sent
			// followers entries it never made durable itself.
			inherited := act.LeaderIndex <= a.w.cfg.StartIndex
			a.mustRoll = inherited
			a.repl = newReplication(act, a.w.cfg.NodeID, inherited)
			w := &watermark{segment: act.ID}
			a.visible.Store(w)
		}
		if seg.Count() > 0 {
			// Entries written before a restart: the age counts from the segment's
			// creation, durable in the metadata, so that restarts never reset it.
			a.setFirst(CreatedAt(&act))
		}
	}
	return act, limits, nil
}

// closeSegment gives seg back to the store, after a roll-over.
func (a *Appender) closeSegment() {
	a.finishPending()
	if a.repl != nil {
		a.repl.inflight.Wait()
	}
	a.w.cfg.Store.Release(a.seg)
	a.seg, a.sealed, a.repl, a.mustRoll = nil, nil, nil, false
	a.visible.Store(nil)
	a.lagging.Store(false)
	a.setFirst(time.Time{})
}

// process answers retries from the dedup window, refuses appends out of their
// stream's sequence, and writes the rest.
func (a *Appender) process(batch []*Request) {
	if a.pending != nil && a.pending.retried(batch) {
		a.finishPending() // a retry of a request it holds gets its answer, not a second write
	}
	if act, _, ok := a.w.cfg.Metadata.ActiveOf(a.topic); ok && act.ID != a.seqSegment {
		a.lastSeq, a.seqSegment = nil, act.ID
	}
	// A retry queued behind its original (both waiting while this node stalled) is
	// held until the original is done, then answered the same way.
	var retries []*Request
	var seen map[uint64]bool // allocated only for batches with forwarded requests
	var next map[uint64]uint64
	kept := batch[:0]
	for _, r := range batch {
		if id := r.Tag.ID; id != 0 {
			if a.answeredFromWindow(r) {
				continue
			}
			if seen == nil {
				seen = map[uint64]bool{}
			}
			if seen[id] {
				retries = append(retries, r)
				continue
			}
			seen[id] = true
		}
		if r.Tag.Stream != 0 {
			if next == nil {
				next = map[uint64]uint64{}
			}
			if !a.inSequence(r, next) {
				continue
			}
		}
		kept = append(kept, r)
	}
	a.write(kept)
	if len(retries) > 0 {
		a.process(retries)
	}
}

// answeredFromWindow answers a retry of a request this appender already wrote with
// the original outcome, and reports whether it did. The original outcome stands only
// as long as this node may still acknowledge writes, and only if its segment is still
// part of the topic: what went into a segment abandoned since is not, so the request
// is taken as new (and refused with rpc.ErrNotSegmentLeader, which sends it to the
// segment that replaced it).
func (a *Appender) answeredFromWindow(r *Request) bool {
	res, ok := a.dedup.lookup(r.Tag.ID)
	if !ok {
		return false
	}
	if !a.w.cfg.Lease() {
		r.Done(Result{Err: a.w.noLease()})
		return true
	}
	if s, ok := a.w.cfg.Metadata.SegmentOf(a.topic, res.Segment); !ok || !s.Abandoned {
		r.Done(res)
		return true
	}
	a.dedup.forget(r.Tag.ID)
	return false
}

// inSequence reports whether r comes next in its stream, and fails it otherwise.
// next holds, per stream, the Seq the batch expects next (a failure sets it so that
// the later appends of the stream fail too).
func (a *Appender) inSequence(r *Request, next map[uint64]uint64) bool {
	st := r.Tag.Stream
	want, ok := next[st]
	if !ok {
		last, known := a.lastSeq[st]
		want, ok = last+1, known
	}
	switch {
	case r.Tag.Base:
	case !ok:
		r.Done(Result{Err: rpc.Unavailable(fmt.Sprintf("append %d of its connection came first here, but an earlier one is unsettled",
			r.Tag.Seq), nil), Node: a.w.cfg.NodeID})
		next[st] = r.Tag.Seq // later ones of the stream fail too
		return false
	case r.Tag.Seq != want:
		r.Done(Result{Err: rpc.Unavailable(fmt.Sprintf("append %d of its connection is out of sequence (next is %d, an earlier one failed)",
			r.Tag.Seq, want), nil), Node: a.w.cfg.NodeID})
		next[st] = want // later ones of the stream fail too
		return false
	}
	next[st] = r.Tag.Seq + 1
	return true
}

// settleSeq records seq as the last settled append of stream (written, or failed for
// good).
func (a *Appender) settleSeq(stream, seq uint64) {
	if stream == 0 {
		return
	}
	if a.lastSeq == nil || len(a.lastSeq) >= maxStreams {
		a.lastSeq = map[uint64]uint64{}
	}
	a.lastSeq[stream] = seq
}

// write appends a batch of distinct requests, rolling over as limits are reached.
func (a *Appender) write(batch []*Request) {
	for len(batch) > 0 {
		act, limits, err := a.current()
		if err != nil {
			a.fail(batch, err)
			return
		}
		// Without the lease, fail at once: neither write nor try to seal (a node cut
		// off from the quorum must answer quickly, not wait for a Raft commit).
		if !a.w.cfg.Lease() {
			a.fail(batch, a.w.noLease())
			return
		}
		if a.sealed != nil {
			if err := a.commitSeal(act); err != nil {
				a.fail(batch, err)
				return
			}
			continue
		}
		// A sender that expects a newer segment than ours knows more than this node:
		// our metadata is behind, so we must not write (the segment may be sealed).
		// An older expectation is fine: the client asked for a topic append.
		// It fails the rest of the batch too: a failure is always a suffix.
		if r := batch[0]; r.Segment > a.segMeta.ID {
			a.fail(batch, rpc.Unavailable(fmt.Sprintf("node %d has segment %d of %q active, sender expects %d (metadata behind)",
				a.w.cfg.NodeID, a.segMeta.ID, a.topic, r.Segment), nil))
			return
		}
		take := a.fitting(batch, limits)
		if take == 0 || a.mustRoll {
			if err := a.roll(act); err != nil {
				a.fail(batch, err)
				return
			}
			continue
		}
		if err := a.commit(batch[:take]); err != nil {
			a.fail(batch, err) // the rest too: a failure is always a suffix
			return
		}
		batch = batch[take:]
		if a.seg.Count() >= limits.Entries || a.seg.Bytes() >= limits.Bytes {
			if err := a.roll(act); err != nil {
				a.w.cfg.Logger.Warn("roll-over postponed", "topic", a.topic, "segment", a.segMeta.ID, "err", err)
			}
		}
	}
}

// fitting returns how many requests from the head of batch fit into the segment
// within limits (an empty segment takes its first request whatever its size), and
// expect no newer segment than this one.
func (a *Appender) fitting(batch []*Request, limits Limits) int {
	count, size := a.seg.Count(), a.seg.Bytes()
	take, n := 0, 0
	var nbytes int64
	for _, r := range batch {
		if r.Segment > a.segMeta.ID {
			break // handled on the next turn of write's loop
		}
		if take > 0 || count > 0 {
			if count+uint64(n+len(r.Payloads)) > limits.Entries || size+nbytes+r.Bytes > limits.Bytes {
				break
			}
		}
		take++
		n += len(r.Payloads)
		nbytes += r.Bytes
	}
	return take
}

// commit is the group commit of reqs: one AppendBatch, which returns once the
// fdatasync covering every payload has, or with the error that failed all of them
// (the file is then back at its last durable size). On success every request is
// acknowledged with its offsets, in order; on failure none is, and the caller fails
// them.
func (a *Appender) commit(reqs []*Request) error {
	n := 0
	var nbytes int64
	for _, r := range reqs {
		n += len(r.Payloads)
		nbytes += r.Bytes
	}
	payloads := make([][]byte, 0, n)
	for _, r := range reqs {
		payloads = append(payloads, r.Payloads...)
	}
	start := time.Now()
	if a.repl != nil {
		a.offer(a.repl, a.seg.Count(), payloads)
	}
	first, err := a.seg.AppendBatch(payloads)
	if err != nil && a.repl != nil {
		a.mustRoll = true // followers may hold what failed here: seal before writing again
	}
	took := time.Since(start)
	a.timed(took)
	a.w.cfg.Metrics.Committed(took)
	if err != nil {
		if errors.Is(err, segment.ErrSealed) {
			err = fmt.Errorf("%w: segment %d of %q is sealing", rpc.ErrNotSegmentLeader, a.segMeta.ID, a.topic)
		}
		a.w.cfg.Logger.Error("append failed", "topic", a.topic, "segment", a.segMeta.ID, "err", err)
		return err
	}
	if a.firstAt.IsZero() {
		a.setFirst(time.Now())
	}
	a.w.cfg.Metrics.Appended(len(payloads), nbytes)
	a.behind = len(a.ch)
	for _, r := range reqs {
		a.settleSeq(r.Tag.Stream, r.Tag.Seq) // their order in the file is settled
	}
	if a.repl == nil {
		a.acknowledge(reqs, first)
		return nil
	}
	// Replicated: the batch is answered once a majority holds it. While at least as
	// many requests wait as it carries (pipelining clients), the next batch is
	// written first, so that this one's wait for the followers overlaps that one's
	// write (finishPending). With fewer (clients that wait for each answer), the
	// batch is answered first: holding it would split those clients into two groups
	// taking turns, each batch half as large (measured: 16 x 1 fell from 17,000 to
	// 11,500 entries/s).
	a.finishPending()
	a.pending = newPendingBatch(reqs, first, first+uint64(len(payloads)))
	a.pendingFresh = true
	if len(a.ch) < len(reqs) {
		a.finishPending()
	}
	return nil
}

// acknowledge answers reqs, written from index first on, with their offsets, and
// remembers the answers for their retries.
func (a *Appender) acknowledge(reqs []*Request, first uint64) {
	off := a.segMeta.Base + first
	for _, r := range reqs {
		res := Result{First: off, Segment: a.segMeta.ID, Node: a.w.cfg.NodeID}
		a.dedup.remember(r.Tag.ID, res)
		r.Done(res)
		off += uint64(len(r.Payloads))
	}
}

// failUnknown answers requests whose entries were written here but not confirmed by
// a majority of replicas with err (final: a retry could write them twice), and
// remembers it for their retries.
func (a *Appender) failUnknown(reqs []*Request, err error) {
	for _, r := range reqs {
		res := Result{Err: err, Segment: a.segMeta.ID, Node: a.w.cfg.NodeID}
		a.dedup.remember(r.Tag.ID, res)
		r.Done(res)
	}
}

// fail answers a batch with err. A final (not retryable) error consumes the requests'
// sequence numbers, since the sender will not retry them.
func (a *Appender) fail(batch []*Request, err error) {
	final := !Retryable(err)
	for _, r := range batch {
		if final {
			a.settleSeq(r.Tag.Stream, r.Tag.Seq)
		}
		r.Done(Result{Err: err})
	}
}

// checkAge rolls the active segment over once its first entry is older than the age
// limit. It runs every ageCheckPeriod whether or not writes come, also for a non-empty
// segment this node leads but has not written to since it started (a restart).
func (a *Appender) checkAge() {
	if a.seg == nil && a.w.nonEmptyActive(a.topic) == nil {
		return
	}
	if (a.seg != nil && a.firstAt.IsZero()) || !a.w.cfg.Lease() {
		return
	}
	act, limits, err := a.current()
	if err != nil || a.seg == nil || a.firstAt.IsZero() || a.seg.Damaged() != nil {
		return // a damaged segment is never sealed (node's reportDamaged)
	}
	a.syncFollowers()
	if a.sealed != nil || a.mustRoll || time.Since(a.firstAt) >= limits.Age {
		if err := a.roll(act); err != nil {
			a.w.cfg.Logger.Warn("age roll-over postponed", "topic", a.topic, "err", err)
		}
	}
}

// roll seals the active segment act locally and commits Seal through Raft, naming
// the next segment's leader. New appends wait (in the queue) until it is done.
func (a *Appender) roll(act meta.Segment) error {
	a.finishPending() // answered while the segment is active, before it is sealed
	if a.sealed == nil {
		var (
			count uint64
			bytes int64
			crc   uint32
			err   error
		)
		if a.repl != nil {
			count, bytes, crc, err = a.sealReplicated(a.repl)
		} else {
			count, bytes, crc, err = a.seg.Seal()
		}
		if errors.Is(err, errLocalSeal) && a.w.cfg.HandOff != nil {
			// Its followers hold every acknowledged entry: a failover seals the
			// segment at their copies and starts the next one on another node.
			a.w.cfg.Logger.Error("cannot seal a replicated segment on this node's disk: handing it to its followers",
				"topic", a.topic, "segment", a.segMeta.ID, "err", err)
			a.w.cfg.HandOff(a.topic, a.segMeta.ID)
		}
		if err != nil {
			return rpc.Unavailable(fmt.Sprintf("cannot seal segment %d of %q", a.segMeta.ID, a.topic), err)
		}
		a.sealed = &sealTotals{count: count, bytes: bytes, crc: crc}
	}
	return a.commitSeal(act)
}

// sealReplicated seals a replicated segment at what a majority of its replicas
// holds: once sealed, every entry of a segment is readable, so it must not end with
// entries only this node has (an append no majority confirmed, or, after a restart,
// ones this node wrote but could not confirm). It first waits, at most the replica
// timeout, for the followers to catch up with this node's file; entries a majority
// certainly never held then are cut off the file (they were never acknowledged).
// What a majority may have held is kept (sealPoint): a follower that has not
// answered since a restart may hold what an acknowledgement counted. When too few
// followers answer to tell anything, it seals nothing.
func (a *Appender) sealReplicated(r *replication) (uint64, int64, uint32, error) {
	own := a.seg.Count()
	if err := a.replicate(r, own); err != nil {
		r.collect()
		if known := r.known(); known < r.need {
			return 0, 0, 0, fmt.Errorf("%d of the %d followers answered, %d needed to know what a majority holds: %w", known, len(r.follow), r.need, err)
		}
	}
	m := r.sealPoint(own)
	if m < own {
		a.w.cfg.Logger.Warn("sealing a replicated segment at what a majority holds: entries only this node has are cut",
			"topic", a.topic, "segment", r.segment.ID, "own", own, "majority", m)
	}
	count, bytes, crc, err := a.seg.SealAt(m)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("%w: %w", errLocalSeal, err)
	}
	return count, bytes, crc, nil
}

// errLocalSeal: this node's file of a replicated segment could not be sealed.
var errLocalSeal = errors.New("this node's copy of the segment cannot be sealed")

// commitSeal commits the Seal of the locally sealed segment (a.sealed) through Raft.
// Until it succeeds, the segment stays sealed locally and nothing is written.
func (a *Appender) commitSeal(act meta.Segment) error {
	next := a.w.cfg.NextLeader(act.Leader)
	var replicas []uint64
	if _, cfg, ok := a.w.cfg.Metadata.ActiveOf(a.topic); ok && a.w.cfg.ReplicaSet != nil {
		replicas = a.w.cfg.ReplicaSet(next, cfg.Replication())
	}
	ctx, cancel := context.WithTimeout(a.w.ctx, a.w.cfg.RequestTimeout)
	defer cancel()
	cmd := &meta.Command{
		Op: meta.OpSeal, Topic: a.topic, Segment: a.segMeta.ID,
		Count: a.sealed.count, Bytes: a.sealed.bytes, CRC: a.sealed.crc, NextLeader: next, Replicas: replicas,
	}
	if err := a.w.cfg.Propose(ctx, cmd); err != nil {
		return rpc.Unavailable(fmt.Sprintf("cannot commit seal of segment %d of %q", a.segMeta.ID, a.topic), err)
	}
	a.w.cfg.Logger.Info("segment sealed", "topic", a.topic, "segment", a.segMeta.ID,
		"count", cmd.Count, "bytes", cmd.Bytes, "next_leader", next, "next_replicas", replicas)
	a.w.cfg.Metrics.Rolled()
	a.closeSegment()
	return nil
}

func (a *Appender) setFirst(t time.Time) {
	a.firstAt = t
	if t.IsZero() {
		a.first.Store(nil)
	} else {
		a.first.Store(&firstEntry{segment: a.segMeta.ID, unixMS: t.UnixMilli()})
	}
}
