package write

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"floe/meta"
	"floe/node/rpc"
	"floe/node/segment"
)

// fakeMeta is Metadata over topics held in memory. Its Seal follows the FSM: the
// segment is sealed with the proposed totals and the next one is active on the
// proposed leader.
type fakeMeta struct {
	mu      sync.Mutex
	topics  map[string]*meta.Topic
	changed chan struct{}
}

func newFakeMeta() *fakeMeta {
	return &fakeMeta{topics: map[string]*meta.Topic{}, changed: make(chan struct{})}
}

// register adds topic with segment 1 active on leader, created at created.
func (m *fakeMeta) register(topic string, leader uint64, cfg meta.TopicConfig) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.topics[topic] = &meta.Topic{Name: topic, Config: cfg, Segments: []*meta.Segment{
		{ID: 1, Leader: leader, State: meta.Active, CreatedUnixMS: time.Now().UnixMilli()},
	}}
	m.notifyLocked()
}

func (m *fakeMeta) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// moveTo ends the active segment of topic where it is (sealed with count entries, or
// abandoned) and makes the next one active on leader, as a roll-over or
// recover-segment does.
func (m *fakeMeta) moveTo(topic string, leader uint64, count uint64, abandon bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.topics[topic]
	act := t.Active()
	act.State, act.Count, act.Abandoned = meta.Sealed, count, abandon
	base := act.Base + count
	if abandon {
		base = act.Base
	}
	t.Segments = append(t.Segments, &meta.Segment{ID: act.ID + 1, Leader: leader, Base: base, State: meta.Active, CreatedUnixMS: time.Now().UnixMilli()})
	m.notifyLocked()
}

func (m *fakeMeta) ActiveOf(topic string) (meta.Segment, meta.TopicConfig, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.topics[topic]
	if !ok {
		return meta.Segment{}, meta.TopicConfig{}, false
	}
	return *t.Active(), t.Config, true
}

func (m *fakeMeta) SegmentOf(topic string, id uint64) (meta.Segment, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.topics[topic]
	if !ok || t.Segment(id) == nil {
		return meta.Segment{}, false
	}
	return *t.Segment(id), true
}

func (m *fakeMeta) Dead(string) bool { return false }

func (m *fakeMeta) TopicKeys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for n := range m.topics {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (m *fakeMeta) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

func (m *fakeMeta) ActiveSegment(ctx context.Context, topic string) (meta.Segment, error) {
	s, _, ok := m.ActiveOf(topic)
	if !ok {
		return s, fmt.Errorf("%w: %q", meta.ErrNoTopic, topic)
	}
	return s, nil
}

// fakeSegment is a WAL in memory. failNext fails the next AppendBatch (nothing
// written); damaged is what Damaged answers.
type fakeSegment struct {
	mu       sync.Mutex
	payloads [][]byte
	bytes    int64
	sealed   bool
	failNext error
	failSeal error // every SealAt fails with it (a disk that fails)
	damaged  error
	refs     int
}

func (s *fakeSegment) AppendBatch(payloads [][]byte) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sealed {
		return 0, segment.ErrSealed
	}
	if err := s.failNext; err != nil {
		s.failNext = nil
		return 0, err
	}
	first := uint64(len(s.payloads))
	s.payloads = append(s.payloads, payloads...)
	s.bytes += storedBytes(payloads)
	return first, nil
}

func (s *fakeSegment) Seal() (uint64, int64, uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sealed = true
	return uint64(len(s.payloads)), s.bytes, uint32(len(s.payloads)), nil
}

func (s *fakeSegment) SealAt(count uint64) (uint64, int64, uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failSeal != nil {
		return 0, 0, 0, s.failSeal
	}
	s.sealed = true
	if count > uint64(len(s.payloads)) {
		return 0, 0, 0, segment.ErrOutOfRange
	}
	s.payloads = s.payloads[:count]
	s.bytes = storedBytes(s.payloads)
	return count, s.bytes, uint32(count), nil
}

func (s *fakeSegment) Count() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return uint64(len(s.payloads))
}

func (s *fakeSegment) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

