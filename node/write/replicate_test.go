package write

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"floe/internal/testenv"
	"floe/meta"
	"floe/node/rpc"
)

// fakeFollowers are the followers of replicated segments in memory: each node's copy
// of a segment is a fakeSegment, appended to as node's appendReplica does (what it
// holds already is skipped, a gap takes nothing, the reply is the durable count).
// A node that is down answers every send with an error.
type fakeFollowers struct {
	mu     sync.Mutex
	copies map[string]*fakeSegment // "node/topic/segment"
	down   map[uint64]bool
	sends  map[uint64]int
	told   map[uint64]uint64 // node -> the most entries a send said were committed
	boot   map[uint64]uint64 // node -> its boot id (1 unless restarted)
	stuck  map[uint64]bool   // nodes whose copies answer but take no entries
}

func newFakeFollowers() *fakeFollowers {
	return &fakeFollowers{copies: map[string]*fakeSegment{}, down: map[uint64]bool{}, sends: map[uint64]int{}, told: map[uint64]uint64{}, boot: map[uint64]uint64{}, stuck: map[uint64]bool{}}
}

// restart is node restarting: a new boot id, and it forgets what it was told.
func (f *fakeFollowers) restart(node uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.boot[node] = max(f.boot[node], 1) + 1
	f.told[node] = 0
}

// forget is node losing what it was told, without restarting.
func (f *fakeFollowers) forget(node uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.told[node] = 0
}

func (f *fakeFollowers) bootOf(node uint64) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return max(f.boot[node], 1)
}

// sendsTo returns how many sends node was sent.
func (f *fakeFollowers) sendsTo(node uint64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sends[node]
}

// toldOf returns the most entries a send to node said were committed.
func (f *fakeFollowers) toldOf(node uint64) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.told[node]
}

func (f *fakeFollowers) setDown(node uint64, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[node] = down
}

// copyOf returns node's copy of segment id of topic.
func (f *fakeFollowers) copyOf(node uint64, topic string, id uint64) *fakeSegment {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := fmt.Sprintf("%d/%s/%d", node, topic, id)
	s, ok := f.copies[k]
	if !ok {
		s = &fakeSegment{}
		f.copies[k] = s
	}
	return s
}

func (f *fakeFollowers) Peer(id uint64) (Peer, error) { return followerPeer{f, id}, nil }

type followerPeer struct {
	f  *fakeFollowers
	id uint64
}

// BootID is the boot id of the connection to the follower (0 while it is down).
func (p followerPeer) BootID() uint64 {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	if p.f.down[p.id] {
		return 0
	}
	return max(p.f.boot[p.id], 1)
}

func (p followerPeer) SendFunc(op rpc.Op, body []byte, timeout time.Duration, fn func(rpc.Reply)) (uint64, error) {
	if op != rpc.OpReplicate {
		return 0, fmt.Errorf("unexpected op %d", op)
	}
	r, err := rpc.DecodeReplicate(body)
	if err != nil {
		return 0, err
	}
	p.f.mu.Lock()
	down, stuck := p.f.down[p.id], p.f.stuck[p.id]
	p.f.sends[p.id]++
	if !down {
		p.f.told[p.id] = max(p.f.told[p.id], r.Committed)
	}
	p.f.mu.Unlock()
	seg := p.f.copyOf(p.id, r.Topic, r.Segment)
	go func() {
		if down {
			fn(rpc.Reply{Err: rpc.Unavailable(fmt.Sprintf("node %d is down", p.id), nil)})
			return
		}
		seg.mu.Lock()
		count := uint64(len(seg.payloads))
		if !stuck && r.Start <= count && r.Start+uint64(len(r.Payloads)) > count {
			for _, pl := range r.Payloads[count-r.Start:] {
				seg.payloads = append(seg.payloads, append([]byte(nil), pl...))
			}
		}
		count = uint64(len(seg.payloads))
		seg.mu.Unlock()
		var e rpc.Encoder
		e.U64(count)
		fn(rpc.Reply{Body: e.B, Boot: p.f.bootOf(p.id)})
	}()
	return 1, nil
}

