package tiering

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"floe/archive"
	"floe/archive/mem"
	"floe/archive/miniotest"
	"floe/archive/seekable"
	"floe/internal/testenv"
	"floe/meta"
	"floe/record"
)

// cluster is a one-node stand-in for the metadata layer: commands are applied to a real
// FSM in order, as Raft would.
type cluster struct {
	mu    sync.Mutex
	fsm   *meta.FSM
	index uint64
}

func newCluster() *cluster { return &cluster{fsm: meta.NewFSM()} }

func (c *cluster) propose(_ context.Context, cmd *meta.Command) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.index++
	res := c.fsm.Apply(&raft.Log{Index: c.index, Type: raft.LogCommand, Data: cmd.Encode()}).(*meta.Result)
	return res.Err
}

// local is an in-memory tiering.Local holding sealed segments' records.
type local struct {
	mu    sync.Mutex
	segs  map[string][][]byte
	scans atomic.Int64
}

func segKey(topic string, id uint64) string { return fmt.Sprintf("%s/%d", topic, id) }

func (l *local) ScanSegment(topic string, id uint64, fn func([]byte) error) error {
	l.scans.Add(1)
	l.mu.Lock()
	recs, ok := l.segs[segKey(topic, id)]
	l.mu.Unlock()
	if !ok {
		return errors.New("no such local segment")
	}
	for _, r := range recs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (l *local) RemoveLocal(topic string, id uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.segs, segKey(topic, id))
	return nil
}

func (l *local) HasLocal(topic string, id uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.segs[segKey(topic, id)]
	return ok
}