func (s *fakeSegment) Damaged() error { return s.damaged }

func (s *fakeSegment) Read(index uint64, n int, maxBytes int) ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if index >= uint64(len(s.payloads)) {
		return nil, segment.ErrOutOfRange
	}
	end := min(uint64(len(s.payloads)), index+uint64(max(n, 1)))
	return append([][]byte(nil), s.payloads[index:end]...), nil
}

// written returns the payloads as strings.
func (s *fakeSegment) written() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, p := range s.payloads {
		out = append(out, string(p))
	}
	return out
}

// fakeStore is Store over fakeSegments, counting references.
type fakeStore struct {
	mu   sync.Mutex
	segs map[string]*fakeSegment // "topic/id"
}

func newFakeStore() *fakeStore { return &fakeStore{segs: map[string]*fakeSegment{}} }

func (st *fakeStore) seg(topic string, id uint64) *fakeSegment {
	st.mu.Lock()
	defer st.mu.Unlock()
	k := fmt.Sprintf("%s/%d", topic, id)
	s, ok := st.segs[k]
	if !ok {
		s = &fakeSegment{}
		st.segs[k] = s
	}
	return s
}

func (st *fakeStore) Open(topic string, s *meta.Segment) (Segment, error) {
	seg := st.seg(topic, s.ID)
	seg.mu.Lock()
	seg.refs++
	seg.mu.Unlock()
	return seg, nil
}

func (st *fakeStore) Release(s Segment) {
	seg := s.(*fakeSegment)
	seg.mu.Lock()
	defer seg.mu.Unlock()
	if seg.refs <= 0 {
		panic("fakeStore: Release without a reference")
	}
	seg.refs--
}

func (st *fakeStore) Get(topic string, id uint64) (Segment, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.segs[fmt.Sprintf("%s/%d", topic, id)]
	if !ok {
		return nil, false
	}
	return s, true
}

// sent is one append a fakePeer received; the test answers it on reply.
type sent struct {
	node  uint64
	a     *rpc.Append
	reply chan rpc.Reply
}

// fakePeers are the other nodes: every append sent to any of them arrives on sent.
// sendErr, when set, fails the next Send.
type fakePeers struct {
	sent    chan sent
	mu      sync.Mutex
	sendErr error
}

func newFakePeers() *fakePeers { return &fakePeers{sent: make(chan sent, 64)} }

func (p *fakePeers) Peer(id uint64) (Peer, error) { return fakePeer{p, id}, nil }

type fakePeer struct {
	p  *fakePeers
	id uint64
}

// SendFunc hands the append to the test, which answers it on reply; without an
// answer within timeout, fn gets an rpc.ErrUnavailable, as from an rpc.Peer.
func (f fakePeer) SendFunc(op rpc.Op, body []byte, timeout time.Duration, fn func(rpc.Reply)) (uint64, error) {
	f.p.mu.Lock()
	err := f.p.sendErr
	f.p.sendErr = nil
	f.p.mu.Unlock()
	if err != nil {
		return 0, err
	}
	a, err := rpc.DecodeAppend(body)
	if err != nil {
		return 0, err
	}
	ch := make(chan rpc.Reply, 1)
	f.p.sent <- sent{node: f.id, a: &a, reply: ch}
	boot := 100 + f.id
	go func() {
		select {
		case r := <-ch:
			r.Boot = boot
			fn(r)
		case <-time.After(timeout):
			fn(rpc.Reply{Err: rpc.Unavailable(fmt.Sprintf("node %d did not answer within %v", f.id, timeout), nil), Boot: boot})
		}
	}()
	return boot, nil
}

// next returns the next append sent to a peer.
func (p *fakePeers) next(t *testing.T) sent {
	t.Helper()
	select {
	case s := <-p.sent:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no append was forwarded")
		return sent{}
	}
}

// none checks that nothing is waiting to be forwarded now.
func (p *fakePeers) none(t *testing.T, why string) {
	t.Helper()
	select {
	case s := <-p.sent:
		t.Fatalf("%s: append %q (seq %d) was forwarded to node %d", why, s.a.Payloads, s.a.Seq, s.node)
	default:
	}
}

