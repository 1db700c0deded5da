package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"floe/meta"
	"floe/node/rpc"
	"floe/node/segment"
	"floe/topicname"
	"floe/wire"
)

// Read limits.
const (
	maxReadBytes = 16 << 20
)

// localSegment returns this node's copy of a segment, opening it from disk if needed,
// with a reference the caller must give back with n.store.Release; ErrSegmentNotFound
// if the node does not hold it. The segment stays open and readable until released.
func (n *Node) localSegment(topic string, s *meta.Segment) (*segment.Segment, error) {
	seg, err := n.store.Acquire(topic, s.ID, s.State != meta.Active)
	if errors.Is(err, segment.ErrClosed) {
		return nil, err
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: segment %d of %q", ErrSegmentNotFound, s.ID, topic)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: segment %d of %q: %v", ErrCorrupt, s.ID, topic, err)
	}
	return seg, nil
}

// readLocal reads entries of one segment from this node's disk.
func (n *Node) readLocal(topic string, s *meta.Segment, offset uint64, max, maxBytes int) ([]wire.Entry, error) {
	seg, err := n.localSegment(topic, s)
	if errors.Is(err, ErrSegmentNotFound) && s.State == meta.Active && s.Leader == n.cfg.NodeID {
		return nil, nil // our active segment, not created yet: empty
	}
	if err != nil {
		return nil, err
	}
	defer n.store.Release(seg)
	idx := offset - s.Base
	if s.State != meta.Active && idx >= s.Count {
		return nil, nil
	}
	if idx >= seg.Count() {
		if s.State != meta.Active {
			return nil, fmt.Errorf("%w: segment %d of %q holds %d entries on node %d, metadata says %d",
				ErrCorrupt, s.ID, topic, seg.Count(), n.cfg.NodeID, s.Count)
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
	out := make([]wire.Entry, len(payloads))
	for i, p := range payloads {
		out[i] = wire.Entry{Offset: offset + uint64(i), Payload: p}
	}
	return out, nil
}

// readSegment reads from one segment wherever it is (DESIGN section 6, read path):
// this node's disk, else the owning node if it is up and still has the segment, else
// the archive. Only a segment that is both unarchived and on a node that cannot be
// reached is unreadable, and the error says so.
func (n *Node) readSegment(ctx context.Context, topic string, s *meta.Segment, offset uint64, max, maxBytes int) ([]wire.Entry, error) {
	archived := s.ArchiveKey != ""
	if !s.LocalEvicted {
		entries, err := n.readLocal(topic, s, offset, max, maxBytes)
		switch {
		case err == nil:
			return entries, nil
		case errors.Is(err, ErrCorrupt) && archived:
			n.log.Error("local copy is corrupt; reading the archive", "topic", topic, "segment", s.ID, "err", err)
			return n.readArchive(ctx, topic, s, offset, max, maxBytes)
		case !errors.Is(err, ErrSegmentNotFound):
			return nil, err
		}
		if s.Leader != n.cfg.NodeID {
			entries, err := n.readOwner(topic, s, offset, max, maxBytes)
			if err == nil {
				return entries, nil
			}
			if !archived {
				return nil, fmt.Errorf("segment %d of %q is only on node %d (not archived yet): %w", s.ID, topic, s.Leader, err)
			}
			if !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrSegmentNotFound) {
				return nil, err
			}
		}
	}
	if !archived {
		return nil, fmt.Errorf("%w: segment %d of %q is on no node and not archived", ErrSegmentNotFound, s.ID, topic)
	}
	return n.readArchive(ctx, topic, s, offset, max, maxBytes)
}

// readOwner reads a segment from the node that led it. A node that failed recently is
// not asked again for a few seconds (reads go to the archive meanwhile).
func (n *Node) readOwner(topic string, s *meta.Segment, offset uint64, max, maxBytes int) ([]wire.Entry, error) {
	p, err := n.nodePeer(s.Leader)
	if err != nil {
		return nil, err
	}
	if p.RecentlyDown() && s.ArchiveKey != "" {
		return nil, fmt.Errorf("%w: node %d failed recently", ErrUnavailable, s.Leader)
	}
	var e rpc.Encoder
	e.Str(topic)
	e.U64(s.ID)
	e.U64(offset)
	e.U64(uint64(max))
	e.U64(uint64(maxBytes))
	body, err := p.Call(n.ctx, rpc.OpRead, e.B, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("cannot read segment %d of %q from node %d: %w", s.ID, topic, s.Leader, err)
	}
	d := rpc.NewDecoder(body)
	count := d.U64()
	if count > uint64(max) {
		return nil, fmt.Errorf("%w: node %d returned %d entries, asked %d", ErrUnavailable, s.Leader, count, max)
	}
	out := make([]wire.Entry, 0, count)
	for i := uint64(0); i < count; i++ {
		out = append(out, wire.Entry{Offset: offset + i, Payload: d.Bytes()})
	}
	if d.Err != nil {
		return nil, fmt.Errorf("%w: bad read reply from node %d", ErrUnavailable, s.Leader)
	}
	return out, nil
}

// Read returns up to max entries of topic from offset on (crossing segment boundaries),
// and the offset to continue from. An offset past the end returns no entries.
func (n *Node) Read(ctx context.Context, topic string, offset uint64, max int) ([]wire.Entry, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	var out []wire.Entry
	budget := maxReadBytes
	var lastErr error
	for attempt := 0; len(out) < max; {
		changed := n.fsm.Changed()
		seg, _, err := n.segmentAt(ctx, topic, offset, false)
		if err != nil {
			return nil, offset, err
		}
		s := &seg
		if s.State == meta.Expired {
			if len(out) > 0 {
				break
			}
			if s.Lost {
				return nil, offset, fmt.Errorf("%w: offsets [%d, %d) of %q (segment %d) were lost: no copy of them survived (floe restore --cluster); the next offset kept is %d",
					ErrExpired, s.Base, s.End(), topic, s.ID, s.End())
			}
			start := offset
			n.fsm.View(topic, func(t *meta.Topic) { start = t.StartOffset() })
			return nil, offset, fmt.Errorf("%w: offset %d of %q (segment %d) has expired by retention; the earliest offset kept is %d",
				ErrExpired, offset, topic, s.ID, start)
		}
		entries, err := n.readSegment(ctx, topic, s, offset, max-len(out), budget)
		if err != nil {
			if retryable(err) && len(out) == 0 {
				lastErr = err
				attempt++
				if berr := n.backoff(ctx, attempt, changed); berr != nil {
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

// Tail is Read that waits up to wait for at least one entry.
func (n *Node) Tail(ctx context.Context, topic string, offset uint64, max int, wait time.Duration) ([]wire.Entry, uint64, error) {
	deadline := time.Now().Add(wait)
	for {
		entries, next, err := n.Read(ctx, topic, offset, max)
		if err != nil || len(entries) > 0 || time.Now().After(deadline) {
			return entries, next, err
		}
		a := n.fsm.Changed() // metadata changes; appends elsewhere are polled below
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

// Get hands out the next entry of the topic's shared cursor, exactly once across the
// cluster: the cursor advance is a compare-and-set through Raft. ok is false when the
// cursor is at the end of the topic.
func (n *Node) Get(ctx context.Context, topic string) (payload []byte, ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		_, cur, err := n.segmentAt(ctx, topic, 0, true)
		if err != nil {
			return nil, false, err
		}
		entries, _, err := n.Read(ctx, topic, cur, 1)
		if errors.Is(err, ErrExpired) && ctx.Err() == nil {
			// Retention moved the cursor past what expired. Past a segment that
			// floe restore --cluster marked lost (after kept ones), GET moves it here.
			if lost, _, lerr := n.segmentAt(ctx, topic, cur, false); lerr == nil && lost.Lost && cur >= lost.Base && cur < lost.End() {
				_, err = n.propose(ctx, &meta.Command{Op: meta.OpAdvanceCursor, Topic: topic, From: cur, To: lost.End()})
				if err != nil && !errors.Is(err, meta.ErrCursorMoved) {
					return nil, false, err
				}
			}
			continue
		}
		if err != nil {
			return nil, false, err
		}
		if len(entries) == 0 {
			return nil, false, nil
		}
		_, err = n.propose(ctx, &meta.Command{Op: meta.OpAdvanceCursor, Topic: topic, From: cur, To: cur + 1})
		if err == nil {
			return entries[0].Payload, true, nil
		}
		if !errors.Is(err, meta.ErrCursorMoved) {
			return nil, false, err
		}
		if ctx.Err() != nil {
			return nil, false, fmt.Errorf("%w: GET of %q: %v", ErrUnavailable, topic, ctx.Err())
		}
	}
}

// Register creates the topic if it does not exist (idempotent). The first segment's
// leader is picked round-robin by the number of topics, so topics spread over nodes.
func (n *Node) Register(ctx context.Context, topic string, cfg *meta.TopicConfig) error {
	if err := topicname.Validate(topic); err != nil {
		return err
	}
	if cfg != nil {
		if err := cfg.Validate(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	if _, err := n.topic(ctx, topic); err == nil {
		return nil // exists (checked against the leader: the count below is fresh too)
	}
	members, err := n.raft.Members()
	leader := n.cfg.NodeID
	if err == nil && len(members) > 0 {
		var voters []uint64
		for _, m := range members {
			if m.Voter {
				voters = append(voters, m.ID)
			}
		}
		if len(voters) > 0 {
			leader = n.nextLeader(voters[len(n.fsm.TopicNames())%len(voters)] - 1)
		}
	}
	_, err = n.propose(ctx, &meta.Command{Op: meta.OpCreateTopic, Topic: topic, Leader: leader, Config: cfg})
	return err
}

// activeCount returns the durable entry count and bytes of a topic's active segment,
// and whether its leader has sealed it locally while the Seal command is not applied
// yet (the segment is then "sealing"): from this node's disk if it leads the segment,
// else from the leader.
func (n *Node) activeCount(topic string, s *meta.Segment) (count uint64, bytes int64, sealing bool, err error) {
	if s.Leader == n.cfg.NodeID {
		seg, err := n.localSegment(topic, s)
		if err != nil {
			return 0, 0, false, err
		}
		defer n.store.Release(seg)
		return seg.Count(), seg.Bytes(), seg.Sealed(), nil
	}
	p, err := n.nodePeer(s.Leader)
	if err != nil {
		return 0, 0, false, err
	}
	var e rpc.Encoder
	e.Str(topic)
	e.U64(s.ID)
	body, err := p.Call(n.ctx, rpc.OpCount, e.B, time.Second)
	if err != nil {
		return 0, 0, false, err
	}
	d := rpc.NewDecoder(body)
	c, b, sealed := d.U64(), d.U64(), d.U64()
	return c, int64(b), sealed == 1, d.Err
}

// join adds a node as a voter: here if this node is the Raft leader, else through it.
func (n *Node) join(id uint64, addr string) error {
	for attempt := 0; attempt < 20; attempt++ {
		if n.raft.IsLeader() {
			err := n.raft.AddVoter(id, addr, 10*time.Second)
			if err == nil {
				n.log.Info("added voter", "id", id, "addr", addr)
				return nil
			}
			if !errors.Is(err, meta.ErrNotRaftLeader) {
				return err
			}
		} else if _, leaderAddr := n.raft.Leader(); leaderAddr != "" && leaderAddr != n.advertise {
			_, err := n.peers.Get(leaderAddr).Call(n.ctx, rpc.OpJoin, encodeJoin(id, addr), 20*time.Second)
			if err == nil || !retryable(err) {
				return err
			}
		}
		if err := n.backoff(n.ctx, attempt+2, nil); err != nil {
			return err
		}
	}
	return fmt.Errorf("%w: no raft leader to add node %d", ErrUnavailable, id)
}

// RemoveMember removes a member from the Raft configuration and the metadata. It must
// run on the Raft leader (ErrNotSegmentLeader otherwise: ask the leader). Segments the member
// leads keep their leader; their active segments take no writes until it returns.
func (n *Node) RemoveMember(ctx context.Context, id uint64) error {
	if id == n.cfg.NodeID {
		return fmt.Errorf("%w: a node cannot remove itself; transfer leadership first", ErrBadRequest)
	}
	if err := n.raft.RemoveServer(id, 10*time.Second); err != nil {
		return err
	}
	_, err := n.propose(ctx, &meta.Command{Op: meta.OpRemoveNode, Node: &meta.NodeInfo{ID: id}})
	return err
}

// peerSegment looks up a segment another node asks about. The asker learned of it from
// the metadata, so if this node does not know it yet, its own metadata lags (it may have
// just restarted and not replayed the raft log): it catches up once before answering
// that it does not hold the segment.
func (n *Node) peerSegment(topic string, id uint64) (meta.Segment, bool) {
	if s, ok := n.fsm.SegmentOf(topic, id); ok {
		return s, true
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
	defer cancel()
	if err := n.syncMeta(ctx); err != nil {
		return meta.Segment{}, false
	}
	return n.fsm.SegmentOf(topic, id)
}
