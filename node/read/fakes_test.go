package read

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"floe/archive/seekable"
	"floe/meta"
	"floe/node/segment"
)

// The fakes below stand in for what package node composes a Reader from: one topic
// "t" of metadata, this node's segment files, the owners' and the archive's copies.
// Node 1 is this node.

const self = 1

// world holds one topic's metadata and every copy of its segments.
type world struct {
	mu      sync.Mutex
	topic   *meta.Topic
	changed chan struct{}
	local   map[uint64][][]byte // segment id -> this node's copy
	corrupt map[uint64]bool     // local copies that fail their checksum
	owner   map[uint64][][]byte // segment id -> its owner's copy
	// copies are followers' copies of active replicated segments, as readers may
	// see them: node -> segment id -> committed entries.
	copies    map[uint64]map[uint64][][]byte
	copyReads int
	// hang are nodes that are frozen with their connection open: a call waits for
	// its timeout (which marks the node recent) or ctx. copyCalls counts ReadCopy
	// calls per node.
	hang      map[uint64]bool
	copyCalls map[uint64]int
	down      map[uint64]bool     // owners that cannot be reached
	recent    map[uint64]bool     // owners that failed recently
	objects   map[string][][]byte // archive key -> records
	objErr    error               // every archive read fails with it

	ownerReads, archiveReads, proposals int
	// beforeAdvance, if set, runs before a cursor advance applies (a racing GET, or
	// a hold on the advance in flight).
	beforeAdvance func()
	// failAdvance, if set, is the answer of the next advance, which changes nothing.
	failAdvance error
	// loseAnswer: the first attempt of each advance commits but its answer is lost,
	// and the proposer retries it with the same request id.
	loseAnswer bool
	done       map[string]error // request id -> result, as meta.FSM keeps them
}

// seg describes one segment of the topic: its leader, entries and state.
type seg struct {
	leader   uint64
	payloads []string
	state    meta.SegmentState
	archived bool
	evicted  bool
	lost     bool
	abandon  bool
}

// newWorld builds topic "t" from segs (the last one active). Every segment's entries
// are held by its leader: on this node's disk if it is node 1, else by its owner; an
// archived one is in the archive as well.
func newWorld(segs ...seg) *world {
	w := &world{
		topic: &meta.Topic{Name: "t"}, changed: make(chan struct{}),
		local: map[uint64][][]byte{}, corrupt: map[uint64]bool{}, owner: map[uint64][][]byte{},
		down: map[uint64]bool{}, recent: map[uint64]bool{}, objects: map[string][][]byte{},
		done: map[string]error{}, copies: map[uint64]map[uint64][][]byte{},
		hang: map[uint64]bool{}, copyCalls: map[uint64]int{},
	}
	base := uint64(0)
	for i, d := range segs {
		s := &meta.Segment{ID: uint64(i + 1), Leader: d.leader, Base: base, State: d.state}
		if i == len(segs)-1 {
			s.State = meta.Active
		} else if s.State == meta.Active {
			s.State = meta.Sealed
		}
		var recs [][]byte
		for _, p := range d.payloads {
			recs = append(recs, []byte(p))
		}
		if s.State != meta.Active {
			s.Count = uint64(len(recs))
		}
		if d.archived {
			s.ArchiveKey, s.ArchiveSize, s.State = fmt.Sprintf("topics/t/%d", s.ID), 1, meta.Archived
			w.objects[s.ArchiveKey] = recs
		}
		s.LocalEvicted, s.Abandoned = d.evicted, d.abandon
		if d.lost {
			s.State, s.Lost = meta.Expired, true
		}
		switch {
		case d.evicted || s.State == meta.Expired || d.abandon:
		case d.leader == self:
			w.local[s.ID] = recs
		default:
			w.owner[s.ID] = recs
		}
		w.topic.Segments = append(w.topic.Segments, s)
		if !d.abandon {
			base += uint64(len(recs))
		}
	}
	return w
}