// replHarness is a harness whose topic "r" has its active segment led by this node
// and followed by nodes 2..n, made active at Raft index epoch.
func replHarness(t *testing.T, n int, epoch uint64) (*harness, *fakeFollowers, *Appender) {
	t.Helper()
	h := newHarness(t, Limits{})
	f := newFakeFollowers()
	h.w.cfg.Peers = f
	h.w.cfg.ReplicaTimeout = 10 * time.Second // tests that wait for it to pass shorten it
	replicas := []uint64{self}
	for id := uint64(2); id <= uint64(n); id++ {
		replicas = append(replicas, id)
	}
	h.md.register("r", self, meta.TopicConfig{ReplicationFactor: n})
	h.md.mu.Lock()
	act := h.md.topics["r"].Active()
	act.Replicas, act.LeaderIndex = replicas, epoch
	h.md.mu.Unlock()
	return h, f, h.appender("r")
}

// put appends payloads as one request through a and returns its outcome.
func put(t *testing.T, a *Appender, payloads ...string) Result {
	t.Helper()
	r, ch := req(Tag{}, payloads...)
	a.process([]*Request{r})
	return outcome(t, ch)
}

// TestReplicatedCommit: with three replicas, a batch is acknowledged once one
// follower besides the leader holds it; a follower that is down costs nothing more,
// and catches up from the leader's file once it is back, without a write (the age
// check's sync). Readers see only what a majority holds, and a follower learns that
// the last batch is committed from the age check, although no batch follows it.
func TestReplicatedCommit(t *testing.T) {
	h, f, a := replHarness(t, 3, 5)
	f.setDown(3, true)
	for i := 0; i < 5; i++ {
		if res := put(t, a, fmt.Sprintf("e%d", i)); res.Err != nil || res.First != uint64(i) {
			t.Fatalf("PUT %d with node 3 down: %+v", i, res)
		}
	}
	leader := h.store.seg("r", 1).written()
	testenv.WaitFor(t, 5*time.Second, "node 2's copy to be the leader's", func() bool {
		return slices.Equal(f.copyOf(2, "r", 1).written(), leader)
	})
	if got := f.copyOf(3, "r", 1).written(); len(got) != 0 {
		t.Fatalf("node 3, down, holds %q", got)
	}
	if c, ok := h.w.Committed("r", 1); !ok || c != 5 {
		t.Fatalf("Committed = %d, %v; want 5", c, ok)
	}
	if told := f.toldOf(2); told >= 5 {
		t.Fatalf("node 2 was told %d entries are committed before the last batch was", told)
	}
	// No batch follows the last one: the age check tells node 2 it is committed, so
	// that its copy serves it to readers who cannot reach the leader.
	testenv.WaitFor(t, 5*time.Second, "node 2 to be told that 5 entries are committed", func() bool {
		a.checkAge()
		return f.toldOf(2) == 5
	})
	f.setDown(3, false)
	testenv.WaitFor(t, 5*time.Second, "node 3 to catch up from the leader", func() bool {
		a.checkAge()
		return slices.Equal(f.copyOf(3, "r", 1).written(), leader)
	})
	if res := put(t, a, "e5", "e6"); res.Err != nil || res.First != 5 {
		t.Fatalf("PUT after node 3 returned: %+v", res)
	}
	testenv.WaitFor(t, 5*time.Second, "both copies to hold 7 entries", func() bool {
		want := h.store.seg("r", 1).written()
		return len(want) == 7 && slices.Equal(f.copyOf(2, "r", 1).written(), want) && slices.Equal(f.copyOf(3, "r", 1).written(), want)
	})
}

