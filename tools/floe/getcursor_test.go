package main

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"floe/client"
)

// TestSharedCursorManyConsumers: 16 consumers, spread over the Raft leader and the
// followers, some with plain GET and some with GET <topic> <max>, drain a topic
// through the shared cursor.
//
// First with no leader change: every entry is received exactly once, and each
// consumer receives its entries in offset order. Then while a writer keeps appending,
// the Raft leader is killed (kill -9) in the middle: consumers on it reconnect to
// another node, the others' GETs are retried by their node at the new leader. No entry
// is received twice. Entries may be lost only in the at-most-once edge (README,
// "Shared cursor"): a GET in flight when the leader died whose advance committed but
// whose reply was lost. Each consumer has one GET in flight at a time, so at most one
// GET's worth per consumer is lost.
func TestSharedCursorManyConsumers(t *testing.T) {
	c := startCluster(t, clusterOpts{})
	raftLeader := c.raftLeader()
	segLeader := raftLeader%3 + 1
	// The topic's entries live on a node that stays up, so killing the Raft leader
	// takes only the cursor's server away, never the entries.
	topic := c.topicLedBy(segLeader, "cursor", segLeader)
	w := &cursorWriter{c: c, node: segLeader, topic: topic}
	term := c.metrics(segLeader).CurrentTerm

	w.write(t, 1500)
	w.finish()
	cs := startConsumers(c, topic, w)
	if err := waitConsumers(cs); err != nil {
		t.Fatal(err)
	}
	sameTerm := c.metrics(segLeader).CurrentTerm == term
	lost := checkConsumers(t, c, topic, cs, 0)
	if lost != 0 && sameTerm {
		t.Fatalf("%d entries were never received, with no leader change", lost)
	}

	// Then the Raft leader dies in the middle of a run.
	w.reset()
	cs = startConsumers(c, topic, w)
	writerDone := make(chan error, 1)
	go func() { writerDone <- w.writeFor(3000) }()
	c.waitFor(60*time.Second, "a third of the entries written", func() bool { return w.written.Load() >= 1000 })
	c.kill(raftLeader)
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	w.finish()
	if err := waitConsumers(cs); err != nil {
		t.Fatal(err)
	}
	bound := 0
	for _, k := range cs {
		bound += max(k.limit, 1)
	}
	lost = checkConsumers(t, c, topic, cs, w.first)
	t.Logf("Raft leader (node %d) killed: %d of the entries written lost in flight (at most %d may be)", raftLeader, lost, bound)
	if lost > bound {
		t.Fatalf("%d entries were never received; at most %d (one GET in flight per consumer) may be lost to the leader kill", lost, bound)
	}
}

// cursorWriter appends unique payloads to a topic through its segment leader.
type cursorWriter struct {
	c       *cluster
	node    int
	topic   string
	seq     int          // payloads are "e-<seq>", never reused, even after a failed PUT
	first   uint64       // the offset this round starts at (reset)
	written atomic.Int64 // entries acknowledged this round
	done    atomic.Bool  // no more entries this round
}

// write appends n entries and fails the test on any error.
func (w *cursorWriter) write(t *testing.T, n int) {
	t.Helper()
	if err := w.writeFor(n); err != nil {
		t.Fatal(err)
	}
}

