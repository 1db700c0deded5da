// Package mem is an in-memory archive.Bucket for fast unit tests. It keeps every object
// in a map guarded by one mutex; nothing survives the process. It honours the whole
// archive.Bucket contract (IfNoneMatch, ranges, ordering, size checks) so that code
// tested against it behaves the same against a real store.
package mem

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"floe/archive"
)

// Bucket is an in-memory object store. The zero value is not usable; call New.
type Bucket struct {
	name   string
	shared bool // registered by Open: Close keeps the objects
	mu     sync.RWMutex
	objs   map[string]object
}

type object struct {
	data    []byte // never modified after Put
	etag    string
	modTime time.Time
}

var _ archive.Bucket = (*Bucket)(nil)

// New returns an empty bucket; name appears in error messages only.
func New(name string) *Bucket {
	return &Bucket{name: name, objs: make(map[string]object)}
}

var (
	namedMu sync.Mutex
	named   = map[string]*Bucket{}
)

// Open returns the process-wide bucket called name, creating it on first use, so that
// several parts of one process (the three nodes of a test cluster) can share a store
// through the URL mem://name. An empty name returns a new private bucket.
func Open(name string) *Bucket {
	if name == "" {
		return New("")
	}
	namedMu.Lock()
	defer namedMu.Unlock()
	b, ok := named[name]
	if !ok {
		b = New(name)
		b.shared = true
		named[name] = b
	}
	return b
}

func (b *Bucket) loc() string { return "mem://" + b.name }

// Put reads the whole body before taking the lock, so a failed or short body stores nothing.
func (b *Bucket) Put(ctx context.Context, key string, r io.Reader, size int64, opts archive.PutOptions) error {
	if err := archive.ValidateKey(key); err != nil {
		return archive.Error("put", key, b.loc(), err)
	}
	if size < 0 {
		return archive.Error("put", key, b.loc(), fmt.Errorf("%w: negative size %d", archive.ErrSizeMismatch, size))
	}
	if err := archive.CheckPutOptions(opts); err != nil {
		return archive.Error("put", key, b.loc(), err)
	}
	var buf bytes.Buffer
	buf.Grow(int(min(size, 64<<20)))
	if _, err := io.Copy(&buf, archive.ExactReader(r, size)); err != nil {
		return archive.Error("put", key, b.loc(), err)
	}
	if err := ctx.Err(); err != nil {
		return archive.Error("put", key, b.loc(), err)
	}
	sum := md5.Sum(buf.Bytes())
	obj := object{data: buf.Bytes(), etag: hex.EncodeToString(sum[:]), modTime: time.Now()}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.objs == nil {
		return archive.Error("put", key, b.loc(), errClosed)
	}
	old, ok := b.objs[key]
	if ok && opts.IfNoneMatch {
		return archive.Error("put", key, b.loc(), archive.ErrExists)
	}
	if opts.IfMatch != "" && (!ok || old.etag != opts.IfMatch) {
		return archive.Error("put", key, b.loc(), archive.ErrPreconditionFailed)
	}
	b.objs[key] = obj
	return nil
}

var errClosed = fmt.Errorf("mem: bucket closed")

func (b *Bucket) lookup(verb, key string) (object, error) {
	if err := archive.ValidateKey(key); err != nil {
		return object{}, archive.Error(verb, key, b.loc(), err)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.objs == nil {
		return object{}, archive.Error(verb, key, b.loc(), errClosed)
	}
	obj, ok := b.objs[key]
	if !ok {
		return object{}, archive.Error(verb, key, b.loc(), archive.ErrNotFound)
	}
	return obj, nil
}

// Get returns a reader over the stored bytes (shared, never copied).
func (b *Bucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, archive.Error("get", key, b.loc(), err)
	}
	obj, err := b.lookup("get", key)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(obj.data)), nil
}

func (b *Bucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := archive.CheckRange(off, length); err != nil {
		return nil, archive.Error("get range of", key, b.loc(), err)
	}
	if err := ctx.Err(); err != nil {
		return nil, archive.Error("get range of", key, b.loc(), err)
	}
	obj, err := b.lookup("get range of", key)
	if err != nil {
		return nil, err
	}
	if size := int64(len(obj.data)); off+length > size {
		return nil, archive.Error("get range of", key, b.loc(),
			fmt.Errorf("%w: [%d, %d) of %d bytes", archive.ErrInvalidRange, off, off+length, size))
	}
	return io.NopCloser(bytes.NewReader(obj.data[off : off+length])), nil
}

func (b *Bucket) Stat(ctx context.Context, key string) (archive.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return archive.ObjectInfo{}, archive.Error("stat", key, b.loc(), err)
	}
	obj, err := b.lookup("stat", key)
	if err != nil {
		return archive.ObjectInfo{}, err
	}
	return archive.ObjectInfo{Key: key, Size: int64(len(obj.data)), ETag: obj.etag, LastModified: obj.modTime}, nil
}

// List works on a snapshot taken under the lock, so fn may call back into the bucket.
func (b *Bucket) List(ctx context.Context, prefix string, fn func(archive.ObjectInfo) error) error {
	b.mu.RLock()
	if b.objs == nil {
		b.mu.RUnlock()
		return archive.Error("list", prefix, b.loc(), errClosed)
	}
	var infos []archive.ObjectInfo
	for k, obj := range b.objs {
		if strings.HasPrefix(k, prefix) {
			infos = append(infos, archive.ObjectInfo{Key: k, Size: int64(len(obj.data)), ETag: obj.etag, LastModified: obj.modTime})
		}
	}
	b.mu.RUnlock()
	slices.SortFunc(infos, func(a, b archive.ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return archive.Error("list", prefix, b.loc(), err)
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := archive.ValidateKey(key); err != nil {
		return archive.Error("delete", key, b.loc(), err)
	}
	if err := ctx.Err(); err != nil {
		return archive.Error("delete", key, b.loc(), err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.objs == nil {
		return archive.Error("delete", key, b.loc(), errClosed)
	}
	delete(b.objs, key)
	return nil
}

// Close is a no-op for a bucket shared through Open, whose contents outlive any one
// user; a bucket from New drops its objects and fails every later call.
func (b *Bucket) Close() error {
	if b.shared {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.objs = nil
	return nil
}
