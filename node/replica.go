package node

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"floe/internal/fsutil"
	"floe/meta"
	"floe/node/read"
	"floe/node/rpc"
	"floe/node/segment"
)

// replicaCopies are the copies this node keeps, as a follower, of active segments
// of replicated topics (package node/write, "Replication of an active segment"):
// each is the segment's WAL file, at the path the leader's has, appended to by the
// leader's OpReplicate calls. When the metadata says the segment is sealed, the copy
// is sealed at the leader's count (sealReplicas) and kept, as a second copy of the
// sealed segment, until the segment is archived.
type replicaCopies struct {
	mu   sync.Mutex
	open map[segKey]*replicaCopy
	// sealed are the copies of sealed segments checked against the leader's
	// totals since this node started: only those are read locally.
	sealed map[segKey]bool
	// busy are the copies being sealed (a goroutine each); retryAt delays the next
	// attempt at one that could not be completed.
	busy    map[segKey]bool
	retryAt map[segKey]time.Time
	// fenced are the segments a failover has closed on this node (OpFence): their
	// copies take no more appends, whatever the metadata says yet. They are kept in
	// fencesFile too (saveFences), so that a restart does not open them again.
	fenced map[segKey]bool
	// saving orders the writes of fencesFile; fencesStale is set while the file
	// may list fences memory no longer has (a write failed).
	saving      sync.Mutex
	fencesStale bool
	// removed are the archived or expired segments whose copy is gone from here.
	removed map[segKey]bool
	// dropped are the active segments whose copy this process removed as damaged
	// (dropCopy): the entries it held may have counted in acknowledgements.
	dropped map[segKey]bool
	// queues order the appends to each topic's copies (replicaQueue).
	queues map[string]*replicaQueue
}

// replicaQueue is the appends to one topic's copies waiting, in arrival order, and
// whether a goroutine is running them. A topic's appends wait for each other; other
// topics' do not, nor do a connection's forwarded client appends (which have the
// connection's own queue: sharing it, a follower whose appender's queue is full would
// hold up the replication its leader waits for).
type replicaQueue struct {
	work    []func()
	bytes   int64
	running bool
}

// maxReplicaQueueBytes bounds the bytes of appends waiting for one topic's copies;
// past it a leader is answered unavailable and sends again later, from where the
// copy is.
const maxReplicaQueueBytes = 64 << 20

// enqueueReplica queues fn, an append of bytes to a copy of topic, behind the
// topic's others; false when the topic's queue is full.
func (n *Node) enqueueReplica(topic string, bytes int64, fn func()) bool {
	n.replicas.mu.Lock()
	defer n.replicas.mu.Unlock()
	if n.replicas.queues == nil {
		n.replicas.queues = map[string]*replicaQueue{}
	}
	q := n.replicas.queues[topic]
	if q == nil {
		q = &replicaQueue{}
		n.replicas.queues[topic] = q
	}
	if q.bytes > 0 && q.bytes+bytes > maxReplicaQueueBytes {
		return false
	}
	q.work = append(q.work, fn)
	q.bytes += bytes
	if !q.running {
		q.running = true
		n.goLoop(func() { n.runReplicaQueue(topic, q) })
	}
	return true
}

// runReplicaQueue runs a topic's queued appends in order until the queue is empty.
func (n *Node) runReplicaQueue(topic string, q *replicaQueue) {
	for {
		n.replicas.mu.Lock()
		if len(q.work) == 0 {
			q.running = false
			q.work = nil
			if n.replicas.queues[topic] == q {
				delete(n.replicas.queues, topic)
			}
			n.replicas.mu.Unlock()
			return
		}
		fn := q.work[0]
		q.work[0] = nil
		q.work = q.work[1:]
		n.replicas.mu.Unlock()
		fn()
	}
}