// writeFor appends n entries in batches of 20. A failed batch (its outcome unknown)
// is not repeated: the topic's READ is the truth of what was written.
func (w *cursorWriter) writeFor(n int) error {
	conn, err := w.c.dial(w.node, 20*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	failures := 0
	for w.written.Load() < int64(n) {
		var batch [][]byte
		for range 20 {
			batch = append(batch, fmt.Appendf(nil, "e-%d", w.seq))
			w.seq++
		}
		if _, err := conn.PutBatch(w.topic, batch); err != nil {
			if failures++; failures > 20 {
				return fmt.Errorf("PUTBATCH through node %d: %v", w.node, err)
			}
			continue
		}
		w.written.Add(int64(len(batch)))
	}
	return nil
}

func (w *cursorWriter) finish() { w.done.Store(true) }

// reset starts a new round at the topic's current end.
func (w *cursorWriter) reset() {
	st, err := w.c.tryState(w.node, w.topic)
	if err != nil {
		w.c.t.Fatal(err)
	}
	if st.EndOffset == nil {
		w.c.t.Fatalf("STATE %s through node %d has no end_offset", w.topic, w.node)
	}
	w.first = *st.EndOffset
	w.written.Store(0)
	w.done.Store(false)
}

// cursorConsumer takes entries from the shared cursor through one node at a time.
type cursorConsumer struct {
	id, node int
	limit    int // 0: plain GET; else GET <topic> <limit>
	got      []string
	err      error
	done     chan struct{}
}

// startConsumers starts 16 consumers over the three nodes: every other one uses GET
// <topic> <max> with max 2 to 5.
func startConsumers(c *cluster, topic string, w *cursorWriter) []*cursorConsumer {
	var cs []*cursorConsumer
	for i := range 16 {
		k := &cursorConsumer{id: i, node: i%3 + 1, done: make(chan struct{})}
		if i%2 == 1 {
			k.limit = 2 + i%4
		}
		cs = append(cs, k)
		go func() {
			defer close(k.done)
			k.err = k.run(c, topic, w)
		}()
	}
	return cs
}

// run GETs until the writer has finished and the cursor is at the end. A broken
// connection moves it to the next node; an error reply is retried. It gives up after
// 60 s without an entry.
func (k *cursorConsumer) run(c *cluster, topic string, w *cursorWriter) error {
	var conn *client.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	progress := time.Now()
	for time.Since(progress) < 60*time.Second {
		if conn == nil {
			var err error
			if conn, err = c.dial(k.node, 20*time.Second); err != nil {
				k.node = k.node%3 + 1
				continue
			}
		}
		finished := w.done.Load() // read before the GET: an EMPTY after it is the end
		got, err := k.get(conn, topic)
		var serr *client.ServerError
		switch {
		case errors.As(err, &serr):
			continue
		case err != nil:
			conn.Close()
			conn, k.node = nil, k.node%3+1
			continue
		case len(got) > 0:
			k.got = append(k.got, got...)
			progress = time.Now()
		case finished:
			return nil
		default:
			waitMore(w, w.written.Load())
		}
	}
	return fmt.Errorf("consumer %d: no entry for 60s and not at the end", k.id)
}

// waitMore waits, for at most a second, until more than seen entries are written or
// the writer has finished.
func waitMore(w *cursorWriter, seen int64) {
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		if w.written.Load() > seen || w.done.Load() {
			return
		}
		time.Sleep(2 * time.Millisecond) // polling the writer's counter, with a deadline
	}
}

// get takes entries with the consumer's kind of GET.
func (k *cursorConsumer) get(conn *client.Conn, topic string) ([]string, error) {
	if k.limit == 0 {
		p, ok, err := conn.Get(topic)
		if err != nil || !ok {
			return nil, err
		}
		return []string{string(p)}, nil
	}
	es, err := conn.GetBatch(topic, k.limit)
	if err != nil {
		return nil, err
	}
	if len(es) > k.limit {
		return nil, fmt.Errorf("GET %s %d returned %d entries", topic, k.limit, len(es))
	}
	var out []string
	for _, e := range es {
		out = append(out, string(e.Payload))
	}
	return out, nil
}

func waitConsumers(cs []*cursorConsumer) error {
	var errs []error
	for _, k := range cs {
		<-k.done
		errs = append(errs, k.err)
	}
	return errors.Join(errs...)
}

// checkConsumers checks the consumers' entries against the topic from offset first
// on: none received twice or that is not there, each consumer's in offset order. It
// returns how many entries no consumer received.
func checkConsumers(t *testing.T, c *cluster, topic string, cs []*cursorConsumer, first uint64) int {
	t.Helper()
	offsets := map[string]uint64{}
	for _, e := range c.readAll(c.anyRunning(), topic) {
		if e.Offset >= first {
			offsets[string(e.Payload)] = e.Offset
		}
	}
	seen := map[string]int{}
	for _, k := range cs {
		prev := int64(-1)
		for _, p := range k.got {
			off, ok := offsets[p]
			if !ok {
				t.Fatalf("consumer %d received %q, which is not in the topic from offset %d", k.id, p, first)
			}
			if int64(off) <= prev {
				t.Fatalf("consumer %d received offset %d after %d", k.id, off, prev)
			}
			prev = int64(off)
			seen[p]++
		}
	}
	lost := 0
	for p := range offsets {
		switch seen[p] {
		case 0:
			lost++
		case 1:
		default:
			t.Fatalf("entry %q (offset %d) received %d times", p, offsets[p], seen[p])
		}
	}
	return lost
}
