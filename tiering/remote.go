package tiering

import (
	"container/list"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"golang.org/x/sync/singleflight"

	"floe/archive"
	"floe/archive/seekable"
)

// Remote reads entries of archived segments from the object store: the object's tail
// (footer, seek table, metadata and index) once per object, then one frame per read,
// through the frame cache. Concurrent misses for the same frame, or the same object's
// tail, are collapsed into one request. A sequential reader (one whose read starts where
// the previous read of the object ended, or that reaches the end of a frame) has the
// next prefetchDepth frames fetched in the background, before it waits for the current
// one, so ranged GETs overlap decoding. Frames are written to the disk cache in the
// background too. Safe for concurrent use.
type Remote struct {
	bucket archive.Bucket
	cache  *FrameCache
	log    *slog.Logger

	sf singleflight.Group

	mu       sync.Mutex
	readers  map[string]*list.Element // object key -> *openObject, LRU
	order    *list.List
	decoded  *list.List           // of *decodedFrame, most recent first (small in-memory LRU)
	fetching map[frameID]struct{} // frames being fetched and decoded

	prefetch chan struct{}  // bounds concurrent prefetches
	puts     chan struct{}  // bounds background cache writes
	bg       sync.WaitGroup // prefetches and cache writes running in the background
}

type openObject struct {
	key string
	r   *seekable.Reader
	// next is the offset after the last entry the last Read of the object returned
	// (noRead before the first): a Read from there on is sequential. Guarded by
	// Remote.mu.
	next uint64
}

// noRead is openObject.next before any Read.
const noRead = ^uint64(0)

type decodedFrame struct {
	id      frameID
	records [][]byte
}

const (
	maxOpenObjects = 256
	// maxDecoded bounds the decoded frames kept in memory (about 1 MiB each): the
	// frame being read and the ones prefetched after it, for a few readers.
	maxDecoded = 8
	// prefetchDepth is how many frames ahead of a sequential reader are fetched.
	prefetchDepth = 2
	// maxPrefetchings bounds concurrent prefetches (each holds a compressed and a
	// decoded frame) over all readers.
	maxPrefetchings = 4
	// maxPuts bounds cache writes in the background; past it a read writes its frame
	// itself.
	maxPuts = 4
)

// NewRemote returns a reader over bucket with the given frame cache.
func NewRemote(bucket archive.Bucket, cache *FrameCache, log *slog.Logger) *Remote {
	if log == nil {
		log = slog.Default()
	}
	return &Remote{
		bucket: bucket, cache: cache, log: log,
		readers: map[string]*list.Element{}, order: list.New(), decoded: list.New(),
		fetching: map[frameID]struct{}{},
		prefetch: make(chan struct{}, maxPrefetchings), puts: make(chan struct{}, maxPuts),
	}
}

// Wait blocks until the prefetches and cache writes running in the background have
// finished (a node's shutdown, a test's cleanup). Call it once Reads have stopped: a
// Read that starts during Wait may start new background work (sync.WaitGroup rules).
func (r *Remote) Wait() { r.bg.Wait() }

// Bucket returns the object store the reader reads from.
func (r *Remote) Bucket() archive.Bucket { return r.bucket }

// Cache returns the frame cache.
func (r *Remote) Cache() *FrameCache { return r.cache }

// source adapts a bucket object to seekable.Source with ranged GETs.
type source struct {
	bucket archive.Bucket
	key    string
	size   int64
}

func (s source) Size() int64 { return s.size }

func (s source) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	rc, err := s.bucket.GetRange(ctx, s.key, off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, p)
	if err != nil {
		return n, archive.Error("read range of", s.key, "archive", err)
	}
	return n, nil
}

// object returns the opened object (its tail read and validated).
func (r *Remote) object(ctx context.Context, key string, size int64) (*seekable.Reader, error) {
	o, err := r.open(ctx, key, size)
	if err != nil {
		return nil, err
	}
	return o.r, nil
}

