package node

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"

	"floe/meta"
	"floe/node/read"
	"floe/node/segment"
)

// TestReadLocalManySegmentsManyReaders: 100 readers, each reading random sealed
// segments out of 2000 small ones through the node's local read path, far more
// segments than the node keeps open. Every read returns its segment's entries:
// the node closing idle segments to stay within its bound never fails a read.
func TestReadLocalManySegmentsManyReaders(t *testing.T) {
	const (
		topic    = "many"
		segments = 2000
		perSeg   = 10
		readers  = 100
		reads    = 200 // per reader
	)
	n := newTestNode(t)
	metas := make([]meta.Segment, segments)
	for i := range metas {
		id := uint64(i + 1)
		seg, err := n.store.Create(topic, id)
		mustNil(t, err)
		for j := 0; j < perSeg; j++ {
			_, err := seg.Append([]byte(fmt.Sprintf("%d/%d", id, j)))
			mustNil(t, err)
		}
		count, bytes, crc, err := seg.Seal()
		mustNil(t, err)
		metas[i] = meta.Segment{ID: id, Leader: n.cfg.NodeID, Base: uint64(i * perSeg), State: meta.Sealed, Count: count, Bytes: bytes, CRC: crc}
		releaseAfterWrite(n, topic, seg)
	}

	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			for k := 0; k < reads; k++ {
				s := metas[rng.IntN(segments)]
				at := rng.IntN(perSeg)
				entries, err := n.reader.ReadLocal(topic, &s, s.Base+uint64(at), perSeg, read.MaxBytes)
				if err != nil {
					errs <- fmt.Errorf("reader %d: read %d of segment %d at %d: %v", r, k, s.ID, at, err)
					return
				}
				if len(entries) != perSeg-at {
					errs <- fmt.Errorf("reader %d: segment %d at %d: %d entries, want %d", r, s.ID, at, len(entries), perSeg-at)
					return
				}
				for i, e := range entries {
					want := fmt.Sprintf("%d/%d", s.ID, at+i)
					if e.Offset != s.Base+uint64(at+i) || string(e.Payload) != want {
						errs <- fmt.Errorf("reader %d: segment %d entry %d = %d %q, want %d %q", r, s.ID, i, e.Offset, e.Payload, s.Base+uint64(at+i), want)
						return
					}
				}
			}
		}(r)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if idle, open := n.store.OpenIdle(); idle > segment.DefaultMaxIdleSealed || open != idle {
		t.Errorf("after the readers: %d idle sealed segments open, %d in all; want at most %d, all idle",
			idle, open, segment.DefaultMaxIdleSealed)
	}
}

func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newTestNode returns a node with only a segment store and a reader of its files,
// enough for the local read path.
func newTestNode(t *testing.T) *Node {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := segment.OpenStore(t.TempDir(), segment.Options{Logger: log, NoSync: true})
	mustNil(t, err)
	t.Cleanup(func() { store.Close() })
	n := &Node{cfg: Config{NodeID: 1}, log: log, store: store}
	n.reader = read.New(read.Config{NodeID: 1, Local: localFiles{n}, Logger: log})
	return n
}

// releaseAfterWrite gives back the appender's reference to a just-sealed segment, as
// the appender does after a roll-over.
func releaseAfterWrite(n *Node, topic string, seg *segment.Segment) { n.store.Release(seg) }
