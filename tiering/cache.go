package tiering

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// FrameCache is a bounded on-disk LRU of compressed object frames, keyed by object key
// and frame number. It never holds more than its byte bound: a frame larger than the
// bound is not cached. Entries are verified when decoded (the frame carries its own
// checksums), so a damaged cache file costs a refetch, never wrong data. Safe for
// concurrent use.
type FrameCache struct {
	dir   string
	limit int64

	mu   sync.Mutex
	size int64 // bytes of the cached frames
	// reserved is room taken by Puts writing their temporary files: the directory holds
	// at most size+reserved bytes, and that never exceeds limit.
	reserved int64
	order    *list.List // of *cacheEntry, most recently used first
	items    map[frameID]*list.Element

	hits, misses, evictions int64
}

type frameID struct {
	key   string
	frame int
}

type cacheEntry struct {
	id   frameID
	path string
	size int64
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

func (c *FrameCache) path(id frameID) string {
	h := sha256.Sum256([]byte(id.key))
	return filepath.Join(c.dir, fmt.Sprintf("%s-%d.zst", hex.EncodeToString(h[:12]), id.frame))
}

// Get returns a cached frame.
func (c *FrameCache) Get(key string, frame int) ([]byte, bool) {
	id := frameID{key, frame}
	c.mu.Lock()
	e, ok := c.items[id]
	if ok {
		c.order.MoveToFront(e)
		c.hits++
	} else {
		c.misses++
	}
	c.mu.Unlock()
	if !ok {
		return nil, false
	}
	b, err := os.ReadFile(e.Value.(*cacheEntry).path)
	if err != nil || int64(len(b)) != e.Value.(*cacheEntry).size {
		c.Drop(key, frame)
		return nil, false
	}
	return b, true
}

// Has reports whether a frame is cached, without reading it or counting a hit or miss.
func (c *FrameCache) Has(key string, frame int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.items[frameID{key, frame}]
	return ok
}

// Put stores a frame, evicting the least recently used ones to stay within the bound.
// The bound holds on disk at every moment, temporary files included: room for the frame
// is reserved (evicting as needed) before its file is written, and a frame that finds no
// room because other Puts hold it is not cached.
func (c *FrameCache) Put(key string, frame int, b []byte) {
	size := int64(len(b))
	if size > c.limit {
		return
	}
	id := frameID{key, frame}
	c.mu.Lock()
	if _, ok := c.items[id]; ok {
		c.mu.Unlock()
		return
	}
	for c.size+c.reserved+size > c.limit && c.order.Len() > 0 {
		c.evictLocked(c.order.Back())
	}
	if c.size+c.reserved+size > c.limit {
		c.mu.Unlock()
		return
	}
	c.reserved += size
	c.mu.Unlock()

	ok := false
	path := c.path(id)
	f, err := os.CreateTemp(c.dir, "put-*.tmp")
	if err == nil {
		tmp := f.Name()
		_, err = f.Write(b)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp, path)
		}
		if err != nil {
			os.Remove(tmp)
		}
		ok = err == nil
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	c.reserved -= size
	if !ok {
		return
	}
	if _, dup := c.items[id]; dup {
		return // a concurrent Put of the same frame renamed onto the same path first
	}
	c.items[id] = c.order.PushFront(&cacheEntry{id: id, path: path, size: size})
	c.size += size
}

// Drop removes a frame (after it failed to decode, say).
func (c *FrameCache) Drop(key string, frame int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[frameID{key, frame}]; ok {
		c.evictLocked(e)
	}
}

func (c *FrameCache) evictLocked(e *list.Element) {
	ce := e.Value.(*cacheEntry)
	c.order.Remove(e)
	delete(c.items, ce.id)
	c.size -= ce.size
	c.evictions++
	os.Remove(ce.path)
}

// CacheStats is a snapshot of the cache's counters.
type CacheStats struct {
	Bytes, Limit            int64
	Frames                  int
	Hits, Misses, Evictions int64
}

// Stats returns the cache's counters.
func (c *FrameCache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Bytes: c.size, Limit: c.limit, Frames: c.order.Len(), Hits: c.hits, Misses: c.misses, Evictions: c.evictions}
}

// DiskBytes sums the sizes of the files in the cache directory (for tests: the bound
// holds on disk, not only in the accounting).
func (c *FrameCache) DiskBytes() (int64, error) {
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
