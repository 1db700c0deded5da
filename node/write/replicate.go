package write

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"floe/meta"
	"floe/node/rpc"
)

// Replication of an active segment (a topic whose replication factor is above 1).
//
// The appender of the segment's leader sends every group-commit batch to each
// follower of the segment (OpReplicate) before it writes the batch itself, so the
// followers' fdatasyncs run while its own does; it then waits until a majority of
// the replica set, itself included, holds the batch durably, and only then
// acknowledges its requests. A follower answers with the number of entries its copy
// holds durably. One that is behind (it restarted, or missed a batch) answers with
// what it has, and the appender sends it the missing entries from its own file, up
// to maxCatchUp bytes a round, until it is level again. Entries have one position:
// the leader never writes an index it has sent to a follower with other data (a
// failed local write seals the segment instead of writing the index again), so copies
// agree on every entry they both hold.
//
// What readers see of the segment is what a majority holds (committed), never what
// only the leader's disk has: an entry a reader saw cannot be lost with one node.

// maxCatchUp bounds the bytes of payload one catch-up send carries to a follower
// that is behind.
const maxCatchUp = 8 << 20

// followerRetry is how long the appender waits before it sends again to a follower
// whose last send failed or was refused.
const followerRetry = 20 * time.Millisecond

// follower is one follower of the replicated segment an appender writes.
type follower struct {
	id uint64
	// The appender's goroutine owns these.
	durable uint64    // entries the follower reported durable in its latest reply
	peak    uint64    // the most it reported in this process (a copy dropped as damaged reports fewer)
	reach   uint64    // the end of the furthest payload send to it in this process
	known   bool      // durable comes from a reply (false: never heard from)
	healthy bool      // its latest reply was a count, not an error
	next    uint64    // the index its sends so far reach (it will hold next entries)
	sent    uint64    // sequence number of the latest send
	told    uint64    // the committed count its latest send carried (0 after a failure)
	boot    uint64    // the boot id of its latest reply (0: unknown)
	seen    uint64    // sequence number of the latest reply taken into account
	retryAt time.Time // after a failure: no send before then
	heard   time.Time // when its latest count came

	// The latest reply, written by the reply's callback on the connection's reader.
	mu    sync.Mutex
	reply followerReply
}

type followerReply struct {
	seq   uint64
	end   uint64 // the index the send reached
	count uint64
	boot  uint64 // the follower's boot id (0: unknown)
	err   error
}

// replication is the state of the followers of the segment an appender writes.
type replication struct {
	segment meta.Segment
	// inherited: the segment was made active before this process started, so its
	// copies may hold entries an earlier life of this node sent. foreign: a
	// follower holds entries of a segment made active since, that this process never
	// sent (collect); handedOff: HandOff was called for it.
	inherited, foreign, handedOff bool
	follow                        []*follower
	need                          int           // follower copies a majority needs besides the leader's
	poke                          chan struct{} // capacity 1: a reply came
	inflight                      sync.WaitGroup
}

// watermark is how many entries of an active replicated segment readers may see.
type watermark struct {
	segment uint64
	count   atomic.Uint64
}

func newReplication(s meta.Segment, self uint64, inherited bool) *replication {
	r := &replication{segment: s, poke: make(chan struct{}, 1), inherited: inherited}
	for _, id := range s.ReplicaSet() {
		if id != self {
			r.follow = append(r.follow, &follower{id: id})
		}
	}
	r.need = len(s.ReplicaSet()) / 2 // a majority is half of them and one, the leader
	return r
}