// TestFollowersToldCommitted (found by review): a follower level with the leader
// is told the committed count by the age check although no write comes, also after
// a probe to it failed (it was unreachable for a moment) and after it restarted
// (it forgot what it was told): its copy serves the entries to readers who cannot
// reach the leader.
func TestFollowersToldCommitted(t *testing.T) {
	_, f, a := replHarness(t, 3, 5)
	for i := 0; i < 5; i++ {
		if res := put(t, a, fmt.Sprintf("e%d", i)); res.Err != nil {
			t.Fatalf("PUT %d: %+v", i, res)
		}
	}
	// Whatever node 2 was told so far (the last batch's count may have reached it
	// already, with a catch-up probe), it is told again only if the leader learns
	// that it may not have heard: forget it here, as a node that lost the message.
	f.forget(2)
	f.setDown(2, true)
	sent := f.sendsTo(2)
	testenv.WaitFor(t, 5*time.Second, "a probe to node 2 while it is down", func() bool {
		a.checkAge()
		return f.sendsTo(2) > sent
	})
	f.setDown(2, false)
	testenv.WaitFor(t, 5*time.Second, "node 2, back, to be told that 5 entries are committed", func() bool {
		a.checkAge()
		return f.toldOf(2) == 5
	})
	f.restart(2)
	testenv.WaitFor(t, 5*time.Second, "node 2, restarted, to be told again", func() bool {
		a.checkAge()
		return f.toldOf(2) == 5
	})
}

// TestFailedSendForgetsTold: a send to a follower that failed, or a reply from a
// follower that restarted since, means it may not know the committed count its
// sends carried: the next age check tells it again.
func TestFailedSendForgetsTold(t *testing.T) {
	r := newReplication(meta.Segment{ID: 1, Leader: self, Replicas: []uint64{self, 2}}, self, false)
	f := r.follow[0]
	f.sent, f.told = 1, 5
	r.deliver(f, 1, 5, 0, 0, rpc.Unavailable("node 2 is down", nil))
	r.collect()
	if f.told != 0 {
		t.Fatalf("after a failed send: told %d, want 0", f.told)
	}
	f.sent, f.told = 2, 5
	r.deliver(f, 2, 5, 5, 7, nil)
	r.collect()
	if f.told != 5 || f.boot != 7 {
		t.Fatalf("after a reply: told %d boot %d, want 5 and 7", f.told, f.boot)
	}
	f.sent = 3
	r.deliver(f, 3, 5, 5, 8, nil)
	r.collect()
	if f.told != 0 || f.boot != 8 {
		t.Fatalf("after a reply from a restarted follower: told %d boot %d, want 0 and 8", f.told, f.boot)
	}
}

// TestReplicatedCommitWithoutMajority: with two replicas and the follower down, a
// batch is written on the leader but never acknowledged: after the replica timeout
// it fails with ErrOutcomeUnknown (final: a retry could write it twice), and a retry
// of its request id gets that answer again, not a second entry. Readers do not see
// it until the follower holds it; then they do, and writes go on.
func TestReplicatedCommitWithoutMajority(t *testing.T) {
	h, f, a := replHarness(t, 2, 5)
	if res := put(t, a, "first"); res.Err != nil {
		t.Fatal(res.Err)
	}
	f.setDown(2, true)
	h.w.cfg.ReplicaTimeout = 300 * time.Millisecond // no majority until node 2 is back: fail fast
	r, ch := req(Tag{ID: 9}, "orphan")
	a.process([]*Request{r})
	res := outcome(t, ch)
	if !errors.Is(res.Err, rpc.ErrOutcomeUnknown) || Retryable(res.Err) {
		t.Fatalf("PUT with no majority: %v, want a final ErrOutcomeUnknown", res.Err)
	}
	if c, _ := h.w.Committed("r", 1); c != 1 {
		t.Fatalf("Committed = %d with the follower down, want 1", c)
	}
	r, ch = req(Tag{ID: 9}, "orphan")
	a.process([]*Request{r})
	if again := outcome(t, ch); !errors.Is(again.Err, rpc.ErrOutcomeUnknown) {
		t.Fatalf("retry of the unconfirmed PUT: %v, want its first answer", again.Err)
	}
	if got := h.store.seg("r", 1).written(); !slices.Equal(got, []string{"first", "orphan"}) {
		t.Fatalf("leader's WAL: %q", got)
	}
	f.setDown(2, false)
	h.w.cfg.ReplicaTimeout = 10 * time.Second
	if res := put(t, a, "after"); res.Err != nil || res.First != 2 {
		t.Fatalf("PUT once the follower is back: %+v", res)
	}
	if c, _ := h.w.Committed("r", 1); c != 3 {
		t.Fatalf("Committed = %d, want 3", c)
	}
	if got := f.copyOf(2, "r", 1).written(); !slices.Equal(got, []string{"first", "orphan", "after"}) {
		t.Fatalf("follower's copy: %q", got)
	}
}

