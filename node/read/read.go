package read

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"floe/archive/seekable"
	"floe/meta"
	"floe/node/rpc"
	"floe/node/segment"
	"floe/wire"
)

// MaxBytes bounds the payload bytes one Read returns (it may pass it by one entry: a
// read returns at least one entry when there is one).
const MaxBytes = 16 << 20

// Sentinel errors of the read path. ErrExpired and ErrNoArchive are this package's;
// the others are the node's errors that cross the wire, owned by package node/rpc
// (which gives each a code), so that a peer's answer and a local failure are the same
// sentinel. Their texts are part of the client protocol (a client reads them verbatim
// in its ERR reply), so they carry no package prefix. Package node re-exports them
// all.
var (
	// ErrExpired: the offset was in a segment that topic retention has expired, or
	// that floe restore --cluster marked lost. The message names the first offset
	// kept.
	ErrExpired = errors.New("expired")
	// ErrNoArchive: Archive.Read's answer on a node started without --archive.
	ErrNoArchive = errors.New("this node has no --archive")

	// ErrUnavailable: a node, or the archive, cannot be reached right now.
	ErrUnavailable = rpc.ErrUnavailable
	// ErrCorrupt: stored data failed its checksum, or disagrees with the metadata; it
	// is never returned as data.
	ErrCorrupt = rpc.ErrCorrupt
	// ErrSegmentNotFound: a node does not hold the segment (or, from Read, no node
	// does and it is not archived).
	ErrSegmentNotFound = rpc.ErrSegmentNotFound
)

// Metadata is the view of the replicated metadata the read path needs. SegmentAt and
// Cursor follow the node's catch-up rule: a topic this node does not know yet is
// looked up once at the Raft leader before they fail with meta.ErrNoTopic.
type Metadata interface {
	// SegmentAt returns a copy of the segment holding offset: the active segment for
	// an offset at or past its base.
	SegmentAt(ctx context.Context, topic string, offset uint64) (meta.Segment, error)
	// Cursor returns the topic's shared GET cursor.
	Cursor(ctx context.Context, topic string) (uint64, error)
	// StartOffset returns the first offset retention has kept (meta.Topic.StartOffset).
	StartOffset(topic string) uint64
	// Changed returns a channel closed at the next metadata change.
	Changed() <-chan struct{}
}

// Local is this node's own segment files.
type Local interface {
	// Open returns this node's copy of segment s and a release function the caller
	// calls once done with it; the copy stays open and readable until then. The
	// error wraps ErrSegmentNotFound if the node does not hold the file, ErrCorrupt if
	// it does not open, and is segment.ErrClosed while the node shuts down.
	Open(topic string, s *meta.Segment) (Segment, func(), error)
	// OpenCopy returns this node's copy of the active replicated segment s, which
	// it follows, as readers may see it: the entries the segment's leader has told
	// it a majority of the replicas holds. ErrSegmentNotFound if the node keeps no
	// open copy of s.
	OpenCopy(topic string, s *meta.Segment) (Segment, func(), error)
}

// Segment is an open local segment (a *segment.Segment).
type Segment interface {
	// Count is the number of durable entries.
	Count() uint64
	// Read returns up to max payloads from index on, at most maxBytes in total but at
	// least one, each checked against its CRC; segment.ErrOutOfRange past Count.
	Read(index uint64, max, maxBytes int) ([][]byte, error)
}

// Owner reads a segment from the node that led it, over the cluster RPC.
type Owner interface {
	// ReadOwner asks node for up to max entries (maxBytes as Segment.Read) of
	// segment id from offset on, which that node answers with its Reader.ReadLocal.
	// The error wraps ErrUnavailable when the node cannot be reached or has no known
	// address, or does not answer within timeout (which marks it RecentlyDown; ctx
	// ending first marks nothing), and the owner's own sentinel
	// (ErrSegmentNotFound, ErrCorrupt, ...) when it answered with one.
	ReadOwner(ctx context.Context, node uint64, topic string, id, offset uint64, max, maxBytes int, timeout time.Duration) ([][]byte, error)
	// ReadCopy is ReadOwner of node's copy of active replicated segment id, which
	// node follows, answered with node's Reader.ReadCopy.
	ReadCopy(ctx context.Context, node uint64, topic string, id, offset uint64, max, maxBytes int, timeout time.Duration) ([][]byte, error)
	// RecentlyDown reports whether a call to node failed in the last few seconds.
	RecentlyDown(node uint64) bool
}

