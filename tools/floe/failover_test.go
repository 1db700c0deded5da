package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"floe/client"
)

// TestResilience: four writers, each appending unique payloads to its own topic (the
// topics' segments led by different nodes and rolling over every 200 entries), keep
// writing while the cluster loses a follower (kill -9) and later the Raft leader
// (kill -9), each restarted afterwards. Then every node is killed and restarted, and
// every topic is read in full.
//
// What may fail, and why (README, "Guarantees": a node that is down takes its active
// segments' writes down with it until it is back; a healthy cluster never returns an
// error because of its own routing, it retries internally during roll-overs and
// elections):
//   - an "ERR" reply only for a write whose topic's active segment is led by a node that
//     was down during that request;
//   - a broken connection only when the node the writer was connected to was down.
//
// A failed write's outcome is unknown to the client: its entry may or may not be in
// the log, but never twice. Every acknowledged entry must be there exactly once, and
// a writer's acknowledged entries appear in the order it wrote them.
func TestResilience(t *testing.T) {
	const (
		writers = 4
		segSize = 200
	)
	c := startCluster(t, clusterOpts{args: []string{"--max-segment-entries", strconv.Itoa(segSize)}})
	down := &downtime{}

	// Register through the Raft leader so that REGISTER's round-robin sees every topic
	// before it and spreads the first segments over all nodes.
	reg := c.conn(c.raftLeader())
	ws := make([]*resilWriter, writers)
	for k := range ws {
		ws[k] = &resilWriter{id: k, topic: fmt.Sprintf("resil-%d", k), node: k%3 + 1, c: c}
		mustOK(t, reg.Register(ws[k].topic), "REGISTER %s", ws[k].topic)
	}
	leaders := map[uint64]bool{}
	for _, w := range ws {
		c.waitTopic(w.topic)
		leaders[c.state(1, w.topic).LeaderNode] = true
	}
	if len(leaders) < 2 {
		t.Fatalf("the %d topics' first segments are all led by %v, want them spread", writers, leaders)
	}

	// On a failure (a wait that timed out, say), what each writer last saw.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, w := range ws {
			w.mu.Lock()
			failures := w.failures[max(0, len(w.failures)-3):]
			t.Logf("writer %d (%s, node %d): %d acknowledged, %d failed; the last failures: %v", w.id, w.topic, w.node,
				len(w.acked), len(w.failures), failures)
			w.mu.Unlock()
		}
		if l, ok := activeLeadersNow(c, ws); ok {
			t.Logf("active segment leaders by topic: %v", l)
		}
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(stop)
		}()
	}
	stopped := false
	stopWriters := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopWriters()

	// activeLeaders returns each topic's active segment leader as a live node sees it.
	activeLeaders := func() ([]int, bool) { return activeLeadersNow(c, ws) }
	// waitAcks waits until every writer in which(k) has n more acknowledgements than in
	// base, and at least one writer qualifies.
	waitAcks := func(what string, n int64, which func(k int) bool) {
		t.Helper()
		base := make([]int64, writers)
		for k, w := range ws {
			base[k] = w.acks.Load()
		}
		c.waitFor(60*time.Second, what, func() bool {
			qualified := 0
			for k, w := range ws {
				if !which(k) {
					continue
				}
				qualified++
				if w.acks.Load() < base[k]+n {
					return false
				}
			}
			return qualified > 0
		})
	}
	all := func(int) bool { return true }
	// notLedBy selects the writers whose topic's active segment is not on a dead node.
	notLedBy := func(dead int) func(int) bool {
		var cur []int
		var at time.Time
		return func(k int) bool {
			if time.Since(at) > 200*time.Millisecond || cur == nil {
				if l, ok := activeLeaders(); ok {
					cur, at = l, time.Now()
				} else if cur == nil {
					return false
				}
			}
			return cur[k] != dead
		}
	}
	// pickVictim waits until at most two topics have their active segment on one of the
	// candidates, and returns that candidate: some writers must be able to go on.
	pickVictim := func(candidates []int) int {
		t.Helper()
		victim := 0
		c.waitFor(30*time.Second, fmt.Sprintf("a node among %v leading at most 2 active segments", candidates), func() bool {
			l, ok := activeLeaders()
			if !ok {
				return false
			}
			for _, cand := range candidates {
				n := 0
				for _, id := range l {
					if id == cand {
						n++
					}
				}
				if n <= writers/2 {
					victim = cand
					return true
				}
			}
			return false
		})
		return victim
	}

	waitAcks("every writer to get 100 acknowledgements", 100, all)

	// 1. Lose a follower.
	raftLeader := c.raftLeader()
	var followers []int
	for id := 1; id <= 3; id++ {
		if id != raftLeader {
			followers = append(followers, id)
		}
	}
	f := pickVictim(followers)
	down.begin(f)
	c.kill(f)
	t.Logf("killed follower node %d (raft leader %d)", f, raftLeader)
	waitAcks(fmt.Sprintf("writers on topics not led by node %d to get 300 acknowledgements with it down", f), 300, notLedBy(f))
	c.start(f)
	down.end(f)
	c.waitMembers(3, 30*time.Second)
	waitAcks(fmt.Sprintf("every writer to get 100 acknowledgements after node %d restarted", f), 100, all)

	// 2. Lose the Raft leader.
	r := c.raftLeader()
	if r == 0 {
		t.Fatal("no raft leader")
	}
	r = pickVictim([]int{r})
	down.begin(r)
	c.kill(r)
	c.waitFor(30*time.Second, fmt.Sprintf("a new raft leader after node %d was killed", r), func() bool {
		l := c.raftLeader()
		return l != 0 && l != r
	})
	t.Logf("killed raft leader node %d; new leader %d", r, c.raftLeader())
	waitAcks(fmt.Sprintf("writers on topics not led by node %d to get 300 acknowledgements with it down", r), 300, notLedBy(r))
	c.start(r)
	down.end(r)
	c.waitMembers(3, 30*time.Second)
	waitAcks(fmt.Sprintf("every writer to get 100 acknowledgements after node %d restarted", r), 100, all)
	stopWriters()

	// 3. Restart everything, then read it all back.
	for id := 1; id <= 3; id++ {
		c.kill(id)
	}
	for id := 1; id <= 3; id++ {
		c.start(id)
	}
	c.waitMembers(3, 30*time.Second)

	for _, w := range ws {
		w.mu.Lock()
		failures, acked := append([]resilFailure(nil), w.failures...), append([]int(nil), w.acked...)
		w.mu.Unlock()
		t.Logf("writer %d (%s): %d acknowledged, %d failed", w.id, w.topic, len(acked), len(failures))
		var bad []string
		for _, fl := range failures {
			if !fl.allowed(down) {
				bad = append(bad, fmt.Sprintf("#%d: %s", fl.seq, fl))
			}
		}
		if len(bad) > 0 {
			t.Errorf("writer %d: %d writes failed while the node they needed was up, e.g.\n%s", w.id, len(bad), strings.Join(bad[:min(3, len(bad))], "\n"))
		}
		st := c.state(w.id%3+1, w.topic)
		t.Logf("writer %d (%s): %d segments", w.id, w.topic, len(st.Segments))
		checkWriterLog(t, w, c.readAll(w.id%3+1, w.topic), acked)
	}
}

