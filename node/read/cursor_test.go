package read

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"floe/internal/testenv"
	"floe/meta"
	"floe/wire"
)

// getAll takes entries of "t" with GETs of limit until one returns none, and returns
// each GET's payloads.
func getAll(t *testing.T, r *Reader, limit int) [][]string {
	t.Helper()
	var got [][]string
	for {
		es, err := r.Get(context.Background(), "t", limit)
		if err != nil {
			t.Fatalf("GET after %q: %v", got, err)
		}
		if len(es) == 0 {
			return got
		}
		checkDense(t, es)
		got = append(got, payloads(es))
	}
}

// checkDense fails the test unless es are consecutive offsets.
func checkDense(t *testing.T, es []wire.Entry) {
	t.Helper()
	for i := 1; i < len(es); i++ {
		if es[i].Offset != es[i-1].Offset+1 {
			t.Fatalf("GET returned offsets %d then %d", es[i-1].Offset, es[i].Offset)
		}
	}
}

// skipWorld is topic "t" with an expired segment before the cursor, then a kept one,
// a segment floe restore --cluster marked lost, an archived one, an abandoned one and
// the active one.
func skipWorld() *world {
	w := newWorld(
		seg{leader: self, payloads: []string{"x"}, state: meta.Expired},
		seg{leader: self, payloads: []string{"a"}},
		seg{leader: 2, payloads: []string{"lost1", "lost2"}, lost: true},
		seg{leader: 2, payloads: []string{"b"}, archived: true},
		seg{leader: 2, abandon: true},
		seg{leader: self, payloads: []string{"c"}},
	)
	w.local[1] = nil
	w.topic.Cursor = 1 // retention moved it past segment 1
	return w
}

// TestGet: GET hands out each entry once, in order, moving past lost segments (after
// kept ones), abandoned ones and expired ones, and reports the end; with a limit, one
// GET takes what one read reaches (a read stops before a lost segment).
func TestGet(t *testing.T) {
	w := skipWorld()
	if got := fmt.Sprint(getAll(t, w.reader(), 1)); got != "[[a] [b] [c]]" || w.cursor() != 6 {
		t.Fatalf("GETs returned %s, cursor %d; want [[a] [b] [c]], cursor 6", got, w.cursor())
	}
	w = skipWorld()
	if got := fmt.Sprint(getAll(t, w.reader(), 10)); got != "[[a] [b c]]" || w.cursor() != 6 {
		t.Fatalf("GETs of 10 returned %s, cursor %d; want [[a] [b c]], cursor 6", got, w.cursor())
	}
	if _, err := w.reader().Get(context.Background(), "nope", 1); !errors.Is(err, meta.ErrNoTopic) {
		t.Fatalf("GET of an unknown topic: %v; want meta.ErrNoTopic", err)
	}
}

// TestGetRetriedAdvance: the advance commits but its answer is lost, and the retry
// (same request id) answers success: GET returns the entries, which are neither
// handed out again nor skipped.
func TestGetRetriedAdvance(t *testing.T) {
	w := newWorld(seg{leader: self, payloads: []string{"a", "b", "c"}}, seg{leader: self})
	w.loseAnswer = true
	if got := fmt.Sprint(getAll(t, w.reader(), 2)); got != "[[a b] [c]]" {
		t.Fatalf("GETs returned %s; want [[a b] [c]]", got)
	}
	if w.proposals != 2 || w.cursor() != 3 {
		t.Fatalf("%d advances, cursor %d; want 2 and 3", w.proposals, w.cursor())
	}
}

// TestGetLostRace: another GET moves the cursor between this batch's read and its
// advance: the advance fails the compare-and-set (meta.ErrCursorMoved), the batch
// reads the cursor again, and this GET gets the entries after the one the other GET
// took, never that one.
func TestGetLostRace(t *testing.T) {
	w := newWorld(seg{leader: self, payloads: []string{"a", "b", "c", "d"}}, seg{leader: self})
	raced := false
	w.beforeAdvance = func() {
		if !raced {
			raced = true
			w.advanceBy() // the other GET took "a"
		}
	}
	es, err := w.reader().Get(context.Background(), "t", 2)
	if err != nil || fmt.Sprint(payloads(es)) != "[b c]" || w.cursor() != 3 || w.proposals != 2 {
		t.Fatalf("GET: %q %v, cursor %d after %d advances; want [b c], cursor 3 after 2", payloads(es), err, w.cursor(), w.proposals)
	}
}

// heldAdvances makes every advance of w wait until release is called for it, and
// returns a channel that receives once per advance when it starts waiting.
func heldAdvances(w *world) (started <-chan struct{}, release func()) {
	s, r := make(chan struct{}, 64), make(chan struct{}, 64)
	w.beforeAdvance = func() {
		s <- struct{}{}
		<-r
	}
	return s, func() { r <- struct{}{} }
}