// Archive reads archived segment objects (a *tiering.Remote).
type Archive interface {
	// Read returns up to max records of the object key (size bytes) from offset on.
	// A content failure wraps a seekable error (ErrCorrupt, ErrFormat, ErrVersion,
	// ErrOutOfRange); anything else is a failure to reach the store. ErrNoArchive:
	// the node has no archive.
	Read(ctx context.Context, key string, size int64, offset uint64, max int) ([][]byte, error)
}

// Proposer commits a metadata command through Raft, wherever the leader is, and
// returns once it has applied locally; the command's own error (meta.ErrCursorMoved)
// is returned as is. One call is one request: its retries carry one request id, so an
// attempt that committed although its answer was lost is never applied twice, and the
// retry returns that attempt's result.
type Proposer func(ctx context.Context, c *meta.Command) error

// Config configures a Reader. Metadata, Local, Owner, Archive and Propose are
// required.
type Config struct {
	// NodeID is this node's id: the segments it leads are never asked of a peer.
	NodeID   uint64
	Metadata Metadata
	Local    Local
	Owner    Owner
	Archive  Archive
	Propose  Proposer
	// RequestTimeout bounds one Read, its internal retries included, and one batch of
	// GETs (a GET waits at most this long for a batch to take it, then for the batch).
	RequestTimeout time.Duration
	// Context is the node's lifetime: a batch of GETs stops when it ends (default:
	// never).
	Context context.Context
	// Retryable says which errors Read and Get retry within the request deadline
	// (default: those wrapping ErrUnavailable).
	Retryable func(error) bool
	// Backoff waits before retry attempt (1, 2, ...), returning early when changed
	// closes, with an error once ctx ends or the node closes (default: 10ms doubling
	// to 640ms, or changed, or ctx).
	Backoff func(ctx context.Context, attempt int, changed <-chan struct{}) error
	// ArchiveReads counts reads served from the archive (nil: none).
	ArchiveReads prometheus.Counter
	// GetBatches observes how many GETs each cursor advance served (nil: none).
	GetBatches prometheus.Observer
	Logger     *slog.Logger
}

// Reader is a node's read path: Read and Tail by offset, Get through the shared
// cursor, and ReadLocal, which answers the peers' reads. It is safe for concurrent
// use.
type Reader struct {
	cfg  Config
	gets cursorGets
}