func (w *world) reader() *Reader {
	return New(Config{
		NodeID: self, Metadata: w, Local: w, Owner: w, Archive: w, Propose: w.propose,
		RequestTimeout: 2 * time.Second, Logger: slog.New(slog.DiscardHandler),
		Backoff: func(ctx context.Context, attempt int, _ <-chan struct{}) error {
			if attempt > 3 {
				return errors.New("deadline") // as the request deadline would end it
			}
			return ctx.Err() // retry at once
		},
	})
}

// append adds payloads to the active segment's copy at its leader.
func (w *world) append(payloads ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	act := w.topic.Active()
	for _, p := range payloads {
		if act.Leader == self {
			w.local[act.ID] = append(w.local[act.ID], []byte(p))
		} else {
			w.owner[act.ID] = append(w.owner[act.ID], []byte(p))
		}
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *world) cursor() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.topic.Cursor
}

// Metadata.

func (w *world) SegmentAt(_ context.Context, topic string, offset uint64) (meta.Segment, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if topic != w.topic.Name {
		return meta.Segment{}, fmt.Errorf("%w: %q", meta.ErrNoTopic, topic)
	}
	return *w.topic.Find(offset), nil
}

func (w *world) Cursor(_ context.Context, topic string) (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if topic != w.topic.Name {
		return 0, fmt.Errorf("%w: %q", meta.ErrNoTopic, topic)
	}
	return w.topic.Cursor, nil
}

func (w *world) StartOffset(string) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.topic.StartOffset()
}

func (w *world) Changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}

// Local.

type fakeSegment struct {
	recs    [][]byte
	corrupt bool
}

func (s fakeSegment) Count() uint64 { return uint64(len(s.recs)) }

func (s fakeSegment) Read(index uint64, max, maxBytes int) ([][]byte, error) {
	if index >= s.Count() {
		return nil, segment.ErrOutOfRange
	}
	if s.corrupt {
		return nil, fmt.Errorf("cannot read index %d: %w", index, segment.ErrCorrupt)
	}
	return firstBytes(s.recs[index:min(uint64(len(s.recs)), index+uint64(max))], maxBytes), nil
}

func (w *world) Open(topic string, s *meta.Segment) (Segment, func(), error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	recs, ok := w.local[s.ID]
	if !ok {
		return nil, nil, fmt.Errorf("%w: segment %d of %q", ErrSegmentNotFound, s.ID, topic)
	}
	return fakeSegment{recs: recs, corrupt: w.corrupt[s.ID]}, func() {}, nil
}

func (w *world) OpenCopy(topic string, s *meta.Segment) (Segment, func(), error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	recs, ok := w.copies[self][s.ID]
	if !ok {
		return nil, nil, fmt.Errorf("%w: no copy of segment %d of %q", ErrSegmentNotFound, s.ID, topic)
	}
	w.copyReads++
	return fakeSegment{recs: recs}, func() {}, nil
}

// Owner.

// frozen waits as a call to node does when node is frozen: until timeout, which
// marks it recent, or ctx.
func (w *world) frozen(ctx context.Context, node uint64, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("%w: node %d: %v", ErrUnavailable, node, ctx.Err())
	case <-t.C:
		w.mu.Lock()
		w.recent[node] = true
		w.mu.Unlock()
		return fmt.Errorf("%w: node %d did not answer within %v", ErrUnavailable, node, timeout)
	}
}

func (w *world) ReadCopy(ctx context.Context, node uint64, topic string, id, offset uint64, max, maxBytes int, timeout time.Duration) ([][]byte, error) {
	w.mu.Lock()
	w.copyCalls[node]++
	hang := w.hang[node]
	w.mu.Unlock()
	if hang {
		return nil, w.frozen(ctx, node, timeout)
	}
	w.mu.Lock()
	down := w.down[node]
	recs, ok := w.copies[node][id]
	s := *w.topic.Segment(id)
	w.copyReads++
	w.mu.Unlock()
	if down {
		return nil, fmt.Errorf("%w: cannot reach node %d", ErrUnavailable, node)
	}
	if !ok {
		return nil, fmt.Errorf("%w: no copy of segment %d of %q", ErrSegmentNotFound, id, topic)
	}
	es, err := New(Config{NodeID: node, Local: copyFiles{recs}}).ReadCopy(topic, &s, offset, max, maxBytes)
	var out [][]byte
	for _, e := range es {
		out = append(out, e.Payload)
	}
	return out, err
}