// collect takes in the replies that came since the last call.
func (r *replication) collect() {
	for _, f := range r.follow {
		f.mu.Lock()
		rep := f.reply
		f.mu.Unlock()
		if rep.seq <= f.seen {
			continue
		}
		f.seen = rep.seq
		if rep.err != nil {
			f.healthy, f.next = false, f.durable
			f.retryAt = time.Now().Add(followerRetry)
			f.told = 0 // it may not have heard: tell it again
			continue
		}
		if rep.boot != 0 && f.boot != 0 && rep.boot != f.boot {
			f.told = 0 // it restarted: what it was told is gone with its memory
		}
		if rep.boot != 0 {
			f.boot = rep.boot
		}
		if !r.inherited && rep.count > f.reach {
			// More than this process ever sent it, in a segment made active after it
			// started: this node's file is not the segment's (an earlier data dir
			// wrote it). Nothing it writes may be acknowledged.
			r.foreign = true
		}
		f.durable, f.known, f.healthy, f.heard = rep.count, true, true, time.Now()
		f.peak = max(f.peak, rep.count)
		if rep.count < rep.end || f.seen == f.sent {
			f.next = rep.count // it did not take all it was sent: send again from there
		}
	}
}

// known returns how many followers have reported their count.
func (r *replication) known() int {
	n := 0
	for _, f := range r.follow {
		if f.known {
			n++
		}
	}
	return n
}

// acked returns how many followers hold at least end entries.
func (r *replication) acked(end uint64) int {
	n := 0
	for _, f := range r.follow {
		if f.known && f.durable >= end {
			n++
		}
	}
	return n
}

// majority returns the largest count a majority of the replicas holds, given the
// leader's own durable count.
func (r *replication) majority(own uint64) uint64 {
	counts := make([]uint64, 0, len(r.follow))
	for _, f := range r.follow {
		if f.known {
			counts = append(counts, min(f.durable, own))
		}
	}
	if len(counts) < r.need {
		return 0
	}
	return r.heldByMajority(counts, own)
}

// heldByMajority returns the need-th largest of counts, one per follower (own with
// no follower needed): that many followers and the leader hold it. It reorders
// counts.
func (r *replication) heldByMajority(counts []uint64, own uint64) uint64 {
	if r.need == 0 {
		return own
	}
	slices.SortFunc(counts, func(a, b uint64) int { return cmp.Compare(b, a) })
	return counts[r.need-1]
}

// sealPoint returns the count at which the leader may seal its segment, holding
// own entries, without cutting an entry that may have been acknowledged: the largest
// count a majority may hold. When the segment was written before this process started
// (inherited), that is all own entries: an acknowledgement of an earlier life may
// have counted any follower, whatever it answers now (its copy may have been dropped
// and started afresh since). Otherwise a follower that answered counts at the most it
// reported (acknowledgements counted those replies), and one that has not answered at
// nothing (payloads go only to followers that answered). Only entries a majority
// certainly never held are left out.
func (r *replication) sealPoint(own uint64) uint64 {
	if r.inherited {
		return own
	}
	counts := make([]uint64, 0, len(r.follow))
	for _, f := range r.follow {
		if f.known {
			counts = append(counts, min(f.peak, own))
		} else {
			counts = append(counts, 0)
		}
	}
	return r.heldByMajority(counts, own)
}

// outstanding reports whether f has a send it has not seen the reply of.
func (f *follower) outstanding() bool { return f.seen < f.sent }