// New returns a Reader over cfg.
func New(cfg Config) *Reader {
	if cfg.Retryable == nil {
		cfg.Retryable = func(err error) bool { return errors.Is(err, ErrUnavailable) }
	}
	if cfg.Backoff == nil {
		cfg.Backoff = backoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	return &Reader{cfg: cfg, gets: cursorGets{topics: map[string][]*getWaiter{}}}
}

func backoff(ctx context.Context, attempt int, changed <-chan struct{}) error {
	t := time.NewTimer(time.Duration(10<<min(attempt, 6)) * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-changed:
		return nil
	case <-t.C:
		return nil
	}
}

// Read returns up to max entries of topic from offset on, crossing into the next
// segment only when one is sealed and exhausted, at most MaxBytes of payload (but at
// least one entry), and the offset to continue from. An offset past the end returns
// no entries. An offset retention expired, or in a segment marked lost, fails with
// ErrExpired naming the first offset kept. Retryable errors are retried until
// RequestTimeout while nothing has been read; after the first entries, an error ends
// the read early and the next read reports it.
func (r *Reader) Read(ctx context.Context, topic string, offset uint64, max int) ([]wire.Entry, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	var out []wire.Entry
	budget := MaxBytes
	var lastErr error
	for attempt := 0; len(out) < max; {
		changed := r.cfg.Metadata.Changed()
		seg, err := r.cfg.Metadata.SegmentAt(ctx, topic, offset)
		if err != nil {
			return nil, offset, err
		}
		s := &seg
		if s.State == meta.Expired {
			if len(out) > 0 {
				break
			}
			return nil, offset, r.expired(topic, s, offset)
		}
		entries, err := r.readSegment(ctx, topic, s, offset, max-len(out), budget)
		if err != nil {
			if r.cfg.Retryable(err) && len(out) == 0 {
				lastErr = err
				attempt++
				if berr := r.cfg.Backoff(ctx, attempt, changed); berr != nil {
					return nil, offset, fmt.Errorf("read of %q at %d gave up: %w", topic, offset, lastErr)
				}
				continue
			}
			if len(out) > 0 {
				break // return what we have; the next read reports the error
			}
			return nil, offset, err
		}
		for _, e := range entries {
			budget -= len(e.Payload)
		}
		out = append(out, entries...)
		offset += uint64(len(entries))
		// Continue into the next segment only when this one is sealed and exhausted.
		if s.State == meta.Active || offset < s.End() || budget <= 0 {
			break
		}
	}
	return out, offset, nil
}

// expired is the error for offset in the expired (or lost) segment s.
func (r *Reader) expired(topic string, s *meta.Segment, offset uint64) error {
	if s.Lost {
		return fmt.Errorf("%w: offsets [%d, %d) of %q (segment %d) were lost: no copy of them survived (floe restore --cluster); the next offset kept is %d",
			ErrExpired, s.Base, s.End(), topic, s.ID, s.End())
	}
	// The sentinel's text is the verb of the sentence, so that "expired" is said once.
	return fmt.Errorf("offset %d of %q (segment %d) has %w by retention; the earliest offset kept is %d",
		offset, topic, s.ID, ErrExpired, r.cfg.Metadata.StartOffset(topic))
}

// Tail is Read that waits up to wait for at least one entry: it reads again at every
// metadata change and every 50ms. It returns no entries and no error when ctx ends.
func (r *Reader) Tail(ctx context.Context, topic string, offset uint64, max int, wait time.Duration) ([]wire.Entry, uint64, error) {
	deadline := time.Now().Add(wait)
	for {
		entries, next, err := r.Read(ctx, topic, offset, max)
		if err != nil || len(entries) > 0 || time.Now().After(deadline) {
			return entries, next, err
		}
		a := r.cfg.Metadata.Changed() // metadata changes; appends elsewhere are polled below
		t := time.NewTimer(min(time.Until(deadline), 50*time.Millisecond))
		select {
		case <-a:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, offset, nil
		}
		t.Stop()
	}
}

// readSegment reads from one segment wherever it is: this node's disk, else the
// owning node if it is up and still has the segment, else the archive. Only a segment
// that is both unarchived and on a node that cannot be reached is unreadable, and the
// error says so. A corrupt local copy of an archived segment is read from the archive
// instead.
func (r *Reader) readSegment(ctx context.Context, topic string, s *meta.Segment, offset uint64, max, maxBytes int) ([]wire.Entry, error) {
	archived := s.ArchiveKey != ""
	if !s.LocalEvicted {
		entries, err := r.ReadLocal(topic, s, offset, max, maxBytes)
		switch {
		case err == nil:
			return entries, nil
		case errors.Is(err, ErrCorrupt) && archived:
			r.cfg.Logger.Error("local copy is corrupt; reading the archive", "topic", topic, "segment", s.ID, "err", err)
			return r.readArchive(ctx, topic, s, offset, max, maxBytes)
		case !errors.Is(err, ErrSegmentNotFound):
			return nil, err
		}
		if s.Owner() != r.cfg.NodeID || len(s.Replicas) > 1 {
			entries, err := r.readOwner(ctx, topic, s, offset, max, maxBytes)
			if err != nil && s.State == meta.Active && len(s.Replicas) > 1 && s.Leader != r.cfg.NodeID {
				// The leader does not answer: its followers' copies serve the entries
				// it told them a majority holds.
				if got := r.readCopies(ctx, topic, s, offset, max, maxBytes); len(got) > 0 {
					return got, nil
				}
			}
			if err == nil {
				return entries, nil
			}
			if !archived {
				if len(s.Replicas) > 1 {
					return nil, fmt.Errorf("segment %d of %q is only on nodes %v (not archived yet): %w", s.ID, topic, s.ReplicaSet(), err)
				}
				return nil, fmt.Errorf("segment %d of %q is only on node %d (not archived yet): %w", s.ID, topic, s.Owner(), err)
			}
			if !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrSegmentNotFound) {
				return nil, fmt.Errorf("cannot read segment %d of %q from node %d: %w", s.ID, topic, s.Leader, err)
			}
		}
	}
	if !archived {
		return nil, fmt.Errorf("%w: segment %d of %q is on no node and not archived", ErrSegmentNotFound, s.ID, topic)
	}
	return r.readArchive(ctx, topic, s, offset, max, maxBytes)
}

