package write

import (
	"context"
	"errors"
	"fmt"

	"floe/node/rpc"
)

// route is where an append goes: the node leading the topic's active segment.
type route struct {
	node    uint64
	segment uint64
}

// routeFor returns the route of an append to topic; pin forces the node (a retry after
// an ambiguous failure must ask the same node).
func (w *Writer) routeFor(ctx context.Context, topic string, pin uint64) (route, error) {
	act, err := w.cfg.Metadata.ActiveSegment(ctx, topic)
	if err != nil {
		return route{}, err
	}
	r := route{node: act.Leader, segment: act.ID}
	if pin != 0 {
		r.node = pin
	}
	return r, nil
}

// dispatch sends one append along rt: to this node's appender, or forwarded over RPC.
// It is synchronous up to the hand-off, so calls made in order from one goroutine
// reach the log in order; done runs exactly once, possibly before dispatch returns.
func (w *Writer) dispatch(topic string, rt route, payloads [][]byte, tag Tag, done func(Result)) {
	if rt.node == w.cfg.NodeID {
		// A local hand-off cannot be lost, so it is never retried ambiguously and needs
		// no id (ids cost memory in the appender's window).
		tag.ID = 0
		w.Appender(topic).Enqueue(&Request{Payloads: payloads, Bytes: storedBytes(payloads), Segment: rt.segment, Tag: tag, Done: done})
		return
	}
	w.forward(topic, rt, payloads, tag, done)
}

// forward sends one append to the segment leader rt.node; its reply (or the lack of
// one within the request timeout) is handed to done on the connection's reader, no
// goroutine waiting for it. A failure is ambiguous (the append may have been written
// there) unless the request never left this node or the leader answered with an
// error of its own.
func (w *Writer) forward(topic string, rt route, payloads [][]byte, tag Tag, done func(Result)) {
	p, err := w.cfg.Peers.Peer(rt.node)
	if err != nil {
		done(Result{Err: err, Node: rt.node})
		return
	}
	a := rpc.Append{Topic: topic, Segment: rt.segment, ID: tag.ID, Stream: tag.Stream, Seq: tag.Seq,
		Boot: tag.Boot, Base: tag.Base, Payloads: payloads}
	_, err = p.SendFunc(rpc.OpAppend, a.Encode(), w.cfg.RequestTimeout, func(r rpc.Reply) {
		if r.Err != nil {
			if rpc.IsRemote(r.Err) {
				done(Result{Err: r.Err, Node: rt.node})
				return
			}
			// No answer from the node (as opposed to an error it sent): the append may
			// or may not have been written there.
			done(Result{Err: rpc.Unavailable(fmt.Sprintf("node %d", rt.node), r.Err), Node: rt.node, Ambiguous: true, Boot: r.Boot})
			return
		}
		d := rpc.NewDecoder(r.Body)
		res := Result{First: d.U64(), Segment: d.U64(), Node: rt.node}
		if d.Err != nil {
			res = Result{Err: rpc.Unavailable(fmt.Sprintf("bad append reply from node %d", rt.node), nil), Node: rt.node, Ambiguous: true, Boot: r.Boot}
		}
		w.cfg.Metrics.Forwarded()
		done(res)
	})
	if err != nil {
		// The peer knows only its address: name the node too.
		done(Result{Err: rpc.Unavailable(fmt.Sprintf("node %d", rt.node), err), Node: rt.node, Ambiguous: !errors.Is(err, rpc.ErrNotSent)})
	}
}

// EncodeReply is the body of the answer to a forwarded append that succeeded.
func EncodeReply(r Result) []byte {
	var e rpc.Encoder
	e.U64(r.First)
	e.U64(r.Segment)
	return e.B
}

// Append appends payloads to topic as one contiguous run and returns the offset of
// the first, once it is fsynced on the segment leader. Routing errors (roll-over,
// leader change, election) are retried until the request timeout, without
// duplicates: see retry.
func (w *Writer) Append(ctx context.Context, topic string, payloads [][]byte) (uint64, error) {
	return w.retry(ctx, topic, payloads, Tag{ID: w.NewRequestID()}, 0, nil)
}

// retry appends with retries, within one request timeout. After an ambiguous failure
// (the request may have been written) it asks the same node again with the same id,
// until that node answers: with the original outcome (it remembers recent ids), or
// with rpc.ErrNotSegmentLeader, which proves it never wrote the request; only then does
// it follow the new route. So a retry never duplicates an entry, except across a
// restart of the segment leader (which forgets its ids and answers
// rpc.ErrOutcomeUnknown when the retry names its old boot id): at-least-once there.
// prior is the failure of an attempt made before the call (nil if none): the error
// names it when the deadline passes before another attempt fails.
func (w *Writer) retry(ctx context.Context, topic string, payloads [][]byte, tag Tag, pin uint64, prior error) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.RequestTimeout)
	defer cancel()
	lastErr := prior
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			// Never hand off an append whose caller has given up: its outcome would
			// be unknown.
			if lastErr == nil {
				return 0, rpc.Unavailable(fmt.Sprintf("append to %q not sent", topic), ctx.Err())
			}
			return 0, rpc.Unavailable(fmt.Sprintf("append to %q not sent again within the request timeout", topic), lastErr)
		}
		changed := w.cfg.Metadata.Changed()
		rt, err := w.routeFor(ctx, topic, pin)
		var r Result
		if err != nil {
			r.Err = err
		} else {
			ch := make(chan Result, 1)
			w.dispatch(topic, rt, payloads, tag, func(r Result) { ch <- r })
			select {
			case r = <-ch:
			case <-ctx.Done():
				if lastErr == nil {
					return 0, rpc.Unavailable(fmt.Sprintf("append to %q", topic), ctx.Err())
				}
				return 0, rpc.Unavailable(fmt.Sprintf("append to %q unanswered within the request timeout after a failed attempt", topic), lastErr)
			}
		}
		if r.Err == nil {
			return r.First, nil
		}
		if !Retryable(r.Err) {
			return 0, r.Err
		}
		switch {
		case r.Ambiguous:
			pin = r.Node
			if tag.Boot == 0 {
				tag.Boot = r.Boot
			}
		case pin != 0 && errors.Is(r.Err, rpc.ErrNotSegmentLeader):
			pin = 0 // the pinned node never wrote it: route afresh
		}
		lastErr = r.Err
		if err := w.cfg.Backoff(ctx, attempt, changed); err != nil {
			if pin != 0 {
				return 0, rpc.Unavailable(fmt.Sprintf("append to %q: outcome unknown at node %d", topic, pin), lastErr)
			}
			return 0, fmt.Errorf("append to %q gave up: %w", topic, lastErr)
		}
	}
}