// checkWriterLog checks a writer's topic: only its payloads, none twice, every
// acknowledged one present, acknowledged ones in the order they were written.
func checkWriterLog(t *testing.T, w *resilWriter, entries []client.Entry, acked []int) {
	t.Helper()
	offsetOf := map[int]uint64{}
	var dups []string
	for i, e := range entries {
		if e.Offset != uint64(i) {
			t.Fatalf("%s: entry %d has offset %d", w.topic, i, e.Offset)
		}
		seq, ok := w.parse(string(e.Payload))
		if !ok {
			t.Fatalf("%s: offset %d holds %q, not a payload of writer %d", w.topic, i, e.Payload, w.id)
		}
		if prev, dup := offsetOf[seq]; dup {
			dups = append(dups, fmt.Sprintf("%q at offsets %d and %d", e.Payload, prev, i))
			continue
		}
		offsetOf[seq] = uint64(i)
	}
	if len(dups) > 0 {
		t.Errorf("%s: %d payloads appear more than once, e.g. %v", w.topic, len(dups), dups[:min(5, len(dups))])
	}
	var missing []int
	var reordered []string
	last := int64(-1)
	for _, seq := range acked {
		off, ok := offsetOf[seq]
		if !ok {
			missing = append(missing, seq)
			continue
		}
		if int64(off) <= last {
			reordered = append(reordered, fmt.Sprintf("#%d at offset %d", seq, off))
		}
		last = int64(off)
	}
	if len(missing) > 0 {
		t.Errorf("%s: %d acknowledged entries are missing, e.g. writes %v", w.topic, len(missing), missing[:min(10, len(missing))])
	}
	if len(reordered) > 0 {
		t.Errorf("%s: %d acknowledged entries are before an entry acknowledged earlier, e.g. %v", w.topic, len(reordered), reordered[:min(5, len(reordered))])
	}
}