// ReadLocal reads up to max entries (at most maxBytes, at least one) of segment s
// from offset on, from this node's disk. Past the end of a sealed segment, or of the
// durable entries of an active one, it returns none; so does this node's own active
// segment before its file exists. A sealed local copy shorter than the metadata says
// is ErrCorrupt, never a short answer. Peers' reads of this node are served by it.
func (r *Reader) ReadLocal(topic string, s *meta.Segment, offset uint64, max, maxBytes int) ([]wire.Entry, error) {
	seg, release, err := r.cfg.Local.Open(topic, s)
	if errors.Is(err, ErrSegmentNotFound) && s.State == meta.Active && s.Leader == r.cfg.NodeID {
		return nil, nil // our active segment, not created yet: empty
	}
	if err != nil {
		return nil, err
	}
	defer release()
	return r.readOpen(topic, s, seg, offset, max, maxBytes)
}

// ReadCopy reads up to max entries (at most maxBytes, at least one) of this node's
// copy of the active replicated segment s, which it follows, from offset on: only
// the entries the segment's leader has told it a majority of the replicas holds, so
// that none it returns can be lost in a failover (it seals the segment with every
// entry a majority held). A sealed segment is read as ReadLocal reads it. Peers'
// reads of the copies, when the leader does not answer, are served by it.
func (r *Reader) ReadCopy(topic string, s *meta.Segment, offset uint64, max, maxBytes int) ([]wire.Entry, error) {
	if s.State != meta.Active {
		return r.ReadLocal(topic, s, offset, max, maxBytes)
	}
	seg, release, err := r.cfg.Local.OpenCopy(topic, s)
	if err != nil {
		return nil, err
	}
	defer release()
	return r.readOpen(topic, s, seg, offset, max, maxBytes)
}

// readOpen reads up to max entries of seg, this node's open copy of segment s, from
// offset on (ReadLocal).
func (r *Reader) readOpen(topic string, s *meta.Segment, seg Segment, offset uint64, max, maxBytes int) ([]wire.Entry, error) {
	idx := offset - s.Base
	if s.State != meta.Active && idx >= s.Count {
		return nil, nil
	}
	if idx >= seg.Count() {
		if s.State != meta.Active {
			return nil, fmt.Errorf("%w: segment %d of %q holds %d entries on node %d, metadata says %d",
				ErrCorrupt, s.ID, topic, seg.Count(), r.cfg.NodeID, s.Count)
		}
		return nil, nil
	}
	if s.State != meta.Active && uint64(max) > s.Count-idx {
		max = int(s.Count - idx)
	}
	payloads, err := seg.Read(idx, max, maxBytes)
	if errors.Is(err, segment.ErrOutOfRange) {
		return nil, nil
	}
	if errors.Is(err, segment.ErrClosed) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: segment %d of %q at offset %d: %v", ErrCorrupt, s.ID, topic, offset, err)
	}
	return entries(offset, payloads), nil
}

// Bounds of one read from a peer. A read of an active replicated segment from its
// leader, or of a follower's copy of one, waits copyReadWait at most: past it the
// node counts as down (RecentlyDown) for a few seconds and the other copies are
// read instead (a node that is up answers in well under a millisecond). Any other
// read of a peer waits ownerReadWait at most.
const (
	copyReadWait  = time.Second
	ownerReadWait = 10 * time.Second
)

// readCopies reads an active replicated segment whose leader did not answer from
// the copies of its followers, this node's first, skipping those that failed
// recently: the first that has entries at offset, or none (an error is only logged:
// the leader's is the one reported).
func (r *Reader) readCopies(ctx context.Context, topic string, s *meta.Segment, offset uint64, max, maxBytes int) []wire.Entry {
	nodes := make([]uint64, 0, len(s.Replicas))
	if s.HasReplica(r.cfg.NodeID) {
		nodes = append(nodes, r.cfg.NodeID)
	}
	for _, id := range s.ReplicaSet() {
		if id != s.Leader && id != r.cfg.NodeID && !r.cfg.Owner.RecentlyDown(id) {
			nodes = append(nodes, id)
		}
	}
	for _, node := range nodes {
		var got []wire.Entry
		var err error
		if node == r.cfg.NodeID {
			got, err = r.ReadCopy(topic, s, offset, max, maxBytes)
		} else {
			var payloads [][]byte
			payloads, err = r.cfg.Owner.ReadCopy(ctx, node, topic, s.ID, offset, max, maxBytes, copyReadWait)
			if err == nil && len(payloads) > max {
				err = rpc.Unavailable(fmt.Sprintf("node %d returned %d entries, asked %d", node, len(payloads), max), nil)
			}
			got = entries(offset, payloads)
		}
		if err != nil {
			r.cfg.Logger.Debug("cannot read a follower's copy of a segment", "topic", topic, "segment", s.ID, "node", node, "err", err)
			continue
		}
		if len(got) > 0 {
			return got
		}
	}
	return nil
}

