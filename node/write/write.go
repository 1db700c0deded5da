package write

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"floe/meta"
	"floe/node/rpc"
	"floe/topicname"
)

// Sentinel errors of the write path. Those that cross the wire are package rpc's
// (rpc.ErrNotSegmentLeader, rpc.ErrUnavailable, rpc.ErrOutcomeUnknown); ErrClosed is
// this package's, and package node re-exports it. Their texts are part of the client
// protocol (a client reads them verbatim in its ERR reply), so they carry no package
// prefix.
var (
	// ErrClosed: the node is shutting down; the append was not written.
	ErrClosed = errors.New("node shutting down")
)

// Metadata is the view of the replicated metadata the write path reads (a *meta.FSM
// plus the node's catch-up rule).
type Metadata interface {
	// ActiveOf returns a copy of the topic's active segment and its config; false if
	// this node does not know the topic.
	ActiveOf(topic string) (meta.Segment, meta.TopicConfig, bool)
	// SegmentOf returns a copy of segment id of topic; false if there is none.
	SegmentOf(topic string, id uint64) (meta.Segment, bool)
	// TopicKeys returns every live topic's key.
	TopicKeys() []string
	// Dead reports whether a topic key names a deleted topic (meta.State.Dead).
	Dead(topic string) bool
	// Changed returns a channel closed at the next metadata change.
	Changed() <-chan struct{}
	// ActiveSegment is ActiveOf with the node's catch-up rule: a topic this node
	// does not know yet is looked up once at the Raft leader before it fails with
	// meta.ErrNoTopic (or rpc.ErrUnavailable when the leader cannot be asked).
	ActiveSegment(ctx context.Context, topic string) (meta.Segment, error)
}

// Lease reports whether this node may acknowledge writes now: it holds its write
// lease and its metadata has caught up since the lease last lapsed (node.hasLease).
type Lease func() bool

// Proposer commits a metadata command through Raft, wherever the leader is, and
// returns once it has applied on this node; one call is one request (its retries
// carry one request id).
type Proposer func(ctx context.Context, c *meta.Command) error

// Store is this node's segment files (a *segment.Store behind node's adapter).
type Store interface {
	// Open returns the file of active segment s of topic with a reference the caller
	// gives back with Release: the one already open, else the file on disk (its WAL
	// recovered), else a new file. It reports a damaged file (Segment.Damaged).
	Open(topic string, s *meta.Segment) (Segment, error)
	// Release gives back a reference taken by Open.
	Release(Segment)
	// Get returns segment id of topic if it is open, without a reference: only its
	// totals (Count, Bytes, Damaged) may be looked at.
	Get(topic string, id uint64) (Segment, bool)
}

// Segment is one open WAL file (a *segment.Segment).
type Segment interface {
	// AppendBatch writes payloads as consecutive records and returns the index of
	// the first once one fdatasync covers all of them; on error none is written (the
	// file is back at its last durable size). segment.ErrSealed once sealed.
	AppendBatch(payloads [][]byte) (uint64, error)
	// Seal refuses further appends and returns the durable totals.
	Seal() (count uint64, bytes int64, crc uint32, err error)
	// SealAt is Seal that first cuts the entries after the first count off the file,
	// durably (segment.ErrOutOfRange if it holds fewer).
	SealAt(count uint64) (uint64, int64, uint32, error)
	// Count and Bytes are the durable entries and bytes.
	Count() uint64
	Bytes() int64
	// Damaged is non-nil when the WAL holds a damaged record followed by intact
	// ones: the segment is then never sealed by the write path.
	Damaged() error
	// Read returns up to max durable payloads from index on, at most maxBytes of
	// them (at least one), for followers that are behind.
	Read(index uint64, max int, maxBytes int) ([][]byte, error)
}

// Peers reaches the other nodes for forwarding.
type Peers interface {
	// Peer returns the connection to node id; an error (rpc.ErrUnavailable) when
	// its address is not known. Nothing was sent then.
	Peer(id uint64) (Peer, error)
}