// TestReplicatedSegmentRolls: a replicated segment is sealed before anything more
// is written to it when followers may hold entries this node does not: after a
// failed write of its own, and when it was made active before this process started
// (an earlier life may have sent entries it never made durable).
func TestReplicatedSegmentRolls(t *testing.T) {
	t.Run("after a failed write", func(t *testing.T) {
		h, _, a := replHarness(t, 3, 5)
		if res := put(t, a, "a"); res.Err != nil {
			t.Fatal(res.Err)
		}
		h.store.seg("r", 1).failNext = errDisk
		if res := put(t, a, "b"); res.Err == nil {
			t.Fatal("a PUT whose write failed was acknowledged")
		}
		if res := put(t, a, "c"); res.Err == nil && res.Segment == 1 {
			t.Fatalf("the next PUT went into the same segment: %+v", res)
		}
		select {
		case c := <-h.proposed:
			if c.Op != meta.OpSeal || c.Segment != 1 || c.Count != 1 {
				t.Fatalf("proposed %+v, want the seal of segment 1 at 1 entry", c)
			}
		default:
			t.Fatal("segment 1 was not sealed")
		}
	})
	t.Run("opened after a restart", func(t *testing.T) {
		h, _, a := replHarness(t, 3, 5)
		h.w.cfg.StartIndex = 5
		res := put(t, a, "x")
		if res.Err == nil && res.Segment == 1 {
			t.Fatalf("a PUT went into segment 1, made active before the restart: %+v", res)
		}
		select {
		case c := <-h.proposed:
			if c.Op != meta.OpSeal || c.Segment != 1 || c.Count != 0 {
				t.Fatalf("proposed %+v, want the seal of segment 1 as it is", c)
			}
		default:
			t.Fatal("segment 1 was not sealed")
		}
	})
}

// TestReplicatedSealAtMajority: a replicated segment is sealed at what a majority of
// its replicas holds, never with entries only its leader has (once sealed, every entry
// is readable): a batch no follower confirmed is cut off the leader's file when the
// segment rolls over. (Found by review: the seal took the leader's own count.)
func TestReplicatedSealAtMajority(t *testing.T) {
	h, f, a := replHarness(t, 3, 5)
	h.w.cfg.Limits.Entries = 2
	if res := put(t, a, "first"); res.Err != nil {
		t.Fatal(res.Err)
	}
	f.setDown(2, true)
	f.setDown(3, true)
	h.w.cfg.ReplicaTimeout = 300 * time.Millisecond // no majority from here on: fail fast
	if res := put(t, a, "orphan"); !errors.Is(res.Err, rpc.ErrOutcomeUnknown) {
		t.Fatalf("PUT with both followers down: %+v, want ErrOutcomeUnknown", res)
	}
	select {
	case c := <-h.proposed:
		if c.Op != meta.OpSeal || c.Count != 1 {
			t.Fatalf("proposed %+v, want the seal of segment 1 at the 1 entry a majority holds", c)
		}
	default:
		t.Fatal("segment 1 was not sealed at its entry limit")
	}
	if got := h.store.seg("r", 1).written(); !slices.Equal(got, []string{"first"}) {
		t.Fatalf("the leader's sealed file holds %q, want only what a majority holds", got)
	}
}