// queued waits until n GETs of topic wait for the next batch.
func queued(t *testing.T, r *Reader, topic string, n int) {
	t.Helper()
	testenv.WaitFor(t, 5*time.Second, fmt.Sprintf("%d GETs of %q queued", n, topic), func() bool {
		r.gets.mu.Lock()
		defer r.gets.mu.Unlock()
		return len(r.gets.topics[topic]) == n
	})
}

type getReply struct {
	es  []wire.Entry
	err error
}

// startGet runs a GET of limit on its own goroutine; its outcome arrives on the channel.
func startGet(ctx context.Context, r *Reader, limit int) <-chan getReply {
	ch := make(chan getReply, 1)
	go func() {
		es, err := r.Get(ctx, "t", limit)
		ch <- getReply{es, err}
	}()
	return ch
}

// TestGetBatchSharesOneAdvance: GETs that arrive while an advance is in flight wait
// and then share one advance; its entries are handed out in arrival order, each GET
// getting at most its limit. A GET left with none while the batch got some is served
// by the next batch, which finds the end: EMPTY, with no advance.
func TestGetBatchSharesOneAdvance(t *testing.T) {
	w := newWorld(seg{leader: self, payloads: []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}}, seg{leader: self})
	started, release := heldAdvances(w)
	r := w.reader()
	served := &observed{}
	r.cfg.GetBatches = served
	first := startGet(context.Background(), r, 1)
	<-started // its advance is in flight
	limits := []int{2, 3, 1, 5, 1}
	var later []<-chan getReply
	for i, n := range limits {
		later = append(later, startGet(context.Background(), r, n))
		queued(t, r, "t", i+1)
	}
	release()
	<-started // the second batch's advance
	release()
	want := []string{"[a]", "[b c]", "[d e f]", "[g]", "[h i j]", "[]"}
	for i, ch := range append([]<-chan getReply{first}, later...) {
		g := <-ch
		if g.err != nil || fmt.Sprint(payloads(g.es)) != want[i] {
			t.Errorf("GET %d: %q %v; want %s", i, payloads(g.es), g.err, want[i])
		}
	}
	if w.proposals != 2 || w.cursor() != 10 {
		t.Fatalf("%d advances, cursor %d; want 2 (one per batch) and 10", w.proposals, w.cursor())
	}
	if got := fmt.Sprint(served.values()); got != "[1 4]" {
		t.Fatalf("GETs served per advance observed as %s, want [1 4]", got)
	}
}

// observed is a prometheus.Observer that keeps what it observes.
type observed struct {
	mu sync.Mutex
	v  []float64
}

func (o *observed) Observe(v float64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.v = append(o.v, v)
}

func (o *observed) values() []float64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]float64(nil), o.v...)
}

// TestGetProposalErrorFailsBatch: an advance that fails with anything but
// meta.ErrCursorMoved fails every GET of its batch, and the next batch starts from the
// cursor as it is (the failed advance moved nothing here).
func TestGetProposalErrorFailsBatch(t *testing.T) {
	w := newWorld(seg{leader: self, payloads: []string{"a", "b", "c"}}, seg{leader: self})
	started, release := heldAdvances(w)
	r := w.reader()
	first := startGet(context.Background(), r, 1)
	<-started
	var batch []<-chan getReply
	for i := range 3 {
		batch = append(batch, startGet(context.Background(), r, 1))
		queued(t, r, "t", i+1)
	}
	release()
	<-started // the second batch's advance, which is to fail
	boom := fmt.Errorf("%w: no quorum (test)", ErrUnavailable)
	w.mu.Lock()
	w.failAdvance = boom
	w.mu.Unlock()
	release()
	if g := <-first; g.err != nil || fmt.Sprint(payloads(g.es)) != "[a]" {
		t.Fatalf("first GET: %q %v; want [a]", payloads(g.es), g.err)
	}
	for i, ch := range batch {
		if g := <-ch; !errors.Is(g.err, boom) || len(g.es) != 0 {
			t.Errorf("GET %d of the failed batch: %q %v; want the advance's error", i, payloads(g.es), g.err)
		}
	}
	w.beforeAdvance = nil
	if es, err := r.Get(context.Background(), "t", 5); err != nil || fmt.Sprint(payloads(es)) != "[b c]" {
		t.Fatalf("GET after the failed batch: %q %v; want [b c]", payloads(es), err)
	}
}