// Peer is one node's RPC connection (a *rpc.Peer).
type Peer interface {
	// SendFunc sends one request and hands its one reply to fn (on the
	// connection's reader: fn must not block), or an error once timeout has passed
	// without one or the connection is lost; the reply carries the boot id the node
	// announced on the connection that carried the request (rpc.Reply.Boot), and so
	// does the return. An error wrapping rpc.ErrNotSent never left this node (fn is
	// not called); any other may have.
	SendFunc(op rpc.Op, body []byte, timeout time.Duration, fn func(rpc.Reply)) (uint64, error)
}

// Metrics counts what the write path does.
type Metrics interface {
	// Appended counts one group commit of entries and bytes.
	Appended(entries int, bytes int64)
	// Committed times one group commit's write and fdatasync.
	Committed(took time.Duration)
	// Waited counts a group commit that waited for expected appends: filled if they
	// all came, not if the wait ran out first.
	Waited(filled bool)
	// Forwarded counts an append answered by another segment leader.
	Forwarded()
	// Rolled counts a segment this node sealed.
	Rolled()
}

// Limits are the roll-over limits of an active segment: it is sealed once it holds
// Entries entries or Bytes bytes (as stored, 8 bytes of header per entry), or once
// its first entry is Age old.
type Limits struct {
	Entries uint64
	Bytes   int64
	Age     time.Duration
}

// of returns the limits for a topic: its own config where set, l elsewhere.
func (l Limits) of(c meta.TopicConfig) Limits {
	if c.MaxSegmentEntries > 0 {
		l.Entries = c.MaxSegmentEntries
	}
	if c.MaxSegmentBytes > 0 {
		l.Bytes = c.MaxSegmentBytes
	}
	if c.MaxSegmentAgeMS > 0 {
		l.Age = time.Duration(c.MaxSegmentAgeMS) * time.Millisecond
	}
	return l
}

// Config configures a Writer. Every interface is required.
type Config struct {
	NodeID uint64
	// BootID is random per process: a retry that names another boot id (the node
	// restarted since the first attempt) is answered rpc.ErrOutcomeUnknown.
	BootID   uint64
	Metadata Metadata
	Lease    Lease
	Store    Store
	Propose  Proposer
	Peers    Peers
	Metrics  Metrics
	// NextLeader picks the leader of the segment after one led by current.
	NextLeader func(current uint64) uint64
	// ReplicaSet picks the replicas of a segment led by leader in a topic of
	// replication factor r, leader first (nil: the leader alone).
	ReplicaSet func(leader uint64, r int) []uint64
	// IsVoter reports whether a node is a voter of the cluster; a replicated segment
	// with a follower that is not is rolled over (nil: never).
	IsVoter func(id uint64) bool
	// Limits are the node's roll-over limits; a topic's config overrides them.
	Limits Limits
	// ReplicaTimeout bounds how long a group commit of a replicated segment waits
	// for a majority of its replicas (0: RequestTimeout).
	ReplicaTimeout time.Duration
	// StartIndex is the Raft log's last index when the node started: a replicated
	// segment made active at or before it may have been written by an earlier life
	// of this node, and is sealed before this one writes to it.
	StartIndex uint64
	// Lost, if set, returns an error for an active segment this node leads whose
	// entries are not on its disk (it came back with an empty data dir): such a
	// segment is neither opened nor written (the node recovers it elsewhere).
	Lost func(topic string, s *meta.Segment) error
	// HandOff, if set, asks for a replicated active segment this node leads but
	// cannot seal (its disk fails) to be failed over to its followers' copies.
	HandOff func(topic string, segment uint64)
	// RequestTimeout bounds one append with its retries, and a forwarded call.
	RequestTimeout time.Duration
	// Backoff waits before retry attempt, returning early when changed closes, with
	// an error once ctx ends or the node closes.
	Backoff func(ctx context.Context, attempt int, changed <-chan struct{}) error
	// Go runs an appender's goroutine; the node waits for them at Close.
	Go func(func())
	// CommitWait bounds how long a group commit waits for the requests expected to
	// join it (Appender.gather); 0 or negative: it never waits.
	CommitWait time.Duration
	// QueueLen is each appender's queue (default 8192).
	QueueLen int
	Logger   *slog.Logger
}

