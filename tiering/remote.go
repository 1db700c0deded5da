package tiering

import (
	"container/list"
	"context"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"floe/archive"
	"floe/archive/seekable"
)

// Remote reads entries of archived segments from the object store: the object's tail
// (footer, seek table, metadata and index) once per object, then frames, through an
// in-memory LRU of decoded frames and the on-disk frame cache.
//
// A random read fetches the one frame that holds its offset. A sequential reader (one
// whose read starts where the previous read of the object ended, or that reaches the
// end of a frame) is served in spans: up to spanFrames consecutive frames with one
// ranged GET, and aheadSpans spans after the frame it reads are fetched in the
// background, so GETs overlap decoding and the reader rarely waits. The frames of a
// span are decoded in parallel. Every frame is fetched at most once however many
// readers want it at the same time (each frame being fetched has one state that all of
// them wait on), and its compressed bytes are written to the disk cache in the
// background. Safe for concurrent use.
type Remote struct {
	bucket archive.Bucket
	cache  *FrameCache
	log    *slog.Logger

	sf singleflight.Group // object opens

	mu       sync.Mutex
	readers  map[string]*list.Element // object key -> *openObject, LRU
	order    *list.List
	frames   map[frameID]*frameState // being fetched, or decoded and in lru
	lru      *list.List              // of *frameState, decoded, most recent first
	lruBytes int64

	spans  chan struct{}  // bounds background spans over all readers
	decode chan struct{}  // bounds parallel frame decoding
	puts   chan struct{}  // bounds background cache writes
	bg     sync.WaitGroup // spans and cache writes running in the background
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

// frameState is one frame being fetched (done open) or decoded (done closed, in the
// lru unless err is set).
type frameState struct {
	id   frameID
	done chan struct{}
	recs [][]byte
	size int64 // decoded bytes
	err  error
	elem *list.Element
}

const (
	maxOpenObjects = 256
	// spanFrames and spanBytes bound one ranged GET of a sequential reader: eight 1 MiB
	// frames are about 1.6 MB of compressed JSON, few enough requests that the store's
	// per-request cost stops dominating (S3 advises ranges of 8-16 MB; MinIO spends
	// about 2 ms of CPU per GET), small enough that a reader who stops early wasted
	// little.
	spanFrames = 8
	spanBytes  = 8 << 20
	// aheadSpans is how many spans past the frame being read a sequential reader has
	// fetched in the background.
	aheadSpans = 2
	// maxSpans bounds background spans over all readers (each holds its compressed
	// bytes and, once decoded, its frames).
	maxSpans = 4
	// maxDecodedBytes bounds the decoded frames kept in memory: the frames being read
	// and those fetched ahead, for a few readers.
	maxDecodedBytes = 64 << 20
	// maxPuts bounds cache writes in the background; past it a fetch writes its frames
	// itself.
	maxPuts = 4
	// fetchTimeout bounds one span's GET: the span is shared by every reader waiting
	// on its frames, so it does not end with the context of the one that started it.
	fetchTimeout = time.Minute
)

// NewRemote returns a reader over bucket with the given frame cache.
func NewRemote(bucket archive.Bucket, cache *FrameCache, log *slog.Logger) *Remote {
	if log == nil {
		log = slog.Default()
	}
	return &Remote{
		bucket: bucket, cache: cache, log: log,
		readers: map[string]*list.Element{}, order: list.New(),
		frames: map[frameID]*frameState{}, lru: list.New(),
		spans:  make(chan struct{}, maxSpans),
		decode: make(chan struct{}, runtime.GOMAXPROCS(0)),
		puts:   make(chan struct{}, maxPuts),
	}
}

// Wait blocks until the spans and cache writes running in the background have finished
// (a node's shutdown, a test's cleanup). Call it once Reads have stopped: a Read that
// starts during Wait may start new background work (sync.WaitGroup rules).
func (r *Remote) Wait() { r.bg.Wait() }

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

// span is consecutive frames of one object that one fetch gets: with one ranged GET,
// or, for a single frame the disk cache holds, from the cache.
type span struct {
	o      *openObject
	first  int
	states []*frameState // of frames first, first+1, ...
	cached bool
}

// claimLocked plans a span of up to maxFrames frames from frame i, which must be
// neither at hand nor on its way, and registers a state for each of its frames, so
// that every other reader of them waits for this fetch. The span stops before a frame
// that is at hand, on its way or cached on disk, and at spanBytes. A frame the disk
// cache holds is a span of its own. Call with r.mu held.
func (r *Remote) claimLocked(o *openObject, i, maxFrames int) *span {
	sp := &span{o: o, first: i, cached: r.cache.Has(o.key, i)}
	if sp.cached {
		maxFrames = 1
	}
	var bytes int64
	for j := i; j < o.r.NumFrames() && len(sp.states) < maxFrames; j++ {
		id := frameID{o.key, j}
		_, _, _, size := o.r.FrameRange(j)
		if j > i && (r.frames[id] != nil || r.cache.Has(o.key, j) || bytes+size > spanBytes) {
			break
		}
		bytes += size
		st := &frameState{id: id, done: make(chan struct{})}
		r.frames[id] = st
		sp.states = append(sp.states, st)
	}
	return sp
}

// fetch gets a claimed span's frames, decodes them (in parallel) and finishes their
// states; an error finishes them all with it.
func (r *Remote) fetch(sp *span) {
	key, rd := sp.o.key, sp.o.r
	if sp.cached {
		if b, ok := r.cache.Get(key, sp.first); ok {
			recs, err := rd.DecodeFrame(sp.first, b)
			if err == nil {
				r.finish(sp.states[0], recs, nil)
				return
			}
			r.log.Warn("cached frame failed to decode; refetching", "key", key, "frame", sp.first, "err", err)
			r.cache.Drop(key, sp.first)
		}
		// Evicted since it was planned, or damaged: from the store then.
	}
	_, _, off, _ := rd.FrameRange(sp.first)
	_, _, lastOff, lastSize := rd.FrameRange(sp.first + len(sp.states) - 1)
	buf := make([]byte, lastOff+lastSize-off)
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	_, err := source{bucket: r.bucket, key: key}.ReadAt(ctx, buf, off)
	cancel()
	if err != nil {
		for _, st := range sp.states {
			r.finish(st, nil, err)
		}
		return
	}
	parts := make([][]byte, len(sp.states))
	ok := make([]bool, len(sp.states))
	decode := func(k int) {
		i := sp.first + k
		_, _, foff, fsize := rd.FrameRange(i)
		parts[k] = buf[foff-off : foff-off+fsize : foff-off+fsize]
		recs, err := rd.DecodeFrame(i, parts[k])
		r.finish(sp.states[k], recs, err)
		ok[k] = err == nil
	}
	// The first frame is the one a reader waits for: it is decoded here, at once; the
	// others beside it, as far as the decode slots go.
	var wg sync.WaitGroup
	for k := 1; k < len(sp.states); k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.decode <- struct{}{}
			defer func() { <-r.decode }()
			decode(k)
		}()
	}
	decode(0)
	wg.Wait()
	var numbers []int
	var data [][]byte
	for k := range sp.states {
		if ok[k] {
			numbers = append(numbers, sp.first+k)
			data = append(data, parts[k])
		}
	}
	if len(numbers) > 0 {
		r.putCache(key, numbers, data)
	}
}