// TestReplicatedPipelinedCommits: with requests waiting, the appender writes the next
// batch before it answers the one whose majority it waits for; every request still
// gets the offset its entry has, once, and only after a follower holds it. (The first
// version kept the run loop's batch slice for the waiting batch, which the next batch
// overwrote: requests were answered with other requests' offsets.) The queue is
// filled before the appender starts, with 16 KiB payloads, so that it writes 8 MiB
// batches with more waiting behind each.
func TestReplicatedPipelinedCommits(t *testing.T) {
	h, f, _ := replHarness(t, 3, 5)
	a := newAppender(h.w, "r")
	h.w.mu.Lock()
	h.w.appenders["r"] = a
	h.w.mu.Unlock()
	const n = 2000
	big := strings.Repeat("x", 16<<10)
	chans := make([]chan Result, n)
	for i := range chans {
		var r *Request
		r, chans[i] = req(Tag{}, fmt.Sprintf("p%d-%s", i, big))
		a.Enqueue(r)
	}
	h.w.cfg.Go(a.run)
	type outcome struct {
		p   string
		res Result
	}
	results := make(chan outcome, n)
	deadline := time.After(20 * time.Second)
	for i, ch := range chans {
		var res Result
		select {
		case res = <-ch:
		case <-deadline:
			t.Fatalf("request %d was not answered within 20s", i)
		}
		results <- outcome{fmt.Sprintf("p%d-%s", i, big), res}
	}
	close(results)
	leader := h.store.seg("r", 1).written()
	seen := map[uint64]bool{}
	for r := range results {
		if r.res.Err != nil {
			t.Fatalf("%s: %v", r.p, r.res.Err)
		}
		if seen[r.res.First] || r.res.First >= uint64(len(leader)) || leader[r.res.First] != r.p {
			t.Fatalf("%s answered with offset %d, which holds %q (seen before: %v)", r.p, r.res.First, leader[min(r.res.First, uint64(len(leader)-1))], seen[r.res.First])
		}
		seen[r.res.First] = true
	}
	copies := max(f.copyOf(2, "r", 1).Count(), f.copyOf(3, "r", 1).Count())
	if copies < n {
		t.Fatalf("every request was answered but no follower holds all %d entries (%d)", n, copies)
	}
}

// TestUnsealableSegmentHandedOff: a replicated segment whose leader cannot seal it on
// its disk (its write failed, and so does the seal) is handed to its followers (a
// failover seals it at their copies), not retried here for ever; a segment whose seal
// fails for want of followers is not.
func TestUnsealableSegmentHandedOff(t *testing.T) {
	h, _, a := replHarness(t, 3, 5)
	var handed []uint64
	h.w.cfg.HandOff = func(topic string, id uint64) { handed = append(handed, id) }
	if res := put(t, a, "a"); res.Err != nil {
		t.Fatal(res.Err)
	}
	seg := h.store.seg("r", 1)
	seg.mu.Lock()
	seg.failNext, seg.failSeal = errDisk, errDisk
	seg.mu.Unlock()
	if res := put(t, a, "b"); res.Err == nil {
		t.Fatal("a PUT whose write failed was acknowledged")
	}
	if res := put(t, a, "c"); res.Err == nil {
		t.Fatalf("a PUT was acknowledged although the segment cannot be sealed: %+v", res)
	}
	if len(handed) == 0 || handed[0] != 1 {
		t.Fatalf("handed off %v, want segment 1", handed)
	}

	h2, f2, a2 := replHarness(t, 3, 5)
	handed = nil
	h2.w.cfg.HandOff = func(topic string, id uint64) { handed = append(handed, id) }
	if res := put(t, a2, "a"); res.Err != nil {
		t.Fatal(res.Err)
	}
	f2.setDown(2, true)
	f2.setDown(3, true)
	h2.w.cfg.ReplicaTimeout = 300 * time.Millisecond // the followers are down: fail fast
	h2.w.cfg.StartIndex = 5
	a2.closeSegment()
	if res := put(t, a2, "b"); res.Err == nil && res.Segment == 1 {
		t.Fatalf("PUT into segment 1 after a restart: %+v", res)
	}
	if len(handed) != 0 {
		t.Fatalf("handed off %v although only the followers were missing", handed)
	}
}

