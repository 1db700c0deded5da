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
// tail, are collapsed into one request; a read that reaches the end of a frame
// prefetches the next one. Safe for concurrent use.
type Remote struct {
	bucket archive.Bucket
	cache  *FrameCache
	log    *slog.Logger

	sf singleflight.Group

	mu      sync.Mutex
	readers map[string]*list.Element // object key -> *openObject, LRU
	order   *list.List
	decoded *list.List // of *decodedFrame, most recent first (small in-memory LRU)

	prefetch chan struct{} // bounds concurrent prefetches
}

type openObject struct {
	key string
	r   *seekable.Reader
}

type decodedFrame struct {
	id      frameID
	records [][]byte
}

const (
	maxOpenObjects  = 256
	maxDecoded      = 4
	maxPrefetchings = 2
)

// NewRemote returns a reader over bucket with the given frame cache.
func NewRemote(bucket archive.Bucket, cache *FrameCache, log *slog.Logger) *Remote {
	if log == nil {
		log = slog.Default()
	}
	return &Remote{
		bucket: bucket, cache: cache, log: log,
		readers: map[string]*list.Element{}, order: list.New(), decoded: list.New(),
		prefetch: make(chan struct{}, maxPrefetchings),
	}
}

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
	r.mu.Lock()
	if e, ok := r.readers[key]; ok {
		r.order.MoveToFront(e)
		rd := e.Value.(*openObject).r
		r.mu.Unlock()
		return rd, nil
	}
	r.mu.Unlock()
	v, err, _ := r.sf.Do("open\x00"+key, func() (any, error) {
		rd, err := seekable.Open(ctx, source{bucket: r.bucket, key: key, size: size})
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, ok := r.readers[key]; !ok {
			r.readers[key] = r.order.PushFront(&openObject{key: key, r: rd})
			for r.order.Len() > maxOpenObjects {
				old := r.order.Back()
				r.order.Remove(old)
				delete(r.readers, old.Value.(*openObject).key)
			}
		}
		return rd, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*seekable.Reader), nil
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
			r.cache.Put(key, i, b)
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
	rd, err := r.object(ctx, key, size)
	if err != nil {
		return nil, err
	}
	i, err := rd.FrameOf(offset)
	if err != nil {
		return nil, err
	}
	recs, err := r.frame(ctx, key, rd, i)
	if err != nil {
		return nil, err
	}
	first, count, _, _ := rd.FrameRange(i)
	from := offset - first
	to := min(from+uint64(max), count)
	if to == count && i+1 < rd.NumFrames() {
		r.prefetchFrame(key, rd, i+1)
	}
	return recs[from:to], nil
}

// prefetchFrame warms the cache with frame i in the background, unless enough
// prefetches are already running.
func (r *Remote) prefetchFrame(key string, rd *seekable.Reader, i int) {
	if _, ok := r.cache.Get(key, i); ok {
		return
	}
	select {
	case r.prefetch <- struct{}{}:
	default:
		return
	}
	go func() {
		defer func() { <-r.prefetch }()
		if _, err := r.frame(context.Background(), key, rd, i); err != nil {
			r.log.Debug("prefetch failed", "key", key, "frame", i, "err", err)
		}
	}()
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