// readOwner reads a segment from the node that led it. A node that failed recently is
// not asked again for a few seconds while the archive holds the segment. Its errors
// do not name the segment and node: readSegment, which says what it does next, does.
func (r *Reader) readOwner(ctx context.Context, topic string, s *meta.Segment, offset uint64, max, maxBytes int) ([]wire.Entry, error) {
	// The owner (leader, or the replica a failover sealed it from), then, for a
	// sealed replicated segment, its other replicas: their checked copies.
	var nodes []uint64
	if s.Owner() != r.cfg.NodeID {
		nodes = append(nodes, s.Owner())
	}
	if s.State != meta.Active {
		for _, id := range s.ReplicaSet() {
			if id != s.Owner() && id != r.cfg.NodeID {
				nodes = append(nodes, id)
			}
		}
	}
	err := fmt.Errorf("%w: segment %d of %q: no other node holds it", ErrSegmentNotFound, s.ID, topic)
	// An active replicated segment's followers, like the archive, can serve what its
	// leader would: a leader that failed recently is not waited for.
	copies := s.State == meta.Active && len(s.Replicas) > 1
	for _, node := range nodes {
		if (s.ArchiveKey != "" || copies) && r.cfg.Owner.RecentlyDown(node) {
			err = rpc.Unavailable(fmt.Sprintf("node %d failed recently", node), nil)
			continue
		}
		wait := ownerReadWait
		if copies {
			wait = copyReadWait
		}
		var payloads [][]byte
		payloads, err = r.cfg.Owner.ReadOwner(ctx, node, topic, s.ID, offset, max, maxBytes, wait)
		if err != nil {
			continue
		}
		if len(payloads) > max {
			return nil, rpc.Unavailable(fmt.Sprintf("node %d returned %d entries, asked %d", node, len(payloads), max), nil)
		}
		return entries(offset, payloads), nil
	}
	return nil, err
}

// readArchive reads entries of an archived segment from the object store. A failure
// on the object's content is ErrCorrupt (final); any other is ErrUnavailable.
func (r *Reader) readArchive(ctx context.Context, topic string, s *meta.Segment, offset uint64, max, maxBytes int) ([]wire.Entry, error) {
	if max > int(s.End()-offset) {
		max = int(s.End() - offset)
	}
	if max <= 0 {
		return nil, nil
	}
	recs, err := r.cfg.Archive.Read(ctx, s.ArchiveKey, s.ArchiveSize, offset, max)
	switch {
	case errors.Is(err, ErrNoArchive):
		return nil, rpc.Unavailable(fmt.Sprintf("segment %d of %q is archived as %q", s.ID, topic, s.ArchiveKey), err)
	case err != nil && corruptObject(err):
		return nil, fmt.Errorf("%w: segment %d of %q: archived object %q: %v", ErrCorrupt, s.ID, topic, s.ArchiveKey, err)
	case err != nil:
		return nil, rpc.Unavailable(fmt.Sprintf("segment %d of %q: cannot read archived object %q", s.ID, topic, s.ArchiveKey), err)
	}
	if r.cfg.ArchiveReads != nil {
		r.cfg.ArchiveReads.Inc()
	}
	return entries(offset, firstBytes(recs, maxBytes)), nil
}

// entries numbers payloads from offset on.
func entries(offset uint64, payloads [][]byte) []wire.Entry {
	out := make([]wire.Entry, len(payloads))
	for i, p := range payloads {
		out[i] = wire.Entry{Offset: offset + uint64(i), Payload: p}
	}
	return out
}

// firstBytes returns the leading payloads whose total is at most maxBytes, and at
// least the first (maxBytes <= 0: all), as Segment.Read takes them.
func firstBytes(payloads [][]byte, maxBytes int) [][]byte {
	if maxBytes <= 0 {
		return payloads
	}
	total := 0
	for i, p := range payloads {
		if i > 0 && total+len(p) > maxBytes {
			return payloads[:i]
		}
		total += len(p)
	}
	return payloads
}

// corruptObject reports whether an archive read failed on the object's content (as
// opposed to reaching the store): such an error is final, and never retried into data.
func corruptObject(err error) bool {
	return errors.Is(err, seekable.ErrCorrupt) || errors.Is(err, seekable.ErrFormat) ||
		errors.Is(err, seekable.ErrVersion) || errors.Is(err, seekable.ErrOutOfRange)
}