// TestRestartedLeaderSealKeepsAcknowledged (found by review, twice): a leader that
// restarts seals its segment before writing again, and must not cut entries an
// earlier life acknowledged. Its earlier life acknowledged e0..e3 with node 3; node 2
// is behind at 2 and takes nothing more. Sealing at what the followers answer now
// would lose e2 and e3, whether node 3 has not answered since the restart (down) or
// answers 0 (its copy was dropped, or its disk lost, since): the seal keeps all four.
func TestRestartedLeaderSealKeepsAcknowledged(t *testing.T) {
	for _, tc := range []struct {
		name  string
		node3 func(f *fakeFollowers)
	}{
		{"the follower that held them is down", func(f *fakeFollowers) {
			for _, p := range []string{"e0", "e1", "e2", "e3"} {
				f.copyOf(3, "r", 1).AppendBatch([][]byte{[]byte(p)})
			}
			f.setDown(3, true)
		}},
		{"the follower that held them lost its copy", func(f *fakeFollowers) {
			_ = f.copyOf(3, "r", 1) // empty, and it takes nothing
			f.stuck[3] = true
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, f, a := replHarness(t, 3, 5)
			h.w.cfg.ReplicaTimeout = 300 * time.Millisecond // a majority is never reached here: fail fast
			h.w.cfg.StartIndex = 5                          // the segment was made active before this process started
			for _, p := range []string{"e0", "e1", "e2", "e3"} {
				h.store.seg("r", 1).AppendBatch([][]byte{[]byte(p)})
			}
			for _, p := range []string{"e0", "e1"} {
				f.copyOf(2, "r", 1).AppendBatch([][]byte{[]byte(p)})
			}
			f.stuck[2] = true
			tc.node3(f)
			if res := put(t, a, "x"); res.Err == nil && res.Segment == 1 {
				t.Fatalf("a PUT went into segment 1, made active before the restart: %+v", res)
			}
			select {
			case c := <-h.proposed:
				if c.Op != meta.OpSeal || c.Segment != 1 || c.Count != 4 {
					t.Fatalf("proposed %+v, want the seal of segment 1 with its 4 entries", c)
				}
			default:
				t.Fatal("segment 1 was not sealed")
			}
		})
	}
}

// TestForeignCopiesNotAcknowledged (found by review): a leader whose file of a segment
// made active since it started is empty, while its followers hold entries it never
// sent them (its data dir is not the one that wrote them: a lost disk the
// incarnation check could not tell), acknowledges nothing: the followers would skip
// the index it writes, holding other data there. It hands the segment to them.
func TestForeignCopiesNotAcknowledged(t *testing.T) {
	h, f, a := replHarness(t, 3, 5)
	h.w.cfg.StartIndex = 4 // made active (index 5) after this process started: not inherited
	var handed []uint64
	h.w.cfg.HandOff = func(topic string, id uint64) { handed = append(handed, id) }
	for _, id := range []uint64{2, 3} {
		for _, p := range []string{"e0", "e1", "e2", "e3"} {
			f.copyOf(id, "r", 1).AppendBatch([][]byte{[]byte(p)})
		}
	}
	res := put(t, a, "x")
	if res.Err == nil {
		t.Fatalf("acknowledged %+v: the leader holds %q, the followers %q at the same indexes",
			res, h.store.seg("r", 1).written(), f.copyOf(2, "r", 1).written())
	}
	if !errors.Is(res.Err, rpc.ErrOutcomeUnknown) || len(handed) != 1 || handed[0] != 1 {
		t.Fatalf("PUT: %v, handed off %v; want ErrOutcomeUnknown and segment 1 handed to the followers", res.Err, handed)
	}
	if res := put(t, a, "y"); res.Err == nil && res.Segment == 1 {
		t.Fatalf("a second PUT was acknowledged in segment 1: %+v", res)
	}
}

// TestIdleFollowersToldCommitted: once the appender's queue is empty for a moment
// (noticeDelay), it tells its followers that their last entries are committed,
// without waiting for the age check (an hour here): their copies then serve every
// acknowledged entry to readers who cannot reach the leader. A follower whose first
// answer comes after the last batch (it missed them all) is caught up as it answers,
// and told too.
func TestIdleFollowersToldCommitted(t *testing.T) {
	h, f, _ := replHarness(t, 3, 5)
	h.w.ageCheck = time.Hour
	a := newAppender(h.w, "r")
	h.w.mu.Lock()
	h.w.appenders["r"] = a
	h.w.mu.Unlock()
	h.w.cfg.Go(a.run)
	for i := 0; i < 5; i++ {
		r, ch := req(Tag{}, fmt.Sprintf("e%d", i))
		a.Enqueue(r)
		select {
		case res := <-ch:
			if res.Err != nil {
				t.Fatalf("PUT %d: %+v", i, res)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("PUT %d was not answered", i)
		}
	}
	testenv.WaitFor(t, 10*time.Second, "both followers to be told that 5 entries are committed", func() bool {
		return f.toldOf(2) == 5 && f.toldOf(3) == 5
	})
}