func (r *Remote) open(ctx context.Context, key string, size int64) (*openObject, error) {
	r.mu.Lock()
	if e, ok := r.readers[key]; ok {
		r.order.MoveToFront(e)
		o := e.Value.(*openObject)
		r.mu.Unlock()
		return o, nil
	}
	r.mu.Unlock()
	v, err, _ := r.sf.Do("open\x00"+key, func() (any, error) {
		rd, err := seekable.Open(ctx, source{bucket: r.bucket, key: key, size: size})
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if e, ok := r.readers[key]; ok {
			return e.Value.(*openObject), nil
		}
		o := &openObject{key: key, r: rd, next: noRead}
		r.readers[key] = r.order.PushFront(o)
		for r.order.Len() > maxOpenObjects {
			old := r.order.Back()
			r.order.Remove(old)
			delete(r.readers, old.Value.(*openObject).key)
		}
		return o, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*openObject), nil
}

// frame returns the decoded records of frame i: from memory, the disk cache, or one
// ranged GET shared by every concurrent caller.
func (r *Remote) frame(ctx context.Context, key string, rd *seekable.Reader, i int) ([][]byte, error) {
	id := frameID{key, i}
	r.mu.Lock()
	for e := r.decoded.Front(); e != nil; e = e.Next() {
		if d := e.Value.(*decodedFrame); d.id == id {
			r.decoded.MoveToFront(e)
			r.mu.Unlock()
			return d.records, nil
		}
	}
	r.mu.Unlock()
	v, err, _ := r.sf.Do(fmt.Sprintf("frame\x00%s\x00%d", key, i), func() (any, error) {
		r.mu.Lock()
		r.fetching[id] = struct{}{}
		r.mu.Unlock()
		defer func() {
			r.mu.Lock()
			delete(r.fetching, id)
			r.mu.Unlock()
		}()
		var recs [][]byte
		if b, ok := r.cache.Get(key, i); ok {
			var err error
			if recs, err = rd.DecodeFrame(i, b); err != nil {
				r.log.Warn("cached frame failed to decode; refetching", "key", key, "frame", i, "err", err)
				r.cache.Drop(key, i)
				recs = nil
			}
		}
		if recs == nil {
			_, _, off, size := rd.FrameRange(i)
			b := make([]byte, size)
			src := source{bucket: r.bucket, key: key, size: 0}
			if _, err := src.ReadAt(ctx, b, off); err != nil {
				return nil, err
			}
			var err error
			if recs, err = rd.DecodeFrame(i, b); err != nil {
				return nil, err
			}
			r.putCache(key, i, b)
		}
		r.mu.Lock()
		r.decoded.PushFront(&decodedFrame{id: id, records: recs})
		for r.decoded.Len() > maxDecoded {
			r.decoded.Remove(r.decoded.Back())
		}
		r.mu.Unlock()
		return recs, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([][]byte), nil
}

// Read returns up to max entries of the archived object key (of the given size) from
// offset on, within one frame. A corrupt object gives an error, never data.
func (r *Remote) Read(ctx context.Context, key string, size int64, offset uint64, max int) ([][]byte, error) {
	o, err := r.open(ctx, key, size)
	if err != nil {
		return nil, err
	}
	rd := o.r
	i, err := rd.FrameOf(offset)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	sequential := o.next == offset
	r.mu.Unlock()
	if sequential {
		r.prefetchAfter(key, rd, i) // before waiting for frame i, so that the GETs overlap
	}
	recs, err := r.frame(ctx, key, rd, i)
	if err != nil {
		return nil, err
	}
	first, count, _, _ := rd.FrameRange(i)
	from := offset - first
	to := min(from+uint64(max), count)
	r.mu.Lock()
	o.next = first + to
	r.mu.Unlock()
	if to == count && !sequential {
		r.prefetchAfter(key, rd, i)
	}
	return recs[from:to], nil
}

// prefetchAfter prefetches the prefetchDepth frames after frame i.
func (r *Remote) prefetchAfter(key string, rd *seekable.Reader, i int) {
	for j := i + 1; j <= i+prefetchDepth && j < rd.NumFrames(); j++ {
		r.prefetchFrame(key, rd, j)
	}
}

// prefetchFrame fetches and decodes frame i in the background (warming the in-memory
// frames and the cache), unless it is at hand or on its way, or enough prefetches are
// already running.
func (r *Remote) prefetchFrame(key string, rd *seekable.Reader, i int) {
	id := frameID{key, i}
	r.mu.Lock()
	_, busy := r.fetching[id]
	for e := r.decoded.Front(); e != nil && !busy; e = e.Next() {
		busy = e.Value.(*decodedFrame).id == id
	}
	r.mu.Unlock()
	if busy || r.cache.Has(key, i) {
		return
	}
	select {
	case r.prefetch <- struct{}{}:
	default:
		return
	}
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		defer func() { <-r.prefetch }()
		if _, err := r.frame(context.Background(), key, rd, i); err != nil {
			r.log.Debug("prefetch failed", "key", key, "frame", i, "err", err)
		}
	}()
}

// putCache writes a fetched frame to the cache in the background (a file create costs
// as much as a fraction of the GET on some disks), or here when maxPuts writes are
// already running.
func (r *Remote) putCache(key string, i int, b []byte) {
	select {
	case r.puts <- struct{}{}:
		r.bg.Add(1)
		go func() {
			defer r.bg.Done()
			defer func() { <-r.puts }()
			r.cache.Put(key, i, b)
		}()
	default:
		r.cache.Put(key, i, b)
	}
}

// ObjectSource returns a seekable.Source that reads the object key (of the given size)
// with ranged GETs.
func ObjectSource(b archive.Bucket, key string, size int64) seekable.Source {
	return source{bucket: b, key: key, size: size}
}

// Verification is what VerifyObject found in one object.
type Verification struct {
	Key     string                 `json:"key"`
	Size    int64                  `json:"size"`
	Meta    seekable.Meta          `json:"meta"`
	Frames  int                    `json:"frames"`
	Damaged []seekable.FrameReport `json:"damaged,omitempty"`
	Err     string                 `json:"error,omitempty"`
}

// OK reports whether the object is intact.
func (v *Verification) OK() bool { return v.Err == "" }

// VerifyObject fetches every frame of an object and checks every checksum, going on
// past damage (seekable.Verify).
func VerifyObject(ctx context.Context, b archive.Bucket, key string) *Verification {
	v := &Verification{Key: key}
	info, err := b.Stat(ctx, key)
	if err != nil {
		v.Err = err.Error()
		return v
	}
	v.Size = info.Size
	v.Meta, err = seekable.Verify(ctx, ObjectSource(b, key, info.Size), func(r seekable.FrameReport) {
		v.Frames++
		if r.Err != nil {
			v.Damaged = append(v.Damaged, r)
		}
	})
	if err != nil {
		v.Err = err.Error()
	}
	return v
}