// deliver records the reply of send seq, which reached index end.
func (r *replication) deliver(f *follower, seq, end, count, boot uint64, err error) {
	f.mu.Lock()
	if seq > f.reply.seq {
		f.reply = followerReply{seq: seq, end: end, count: count, boot: boot, err: err}
	}
	f.mu.Unlock()
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// send sends payloads, the entries from index start on, to f, with the committed
// count readers may see. A follower that answered its last send is sent to from the
// appender's goroutine; one that did not (down, or never reached) from a goroutine
// of its own, so that dialling a dead node never holds up the appender.
func (a *Appender) send(r *replication, f *follower, start uint64, payloads [][]byte, body []byte) {
	f.sent++
	seq, end := f.sent, start+uint64(len(payloads))
	f.next = end
	if len(payloads) > 0 {
		f.reach = max(f.reach, end) // (a probe delivers nothing)
	}
	f.told = a.committed() // what body carries: nothing publishes between its encoding and here
	if body == nil {
		body = a.replicateBody(r, start, payloads)
	}
	timeout := a.w.cfg.ReplicaTimeout
	do := func() {
		peer, err := a.w.cfg.Peers.Peer(f.id)
		if err == nil {
			_, err = peer.SendFunc(rpc.OpReplicate, body, timeout, func(rep rpc.Reply) {
				if rep.Err != nil {
					r.deliver(f, seq, end, 0, 0, rep.Err)
					return
				}
				d := rpc.NewDecoder(rep.Body)
				count := d.U64()
				if d.Err != nil {
					r.deliver(f, seq, end, 0, 0, rpc.Unavailable("malformed replicate reply", d.Err))
					return
				}
				r.deliver(f, seq, end, count, rep.Boot, nil)
			})
		}
		if err != nil {
			r.deliver(f, seq, end, 0, 0, err)
		}
	}
	if f.healthy && connected(a.w.cfg.Peers, f.id) {
		do()
		return
	}
	r.inflight.Add(1)
	a.w.cfg.Go(func() {
		defer r.inflight.Done()
		do()
	})
}

// connected reports whether node's connection is open (a send to it does not
// dial); true when the peer cannot tell.
func connected(peers Peers, node uint64) bool {
	p, err := peers.Peer(node)
	if err != nil {
		return false
	}
	if c, ok := p.(interface{ Connected() bool }); ok {
		return c.Connected()
	}
	return true
}

// bootID returns the boot id of node's open connection (0: none), and false when
// the peer cannot tell.
func bootID(peers Peers, node uint64) (uint64, bool) {
	p, err := peers.Peer(node)
	if err != nil {
		return 0, true
	}
	if b, ok := p.(interface{ BootID() uint64 }); ok {
		return b.BootID(), true
	}
	return 0, false
}

// replicateBody encodes an OpReplicate call of payloads from index start on.
func (a *Appender) replicateBody(r *replication, start uint64, payloads [][]byte) []byte {
	return (&rpc.Replicate{
		Topic: a.topic, Segment: r.segment.ID, Epoch: r.segment.Epoch(), Leader: a.w.cfg.NodeID,
		Start: start, Committed: a.committed(), Payloads: payloads,
	}).Encode()
}

// committed returns how many entries of the segment readers may see.
func (a *Appender) committed() uint64 {
	if w := a.visible.Load(); w != nil {
		return w.count.Load()
	}
	return 0
}

// publish raises the count of entries readers may see to what a majority holds,
// and records whether a follower is behind.
func (a *Appender) publish(r *replication) {
	w := a.visible.Load()
	if w == nil || w.segment != r.segment.ID {
		return
	}
	own := a.seg.Count()
	if m := r.majority(own); m > w.count.Load() {
		w.count.Store(m)
	}
	lagging := false
	for _, f := range r.follow {
		lagging = lagging || !f.known || f.durable < own
	}
	a.lagging.Store(lagging)
}

// UnderReplicated returns how many active segments this node leads have a follower
// that holds fewer entries than this node, or has not answered yet.
func (w *Writer) UnderReplicated() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, a := range w.appenders {
		if a.lagging.Load() {
			n++
		}
	}
	return n
}

// offer sends a batch that is about to be written from index start on to every
// healthy follower whose sends so far reach start (one encoding for all of them):
// sends are pipelined, a follower's copy growing in the order they were sent. The
// others are brought level by catchUp.
func (a *Appender) offer(r *replication, start uint64, payloads [][]byte) {
	r.collect()
	var body []byte
	for _, f := range r.follow {
		if !f.known || !f.healthy || f.next != start {
			continue
		}
		if body == nil {
			body = a.replicateBody(r, start, payloads)
		}
		a.send(r, f, start, payloads, body)
	}
}

// catchUp sends to every follower with no send in flight that holds fewer than
// end entries the ones it misses (from this node's durable file, at most maxCatchUp
// bytes), or a probe when its count is unknown.
func (a *Appender) catchUp(r *replication, end uint64) {
	now := time.Now()
	for _, f := range r.follow {
		if f.outstanding() || now.Before(f.retryAt) || (f.known && f.durable >= end) {
			continue // in flight, failed a moment ago, or level
		}
		if !f.known || f.durable > a.seg.Count() {
			a.send(r, f, a.seg.Count(), nil, nil) // a probe: it answers with its count
			continue
		}
		payloads, err := a.seg.Read(f.durable, maxBatchReqs, maxCatchUp)
		if err != nil {
			a.w.cfg.Logger.Warn("cannot read entries to send to a follower", "topic", a.topic, "segment", r.segment.ID,
				"follower", f.id, "from", f.durable, "err", err)
			f.retryAt = now.Add(time.Second)
			continue
		}
		a.send(r, f, f.durable, payloads, nil)
	}
}