// Writer is a node's write path: its appenders (one per topic it writes), routing
// and forwarding, and the retries of Append and of each Sequence. Safe for
// concurrent use.
type Writer struct {
	cfg    Config
	ctx    context.Context // ends when the node closes
	reqIDs atomic.Uint64   // request ids of appends (random start)

	mu        sync.Mutex
	appenders map[string]*Appender
	// ageCheck is how often appenders check their segment's age (ageCheckPeriod;
	// tests lengthen it).
	ageCheck time.Duration
}

// New returns the write path of a node; ctx ends when the node closes, which fails
// every queued append with ErrClosed.
func New(ctx context.Context, cfg Config) *Writer {
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = appendQueue
	}
	if cfg.ReplicaTimeout <= 0 {
		cfg.ReplicaTimeout = cfg.RequestTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Writer{cfg: cfg, ctx: ctx, appenders: map[string]*Appender{}, ageCheck: ageCheckPeriod}
	var seed [8]byte
	rand.Read(seed[:])
	w.reqIDs.Store(binary.LittleEndian.Uint64(seed[:]))
	return w
}

// NewRequestID returns an id for an append that is unique across the cluster with
// overwhelming probability (a random 64-bit start per process, then a counter); never 0.
func (w *Writer) NewRequestID() uint64 {
	for {
		if id := w.reqIDs.Add(1); id != 0 {
			return id
		}
	}
}

// Appender returns the topic's appender, starting it if needed.
func (w *Writer) Appender(topic string) *Appender {
	w.mu.Lock()
	defer w.mu.Unlock()
	a, ok := w.appenders[topic]
	if !ok {
		a = newAppender(w, topic)
		w.appenders[topic] = a
		w.cfg.Go(a.run)
	}
	return a
}

// Keys returns the topics that have an appender on this node.
func (w *Writer) Keys() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	keys := make([]string, 0, len(w.appenders))
	for k := range w.appenders {
		keys = append(keys, k)
	}
	return keys
}

// Drop stops the appender of a deleted topic, if it has one: requests queued for
// it, and any sent to it later, are answered err (meta.ErrNoTopic).
func (w *Writer) Drop(topic string, err error) {
	w.mu.Lock()
	a := w.appenders[topic]
	delete(w.appenders, topic)
	w.mu.Unlock()
	if a != nil {
		a.retire(err)
	}
}

// Existing returns the topic's appender if this node has one, nil otherwise.
func (w *Writer) Existing(topic string) *Appender {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.appenders[topic]
}

// Retryable reports whether an append that failed with err may be tried again
// (routing, leases, elections); every other error is final.
func Retryable(err error) bool {
	return errors.Is(err, rpc.ErrNotSegmentLeader) || errors.Is(err, rpc.ErrUnavailable) ||
		errors.Is(err, meta.ErrNotRaftLeader) || errors.Is(err, meta.ErrStaleSegment)
}

// noLease is the error of an append this node may not acknowledge now.
func (w *Writer) noLease() error {
	return rpc.Unavailable(fmt.Sprintf("node %d has no write lease (cut off from the raft leader, or its metadata not caught up yet)", w.cfg.NodeID), nil)
}

