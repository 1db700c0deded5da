package read

import (
	"context"
	"errors"
	"fmt"

	"floe/meta"
	"floe/node/rpc"
)

// Get hands out the entry at the topic's shared cursor and moves the cursor past it,
// at most once across the cluster: the advance is a compare-and-set (From -> To)
// through Raft, and only the caller whose advance committed returns the entry. A lost
// race (meta.ErrCursorMoved) reads the new cursor and tries again; a retried advance
// whose first attempt committed gets that attempt's success from the Proposer (one
// request id), so the entry is returned, not skipped. ok is false when the cursor is
// at the end of the topic.
//
// A cursor in a segment retention expired has already been moved past it by the
// expiry; a cursor in a segment marked lost is moved past it here. Segments abandoned
// by recover-segment hold no offsets, so Read moves past them on its own.
func (r *Reader) Get(ctx context.Context, topic string) (payload []byte, ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	for {
		cur, err := r.cfg.Metadata.Cursor(ctx, topic)
		if err != nil {
			return nil, false, err
		}
		entries, _, err := r.Read(ctx, topic, cur, 1)
		if errors.Is(err, ErrExpired) && ctx.Err() == nil {
			if err := r.skipLost(ctx, topic, cur); err != nil {
				return nil, false, err
			}
			continue
		}
		if err != nil {
			return nil, false, err
		}
		if len(entries) == 0 {
			return nil, false, nil
		}
		err = r.cfg.Propose(ctx, &meta.Command{Op: meta.OpAdvanceCursor, Topic: topic, From: cur, To: cur + 1})
		if err == nil {
			return entries[0].Payload, true, nil
		}
		if !errors.Is(err, meta.ErrCursorMoved) {
			return nil, false, err
		}
		if ctx.Err() != nil {
			return nil, false, rpc.Unavailable(fmt.Sprintf("GET of %q", topic), ctx.Err())
		}
	}
}

// skipLost moves the cursor from cur past the segment holding it if floe restore
// --cluster marked that segment lost (it may sit after kept ones, where retention
// never moves the cursor). Anything else is left alone: Get reads the cursor again.
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
