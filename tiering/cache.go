package tiering

import (
	"container/list"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// FrameCache is a bounded on-disk LRU of compressed object frames, keyed by object key
// and frame number. The frames of one fetch (a span of a sequential reader) share one
// file, which is the unit of eviction: creating a file costs far more than writing
// a frame on most file systems, and a sequential reader's frames age together. The
// cache never holds more than its byte bound, on disk, at any moment: a file larger
// than the bound is not written. Entries are verified when decoded (a frame carries
// its own checksums), so a damaged cache file costs a refetch, never wrong data. Safe
// for concurrent use.
type FrameCache struct {
	dir   string
	limit int64

	mu   sync.Mutex
	size int64 // bytes of the cached files
	// reserved is room taken by Puts writing their files: the directory holds at most
	// size+reserved bytes, and that never exceeds limit.
	reserved int64
	order    *list.List // of *cacheFile, most recently used first
	items    map[frameID]*list.Element
	seq      uint64 // names files

	hits, misses, evictions int64
}

type frameID struct {
	key   string
	frame int
}

// cacheFile is one file of the cache and the frames it holds.
type cacheFile struct {
	path   string
	size   int64
	frames []cachedFrame
}

type cachedFrame struct {
	id        frameID
	off, size int64
}

// NewFrameCache empties dir (a cache does not outlive its process) and returns a cache
// bounded to limit bytes.
func NewFrameCache(dir string, limit int64) (*FrameCache, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("tiering: cannot clear cache %q: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tiering: cannot create cache %q: %w", dir, err)
	}
	return &FrameCache{dir: dir, limit: limit, order: list.New(), items: map[frameID]*list.Element{}}, nil
}

// Get returns a cached frame.
func (c *FrameCache) Get(key string, frame int) ([]byte, bool) {
	id := frameID{key, frame}
	c.mu.Lock()
	e, ok := c.items[id]
	var path string
	var at cachedFrame
	if ok {
		c.order.MoveToFront(e)
		c.hits++
		cf := e.Value.(*cacheFile)
		path = cf.path
		for _, f := range cf.frames {
			if f.id == id {
				at = f
			}
		}
	} else {
		c.misses++
	}
	c.mu.Unlock()
	if !ok {
		return nil, false
	}
	b, err := readAt(path, at.off, at.size)
	if err != nil {
		c.Drop(key, frame)
		return nil, false
	}
	return b, true
}

func readAt(path string, off, size int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, size)
	if _, err := f.ReadAt(b, off); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

// Has reports whether a frame is cached, without reading it or counting a hit or miss.
func (c *FrameCache) Has(key string, frame int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.items[frameID{key, frame}]
	return ok
}

// Put stores one frame.
func (c *FrameCache) Put(key string, frame int, b []byte) {
	c.PutFrames(key, []int{frame}, [][]byte{b})
}

// PutFrames stores frames of one object (numbers[i] holds data[i]) in one file, or in
// several if they would take more than a quarter of the bound (so that a small cache
// still holds several fetches), evicting the least recently used files to stay within
// the bound. Frames already cached are left as they are.
func (c *FrameCache) PutFrames(key string, numbers []int, data [][]byte) {
	for len(numbers) > 0 {
		n, size := 0, int64(0)
		for n < len(numbers) && (n == 0 || size+int64(len(data[n])) <= c.limit/4) {
			size += int64(len(data[n]))
			n++
		}
		c.putFile(key, numbers[:n], data[:n])
		numbers, data = numbers[n:], data[n:]
	}
}

// putFile stores frames in one file. The bound holds on disk at every moment: room for
// the file is reserved (evicting as needed) before it is written, and frames that find
// no room because other Puts hold it are not cached.
func (c *FrameCache) putFile(key string, numbers []int, data [][]byte) {
	cf := &cacheFile{}
	var keep [][]byte
	c.mu.Lock()
	for k, n := range numbers {
		id := frameID{key, n}
		if _, ok := c.items[id]; ok {
			continue
		}
		cf.frames = append(cf.frames, cachedFrame{id: id, off: cf.size, size: int64(len(data[k]))})
		cf.size += int64(len(data[k]))
		keep = append(keep, data[k])
	}
	if len(keep) == 0 || cf.size > c.limit {
		c.mu.Unlock()
		return
	}
	for c.size+c.reserved+cf.size > c.limit && c.order.Len() > 0 {
		c.evictLocked(c.order.Back())
	}
	if c.size+c.reserved+cf.size > c.limit {
		c.mu.Unlock()
		return
	}
	c.reserved += cf.size
	c.seq++
	// A fresh name for every file: no other Put writes it and no Get reads it before
	// it is complete and registered below, so it needs no temporary name and rename.
	cf.path = filepath.Join(c.dir, fmt.Sprintf("%d.zst", c.seq))
	c.mu.Unlock()

	err := writeFile(cf.path, keep)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.reserved -= cf.size
	if err != nil {
		os.Remove(cf.path)
		return
	}
	// Frames a concurrent Put cached meanwhile stay with it; this file keeps their
	// bytes (counted in its size) until it is evicted.
	frames := cf.frames[:0]
	for _, f := range cf.frames {
		if _, dup := c.items[f.id]; !dup {
			frames = append(frames, f)
		}
	}
	if len(frames) == 0 {
		os.Remove(cf.path)
		return
	}
	cf.frames = frames
	e := c.order.PushFront(cf)
	for _, f := range frames {
		c.items[f.id] = e
	}
	c.size += cf.size
}

func writeFile(path string, data [][]byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	for _, b := range data {
		if _, err = f.Write(b); err != nil {
			break
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Drop removes a frame, with the other frames of its file (after it failed to decode,
// say).
func (c *FrameCache) Drop(key string, frame int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[frameID{key, frame}]; ok {
		c.evictLocked(e)
	}
}

func (c *FrameCache) evictLocked(e *list.Element) {
	cf := e.Value.(*cacheFile)
	c.order.Remove(e)
	for _, f := range cf.frames {
		delete(c.items, f.id)
	}
	c.size -= cf.size
	c.evictions += int64(len(cf.frames))
	os.Remove(cf.path)
}

// CacheStats is a snapshot of the cache's counters.
type CacheStats struct {
	Bytes, Limit            int64
	Frames                  int
	Hits, Misses, Evictions int64
}

// Stats returns the cache's counters (Evictions counts frames).
func (c *FrameCache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Bytes: c.size, Limit: c.limit, Frames: len(c.items), Hits: c.hits, Misses: c.misses, Evictions: c.evictions}
}