// Received prepares an append forwarded by a peer for this node's appender and
// returns the appender to queue it on; done receives its outcome. A node that no
// longer leads the topic still hands a request to its appender if it has one, which
// answers a retry it already wrote with the original outcome, and anything else with
// rpc.ErrNotSegmentLeader. The error (nil Request) is the answer to send at once.
func (w *Writer) Received(a *rpc.Append, done func(Result)) (*Appender, *Request, error) {
	tag := Tag{ID: a.ID, Stream: a.Stream, Seq: a.Seq, Boot: a.Boot, Base: a.Base}
	if tag.Boot != 0 && tag.Boot != w.cfg.BootID {
		return nil, nil, fmt.Errorf("%w: node %d restarted after the first attempt of this append", rpc.ErrOutcomeUnknown, w.cfg.NodeID)
	}
	act, _, ok := w.cfg.Metadata.ActiveOf(a.Topic)
	if !ok && w.cfg.Metadata.Dead(a.Topic) {
		return nil, nil, fmt.Errorf("%w: %q (deleted)", meta.ErrNoTopic, topicname.NameOf(a.Topic))
	}
	if !ok {
		// The sender knows the topic, so this node's metadata is behind.
		return nil, nil, rpc.Unavailable(fmt.Sprintf("node %d does not know topic %q yet", w.cfg.NodeID, a.Topic), nil)
	}
	to := w.Existing(a.Topic)
	if act.Leader != w.cfg.NodeID && to == nil {
		return nil, nil, fmt.Errorf("%w: node %d does not lead %q", rpc.ErrNotSegmentLeader, w.cfg.NodeID, a.Topic)
	}
	if to == nil {
		to = w.Appender(a.Topic)
	}
	return to, &Request{Payloads: a.Payloads, Bytes: storedBytes(a.Payloads), Segment: a.Segment, Tag: tag, Done: done}, nil
}

// storedBytes is the size of payloads in a WAL: each with its 8-byte header.
func storedBytes(payloads [][]byte) int64 {
	var size int64
	for _, p := range payloads {
		size += int64(len(p)) + 8
	}
	return size
}

// OpenLed opens the active segments this node leads (a restarted leader recovers
// its WAL before the first write) and starts the appender of each that holds
// entries, so that its age limit is checked although no write may ever come. The
// caller makes sure the metadata has caught up (a stale view could name this node
// leader of a segment sealed or abandoned meanwhile).
func (w *Writer) OpenLed() {
	for _, name := range w.cfg.Metadata.TopicKeys() {
		act, _, ok := w.cfg.Metadata.ActiveOf(name)
		if !ok || act.Leader != w.cfg.NodeID {
			continue
		}
		if w.cfg.Lost != nil && w.cfg.Lost(name, &act) != nil {
			continue
		}
		if _, open := w.cfg.Store.Get(name, act.ID); !open {
			if seg, err := w.cfg.Store.Open(name, &act); err != nil {
				w.cfg.Logger.Error("cannot open active segment", "topic", name, "segment", act.ID, "err", err)
			} else {
				w.cfg.Store.Release(seg) // unsealed: stays open for the appender
			}
		}
		if w.nonEmptyActive(name) != nil {
			w.Appender(name)
		}
	}
}

// nonEmptyActive returns the topic's active segment if this node leads it and holds
// entries of it in its open file; nil otherwise.
func (w *Writer) nonEmptyActive(topic string) *meta.Segment {
	act, _, ok := w.cfg.Metadata.ActiveOf(topic)
	if !ok || act.Leader != w.cfg.NodeID {
		return nil
	}
	if seg, open := w.cfg.Store.Get(topic, act.ID); !open || seg.Count() == 0 {
		return nil
	}
	return &act
}

// OldestUnsealedMS returns the time (Unix ms, 0 if none) of the oldest entry in an
// active segment this node leads: the time its appender wrote the segment's first
// entry, or the segment's creation time when this process has not written to it (it
// restarted since), which is never later.
func (w *Writer) OldestUnsealedMS() int64 {
	var oldest int64
	for _, name := range w.cfg.Metadata.TopicKeys() {
		act := w.nonEmptyActive(name)
		if act == nil {
			continue
		}
		ms := CreatedAt(act).UnixMilli()
		if a := w.Existing(name); a != nil {
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

// CreatedAt is when segment s became active, by the replicated metadata: a durable
// lower bound of the time of its first entry (up to the clock skew between the node
// that proposed it and this one).
func CreatedAt(s *meta.Segment) time.Time {
	if s.CreatedUnixMS <= 0 {
		return time.Now() // metadata without the field: the best this node knows
	}
	return time.UnixMilli(s.CreatedUnixMS)
}