// resilWriter appends unique payloads "w<id>-<seq>" to its topic, one at a time,
// reconnecting to another node when its connection breaks.
type resilWriter struct {
	id    int
	topic string
	node  int // node it is connected to
	c     *cluster

	acks     atomic.Int64
	mu       sync.Mutex
	acked    []int // seqs in acknowledgement order
	failures []resilFailure
}

// resilFailure is one failed write.
type resilFailure struct {
	seq        int
	node       int // node the writer was connected to
	start, end time.Time
	err        error
	conn       bool // the connection broke (else the node replied ERR)
	leader     int  // for ERR: the topic's active segment leader right after (0: unknown)
}

func (f resilFailure) String() string {
	kind := "ERR reply"
	if f.conn {
		kind = "connection error"
	}
	return fmt.Sprintf("%s from node %d after %v (active segment leader then: node %d): %v",
		kind, f.node, f.end.Sub(f.start).Round(time.Millisecond), f.leader, f.err)
}

// allowed: a broken connection needs the node at the other end to have been down, an
// ERR reply needs the topic's active segment leader to have been down, during the write.
// (Only this writer writes to its topic, so the active segment cannot move between the
// failed write and the STATE that follows it.)
func (f resilFailure) allowed(d *downtime) bool {
	if f.conn {
		return d.wasDown(f.node, f.start, f.end)
	}
	return f.leader != 0 && d.wasDown(f.leader, f.start, f.end)
}

// activeLeadersNow returns each writer's topic's active segment leader as a live node
// sees it.
func activeLeadersNow(c *cluster, ws []*resilWriter) ([]int, bool) {
	via := c.anyRunning()
	out := make([]int, len(ws))
	for k, w := range ws {
		st, err := c.tryState(via, w.topic)
		if err != nil {
			return nil, false
		}
		out[k] = int(st.LeaderNode)
	}
	return out, true
}

func (w *resilWriter) payload(seq int) string { return fmt.Sprintf("w%d-%07d", w.id, seq) }

func (w *resilWriter) parse(p string) (int, bool) {
	rest, ok := strings.CutPrefix(p, fmt.Sprintf("w%d-", w.id))
	if !ok {
		return 0, false
	}
	seq, err := strconv.Atoi(rest)
	return seq, err == nil
}

func (w *resilWriter) run(stop <-chan struct{}) {
	var conn *client.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for seq := 0; ; {
		select {
		case <-stop:
			return
		default:
		}
		if conn == nil {
			var err error
			conn, err = w.c.dial(w.node, 30*time.Second)
			if err != nil {
				conn = nil
				w.node = w.node%3 + 1
				time.Sleep(20 * time.Millisecond) // poll interval while looking for a live node
				continue
			}
		}
		start := time.Now()
		err := conn.Put(w.topic, []byte(w.payload(seq)))
		end := time.Now()
		if err == nil {
			w.mu.Lock()
			w.acked = append(w.acked, seq)
			w.mu.Unlock()
			w.acks.Add(1)
			seq++
			continue
		}
		fl := resilFailure{seq: seq, node: w.node, start: start, end: end, err: err}
		var se *client.ServerError
		if errors.As(err, &se) {
			if st, serr := conn.State(w.topic); serr == nil {
				fl.leader = int(st.LeaderNode)
			}
		} else {
			fl.conn = true
			conn.Close()
			conn = nil
			w.node = w.node%3 + 1
		}
		w.mu.Lock()
		w.failures = append(w.failures, fl)
		w.mu.Unlock()
		seq++ // never resend a payload: a failed write may still have landed
	}
}

// downtime records when each node was down (from just before it was killed to just
// after its restart was serving).
type downtime struct {
	mu   sync.Mutex
	ints map[int][][2]time.Time
}

func (d *downtime) begin(id int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ints == nil {
		d.ints = map[int][][2]time.Time{}
	}
	d.ints[id] = append(d.ints[id], [2]time.Time{time.Now(), {}})
}

func (d *downtime) end(id int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	iv := d.ints[id]
	iv[len(iv)-1][1] = time.Now()
}

// wasDown reports whether node id was down at some moment of [from, to].
func (d *downtime) wasDown(id int, from, to time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, iv := range d.ints[id] {
		if !iv[0].After(to) && (iv[1].IsZero() || !iv[1].Before(from)) {
			return true
		}
	}
	return false
}