// replicaCopy is one open copy; mu orders the appends to it.
type replicaCopy struct {
	mu  sync.Mutex
	seg *segment.Segment
	// committed is the most entries of the segment its leader has said a majority
	// of the replicas holds (Replicate.Committed): what readers may see of this copy
	// while the leader does not answer them (openCopy). It may pass the copy's count.
	committed atomic.Uint64
	// firstTold is the committed count of the first append or probe this process
	// took for the copy (told: there was one), under mu: the leader had every entry
	// it ever acknowledged within it. A copy started afresh after this node's disk
	// was lost answers a fence only once it holds that many (fenceReplica).
	firstTold uint64
	told      bool
}

// commit raises c.committed to n. The caller holds c.mu (the only writer); readers
// load it without.
func (c *replicaCopy) commit(n uint64) {
	if n > c.committed.Load() {
		c.committed.Store(n)
	}
}

// openCopy is read.Local.OpenCopy: this node's open copy of the active segment s,
// which it follows, cut to the entries its leader has said a majority holds.
func (n *Node) openCopy(topic string, s *meta.Segment) (read.Segment, func(), error) {
	k := segKey{topic, s.ID}
	n.replicas.mu.Lock()
	c := n.replicas.open[k]
	n.replicas.mu.Unlock()
	if c == nil || s.State != meta.Active {
		return nil, nil, fmt.Errorf("%w: segment %d of %q: no open copy on node %d", ErrSegmentNotFound, s.ID, topic, n.cfg.NodeID)
	}
	committed := c.committed.Load()
	seg, err := n.store.Acquire(topic, s.ID, false)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: segment %d of %q: the copy on node %d: %v", ErrSegmentNotFound, s.ID, topic, n.cfg.NodeID, err)
	}
	if seg != c.seg {
		// The copy was dropped and started afresh meanwhile: committed was the old one's.
		n.store.Release(seg)
		return nil, nil, fmt.Errorf("%w: segment %d of %q: the copy on node %d is being replaced", ErrSegmentNotFound, s.ID, topic, n.cfg.NodeID)
	}
	return committedView{seg, committed}, func() { n.store.Release(seg) }, nil
}

// rpcReplicate appends entries a segment leader sends to this node's copy, in the
// order they came (on the topic's queue: enqueueReplica), and answers with the
// copy's durable count.
func (n *Node) rpcReplicate(req *rpc.Request) {
	r, err := rpc.DecodeReplicate(req.Body)
	if err != nil {
		req.Reply(nil, err)
		return
	}
	size := int64(len(req.Body))
	if !n.enqueueReplica(r.Topic, size, func() {
		count, err := n.appendReplica(&r)
		n.replicas.mu.Lock()
		if q := n.replicas.queues[r.Topic]; q != nil {
			q.bytes -= size
		}
		n.replicas.mu.Unlock()
		if err != nil {
			req.Reply(nil, err)
			return
		}
		var e rpc.Encoder
		e.U64(count)
		req.Reply(e.B, nil)
	}) {
		req.Reply(nil, rpc.Unavailable(fmt.Sprintf("node %d busy: %d bytes of appends to copies of %q queued", n.cfg.NodeID, maxReplicaQueueBytes, r.Topic), nil))
	}
}