// ok answers s as its leader would after writing it at first of segment.
func (s sent) ok(first, segment uint64) {
	s.reply <- rpc.Reply{Body: EncodeReply(Result{First: first, Segment: segment})}
}

// fail answers s with err as its leader's own answer.
func (s sent) fail(err error) { s.reply <- rpc.Reply{Err: rpc.Remote(err)} }

type fakeMetrics struct {
	entries, forwarded, rolled atomic.Int64
	filled, ranOut             atomic.Int64
}

func (m *fakeMetrics) Appended(entries int, bytes int64) { m.entries.Add(int64(entries)) }
func (m *fakeMetrics) Forwarded()                        { m.forwarded.Add(1) }
func (m *fakeMetrics) Rolled()                           { m.rolled.Add(1) }
func (m *fakeMetrics) Committed(time.Duration)           {}
func (m *fakeMetrics) Waited(filled bool) {
	if filled {
		m.filled.Add(1)
	} else {
		m.ranOut.Add(1)
	}
}

// harness is a Writer of node 1 over fakes.
type harness struct {
	w       *Writer
	md      *fakeMeta
	store   *fakeStore
	peers   *fakePeers
	metrics *fakeMetrics
	lease   atomic.Bool
	// proposeErr, when set, fails every proposal.
	proposeErr atomic.Pointer[error]
	proposed   chan *meta.Command
	next       atomic.Uint64 // NextLeader's answer (0: this node)
}

const self = 1

func newHarness(t *testing.T, limits Limits) *harness {
	t.Helper()
	h := &harness{md: newFakeMeta(), store: newFakeStore(), peers: newFakePeers(), metrics: &fakeMetrics{},
		proposed: make(chan *meta.Command, 64)}
	h.lease.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	if limits == (Limits{}) {
		limits = Limits{Entries: 1 << 30, Bytes: 1 << 40, Age: time.Hour}
	}
	h.w = New(ctx, Config{
		NodeID: self, BootID: 7, Metadata: h.md, Lease: h.lease.Load, Store: h.store,
		Propose: h.propose, Peers: h.peers, Metrics: h.metrics,
		NextLeader: func(uint64) uint64 {
			if n := h.next.Load(); n != 0 {
				return n
			}
			return self
		},
		Limits: limits, RequestTimeout: 10 * time.Second,
		Backoff: func(ctx context.Context, attempt int, changed <-chan struct{}) error {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-changed:
			case <-time.After(time.Millisecond):
			}
			return nil
		},
		Go: func(f func()) {
			wg.Add(1)
			go func() { defer wg.Done(); f() }()
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	return h
}

// propose applies a Seal as the FSM would.
func (h *harness) propose(ctx context.Context, c *meta.Command) error {
	if err := h.proposeErr.Load(); err != nil {
		return *err
	}
	if c.Op != meta.OpSeal {
		return fmt.Errorf("unexpected proposal %s", c.Op)
	}
	h.md.moveTo(c.Topic, c.NextLeader, c.Count, false)
	h.proposed <- c
	return nil
}

// appender returns topic's appender without starting its goroutine: the test drives
// it by calling process and checkAge itself.
func (h *harness) appender(topic string) *Appender {
	a := newAppender(h.w, topic)
	h.w.mu.Lock()
	h.w.appenders[topic] = a
	h.w.mu.Unlock()
	return a
}

// req is an append of payloads with tag; its outcome goes to the returned channel.
func req(tag Tag, payloads ...string) (*Request, chan Result) {
	ch := make(chan Result, 1)
	r := &Request{Tag: tag, Done: func(res Result) { ch <- res }}
	for _, p := range payloads {
		r.Payloads = append(r.Payloads, []byte(p))
	}
	r.Bytes = storedBytes(r.Payloads)
	return r, ch
}

// outcome returns the result on ch, failing the test if there is none yet (the
// appender answers on the caller's goroutine in these tests).
func outcome(t *testing.T, ch chan Result) Result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	default:
		t.Fatal("the request was not answered")
		return Result{}
	}
}

var errDisk = errors.New("injected fdatasync failure")