// sealSegment appends n records to the topic's active segment (in l) and seals it
// through c, exactly as a node's appender would.
func sealSegment(t *testing.T, c *cluster, l *local, topic string, n int, size int) [][]byte {
	t.Helper()
	top, ok := c.fsm.Topic(topic)
	if !ok {
		if err := c.propose(context.Background(), &meta.Command{Op: meta.OpCreateTopic, Topic: topic, Leader: 1}); err != nil {
			t.Fatal(err)
		}
		top, _ = c.fsm.Topic(topic)
	}
	act := top.Active()
	var recs [][]byte
	var raw []byte
	for i := 0; i < n; i++ {
		p := bytes.Repeat([]byte{byte('a' + (int(act.Base)+i)%26)}, size)
		p = append(p, fmt.Sprintf(`{"offset":%d}`, int(act.Base)+i)...)
		recs = append(recs, p)
		raw = record.Append(raw, p)
	}
	l.mu.Lock()
	if l.segs == nil {
		l.segs = map[string][][]byte{}
	}
	l.segs[segKey(topic, act.ID)] = recs
	l.mu.Unlock()
	err := c.propose(context.Background(), &meta.Command{
		Op: meta.OpSeal, Topic: topic, Segment: act.ID, Count: uint64(n), Bytes: int64(len(raw)),
		CRC: crc32.Checksum(raw, crc32.MakeTable(crc32.Castagnoli)), NextLeader: 1, UnixMS: time.Now().UnixMilli(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// flakyBucket fails every Put while down is set, every ranged read while getDown is
// set, and counts ranged reads.
type flakyBucket struct {
	archive.Bucket
	down       atomic.Bool
	getDown    atomic.Bool
	gate       chan struct{} // if set, ranged reads wait for it to close
	puts       atomic.Int64
	ranges     atomic.Int64
	rangeBytes atomic.Int64
}

func (b *flakyBucket) Put(ctx context.Context, key string, r io.Reader, size int64, o archive.PutOptions) error {
	b.puts.Add(1)
	if b.down.Load() {
		return errors.New("connection refused (test)")
	}
	return b.Bucket.Put(ctx, key, r, size, o)
}

func (b *flakyBucket) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	b.ranges.Add(1)
	b.rangeBytes.Add(n)
	if b.getDown.Load() {
		return nil, errors.New("connection refused (test)")
	}
	if b.gate != nil {
		<-b.gate
	}
	return b.Bucket.GetRange(ctx, key, off, n)
}

func startUploader(t *testing.T, c *cluster, l *local, b archive.Bucket) *Uploader {
	t.Helper()
	u := NewUploader(UploaderConfig{
		NodeID: 1, Bucket: b, FSM: c.fsm, Local: l, Propose: c.propose, TempDir: t.TempDir(),
		Logger: slog.New(slog.DiscardHandler), MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		FrameSize: 16 << 10,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); u.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return u
}

func archivedAll(c *cluster, topic string) bool {
	top, ok := c.fsm.Topic(topic)
	if !ok {
		return false
	}
	for _, s := range top.Segments[:len(top.Segments)-1] {
		if s.ArchiveKey == "" {
			return false
		}
	}
	return true
}

func TestUploaderArchivesSealedSegments(t *testing.T) {
	c, l := newCluster(), &local{}
	b := &flakyBucket{Bucket: mem.New("up")}
	startUploader(t, c, l, b)
	var want [][]byte
	for i := 0; i < 4; i++ {
		want = append(want, sealSegment(t, c, l, "orders", 100+i, 300)...)
	}
	testenv.WaitFor(t, 10*time.Second, "every sealed segment archived", func() bool { return archivedAll(c, "orders") })

	top, _ := c.fsm.Topic("orders")
	remote := newRemote(t, b, mustCache(t, 1<<20), nil)
	var got [][]byte
	for _, s := range top.Segments[:4] {
		if s.State != meta.Archived || s.ArchiveKey != ObjectKey("orders", s.ID, s.LeaderIndex) {
			t.Fatalf("segment %d: state %s key %q", s.ID, s.State, s.ArchiveKey)
		}
		info, err := b.Stat(context.Background(), s.ArchiveKey)
		if err != nil || info.Size != s.ArchiveSize {
			t.Fatalf("segment %d: object %v size %d, metadata says %d", s.ID, err, info.Size, s.ArchiveSize)
		}
		for off := s.Base; off < s.End(); {
			recs, err := remote.Read(context.Background(), s.ArchiveKey, s.ArchiveSize, off, 1000)
			if err != nil {
				t.Fatalf("remote read at %d: %v", off, err)
			}
			got = append(got, recs...)
			off += uint64(len(recs))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("read %d entries from the archive, wrote %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("entry %d differs", i)
		}
	}
	if segs, bytes := (&Uploader{}).Backlog(); segs != 0 || bytes != 0 {
		t.Fatalf("zero uploader backlog = %d, %d", segs, bytes)
	}
}

func TestUploaderBacksOffWhileStoreIsDownThenDrains(t *testing.T) {
	c, l := newCluster(), &local{}
	b := &flakyBucket{Bucket: mem.New("down")}
	b.down.Store(true)
	u := startUploader(t, c, l, b)
	for i := 0; i < 3; i++ {
		sealSegment(t, c, l, "t", 50, 100)
	}
	testenv.WaitFor(t, 10*time.Second, "backlog of 3 segments while the store is down", func() bool {
		segs, bytes := u.Backlog()
		return segs == 3 && bytes > 0 && b.puts.Load() >= 3
	})
	if !u.OldestUnarchived().Before(time.Now().Add(time.Second)) || u.OldestUnarchived().IsZero() {
		t.Fatalf("oldest unarchived = %v", u.OldestUnarchived())
	}
	b.down.Store(false)
	testenv.WaitFor(t, 10*time.Second, "backlog drained", func() bool {
		segs, _ := u.Backlog()
		return segs == 0 && archivedAll(c, "t")
	})
}

func TestUploadOfAnExistingObjectIsHarmless(t *testing.T) {
	c, l := newCluster(), &local{}
	b := mem.New("twice")
	sealSegment(t, c, l, "t", 20, 50)
	top, _ := c.fsm.Topic("t")
	s := top.Segments[0]
	cfg := UploaderConfig{NodeID: 1, Bucket: b, FSM: c.fsm, Local: l, Propose: c.propose, TempDir: t.TempDir(),
		Logger: slog.New(slog.DiscardHandler)}
	u := NewUploader(cfg)
	// The first attempt uploads but its Archived is lost (the node crashed, say).
	cfg.Propose = func(context.Context, *meta.Command) error { return errors.New("leadership lost") }
	lost := NewUploader(cfg)
	if err := lost.upload(context.Background(), "t", s); err == nil {
		t.Fatal("upload with a failing proposer succeeded")
	}
	if _, err := b.Stat(context.Background(), ObjectKey("t", s.ID, s.LeaderIndex)); err != nil {
		t.Fatalf("first attempt left no object: %v", err)
	}
	// The retry finds the object (If-None-Match refuses it), verifies it and commits.
	if err := u.upload(context.Background(), "t", s); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if !archivedAll(c, "t") {
		t.Fatal("segment not archived after the retry")
	}
	// Another segment's bytes under the same key are a conflict, never accepted.
	sealSegment(t, c, l, "t", 20, 60)
	top, _ = c.fsm.Topic("t")
	s2 := top.Segments[1]
	obj, _ := b.Get(context.Background(), ObjectKey("t", s.ID, s.LeaderIndex))
	body, _ := io.ReadAll(obj)
	obj.Close()
	key2 := ObjectKey("t", s2.ID, s2.LeaderIndex)
	if err := b.Put(context.Background(), key2, bytes.NewReader(body), int64(len(body)), archive.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := u.upload(context.Background(), "t", s2); !errors.Is(err, ErrConflict) {
		t.Fatalf("upload over another segment's object: %v, want ErrConflict", err)
	}
}

// newRemote is NewRemote whose background work ends before the test's temporary
// directories are removed.
func newRemote(t *testing.T, b archive.Bucket, cache *FrameCache, log *slog.Logger) *Remote {
	r := NewRemote(b, cache, log)
	t.Cleanup(r.Wait)
	return r
}

func mustCache(t *testing.T, limit int64) *FrameCache {
	t.Helper()
	c, err := NewFrameCache(t.TempDir(), limit)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// putObject writes a segment object of n records of size bytes and returns its key,
// size and records.
func putObject(t *testing.T, b archive.Bucket, key string, n, size int) (int64, [][]byte) {
	t.Helper()
	var buf bytes.Buffer
	w, err := seekable.NewWriter(&buf, seekable.Meta{Topic: "t", Segment: 1, Count: uint64(n), LeaderTerm: 1},
		seekable.WriterOptions{FrameSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	var recs [][]byte
	rng := rand.New(rand.NewPCG(uint64(n), uint64(size)))
	for i := 0; i < n; i++ {
		p := make([]byte, size)
		for j := range p {
			p[j] = byte(rng.Uint32()) // incompressible, so frames have their nominal size
		}
		p = append([]byte(fmt.Sprintf("%06d:", i)), p...)
		recs = append(recs, p)
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(context.Background(), key, bytes.NewReader(buf.Bytes()), sum.Size, archive.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	return sum.Size, recs
}

func TestRemoteReadFetchesTailAndOneFrame(t *testing.T) {
	b := &flakyBucket{Bucket: mem.New("fetch")}
	size, recs := putObject(t, b, "obj", 4000, 1000) // ~4 MB, 64 KiB frames
	r := newRemote(t, b, mustCache(t, 64<<20), nil)
	got, err := r.Read(context.Background(), "obj", size, 2500, 1)
	if err != nil || len(got) != 1 || !bytes.Equal(got[0], recs[2500]) {
		t.Fatalf("read entry 2500 = %q, %v", got, err)
	}
	// The tail read (footer, seek table, index) plus one frame: a small part of the object.
	if n, fetched := b.ranges.Load(), b.rangeBytes.Load(); n > 2 || fetched > 64<<10+80<<10 || fetched > size/4 {
		t.Fatalf("one entry fetched %d bytes in %d ranged reads from a %d-byte object", fetched, n, size)
	}
}

func TestRemoteCollapsesConcurrentMissesAndPrefetches(t *testing.T) {
	b := &flakyBucket{Bucket: mem.New("sf")}
	size, recs := putObject(t, b, "obj", 2000, 1000)
	r := newRemote(t, b, mustCache(t, 64<<20), nil)
	if _, err := r.Read(context.Background(), "obj", size, 0, 1); err != nil { // open the object
		t.Fatal(err)
	}
	before := b.ranges.Load()
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := r.Read(context.Background(), "obj", size, 1000, 1)
			if err != nil || !bytes.Equal(got[0], recs[1000]) {
				t.Errorf("concurrent read: %v", err)
			}
		}()
	}
	wg.Wait()
	if n := b.ranges.Load() - before; n > 2 { // the frame, and at most one prefetch
		t.Fatalf("16 concurrent reads of one frame made %d ranged GETs", n)
	}
	// A sequential reader that reaches the end of a frame finds the next one prefetched.
	rd, _ := object(r, "obj", size)
	i, _ := rd.FrameOf(1000)
	first, count, _, _ := rd.FrameRange(i)
	if _, err := r.Read(context.Background(), "obj", size, first, int(count)); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "next frame prefetched into the cache", func() bool {
		_, ok := r.cache.Get("obj", i+1)
		return ok
	})
}

func TestRemotePrefetchesAheadOfASequentialReader(t *testing.T) {
	b := &flakyBucket{Bucket: mem.New("seq")}
	size, recs := putObject(t, b, "obj", 2000, 1000) // 64 KiB frames of about 65 records
	r := newRemote(t, b, mustCache(t, 64<<20), nil)
	ctx := context.Background()
	read := func(off uint64, max int) {
		t.Helper()
		got, err := r.Read(ctx, "obj", size, off, max)
		if err != nil || len(got) != max || !bytes.Equal(got[0], recs[off]) {
			t.Fatalf("read %d entries at %d = %d entries, %v", max, off, len(got), err)
		}
	}
	// A first read is not known to be sequential: it fetches the tail and its frame only.
	read(0, 10)
	afterFirst := b.ranges.Load()
	if r.cache.Has("obj", 1) {
		t.Fatal("a single read inside frame 0 prefetched frame 1")
	}
	// A read that goes on where the last one ended is sequential: the two spans after
	// frame 0 (frames 1-4 and 5-8) are fetched before the reader gets there, one ranged
	// GET each, and nothing further.
	read(10, 10)
	testenv.WaitFor(t, 10*time.Second, "frames 1 to 8 prefetched", func() bool {
		for i := 1; i <= 2*spanFrames; i++ {
			if !r.cache.Has("obj", i) {
				return false
			}
		}
		return true
	})
	if r.cache.Has("obj", 2*spanFrames+1) {
		t.Fatal("a frame past the two spans ahead prefetched while the reader is in frame 0")
	}
	if n := b.ranges.Load() - afterFirst; n != 2 {
		t.Fatalf("sequential read in frame 0 made %d ranged GETs, want 2 (one per span)", n)
	}
}

// A sequential reader of a whole object gets every entry, in spans of spanFrames
// frames per ranged GET rather than one GET per frame.
func TestRemoteSequentialReaderFetchesSpans(t *testing.T) {
	b := &flakyBucket{Bucket: mem.New("spans")}
	size, recs := putObject(t, b, "obj", 3000, 1000) // ~47 frames of 64 KiB
	r := newRemote(t, b, mustCache(t, 64<<20), nil)
	rd, err := object(r, "obj", size)
	if err != nil {
		t.Fatal(err)
	}
	tail := b.ranges.Load()
	for off := uint64(0); off < uint64(len(recs)); {
		got, err := r.Read(context.Background(), "obj", size, off, 30) // about half a frame
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range got {
			if !bytes.Equal(p, recs[int(off)+i]) {
				t.Fatalf("entry %d differs", int(off)+i)
			}
		}
		off += uint64(len(got))
	}
	frames := int64(rd.NumFrames())
	if n := b.ranges.Load() - tail; n > frames/spanFrames+3 {
		t.Fatalf("reading %d frames in order made %d ranged GETs, want about %d (spans of %d)", frames, n, frames/spanFrames, spanFrames)
	}
}

// A reader that gives up while its frame is being fetched gets its context's error at
// once; the fetch goes on for the other readers of the frame.
func TestRemoteReaderGivingUpLeavesTheFetchToOthers(t *testing.T) {
	b := &flakyBucket{Bucket: mem.New("giveup")}
	size, recs := putObject(t, b, "obj", 2000, 1000)
	r := newRemote(t, b, mustCache(t, 64<<20), nil)
	if _, err := object(r, "obj", size); err != nil {
		t.Fatal(err)
	}
	b.gate = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := r.Read(ctx, "obj", size, 700, 5)
		first <- err
	}()
	testenv.WaitFor(t, 10*time.Second, "the fetch to start", func() bool { return b.ranges.Load() >= 2 })
	second := make(chan error, 1)
	go func() {
		got, err := r.Read(context.Background(), "obj", size, 701, 1)
		if err == nil && !bytes.Equal(got[0], recs[701]) {
			err = errors.New("wrong entry")
		}
		second <- err
	}()
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("reader that gave up: %v, want context.Canceled", err)
	}
	close(b.gate)
	if err := <-second; err != nil {
		t.Fatalf("other reader of the frame: %v", err)
	}
}

// A failed GET fails the reads waiting for its frames, is forgotten, and the next read
// fetches again.
func TestRemoteFailedFetchIsRetriedByTheNextRead(t *testing.T) {
	b := &flakyBucket{Bucket: mem.New("retry")}
	size, recs := putObject(t, b, "obj", 2000, 1000)
	r := newRemote(t, b, mustCache(t, 64<<20), nil)
	if _, err := object(r, "obj", size); err != nil {
		t.Fatal(err)
	}
	b.getDown.Store(true)
	if got, err := r.Read(context.Background(), "obj", size, 500, 5); err == nil || got != nil {
		t.Fatalf("read with the store down = %d entries, %v; want an error", len(got), err)
	}
	b.getDown.Store(false)
	got, err := r.Read(context.Background(), "obj", size, 500, 5)
	if err != nil || len(got) != 5 || !bytes.Equal(got[0], recs[500]) {
		t.Fatalf("read once the store is back = %d entries, %v", len(got), err)
	}
}

// The disk cache stays within its bound while frames pass through it, and evicts to
// make room. Cache writes run in the background: the bound must hold while they run,
// but whether one of them evicts depends on what the others have registered by then (a
// write that finds the room reserved by writes still running caches nothing and
// evicts nothing). So after each read the test also waits for them (Remote.Wait):
// from the second read on, every read's first new frame finds the cache full of
// frames registered earlier and evicts.
func TestRemoteCacheStaysWithinBound(t *testing.T) {
	b := mem.New("bound")
	size, recs := putObject(t, b, "obj", 3000, 1000) // ~3 MB, ~47 frames
	const limit = 100 << 10
	cache := mustCache(t, limit)
	r := newRemote(t, b, cache, nil)
	checkBound := func(when string) {
		t.Helper()
		if st := cache.Stats(); st.Bytes > limit {
			t.Fatalf("cache holds %d bytes %s, bound %d", st.Bytes, when, limit)
		}
		if disk, err := diskBytes(cache); err != nil || disk > limit {
			t.Fatalf("cache dir holds %d bytes (%v) %s, bound %d", disk, err, when, limit)
		}
	}
	for off := uint64(0); off < uint64(len(recs)); {
		got, err := r.Read(context.Background(), "obj", size, off, 500)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range got {
			if !bytes.Equal(p, recs[int(off)+i]) {
				t.Fatalf("entry %d differs", int(off)+i)
			}
		}
		off += uint64(len(got))
		checkBound("while cache writes may run")
		r.Wait()
		checkBound("after the cache writes")
	}
	if st := cache.Stats(); st.Evictions == 0 {
		t.Fatalf("reading %d bytes through a %d-byte cache evicted nothing: %+v", size, limit, st)
	}
}

func TestRemoteCorruptObjectIsAnErrorNeverData(t *testing.T) {
	b := mem.New("corrupt")
	size, _ := putObject(t, b, "obj", 500, 200)
	rc, _ := b.Get(context.Background(), "obj")
	body, _ := io.ReadAll(rc)
	rc.Close()
	body[100] ^= 0x01 // inside the first data frame
	if err := b.Put(context.Background(), "obj", bytes.NewReader(body), size, archive.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	r := newRemote(t, b, mustCache(t, 1<<20), nil)
	got, err := r.Read(context.Background(), "obj", size, 0, 10)
	if err == nil || !errors.Is(err, seekable.ErrCorrupt) || got != nil {
		t.Fatalf("read of a corrupt frame = %d entries, %v; want ErrCorrupt and no data", len(got), err)
	}
}

func TestRetentionEvictsOldestArchivedFirst(t *testing.T) {
	c, l := newCluster(), &local{}
	b := mem.New("ret")
	u := startUploader(t, c, l, b)
	for i := 0; i < 4; i++ {
		sealSegment(t, c, l, "t", 100, 100)
	}
	testenv.WaitFor(t, 10*time.Second, "archived", func() bool { return archivedAll(c, "t") })
	top, _ := c.fsm.Topic("t")
	keep := top.Segments[2].Bytes + top.Segments[3].Bytes // room for the two newest
	r := NewRetention(RetentionConfig{NodeID: 1, LimitBytes: keep, FSM: c.fsm, Local: l, Propose: c.propose, Confirm: u})
	r.Enforce(context.Background())
	top, _ = c.fsm.Topic("t")
	for i, s := range top.Segments[:4] {
		evicted := i < 2
		if s.LocalEvicted != evicted || l.HasLocal("t", s.ID) == evicted {
			t.Fatalf("segment %d: evicted %v, local file %v; want evicted %v", s.ID, s.LocalEvicted, l.HasLocal("t", s.ID), evicted)
		}
		if want := map[bool]string{true: "remote", false: "both"}[evicted]; s.Tier() != want {
			t.Fatalf("segment %d tier %q, want %q", s.ID, s.Tier(), want)
		}
	}
	// Unarchived segments are never evicted, whatever the limit.
	b2 := newCluster()
	l2 := &local{}
	sealSegment(t, b2, l2, "u", 10, 10)
	NewRetention(RetentionConfig{NodeID: 1, LimitBytes: 1, FSM: b2.fsm, Local: l2, Propose: b2.propose,
		Confirm: quietUploader(b2, l2, b, t.TempDir(), b2.propose)}).Enforce(context.Background())
	if !l2.HasLocal("u", 1) {
		t.Fatal("an unarchived segment's only copy was evicted")
	}
}

// A topic's own limits (local_retention_bytes, local_retention_ms) evict its archived
// segments, oldest first, without touching other topics; the node's limit then applies
// to what the topics kept.
func TestRetentionPerTopicLimits(t *testing.T) {
	c, l := newCluster(), &local{}
	u := startUploader(t, c, l, mem.New("ret-topic"))
	const capBytes = 15000 // one segment of 100 records of ~122 bytes, not two
	topics := map[string]meta.TopicConfig{
		"capped": {LocalRetentionBytes: capBytes},
		"aged":   {LocalRetentionMS: 1},
		"plain":  {},
	}
	for name, cfg := range topics {
		if err := c.propose(context.Background(), &meta.Command{Op: meta.OpCreateTopic, Topic: name, Leader: 1, Config: &cfg}); err != nil {
			t.Fatal(err)
		}
	}
	// Four rounds; each round is sealed in a later millisecond than the one before, so
	// that "oldest first" is well defined across topics.
	for i := 0; i < 4; i++ {
		start := time.Now()
		testenv.WaitFor(t, time.Second, "the clock to move on", func() bool { return time.Since(start) > 2*time.Millisecond })
		for _, name := range []string{"aged", "capped", "plain"} {
			sealSegment(t, c, l, name, 100, 100)
		}
	}
	for name := range topics {
		testenv.WaitFor(t, 10*time.Second, name+" archived", func() bool { return archivedAll(c, name) })
	}
	segs := func(topic string) []*meta.Segment {
		top, _ := c.fsm.Topic(topic)
		return top.Segments[:4]
	}
	if s := segs("capped"); s[3].Bytes > capBytes || s[2].Bytes+s[3].Bytes <= capBytes {
		t.Fatalf("segment sizes %d and %d: the test needs one to fit in %d bytes and two not to", s[2].Bytes, s[3].Bytes, capBytes)
	}
	evicted := func(topic string) []bool {
		var out []bool
		for _, s := range segs(topic) {
			if s.LocalEvicted == l.HasLocal(topic, s.ID) {
				t.Fatalf("%s segment %d: evicted %v, local file %v", topic, s.ID, s.LocalEvicted, l.HasLocal(topic, s.ID))
			}
			out = append(out, s.LocalEvicted)
		}
		return out
	}
	NewRetention(RetentionConfig{NodeID: 1, LimitBytes: -1, FSM: c.fsm, Local: l, Propose: c.propose, Confirm: u}).Enforce(context.Background())
	for topic, want := range map[string]string{
		"capped": "[true true true false]", // only the newest fits
		"aged":   "[true true true true]",  // all sealed more than 1 ms ago
		"plain":  "[false false false false]",
	} {
		if got := fmt.Sprint(evicted(topic)); got != want {
			t.Fatalf("%s (config %+v): evicted %s, want %s", topic, topics[topic], got, want)
		}
	}
	// The node's limit: room for all but the two oldest segments kept (plain's first two).
	var kept int64
	for _, s := range append(segs("plain"), segs("capped")[3]) {
		kept += s.Bytes
	}
	p := segs("plain")
	NewRetention(RetentionConfig{NodeID: 1, LimitBytes: kept - p[0].Bytes - p[1].Bytes, FSM: c.fsm, Local: l, Propose: c.propose, Confirm: u}).Enforce(context.Background())
	if got := fmt.Sprint(evicted("plain"), evicted("capped")); got != "[true true false false] [true true true false]" {
		t.Fatalf("after the node's limit: plain and capped evicted %s, want the two oldest of plain", got)
	}
}

// Local retention removes a segment's file only after checking (HEAD, size) that the
// object the metadata names is there; one that vanished after its Archived commit is
// uploaded again from the local copy first, and while that fails the copy stays. The
// same holds for a file left by a crash between EvictLocal and the file's removal.
func TestRetentionNeverEvictsAVanishedObject(t *testing.T) {
	srv := miniotest.Start(t)
	t.Run("mem", func(t *testing.T) { testRetentionNeverEvictsAVanishedObject(t, mem.New("vanished")) })
	t.Run("minio", func(t *testing.T) { testRetentionNeverEvictsAVanishedObject(t, minioBucket(t, srv)) })
}

func testRetentionNeverEvictsAVanishedObject(t *testing.T, store archive.Bucket) {
	ctx := context.Background()
	c, l := newCluster(), &local{}
	b := &flakyBucket{Bucket: store}
	u := startUploader(t, c, l, b)
	var recs [][][]byte
	for i := 0; i < 3; i++ {
		recs = append(recs, sealSegment(t, c, l, "t", 100, 100))
	}
	testenv.WaitFor(t, 10*time.Second, "archived", func() bool { return archivedAll(c, "t") })
	// Segment 1: evicted through Raft, the node crashed before removing its file.
	if err := c.propose(ctx, &meta.Command{Op: meta.OpEvictLocal, Topic: "t", Segment: 1}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{1, 2} { // their objects vanish; segment 3's stays
		s, _ := c.fsm.SegmentOf("t", id)
		if err := b.Delete(ctx, s.ArchiveKey); err != nil {
			t.Fatal(err)
		}
	}
	r := NewRetention(RetentionConfig{NodeID: 1, LimitBytes: 1, FSM: c.fsm, Local: l, Propose: c.propose, Confirm: u,
		Logger: slog.New(slog.DiscardHandler)})
	state := func() string {
		var out []string
		for id := uint64(1); id <= 3; id++ {
			s, _ := c.fsm.SegmentOf("t", id)
			out = append(out, fmt.Sprintf("%d:evicted=%v,file=%v", id, s.LocalEvicted, l.HasLocal("t", id)))
		}
		return fmt.Sprint(out)
	}
	b.down.Store(true) // no upload can succeed
	r.Enforce(ctx)
	if got, want := state(), "[1:evicted=true,file=true 2:evicted=false,file=true 3:evicted=true,file=false]"; got != want {
		t.Fatalf("store refusing uploads: %s, want %s (no file goes whose object is missing)", got, want)
	}
	b.down.Store(false)
	r.Enforce(ctx)
	if got, want := state(), "[1:evicted=true,file=false 2:evicted=true,file=false 3:evicted=true,file=false]"; got != want {
		t.Fatalf("store back: %s, want %s", got, want)
	}
	for i, want := range recs {
		checkArchived(t, c, b, "t", uint64(i+1), want)
	}
}

// A vanished object is put back only as the very bytes the metadata names: a local copy
// that encodes to other bytes (here another frame size) is never written under the
// committed key, and the copy stays.
func TestVanishedObjectIsPutBackOnlyAsTheCommittedBytes(t *testing.T) {
	ctx := context.Background()
	c, l := newCluster(), &local{}
	b := mem.New("differs")
	sealSegment(t, c, l, "t", 100, 100)
	seg, _ := c.fsm.SegmentOf("t", 1)
	first := quietUploader(c, l, b, t.TempDir(), c.propose)
	first.cfg.FrameSize = 4 << 10
	if err := first.upload(ctx, "t", &seg); err != nil {
		t.Fatal(err)
	}
	seg, _ = c.fsm.SegmentOf("t", 1)
	if err := b.Delete(ctx, seg.ArchiveKey); err != nil {
		t.Fatal(err)
	}
	u := quietUploader(c, l, b, t.TempDir(), c.propose) // 16 KiB frames
	if err := u.ConfirmArchived(ctx, "t", &seg); !errors.Is(err, ErrObjectMissing) {
		t.Fatalf("confirm with another encoding: %v, want ErrObjectMissing", err)
	}
	if _, err := b.Stat(ctx, seg.ArchiveKey); !archive.IsNotFound(err) {
		t.Fatalf("other bytes were put under the committed key: %v", err)
	}
	NewRetention(RetentionConfig{NodeID: 1, LimitBytes: 1, FSM: c.fsm, Local: l, Propose: c.propose, Confirm: u,
		Logger: slog.New(slog.DiscardHandler)}).Enforce(ctx)
	if seg, _ = c.fsm.SegmentOf("t", 1); seg.LocalEvicted || !l.HasLocal("t", 1) {
		t.Fatalf("evicted %v, local copy %v: the only copy went", seg.LocalEvicted, l.HasLocal("t", 1))
	}
	// The uploader that wrote it puts it back.
	if err := first.ConfirmArchived(ctx, "t", &seg); err != nil {
		t.Fatalf("confirm with the same encoding: %v", err)
	}
	if _, err := b.Stat(ctx, seg.ArchiveKey); err != nil {
		t.Fatal(err)
	}
}

// An object that vanishes after its Archived commit while the store refuses uploads is
// put back by the running uploader once the store takes them again.
func TestUploaderPutsBackAVanishedObjectOnceTheStoreIsBack(t *testing.T) {
	c, l := newCluster(), &local{}
	b := &flakyBucket{Bucket: mem.New("back")}
	propose := func(ctx context.Context, cmd *meta.Command) error {
		err := c.propose(ctx, cmd)
		if err == nil && cmd.Op == meta.OpArchived {
			b.down.Store(true)
			if err := b.Delete(ctx, cmd.Key); err != nil {
				t.Error(err)
			}
		}
		return err
	}
	u := NewUploader(UploaderConfig{
		NodeID: 1, Bucket: b, FSM: c.fsm, Local: l, Propose: propose, TempDir: t.TempDir(),
		Logger: slog.New(slog.DiscardHandler), MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); u.Run(ctx) }()
	defer func() { cancel(); <-done }()
	recs := sealSegment(t, c, l, "t", 50, 100)
	testenv.WaitFor(t, 10*time.Second, "a failed put-back", func() bool { return archivedAll(c, "t") && b.puts.Load() >= 3 })
	if segs, _ := u.Backlog(); segs != 1 {
		t.Fatalf("backlog %d segments, want the one whose object is not confirmed", segs)
	}
	b.down.Store(false)
	testenv.WaitFor(t, 10*time.Second, "the object put back", func() bool { segs, _ := u.Backlog(); return segs == 0 })
	checkArchived(t, c, b, "t", 1, recs)
}

// object returns r's opened object key (its tail read and validated).
func object(r *Remote, key string, size int64) (*seekable.Reader, error) {
	o, err := r.open(context.Background(), key, size)
	if err != nil {
		return nil, err
	}
	return o.r, nil
}

// diskBytes sums the sizes of the files in c's directory: the cache's bound
// holds on disk, not only in its accounting.
func diskBytes(c *FrameCache) (int64, error) {
	var total int64
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		info, err := e.Info()
		if err == nil && !e.IsDir() {
			total += info.Size()
		}
	}
	return total, nil
}