// appendReplica appends r's payloads to this node's copy of the segment, from
// index r.Start on, and returns how many entries the copy holds durably. It refuses
// a sender that is not the segment's leader in this node's metadata, a segment that
// is no longer active (a new epoch exists: the sender is deposed) and one this node
// is not a replica of. A copy that holds fewer than r.Start entries takes nothing
// (the leader sends what it misses); entries it holds already are skipped, since a
// leader never writes an index twice with different data.
func (n *Node) appendReplica(r *rpc.Replicate) (uint64, error) {
	s, ok := n.fsm.SegmentOf(r.Topic, r.Segment)
	switch {
	case !ok && n.fsm.Dead(r.Topic):
		return 0, n.noTopic(r.Topic)
	case !ok:
		return 0, rpc.Unavailable(fmt.Sprintf("node %d does not know segment %d of %q yet (metadata behind)", n.cfg.NodeID, r.Segment, r.Topic), nil)
	case s.Leader != r.Leader || s.Epoch() != r.Epoch:
		return 0, fmt.Errorf("%w: segment %d of %q has leader %d at epoch %d here, not %d at %d",
			meta.ErrStaleSegment, r.Segment, r.Topic, s.Leader, s.Epoch(), r.Leader, r.Epoch)
	case s.State != meta.Active:
		return 0, fmt.Errorf("%w: segment %d of %q is %s: its leader's epoch is over", meta.ErrStaleSegment, r.Segment, r.Topic, s.State)
	case !s.HasReplica(n.cfg.NodeID) || s.Leader == n.cfg.NodeID:
		return 0, fmt.Errorf("%w: node %d is not a follower of segment %d of %q (replicas %v)", ErrBadRequest, n.cfg.NodeID, r.Segment, r.Topic, s.ReplicaSet())
	}
	c, err := n.replicaCopy(r.Topic, r.Segment)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := segKey{r.Topic, r.Segment}
	n.replicas.mu.Lock()
	fenced, current := n.replicas.fenced[k], n.replicas.open[k] == c
	n.replicas.mu.Unlock()
	switch {
	case fenced:
		return 0, fmt.Errorf("%w: segment %d of %q is being failed over: its leader's epoch is over", meta.ErrStaleSegment, r.Segment, r.Topic)
	case !current:
		return 0, fmt.Errorf("%w: segment %d of %q was sealed here meanwhile", meta.ErrStaleSegment, r.Segment, r.Topic)
	case c.seg.Damaged() != nil:
		// A copy is only a copy: start it afresh, and the leader sends it all again.
		n.dropCopy(k, c, c.seg.Damaged())
		return 0, rpc.Unavailable(fmt.Sprintf("the copy of segment %d of %q was damaged and is started afresh", r.Segment, r.Topic), nil)
	}
	c.commit(r.Committed)
	if !c.told {
		c.firstTold, c.told = r.Committed, true
	}
	count := c.seg.Count()
	if r.Start > count || r.Start+uint64(len(r.Payloads)) <= count {
		return count, nil
	}
	if _, err := c.seg.AppendBatch(r.Payloads[count-r.Start:]); err != nil {
		if errors.Is(err, segment.ErrSealed) {
			return 0, fmt.Errorf("%w: segment %d of %q is sealed here", meta.ErrStaleSegment, r.Segment, r.Topic)
		}
		if errors.Is(err, segment.ErrBroken) {
			n.dropCopy(k, c, err)
		}
		return 0, rpc.Unavailable(fmt.Sprintf("cannot append to the copy of segment %d of %q", r.Segment, r.Topic), err)
	}
	return c.seg.Count(), nil
}

// replicaCopy returns this node's open copy of an active segment, opening (and
// recovering) or creating its file.
func (n *Node) replicaCopy(topic string, id uint64) (*replicaCopy, error) {
	// The FSM first, then this node's lock, never the other way round.
	if s, ok := n.fsm.SegmentOf(topic, id); !ok || s.State != meta.Active {
		return nil, fmt.Errorf("%w: segment %d of %q is not active", meta.ErrStaleSegment, id, topic)
	}
	n.replicas.mu.Lock()
	defer n.replicas.mu.Unlock()
	k := segKey{topic, id}
	if c, ok := n.replicas.open[k]; ok {
		return c, nil
	}
	seg, err := n.store.Create(topic, id)
	if err != nil {
		return nil, rpc.Unavailable(fmt.Sprintf("cannot open the copy of segment %d of %q", id, topic), err)
	}
	if n.replicas.open == nil {
		n.replicas.open = map[segKey]*replicaCopy{}
	}
	c := &replicaCopy{seg: seg}
	n.replicas.open[k] = c
	return c, nil
}