// replicate waits until a majority of the segment's replicas holds end entries,
// sending followers what they miss meanwhile, for at most Config.ReplicaTimeout;
// it publishes what a majority holds to readers.
func (a *Appender) replicate(r *replication, end uint64) error {
	deadline := time.NewTimer(a.w.cfg.ReplicaTimeout)
	defer deadline.Stop()
	retry := time.NewTimer(followerRetry)
	defer retry.Stop()
	for {
		r.collect()
		if r.foreign {
			a.mustRoll = true
			if !r.handedOff && a.w.cfg.HandOff != nil {
				r.handedOff = true
				a.w.cfg.Logger.Error("followers hold entries of a segment this node leads that it never sent: its file is not the segment's; handing the segment to them",
					"topic", a.topic, "segment", r.segment.ID)
				a.w.cfg.HandOff(a.topic, r.segment.ID)
			}
			return fmt.Errorf("%w: the followers of segment %d of %q hold entries this node never sent them (its data dir is not the one that wrote the segment): the segment is handed to them",
				rpc.ErrOutcomeUnknown, r.segment.ID, a.topic)
		}
		if r.acked(end) >= r.need {
			a.publish(r)
			// A follower left behind (it was not known yet when the batches it misses
			// were offered) is sent them now, not at the next age check.
			a.catchUp(r, end)
			return nil
		}
		if !a.w.cfg.Lease() {
			return fmt.Errorf("%w: %v, before a majority of the replicas of segment %d of %q held the entries",
				rpc.ErrOutcomeUnknown, a.w.noLease(), r.segment.ID, a.topic)
		}
		if s, ok := a.w.cfg.Metadata.SegmentOf(a.topic, r.segment.ID); ok && s.State != meta.Active {
			return fmt.Errorf("%w: segment %d of %q was sealed (failed over) before a majority of its replicas held the entries",
				rpc.ErrOutcomeUnknown, r.segment.ID, a.topic)
		}
		a.catchUp(r, end)
		retry.Reset(followerRetry)
		select {
		case <-r.poke:
		case <-retry.C:
		case <-deadline.C:
			r.collect()
			a.publish(r)
			return fmt.Errorf("%w: %d of the %d replicas of segment %d of %q hold the entries durably, %d needed, after %v (they stay in the segment, and become readable once a majority holds them)",
				rpc.ErrOutcomeUnknown, r.acked(end)+1, len(r.follow)+1, r.segment.ID, a.topic, r.need+1, a.w.cfg.ReplicaTimeout)
		case <-a.w.ctx.Done():
			return fmt.Errorf("%w: %v while waiting for the replicas", rpc.ErrOutcomeUnknown, ErrClosed)
		}
	}
}

// pendingBatch is a batch written to a replicated segment that waits for a majority
// of its replicas before it is answered.
type pendingBatch struct {
	reqs       []*Request
	first, end uint64          // its entries' indexes in the segment: [first, end)
	ids        map[uint64]bool // the request ids among reqs (nil: none)
}

func newPendingBatch(reqs []*Request, first, end uint64) *pendingBatch {
	// A copy: the caller's slice is the run loop's, reused for the next batch.
	p := &pendingBatch{reqs: append([]*Request(nil), reqs...), first: first, end: end}
	for _, r := range reqs {
		if r.Tag.ID != 0 {
			if p.ids == nil {
				p.ids = map[uint64]bool{}
			}
			p.ids[r.Tag.ID] = true
		}
	}
	return p
}

// retried reports whether batch holds a retry of one of p's requests.
func (p *pendingBatch) retried(batch []*Request) bool {
	if p.ids == nil {
		return false
	}
	for _, r := range batch {
		if p.ids[r.Tag.ID] {
			return true
		}
	}
	return false
}

