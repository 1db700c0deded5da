package node

import (
	"context"
	"fmt"
	"time"

	"floe/meta"
	"floe/node/read"
	"floe/node/rpc"
	"floe/node/segment"
)

// newReader composes the read path (package node/read) over this node: its metadata,
// its segment files, its peers and the archive.
func (n *Node) newReader() *read.Reader {
	return read.New(read.Config{
		NodeID:   n.cfg.NodeID,
		Metadata: readMetadata{n},
		Local:    localFiles{n},
		Owner:    peerReads{n},
		Archive:  archiveReads{n},
		Propose: func(ctx context.Context, c *meta.Command) error {
			_, err := n.propose(ctx, c)
			return err
		},
		RequestTimeout: n.cfg.RequestTimeout,
		Context:        n.ctx,
		Retryable:      retryable,
		Backoff:        n.backoff,
		ArchiveReads:   n.metrics.remoteReads,
		GetBatches:     n.metrics.getBatches,
		Logger:         n.log,
	})
}

// readMetadata is read.Metadata over the node's FSM, with topic's catch-up rule
// (segmentAt, activeSegment).
type readMetadata struct{ n *Node }

func (m readMetadata) SegmentAt(ctx context.Context, topic string, offset uint64) (meta.Segment, error) {
	s, _, err := m.n.segmentAt(ctx, topic, offset)
	return s, err
}

func (m readMetadata) Cursor(ctx context.Context, topic string) (uint64, error) {
	_, cursor, err := m.n.activeSegment(ctx, topic)
	return cursor, err
}

func (m readMetadata) StartOffset(topic string) uint64 {
	var start uint64
	m.n.fsm.View(topic, func(t *meta.Topic) { start = t.StartOffset() })
	return start
}

func (m readMetadata) Changed() <-chan struct{} { return m.n.fsm.Changed() }

// localFiles is read.Local over the node's segment store.
type localFiles struct{ n *Node }

func (l localFiles) Open(topic string, s *meta.Segment) (read.Segment, func(), error) {
	if s.State == meta.Active && s.Leader == l.n.cfg.NodeID {
		// Not an empty segment: one whose entries are elsewhere (lost.go).
		if err := l.n.lostSegment(topic, s); err != nil {
			return nil, nil, err
		}
	}
	seg, err := l.n.localSegment(topic, s)
	if err != nil {
		return nil, nil, err
	}
	release := func() { l.n.store.Release(seg) }
	if s.State == meta.Active && len(s.Replicas) > 1 {
		// Readers see what a majority of the replicas holds, never what only this
		// node's disk has (node/write, "Replication of an active segment").
		committed, _ := l.n.writer.Committed(topic, s.ID)
		return committedView{seg, committed}, release, nil
	}
	return seg, release, nil
}

func (l localFiles) OpenCopy(topic string, s *meta.Segment) (read.Segment, func(), error) {
	return l.n.openCopy(topic, s)
}

// committedView is an active replicated segment as readers see it: its first
// committed entries.
type committedView struct {
	seg       read.Segment
	committed uint64
}

func (v committedView) Count() uint64 { return min(v.seg.Count(), v.committed) }

func (v committedView) Read(index uint64, max, maxBytes int) ([][]byte, error) {
	if index >= v.Count() {
		return nil, fmt.Errorf("index %d of a segment with %d committed entries: %w", index, v.committed, segment.ErrOutOfRange)
	}
	return v.seg.Read(index, int(min(uint64(max), v.Count()-index)), maxBytes)
}

// peerReads is read.Owner over the node-to-node RPC (opRead, answered by the owner's
// Reader.ReadLocal, or, for ReadCopy, its Reader.ReadCopy).
type peerReads struct{ n *Node }

func (p peerReads) ReadOwner(ctx context.Context, node uint64, topic string, id, offset uint64, max, maxBytes int, timeout time.Duration) ([][]byte, error) {
	return p.read(ctx, node, topic, id, offset, max, maxBytes, timeout, false)
}

func (p peerReads) ReadCopy(ctx context.Context, node uint64, topic string, id, offset uint64, max, maxBytes int, timeout time.Duration) ([][]byte, error) {
	return p.read(ctx, node, topic, id, offset, max, maxBytes, timeout, true)
}

// read asks node for entries of segment id: of its copy as readers may see it when
// fromCopy is set (a trailing flag an older node ignores: it then answers from its own
// segment only).
func (p peerReads) read(ctx context.Context, node uint64, topic string, id, offset uint64, max, maxBytes int, timeout time.Duration, fromCopy bool) ([][]byte, error) {
	peer, err := p.n.nodePeer(node)
	if err != nil {
		return nil, err
	}
	var e rpc.Encoder
	e.Str(topic)
	e.U64(id)
	e.U64(offset)
	e.U64(uint64(max))
	e.U64(uint64(maxBytes))
	if fromCopy {
		e.Bool(true)
	}
	body, err := peer.Call(ctx, rpc.OpRead, e.B, timeout)
	if err != nil {
		return nil, err
	}
	d := rpc.NewDecoder(body)
	var out [][]byte
	for i, count := uint64(0), d.U64(); i < count && d.Err == nil; i++ {
		out = append(out, d.Bytes())
	}
	if d.Err != nil {
		return nil, rpc.Unavailable(fmt.Sprintf("bad read reply from node %d", node), nil)
	}
	return out, nil
}

func (p peerReads) RecentlyDown(node uint64) bool {
	peer, err := p.n.nodePeer(node)
	return err == nil && peer.RecentlyDown()
}

// archiveReads is read.Archive over the remote tier (read.ErrNoArchive without
// --archive).
type archiveReads struct{ n *Node }

func (a archiveReads) Read(ctx context.Context, key string, size int64, offset uint64, max int) ([][]byte, error) {
	if a.n.remote == nil {
		return nil, read.ErrNoArchive
	}
	return a.n.remote.Read(ctx, key, size, offset, max)
}