// sealReplicas seals this node's copies of segments it follows that the metadata
// says are sealed: each is cut to the leader's count and checked against its CRC.
// A copy that is shorter, or whose records differ, is removed (the leader's copy
// and, once uploaded, the archive hold the segment). It also finds copies on disk
// that this process has not opened (they were written before a restart), and removes
// the copies of segments that are archived or expired: a follower's copy is a second
// copy of the segment until the archive holds one. Copies of abandoned segments
// are left to setAsideAbandoned. It runs after every metadata change, and every
// replicaRetry.
func (n *Node) sealReplicas() {
	var seal, remove, over []segKey
	for _, name := range n.fsm.TopicKeys() {
		n.fsm.View(name, func(t *meta.Topic) {
			for _, s := range t.Segments {
				if s.State != meta.Active {
					over = append(over, segKey{name, s.ID})
				}
				if s.State == meta.Active || s.Abandoned || !checksCopy(s, n.cfg.NodeID) {
					continue
				}
				k := segKey{name, s.ID}
				if (s.State == meta.Expired || s.ArchiveKey != "") && s.Owner() != n.cfg.NodeID {
					remove = append(remove, k)
				} else if s.State != meta.Expired && s.ArchiveKey == "" {
					seal = append(seal, k)
				}
			}
		})
	}
	// No lock of this node's is taken under the FSM's (View): replicaCopy takes
	// them the other way round.
	n.replicas.mu.Lock()
	unfenced := 0
	for _, k := range over {
		delete(n.replicas.dropped, k)
		if n.replicas.fenced[k] {
			delete(n.replicas.fenced, k) // the failover is done
			unfenced++
		}
	}
	stale := n.replicas.fencesStale
	n.replicas.mu.Unlock()
	if unfenced > 0 || stale {
		if err := n.saveFences(); err != nil {
			n.log.Warn("cannot record that fenced copies were sealed; will try again at the next change", "err", err)
		}
	}
	for _, k := range seal {
		n.replicas.mu.Lock()
		start := !n.replicas.sealed[k] && !n.replicas.busy[k] && !time.Now().Before(n.replicas.retryAt[k])
		if start {
			if n.replicas.busy == nil {
				n.replicas.busy, n.replicas.retryAt = map[segKey]bool{}, map[segKey]time.Time{}
			}
			n.replicas.busy[k] = true
		}
		n.replicas.mu.Unlock()
		if start {
			n.goLoop(func() {
				err := n.sealReplica(k)
				n.replicas.mu.Lock()
				delete(n.replicas.busy, k)
				if err != nil {
					n.replicas.retryAt[k] = time.Now().Add(replicaRetry)
				}
				n.replicas.mu.Unlock()
			})
		}
	}
	for _, k := range remove {
		n.replicas.mu.Lock()
		done := n.replicas.removed[k]
		n.replicas.mu.Unlock()
		if done {
			continue
		}
		n.closeReplica(k)
		if n.HasLocal(k.topic, k.id) {
			if err := n.store.Remove(k.topic, k.id); err != nil {
				n.log.Warn("cannot remove the copy of a replicated segment the archive holds", "topic", k.topic, "segment", k.id, "err", err)
				continue
			}
		}
		n.replicas.mu.Lock()
		delete(n.replicas.sealed, k)
		if n.replicas.removed == nil {
			n.replicas.removed = map[segKey]bool{}
		}
		n.replicas.removed[k] = true
		n.replicas.mu.Unlock()
	}
}

// replicaRetry is how long sealReplicas waits before it tries again to complete a
// copy it could not.
const replicaRetry = 5 * time.Second