// TestGetWithdrawnWhileQueued: a GET whose context ends while it waits for a batch
// leaves the queue and takes nothing; the next GET gets the entry it would have.
func TestGetWithdrawnWhileQueued(t *testing.T) {
	w := newWorld(seg{leader: self, payloads: []string{"a", "b"}}, seg{leader: self})
	started, release := heldAdvances(w)
	r := w.reader()
	first := startGet(context.Background(), r, 1)
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	gone := startGet(ctx, r, 1)
	queued(t, r, "t", 1)
	cancel()
	if g := <-gone; !errors.Is(g.err, ErrUnavailable) || len(g.es) != 0 {
		t.Fatalf("GET withdrawn: %q %v; want ErrUnavailable and nothing", payloads(g.es), g.err)
	}
	release()
	if g := <-first; g.err != nil || fmt.Sprint(payloads(g.es)) != "[a]" {
		t.Fatalf("first GET: %q %v; want [a]", payloads(g.es), g.err)
	}
	w.beforeAdvance = nil
	if es, err := r.Get(context.Background(), "t", 1); err != nil || fmt.Sprint(payloads(es)) != "[b]" {
		t.Fatalf("GET after the withdrawn one: %q %v; want [b]", payloads(es), err)
	}
}

// TestGetExactlyOnceConcurrent: 16 GETs at a time, of random limits, drain a topic
// over local, owned and archived segments while another node's GETs race them on the
// cursor (every few advances, the cursor moves under the batch's compare-and-set).
// Every entry goes to exactly one GET, here or there, and none is skipped.
func TestGetExactlyOnceConcurrent(t *testing.T) {
	var all []string
	for i := range 600 {
		all = append(all, fmt.Sprint(i))
	}
	w := newWorld(
		seg{leader: self, payloads: all[:150]},
		seg{leader: 2, payloads: all[150:300]},
		seg{leader: 3, payloads: all[300:450], archived: true},
		seg{leader: self, payloads: all[450:]},
	)
	var mu sync.Mutex
	seen := map[string]int{}
	advances := 0
	w.beforeAdvance = func() {
		mu.Lock()
		defer mu.Unlock()
		if advances++; advances%3 == 0 && w.cursor() < uint64(len(all)) {
			seen[all[w.advanceBy()]]++ // a GET through another node won the race
		}
	}
	r := w.reader()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for {
				es, err := r.Get(context.Background(), "t", 1+rng.IntN(4))
				if err != nil {
					t.Errorf("GET: %v", err)
					return
				}
				if len(es) == 0 {
					return
				}
				mu.Lock()
				for _, e := range es {
					if string(e.Payload) != all[e.Offset] {
						t.Errorf("offset %d: payload %q, want %q", e.Offset, e.Payload, all[e.Offset])
					}
					seen[string(e.Payload)]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, p := range all {
		if seen[p] != 1 {
			t.Errorf("entry %s handed out %d times, want once", p, seen[p])
		}
	}
	if w.cursor() != uint64(len(all)) {
		t.Fatalf("cursor %d, want %d", w.cursor(), len(all))
	}
}

// TestGetBatchBound: a batch takes GETs in arrival order while their limits sum to at
// most wire.MaxReadMax (one read's most), and always at least one.
func TestGetBatchBound(t *testing.T) {
	g := cursorGets{topics: map[string][]*getWaiter{}}
	for _, n := range []int{6000, 4000, 1, wire.MaxReadMax, 5} {
		g.topics["t"] = append(g.topics["t"], &getWaiter{max: n})
	}
	var sums []int
	for b := g.next("t", nil); b != nil; b = g.next("t", nil) {
		sum := 0
		for _, w := range b {
			sum += w.max
		}
		sums = append(sums, sum)
	}
	if fmt.Sprint(sums) != "[10000 1 10000 5]" {
		t.Fatalf("batches of %v; want [10000 1 10000 5]", sums)
	}
	if _, ok := g.topics["t"]; ok {
		t.Fatal("the topic is still listed once its queue is empty")
	}
}

// TestGetGoroutinesEnd: a topic has a goroutine only while GETs of it wait: after
// GETs on 1000 topics, no topic is listed and the goroutines are gone.
func TestGetGoroutinesEnd(t *testing.T) {
	w := newWorld(seg{leader: self, payloads: []string{"a"}}, seg{leader: self})
	r := w.reader()
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.Get(context.Background(), fmt.Sprint("topic-", i), 1); !errors.Is(err, meta.ErrNoTopic) {
				t.Errorf("GET of topic-%d: %v; want meta.ErrNoTopic", i, err)
			}
		}()
	}
	wg.Wait()
	testenv.WaitFor(t, 10*time.Second, "no topic listed and the GET goroutines gone", func() bool {
		r.gets.mu.Lock()
		listed := len(r.gets.topics)
		r.gets.mu.Unlock()
		return listed == 0 && runtime.NumGoroutine() <= before
	})
}
