package read

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"floe/meta"
	"floe/node/rpc"
	"floe/wire"
)

// Get takes up to limit entries (at least 1) from the topic's shared cursor, at most
// once across the cluster, and moves the cursor past them. It returns no entries when
// the cursor is at the end of the topic.
//
// GETs are group-committed: the GETs of one topic that wait together form one batch,
// which reads the cursor once, reads up to the sum of their limits from it, and
// proposes one cursor advance (a compare-and-set From -> To through Raft) for all of
// them; once it commits, the entries are handed out in the order the GETs arrived,
// each entry to one GET and at most its limit to each. While a batch's advance is in
// flight, the GETs that arrive wait for the next batch. A lost race
// (meta.ErrCursorMoved) reads the new cursor and tries again; a retried advance whose
// first attempt committed gets that attempt's success from the Proposer (one request
// id), so its entries are handed out, not skipped. Any other failure fails the
// batch's GETs (the entries of an advance that may have committed are then consumed:
// at most once).
//
// A GET whose ctx ends while it waits in the queue leaves it. Once a batch has taken
// it, it waits for the batch's outcome (bounded by RequestTimeout), so that the
// entries the batch hands it are never dropped here.
func (r *Reader) Get(ctx context.Context, topic string, limit int) ([]wire.Entry, error) {
	w := &getWaiter{max: min(wire.MaxReadMax, max(1, limit)), reply: make(chan getResult, 1)}
	r.gets.enqueue(r, topic, w)
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	select {
	case res := <-w.reply:
		return res.entries, res.err
	case <-ctx.Done():
	}
	if r.gets.withdraw(topic, w) {
		return nil, rpc.Unavailable(fmt.Sprintf("GET of %q", topic), ctx.Err())
	}
	res := <-w.reply
	return res.entries, res.err
}

// getWaiter is one GET waiting for its entries.
type getWaiter struct {
	max   int
	reply chan getResult // buffered: the batch never waits on it
}

type getResult struct {
	entries []wire.Entry
	err     error
}

// cursorGets holds the GETs waiting, per topic. A topic has a goroutine (serveGets)
// only while GETs of it wait or are being served: the first GET starts it, and it
// ends when it finds its queue empty, so idle topics cost nothing.
type cursorGets struct {
	mu     sync.Mutex
	topics map[string][]*getWaiter // topic -> GETs waiting for the next batch, in arrival order
}

// enqueue adds w to the topic's queue, starting the topic's goroutine if it has none.
func (g *cursorGets) enqueue(r *Reader, topic string, w *getWaiter) {
	g.mu.Lock()
	defer g.mu.Unlock()
	q, running := g.topics[topic]
	g.topics[topic] = append(q, w)
	if !running {
		go r.serveGets(topic)
	}
}

// withdraw takes w out of the topic's queue; false if a batch has taken it already.
func (g *cursorGets) withdraw(topic string, w *getWaiter) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	q := g.topics[topic]
	for i, x := range q {
		if x == w {
			g.topics[topic] = append(q[:i:i], q[i+1:]...)
			return true
		}
	}
	return false
}

// next takes the next batch from the topic's queue: GETs in arrival order while their
// max entries sum to at most wire.MaxReadMax (the most one read asks a peer for), and
// at least one. again, served by the previous batch without entries, go first. When
// nothing waits it removes the topic, ending its goroutine, and returns nil.
func (g *cursorGets) next(topic string, again []*getWaiter) []*getWaiter {
	g.mu.Lock()
	defer g.mu.Unlock()
	q := append(again, g.topics[topic]...)
	if len(q) == 0 {
		delete(g.topics, topic)
		return nil
	}
	n, sum := 1, q[0].max
	for n < len(q) && sum+q[n].max <= wire.MaxReadMax {
		sum += q[n].max
		n++
	}
	g.topics[topic] = q[n:len(q):len(q)]
	return q[:n:n]
}

// serveGets runs the topic's batches one after the other until no GET waits. One
// advance is in flight at a time: a second one, reading from where the first leaves
// the cursor, was tried and measured no faster on a 3-node cluster: the GETs spread
// over more, smaller advances, and the rate of the Raft log's fsyncs bounds both.
func (r *Reader) serveGets(topic string) {
	var again []*getWaiter
	for {
		batch := r.gets.next(topic, again)
		if batch == nil {
			return
		}
		again = r.serveBatch(topic, batch)
	}
}

// serveBatch takes entries for batch from the cursor in one advance and hands them
// out in order. The GETs left without an entry when the batch got some are returned,
// to go first in the next batch: the read may have stopped short of the topic's end
// (its byte budget, a segment it could not read past yet), so only a batch whose read
// found nothing at the cursor answers a GET with no entries.
func (r *Reader) serveBatch(topic string, batch []*getWaiter) (again []*getWaiter) {
	ctx, cancel := context.WithTimeout(r.cfg.Context, r.cfg.RequestTimeout)
	defer cancel()
	want := 0
	for _, w := range batch {
		want += w.max
	}
	entries, err := r.advance(ctx, topic, want)
	if err != nil || len(entries) == 0 {
		for _, w := range batch {
			w.reply <- getResult{err: err}
		}
		return nil
	}
	for _, w := range batch {
		if len(entries) == 0 {
			again = append(again, w)
			continue
		}
		n := min(w.max, len(entries))
		w.reply <- getResult{entries: entries[:n:n]}
		entries = entries[n:]
	}
	if r.cfg.GetBatches != nil {
		r.cfg.GetBatches.Observe(float64(len(batch) - len(again)))
	}
	return again
}

// advance reads up to max entries at the topic's cursor and moves the cursor past
// them through one compare-and-set, retried on meta.ErrCursorMoved until it commits.
// No entries: the cursor is at the end. A cursor in a segment retention expired has
// already been moved past it by the expiry; a cursor in a segment marked lost is moved
// past it here. Segments abandoned by recover-segment hold no offsets, so Read moves
// past them on its own.
func (r *Reader) advance(ctx context.Context, topic string, max int) ([]wire.Entry, error) {
	for {
		cur, err := r.cfg.Metadata.Cursor(ctx, topic)
		if err != nil {
			return nil, err
		}
		entries, _, err := r.Read(ctx, topic, cur, max)
		if errors.Is(err, ErrExpired) && ctx.Err() == nil {
			if err := r.skipLost(ctx, topic, cur); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(entries) == 0 {
			return nil, nil
		}
		to := entries[len(entries)-1].Offset + 1
		err = r.cfg.Propose(ctx, &meta.Command{Op: meta.OpAdvanceCursor, Topic: topic, From: cur, To: to})
		if err == nil {
			return entries, nil
		}
		if !errors.Is(err, meta.ErrCursorMoved) {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, rpc.Unavailable(fmt.Sprintf("GET of %q", topic), ctx.Err())
		}
	}
}

// skipLost moves the cursor from cur past the segment holding it if floe restore
// --cluster marked that segment lost (it may sit after kept ones, where retention
// never moves the cursor). Anything else is left alone: advance reads the cursor
// again.
func (r *Reader) skipLost(ctx context.Context, topic string, cur uint64) error {
	lost, err := r.cfg.Metadata.SegmentAt(ctx, topic, cur)
	if err != nil || !lost.Lost || cur < lost.Base || cur >= lost.End() {
		return nil
	}
	err = r.cfg.Propose(ctx, &meta.Command{Op: meta.OpAdvanceCursor, Topic: topic, From: cur, To: lost.End()})
	if err != nil && !errors.Is(err, meta.ErrCursorMoved) {
		return err
	}
	return nil
}