// sealReplica completes this node's copy of a sealed segment it follows, fetching
// the entries it misses (all of them if it has no copy: it was down when the
// segment began) from the segment's other replicas, seals it at the leader's count
// and checks it against the leader's totals. A copy whose records differ from them
// is removed, to be fetched again at the next attempt.
func (n *Node) sealReplica(k segKey) error {
	s, ok := n.fsm.SegmentOf(k.topic, k.id)
	if !ok || s.Abandoned || s.State == meta.Active || s.State == meta.Expired || s.ArchiveKey != "" {
		return nil
	}
	n.replicas.mu.Lock()
	c := n.replicas.open[k]
	delete(n.replicas.open, k)
	n.replicas.mu.Unlock()
	if c == nil {
		seg, err := n.store.Create(k.topic, k.id)
		if err != nil {
			return fmt.Errorf("cannot open the copy of segment %d of %q: %w", k.id, k.topic, err)
		}
		c = &replicaCopy{seg: seg}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	defer n.store.Release(c.seg)
	if err := n.fillReplica(k, &s, c.seg); err != nil {
		n.log.Warn("cannot complete the copy of a replicated segment; will try again", "topic", k.topic, "segment", k.id,
			"have", c.seg.Count(), "want", s.Count, "err", err)
		if c.seg.Damaged() != nil || errors.Is(err, segment.ErrBroken) || errors.Is(err, segment.ErrSealed) {
			// It cannot take entries: fetch it whole again at the next attempt.
			if rerr := n.store.Remove(k.topic, k.id); rerr != nil {
				n.log.Error("cannot remove a copy of a replicated segment that takes no entries", "topic", k.topic, "segment", k.id, "err", rerr)
			}
		}
		return err
	}
	count, bytes, crc, err := c.seg.SealAt(s.Count)
	if err == nil && (count != s.Count || bytes != s.Bytes || crc != s.CRC) {
		err = fmt.Errorf("%w: the copy holds %d entries, %d bytes, CRC %08x; the leader sealed %d, %d, %08x",
			ErrCorrupt, count, bytes, crc, s.Count, s.Bytes, s.CRC)
	}
	if err != nil {
		n.log.Error("removing a copy of a replicated segment that differs from its leader's", "topic", k.topic, "segment", k.id, "err", err)
		if rerr := n.store.Remove(k.topic, k.id); rerr != nil {
			n.log.Error("cannot remove a bad copy of a replicated segment", "topic", k.topic, "segment", k.id, "err", rerr)
		}
		return err
	}
	n.log.Debug("sealed the copy of a replicated segment", "topic", k.topic, "segment", k.id, "count", count)
	n.replicas.mu.Lock()
	if n.replicas.sealed == nil {
		n.replicas.sealed = map[segKey]bool{}
	}
	n.replicas.sealed[k] = true
	n.replicas.mu.Unlock()
	return nil
}

// fillReplica appends to seg, this node's copy of sealed segment s, the entries
// it misses, read from the segment's other replicas (its leader first).
func (n *Node) fillReplica(k segKey, s *meta.Segment, seg *segment.Segment) error {
	var err error
	for seg.Count() < s.Count {
		var entries [][]byte
		for _, from := range s.ReplicaSet() {
			if from == n.cfg.NodeID {
				continue
			}
			ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
			entries, err = peerReads{n}.ReadOwner(ctx, from, k.topic, k.id, s.Base+seg.Count(), fillEntries, fillBytes, 10*time.Second)
			cancel()
			if err == nil && len(entries) > 0 {
				break
			}
		}
		if len(entries) == 0 {
			if err == nil {
				err = fmt.Errorf("no replica has entries from %d on", s.Base+seg.Count())
			}
			return err
		}
		entries = entries[:min(uint64(len(entries)), s.Count-seg.Count())]
		if _, err := seg.AppendBatch(entries); err != nil {
			return err
		}
	}
	return nil
}

// Bounds of one read from a peer while a copy is completed.
const (
	fillEntries = 4096
	fillBytes   = 4 << 20
)

// checksCopy reports whether node's copy of sealed segment s must be checked
// against its totals before it is read (sealReplica): every replica's but the copy
// of the leader that sealed it itself (a segment failed over has every copy
// checked, its holder's and its old leader's too).
func checksCopy(s *meta.Segment, node uint64) bool {
	return s.HasReplica(node) && (s.Holder != 0 || s.Leader != node)
}

// readableCopy reports whether this node's copy of segment s, which it must check
// (checksCopy), may be read: only a copy of a sealed segment checked against its
// totals (an active copy may hold entries no majority has yet).
func (n *Node) readableCopy(topic string, s *meta.Segment) bool {
	if s.State == meta.Active {
		return false
	}
	n.replicas.mu.Lock()
	defer n.replicas.mu.Unlock()
	return n.replicas.sealed[segKey{topic, s.ID}]
}

// rpcFence closes this node's copy of a segment to its leader's appends, for the
// Raft leader failing the segment over, and answers with the copy's totals.
func (n *Node) rpcFence(req *rpc.Request) {
	d := rpc.NewDecoder(req.Body)
	topic, id, epoch, lift := d.Str(), d.U64(), d.U64(), d.Bool()
	if d.Err != nil || len(d.B) != 0 {
		req.Reply(nil, fmt.Errorf("%w: malformed fence", ErrBadRequest))
		return
	}
	if lift {
		if err := n.unfence(topic, id); err != nil {
			req.Reply(nil, rpc.Unavailable(fmt.Sprintf("node %d cannot record that the fence of segment %d of %q was lifted", n.cfg.NodeID, id, topic), err))
			return
		}
		req.Reply(nil, nil)
		return
	}
	count, bytes, crc, err := n.fenceReplica(topic, id, epoch)
	if err != nil {
		req.Reply(nil, err)
		return
	}
	var e rpc.Encoder
	e.U64(count)
	e.U64(uint64(bytes))
	e.U64(uint64(crc))
	req.Reply(e.B, nil)
}

// fenceReplica makes this node's copy of segment id of topic, at epoch, refuse
// appends from now on, waits for the append in progress, and returns the copy's
// durable totals (none if it has no copy).
func (n *Node) fenceReplica(topic string, id, epoch uint64) (uint64, int64, uint32, error) {
	s, ok := n.fsm.SegmentOf(topic, id)
	switch {
	case !ok:
		return 0, 0, 0, rpc.Unavailable(fmt.Sprintf("node %d does not know segment %d of %q yet (metadata behind)", n.cfg.NodeID, id, topic), nil)
	case s.Epoch() != epoch:
		return 0, 0, 0, fmt.Errorf("%w: segment %d of %q is at epoch %d here, not %d", meta.ErrStaleSegment, id, topic, s.Epoch(), epoch)
	case !s.HasReplica(n.cfg.NodeID) || s.Leader == n.cfg.NodeID:
		return 0, 0, 0, fmt.Errorf("%w: node %d is not a follower of segment %d of %q", ErrBadRequest, n.cfg.NodeID, id, topic)
	}
	k := segKey{topic, id}
	n.replicas.mu.Lock()
	dropped := n.replicas.dropped[k]
	n.replicas.mu.Unlock()
	if (dropped || n.beforeDataDir(&s)) && !n.copyCaughtUp(k) {
		// Acknowledgements counted the copy this node had (on a disk since lost, or
		// removed as damaged): counting this one in could seal the segment without
		// them.
		return 0, 0, 0, rpc.Unavailable(fmt.Sprintf("node %d's copy of segment %d of %q was started afresh (its disk was lost, or the copy was damaged), and does not hold yet what the leader had acknowledged by then",
			n.cfg.NodeID, id, topic), nil)
	}
	n.replicas.mu.Lock()
	if n.replicas.fenced == nil {
		n.replicas.fenced = map[segKey]bool{}
	}
	n.replicas.fenced[k] = true
	c := n.replicas.open[k]
	n.replicas.mu.Unlock()
	if err := n.saveFences(); err != nil {
		// Not fenced then: the failover counts this node out, and lifts the fences
		// of those that answered only (found by review).
		n.replicas.mu.Lock()
		delete(n.replicas.fenced, k)
		n.replicas.mu.Unlock()
		return 0, 0, 0, rpc.Unavailable(fmt.Sprintf("node %d cannot record the fence of segment %d of %q", n.cfg.NodeID, id, topic), err)
	}
	if c == nil {
		if !n.HasLocal(topic, id) {
			return 0, 0, 0, nil
		}
		var err error
		if c, err = n.replicaCopy(topic, id); err != nil {
			return 0, 0, 0, err
		}
	}
	c.mu.Lock() // the append in progress, if any, is done
	defer c.mu.Unlock()
	return c.seg.Count(), c.seg.Bytes(), c.seg.CRC(), nil
}

// copyCaughtUp reports whether this node's open copy k holds the committed count the
// first append or probe of this process said (every entry acknowledged before it).
func (n *Node) copyCaughtUp(k segKey) bool {
	n.replicas.mu.Lock()
	c := n.replicas.open[k]
	n.replicas.mu.Unlock()
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.told && c.seg.Count() >= c.firstTold
}

// dropCopy removes this node's copy c of an active segment, which cannot take
// appends (damaged, or broken by a write that could not be undone): the next append
// starts a new one, which the leader fills from its file. The caller holds c.mu.
func (n *Node) dropCopy(k segKey, c *replicaCopy, cause error) {
	n.log.Error("removing this node's copy of a replicated segment: it cannot take appends", "topic", k.topic, "segment", k.id, "err", cause)
	n.replicas.mu.Lock()
	if n.replicas.open[k] == c {
		delete(n.replicas.open, k)
	}
	if n.replicas.dropped == nil {
		n.replicas.dropped = map[segKey]bool{}
	}
	n.replicas.dropped[k] = true
	n.replicas.mu.Unlock()
	n.store.Release(c.seg)
	if err := n.store.Remove(k.topic, k.id); err != nil {
		n.log.Error("cannot remove a copy of a replicated segment", "topic", k.topic, "segment", k.id, "err", err)
	}
}

// incompleteCopies returns how many sealed, unarchived segments this node must hold
// a checked copy of and does not yet.
func (n *Node) incompleteCopies() int {
	var mine []segKey
	for _, name := range n.fsm.TopicKeys() {
		n.fsm.View(name, func(t *meta.Topic) {
			for _, s := range t.Segments {
				if s.State == meta.Sealed && !s.Abandoned && s.ArchiveKey == "" && checksCopy(s, n.cfg.NodeID) {
					mine = append(mine, segKey{name, s.ID})
				}
			}
		})
	}
	n.replicas.mu.Lock() // not under the FSM's lock: see sealReplicas
	defer n.replicas.mu.Unlock()
	count := 0
	for _, k := range mine {
		if !n.replicas.sealed[k] {
			count++
		}
	}
	return count
}

// UnderReplicated counts, from the metadata, the segments of replicated topics that
// are not archived yet and have a replica that is not a voter or does not answer a
// status call within a short probe: the cluster's view, for floe cluster status.
func (n *Node) UnderReplicated(ctx context.Context) int {
	voters := map[uint64]bool{}
	for _, id := range n.voters() {
		voters[id] = true
	}
	alive := map[uint64]bool{}
	up := func(id uint64) bool {
		a, ok := alive[id]
		if !ok {
			a = voters[id] && n.peerAnswers(ctx, id, 300*time.Millisecond, 1)
			alive[id] = a
		}
		return a
	}
	count := 0
	n.eachUnarchivedReplicated(func(_ string, s *meta.Segment) {
		for _, id := range s.Replicas {
			if !up(id) {
				count++
				return
			}
		}
	})
	return count
}

// eachUnarchivedReplicated calls fn with every segment of a replicated topic that
// is neither archived, expired nor abandoned (copies of the metadata: fn may take
// locks and call out).
func (n *Node) eachUnarchivedReplicated(fn func(topic string, s *meta.Segment)) {
	for _, name := range n.fsm.TopicKeys() {
		t, ok := n.fsm.Topic(name)
		if !ok {
			continue
		}
		for _, s := range t.Segments {
			if len(s.Replicas) >= 2 && !s.Abandoned && s.State != meta.Expired && s.ArchiveKey == "" {
				fn(name, s)
			}
		}
	}
}

// closeReplica closes this node's open copy of a segment, if it has one (waiting
// for the append in progress).
func (n *Node) closeReplica(k segKey) {
	n.replicas.mu.Lock()
	c := n.replicas.open[k]
	delete(n.replicas.open, k)
	n.replicas.mu.Unlock()
	if c != nil {
		c.mu.Lock()
		n.store.Release(c.seg)
		c.mu.Unlock()
	}
}

// unfence lifts the fence of a failover that proposed nothing.
func (n *Node) unfence(topic string, id uint64) error {
	n.replicas.mu.Lock()
	delete(n.replicas.fenced, segKey{topic, id})
	n.replicas.mu.Unlock()
	return n.saveFences()
}

// fencesFile, in the data dir, lists the segments whose copies on this node are
// fenced: a follower that restarts while a failover of one of its segments is in
// progress must not take the deposed leader's appends again.
const fencesFile = "fences.json"

type fenceRecord struct {
	Topic   string `json:"topic"`
	Segment uint64 `json:"segment"`
}

// loadFences reads fencesFile, at start. A file that does not parse stops the start:
// the error says what removing it risks.
func (n *Node) loadFences() error {
	path := filepath.Join(n.cfg.DataDir, fencesFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot read the fenced copies: %w", err)
	}
	fenced, err := parseFences(b)
	if err != nil {
		return fmt.Errorf("%s does not list fenced copies (%v): move it aside to start, at the risk that a copy a failover in progress fenced takes its deposed leader's appends again", path, err)
	}
	n.replicas.mu.Lock()
	defer n.replicas.mu.Unlock()
	n.replicas.fenced = fenced
	return nil
}

// parseFences decodes fencesFile's content.
func parseFences(b []byte) (map[segKey]bool, error) {
	var recs []fenceRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, err
	}
	fenced := map[segKey]bool{}
	for _, r := range recs {
		if r.Topic == "" || r.Segment == 0 {
			return nil, fmt.Errorf("a fenced copy without a topic or segment: %+v", r)
		}
		fenced[segKey{r.Topic, r.Segment}] = true
	}
	return fenced, nil
}