// finish records a frame's outcome and wakes its readers. A decoded frame joins the
// in-memory LRU (evicting the least recently used past maxDecodedBytes); a failed one
// is forgotten, so that the next read of it tries again.
func (r *Remote) finish(st *frameState, recs [][]byte, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st.recs, st.err = recs, err
	if err != nil {
		if r.frames[st.id] == st {
			delete(r.frames, st.id)
		}
		close(st.done)
		return
	}
	for _, p := range recs {
		st.size += int64(len(p))
	}
	st.elem = r.lru.PushFront(st)
	r.lruBytes += st.size
	for r.lruBytes > maxDecodedBytes && r.lru.Len() > 1 {
		old := r.lru.Remove(r.lru.Back()).(*frameState)
		old.elem = nil
		r.lruBytes -= old.size
		if r.frames[old.id] == old {
			delete(r.frames, old.id)
		}
	}
	close(st.done)
}

// frame returns the decoded records of frame i: from memory, from the fetch of it
// already on its way, or from a fetch this call makes (of a whole span for a
// sequential reader, which also has the spans ahead of it fetched in the background).
func (r *Remote) frame(ctx context.Context, o *openObject, i int, sequential bool) ([][]byte, error) {
	id := frameID{o.key, i}
	r.mu.Lock()
	st := r.frames[id]
	var sp *span
	if st != nil {
		if st.elem != nil {
			r.lru.MoveToFront(st.elem)
		}
	} else {
		n := 1
		if sequential {
			n = spanFrames
		}
		sp = r.claimLocked(o, i, n)
		st = sp.states[0]
	}
	r.mu.Unlock()
	if sequential {
		r.readAhead(o, i) // before this fetch, so that the GETs overlap
	}
	if sp != nil {
		// On its own goroutine: a reader that gives up (its context ends) must not
		// take the fetch other readers may be waiting on down with it.
		r.bg.Add(1)
		go func() {
			defer r.bg.Done()
			r.fetch(sp)
		}()
	}
	select {
	case <-st.done:
		return st.recs, st.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// readAhead has the frames of the aheadSpans spans after frame i fetched in the
// background: a full span from each frame in that window that is neither at hand nor
// on its way, as long as background spans are free. A reader moving on through the
// object so keeps one to two spans ahead of it, fetched in full spans.
func (r *Remote) readAhead(o *openObject, i int) {
	end := min(i+1+aheadSpans*spanFrames, o.r.NumFrames())
	for j := i + 1; j < end; j++ {
		r.mu.Lock()
		if r.frames[frameID{o.key, j}] != nil {
			r.mu.Unlock()
			continue
		}
		select {
		case r.spans <- struct{}{}:
		default:
			r.mu.Unlock()
			return // enough spans in flight
		}
		sp := r.claimLocked(o, j, spanFrames)
		r.mu.Unlock()
		r.bg.Add(1)
		go func() {
			defer r.bg.Done()
			defer func() { <-r.spans }()
			r.fetch(sp)
		}()
		j += len(sp.states) - 1
	}
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
	recs, err := r.frame(ctx, o, i, sequential)
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
		r.readAhead(o, i) // read to the end of its frame: likely to go on
	}
	return recs[from:to], nil
}

// putCache writes fetched frames to the disk cache, as one file, in the background (a
// file create costs as much as a fraction of the GET on some disks), or here when
// maxPuts writes are already running.
func (r *Remote) putCache(key string, numbers []int, data [][]byte) {
	select {
	case r.puts <- struct{}{}:
		r.bg.Add(1)
		go func() {
			defer r.bg.Done()
			defer func() { <-r.puts }()
			r.cache.PutFrames(key, numbers, data)
		}()
	default:
		r.cache.PutFrames(key, numbers, data)
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