func (w *world) ReadOwner(ctx context.Context, node uint64, topic string, id, offset uint64, max, maxBytes int, timeout time.Duration) ([][]byte, error) {
	w.mu.Lock()
	if w.hang[node] {
		w.ownerReads++
		w.mu.Unlock()
		return nil, w.frozen(ctx, node, timeout)
	}
	w.ownerReads++
	down := w.down[node]
	recs, ok := w.owner[id]
	s := *w.topic.Segment(id)
	w.mu.Unlock()
	if down {
		return nil, fmt.Errorf("%w: cannot reach node %d", ErrUnavailable, node)
	}
	if !ok {
		return nil, fmt.Errorf("%w: segment %d of %q", ErrSegmentNotFound, id, topic)
	}
	// The owner answers with its ReadLocal.
	owner := New(Config{NodeID: node, Local: ownerFiles{recs}})
	es, err := owner.ReadLocal(topic, &s, offset, max, maxBytes)
	var out [][]byte
	for _, e := range es {
		out = append(out, e.Payload)
	}
	return out, err
}

func (w *world) RecentlyDown(node uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.recent[node]
}

type ownerFiles struct{ recs [][]byte }

func (o ownerFiles) Open(string, *meta.Segment) (Segment, func(), error) {
	return fakeSegment{recs: o.recs}, func() {}, nil
}

func (o ownerFiles) OpenCopy(string, *meta.Segment) (Segment, func(), error) {
	return nil, nil, ErrSegmentNotFound
}

// copyFiles is a follower's Local: its copy's committed entries.
type copyFiles struct{ recs [][]byte }

func (c copyFiles) Open(string, *meta.Segment) (Segment, func(), error) {
	return nil, nil, ErrSegmentNotFound
}

func (c copyFiles) OpenCopy(string, *meta.Segment) (Segment, func(), error) {
	return fakeSegment{recs: c.recs}, func() {}, nil
}

// Archive.

func (w *world) Read(_ context.Context, key string, _ int64, offset uint64, max int) ([][]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.archiveReads++
	if w.objErr != nil {
		return nil, w.objErr
	}
	recs, ok := w.objects[key]
	if !ok {
		return nil, errors.New("object not found")
	}
	var s *meta.Segment
	for _, x := range w.topic.Segments {
		if x.ArchiveKey == key {
			s = x
		}
	}
	idx := offset - s.Base
	if idx >= uint64(len(recs)) {
		return nil, seekable.ErrOutOfRange
	}
	return recs[idx:min(uint64(len(recs)), idx+uint64(max))], nil
}

// propose applies a cursor advance as meta.FSM does: a compare-and-set, and a retry
// with the same request id answered with the first attempt's result.
func (w *world) propose(_ context.Context, c *meta.Command) error {
	if c.Op != meta.OpAdvanceCursor {
		return fmt.Errorf("unexpected command %s", c.Op)
	}
	if f := w.beforeAdvance; f != nil {
		f()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.proposals++
	if err := w.failAdvance; err != nil {
		w.failAdvance = nil
		return err
	}
	id := fmt.Sprintf("req-%d", w.proposals)
	apply := func() error {
		if res, ok := w.done[id]; ok {
			return res // a retry of a request that committed
		}
		var res error
		if w.topic.Cursor != c.From {
			res = meta.ErrCursorMoved
		} else {
			w.topic.Cursor = c.To
		}
		w.done[id] = res
		return res
	}
	res := apply()
	if w.loseAnswer {
		res = apply() // the answer was lost: the same request again
	}
	return res
}

// advanceBy is a racing GET elsewhere: it moves the cursor on by one and returns the
// offset it took.
func (w *world) advanceBy() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.topic.Cursor++
	return w.topic.Cursor - 1
}