// finishPending waits until a majority of the replicas holds the pending batch, at
// most the replica timeout, and answers its requests: with their offsets, or, if no
// majority confirmed it in time, with ErrOutcomeUnknown (the entries stay in the
// segment and become readable once a majority holds them).
func (a *Appender) finishPending() {
	p := a.pending
	if p == nil {
		return
	}
	a.pending = nil
	if err := a.replicate(a.repl, p.end); err != nil {
		a.w.cfg.Logger.Warn("replication failed", "topic", a.topic, "segment", a.segMeta.ID, "err", err)
		a.failUnknown(p.reqs, err)
		return
	}
	a.acknowledge(p.reqs, p.first)
}

// syncFollowers, every age check, probes followers never heard from, sends those
// that are behind what they miss, and tells those that are level how many entries
// are committed, without waiting, so that a follower that returns catches up
// although no write comes, readers see what a majority holds after a restart of the
// leader, and the followers' copies serve every committed entry (to readers the
// leader does not answer). The run loop tells them sooner, once its queue has been
// empty for noticeDelay.
func (a *Appender) syncFollowers() {
	r := a.repl
	if r == nil || a.seg == nil {
		return
	}
	r.collect()
	a.publish(r)
	a.catchUp(r, a.seg.Count())
	for _, f := range r.follow {
		if boot, ok := bootID(a.w.cfg.Peers, f.id); ok && boot != f.boot {
			f.told = 0 // no connection, or a new one to a restarted follower: tell it again
		}
	}
	a.tellCommitted(r)
	a.probeIdle(r)
}

// idleProbe is how long a level follower may go unheard from before the age check
// probes it: a follower that lost its copy (dropped as damaged) while no write came
// reports it so, and is filled again from this node's file, instead of refusing
// fences until the next write (found by a flaky test: TestDroppedCopyFence).
const idleProbe = 5 * time.Second

// probeIdle probes each level follower not heard from for idleProbe.
func (a *Appender) probeIdle(r *replication) {
	own, now := a.seg.Count(), time.Now()
	for _, f := range r.follow {
		if f.known && f.healthy && f.durable == own && !f.outstanding() && !now.Before(f.retryAt) && now.Sub(f.heard) >= idleProbe {
			a.send(r, f, own, nil, nil)
		}
	}
}

// noticeDelay is how long the appender's queue stays empty before it tells its
// followers that their last entries are committed (tellCommitted): under load the
// next batch carries the count.
const noticeDelay = 10 * time.Millisecond

// untold reports whether tellCommitted would tell a follower something.
func (a *Appender) untold(r *replication) bool {
	committed, own, now := a.committed(), a.seg.Count(), time.Now()
	return slices.ContainsFunc(r.follow, func(f *follower) bool { return f.untold(committed, own, now) })
}

// tellCommitted sends a probe to each follower level with this node that was not
// told that its last entries are committed (no batch followed them), so that readers
// who cannot reach this node see those entries on the followers' copies.
func (a *Appender) tellCommitted(r *replication) {
	committed, own, now := a.committed(), a.seg.Count(), time.Now()
	for _, f := range r.follow {
		if f.untold(committed, own, now) {
			a.send(r, f, own, nil, nil)
		}
	}
}

// untold reports whether f, level with the leader's own entries, was not told that
// committed of them are, and may be sent to now.
func (f *follower) untold(committed, own uint64, now time.Time) bool {
	return f.told < committed && f.known && f.durable == own && !f.outstanding() && !now.Before(f.retryAt)
}

// Committed returns how many entries of the active segment seg of topic readers may
// see on this node, its leader, and true; false when the segment is not replicated
// by this node's appender (then every durable entry may be seen, or, for a
// replicated segment, none yet: see Visible).
func (w *Writer) Committed(topic string, seg uint64) (uint64, bool) {
	a := w.Existing(topic)
	if a == nil {
		return 0, false
	}
	v := a.visible.Load()
	if v == nil || v.segment != seg {
		return 0, false
	}
	return v.count.Load(), true
}