// encodeFences encodes fenced as fencesFile's content, in topic and segment order.
func encodeFences(fenced map[segKey]bool) ([]byte, error) {
	recs := make([]fenceRecord, 0, len(fenced))
	for k := range fenced {
		recs = append(recs, fenceRecord{k.topic, k.id})
	}
	slices.SortFunc(recs, func(a, b fenceRecord) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Segment, b.Segment))
	})
	return json.Marshal(recs)
}

// saveFences writes the fenced segments to fencesFile, durably.
func (n *Node) saveFences() error {
	n.replicas.saving.Lock()
	defer n.replicas.saving.Unlock()
	n.replicas.mu.Lock()
	b, err := encodeFences(n.replicas.fenced)
	n.replicas.mu.Unlock()
	if err == nil {
		err = fsutil.WriteFile(n.cfg.DataDir, fencesFile, b)
	}
	n.replicas.mu.Lock()
	n.replicas.fencesStale = err != nil
	n.replicas.mu.Unlock()
	return err
}

// closeReplicas closes every open copy, at shutdown.
func (n *Node) closeReplicas() {
	n.replicas.mu.Lock()
	defer n.replicas.mu.Unlock()
	for k, c := range n.replicas.open {
		n.store.Release(c.seg)
		delete(n.replicas.open, k)
	}
}
