// Package fs is an archive.Bucket in a local directory (URL file:///abs/dir). It serves
// `floe dev`, single-machine deployments and shared network file systems that honour
// link(2) and rename(2) atomically.
//
// On-disk layout (key "topics/t/000001.seg" under root /data/archive):
//
//	/data/archive/
//	├── .floe-tmp/                   uploads in progress (put-*) and publish locks
//	│   ├── put-2207139470           (lock-00 .. lock-ff), never listed
//	│   └── lock-3a
//	└── topics/
//	    └── t/
//	        └── 000001.seg           one regular file per object, its bytes verbatim
//
// A Put writes a temporary file in .floe-tmp, fsyncs it, then publishes it: rename(2)
// onto the key's path (last writer wins) or, with IfNoneMatch, link(2) to it, which
// fails with EEXIST if any writer published first, so no writer ever overwrites; then
// the key's directory is fsynced. With IfMatch, the writer compares the current file's
// ETag and renames only if it matches. For that compare and the rename to be one step,
// every publish and every Delete of a key holds an exclusive flock(2) on one of 256
// lock files in .floe-tmp (lock-00 to lock-ff, chosen by a hash of the key; they are
// never removed): a plain Put or a Delete by another writer or process cannot slip
// between an IfMatch writer's compare and its rename. The ETag names the file's inode,
// modification time and size: every Put publishes a new inode, so even two Puts of the
// same size within one tick of the file system's clock get different ETags. Readers therefore see a whole object or none. Parent
// directories are created as needed (and their parents fsynced) and removed again by
// Delete when they become empty.
//
// Permissions: object files (and the lock files) are 0600 and the directories Put and
// Open create (the root with CreateBucket, its missing parents, .floe-tmp and the
// key directories) are 0700, so only the owner of the floe process reads the archive.
// os.CreateTemp makes the temporary file 0600, and rename(2) and link(2) publish that
// same inode, so an object never has other bits; the umask can only remove bits. The
// backend does not encrypt: archive.Options.SSE is refused, and encryption at rest is
// the disk's business (LUKS, dm-crypt, an encrypted volume).
//
// Keys are validated (archive.ValidateKey) so that none can leave the root, and a key
// whose first segment is ".floe-tmp" is refused. Unlike S3, a key cannot be both an
// object and a directory ("a/b" and "a/b/c"): the second Put fails. Temporary files
// older than an hour, left by a crash, are removed when the bucket is opened.
package fs

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"floe/archive"
	"floe/internal/fsutil"
)

// tmpDir is the directory, under the root, of uploads in progress.
const tmpDir = ".floe-tmp"

// Bucket is a directory holding one file per object. Safe for concurrent use, also by
// several processes sharing the directory.
type Bucket struct {
	root string // absolute, cleaned
	tmp  string
	loc  string
}

var _ archive.Bucket = (*Bucket)(nil)

// Open returns the bucket rooted at the absolute directory root. A missing root is
// created when opts.CreateBucket is set and is archive.ErrBucketNotFound otherwise.
// A directory cannot encrypt at rest: any opts.SSE or opts.SSEKMSKeyID is refused
// with archive.ErrBadSSE.
func Open(root string, opts archive.Options) (*Bucket, error) {
	loc := "file://" + root
	if opts.SSE != "" || opts.SSEKMSKeyID != "" {
		return nil, archive.Error("open", root, loc, fmt.Errorf("%w: a file:// archive cannot encrypt objects at rest; drop --s3-sse", archive.ErrBadSSE))
	}
	if !filepath.IsAbs(root) {
		return nil, archive.Error("open", root, loc, fmt.Errorf("%w: root %q is not absolute", archive.ErrBadURL, root))
	}
	root = filepath.Clean(root)
	b := &Bucket{root: root, tmp: filepath.Join(root, tmpDir), loc: loc}
	fi, err := os.Stat(root)
	switch {
	case errors.Is(err, iofs.ErrNotExist) && opts.CreateBucket:
		if err := mkdirAll(root); err != nil {
			return nil, archive.Error("create", root, loc, err)
		}
	case errors.Is(err, iofs.ErrNotExist):
		return nil, archive.Error("open", root, loc, fmt.Errorf("%w: %w", archive.ErrBucketNotFound, err))
	case err != nil:
		return nil, archive.Error("open", root, loc, err)
	case !fi.IsDir():
		return nil, archive.Error("open", root, loc, fmt.Errorf("%w: not a directory", archive.ErrBucketNotFound))
	}
	if err := mkdirAll(b.tmp); err != nil {
		return nil, archive.Error("open", root, loc, err)
	}
	b.removeStaleTemps(time.Hour, opts)
	return b, nil
}

// removeStaleTemps removes uploads that a crashed writer left behind. Only old files
// go: another process sharing the directory may be writing the young ones.
func (b *Bucket) removeStaleTemps(age time.Duration, opts archive.Options) {
	ents, err := os.ReadDir(b.tmp)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "put-") {
			continue // a lock file: removing it could let two writers lock different inodes
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > age {
			if err := os.Remove(filepath.Join(b.tmp, e.Name())); err == nil {
				opts.Log().Info("archive: removed stale temporary upload", "file", filepath.Join(b.tmp, e.Name()))
			}
		}
	}
}

// path maps a key to its file, refusing keys that could leave the root.
func (b *Bucket) path(key string) (string, error) {
	if err := archive.ValidateKey(key); err != nil {
		return "", err
	}
	if key == tmpDir || strings.HasPrefix(key, tmpDir+"/") {
		return "", fmt.Errorf("%w: %q is reserved by the fs backend", archive.ErrInvalidKey, tmpDir)
	}
	p := filepath.Join(b.root, filepath.FromSlash(key))
	if rel, err := filepath.Rel(b.root, p); err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return "", fmt.Errorf("%w: %q leaves the root", archive.ErrInvalidKey, key)
	}
	return p, nil
}

// Put publishes atomically; see the package comment.
func (b *Bucket) Put(ctx context.Context, key string, r io.Reader, size int64, opts archive.PutOptions) error {
	p, err := b.path(key)
	if err != nil {
		return archive.Error("put", key, b.loc, err)
	}
	if size < 0 {
		return archive.Error("put", key, b.loc, fmt.Errorf("%w: negative size %d", archive.ErrSizeMismatch, size))
	}
	if err := archive.CheckPutOptions(opts); err != nil {
		return archive.Error("put", key, b.loc, err)
	}
	if err := b.put(ctx, key, p, r, size, opts); err != nil {
		return archive.Error("put", key, b.loc, err)
	}
	return nil
}

func (b *Bucket) put(ctx context.Context, key, p string, r io.Reader, size int64, opts archive.PutOptions) (err error) {
	f, err := os.CreateTemp(b.tmp, "put-*") // mode 0600, kept by the rename or link that publishes it
	if err != nil {
		if errors.Is(err, iofs.ErrNotExist) {
			// The root (or its .floe-tmp) went away: say so rather than "no such file".
			return fmt.Errorf("%w: %w", archive.ErrBucketNotFound, err)
		}
		return err
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		os.Remove(tmp) // after rename it is gone; after link it is the second name
	}()
	n, err := io.Copy(f, archive.ExactReader(ctxReader{ctx, r}, size))
	if err != nil {
		return err
	}
	if n != size { // ExactReader guarantees it; checked again because it is cheap
		return fmt.Errorf("%w: wrote %d of %d bytes", archive.ErrSizeMismatch, n, size)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if fi, err := f.Stat(); err != nil {
		return err
	} else if fi.Size() != size {
		return fmt.Errorf("%w: file holds %d of %d bytes", archive.ErrSizeMismatch, fi.Size(), size)
	}
	if err := f.Close(); err != nil {
		f = nil
		return err
	}
	f = nil
	if err := ctx.Err(); err != nil {
		return err
	}

	unlock, err := b.lock(key)
	if err != nil {
		return err
	}
	defer unlock()
	if err := b.publish(tmp, p, opts); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(p))
}

// publish puts the finished temporary file tmp in place at p, under the key's lock.
func (b *Bucket) publish(tmp, p string, opts archive.PutOptions) error {
	if opts.IfMatch != "" {
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() || etag(fi) != opts.IfMatch {
			if err != nil && !errors.Is(err, iofs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
				return err
			}
			return archive.ErrPreconditionFailed
		}
	}
	dir := filepath.Dir(p)
	// A concurrent Delete may remove an empty parent between mkdir and publish; retry.
	for attempt := 0; ; attempt++ {
		if err := mkdirAll(dir); err != nil {
			return err
		}
		var err error
		if opts.IfNoneMatch {
			err = os.Link(tmp, p)
			if errors.Is(err, iofs.ErrExist) {
				if fi, serr := os.Lstat(p); serr == nil && fi.IsDir() {
					return fmt.Errorf("key is a directory of other keys: %w", syscall.EISDIR)
				}
				return archive.ErrExists
			}
		} else {
			err = os.Rename(tmp, p)
		}
		if errors.Is(err, iofs.ErrNotExist) && attempt < 5 {
			continue
		}
		return err
	}
}

// lock takes the key's publish lock (see the package comment) and returns its release.
func (b *Bucket) lock(key string) (func(), error) {
	h := fnv.New32a()
	h.Write([]byte(key))
	name := filepath.Join(b.tmp, fmt.Sprintf("lock-%02x", h.Sum32()&0xff))
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		if errors.Is(err, iofs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w", archive.ErrBucketNotFound, err)
		}
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return func() { f.Close() }, nil // closing the file releases the lock
}

// remove removes the object's file under the key's lock, so that it cannot slip
// between the compare and the rename of a Put with IfMatch.
func (b *Bucket) remove(key, p string) error {
	unlock, err := b.lock(key)
	if err != nil {
		return err
	}
	defer unlock()
	if err := os.Remove(p); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return err
	}
	return nil
}

// ctxReader stops a long copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// open opens the object's file, mapping a missing file or a directory to ErrNotFound.
func (b *Bucket) open(key string) (*os.File, iofs.FileInfo, error) {
	p, err := b.path(key)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, classify(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, archive.ErrNotFound
	}
	return f, fi, nil
}

// classify maps OS errors to archive sentinels by errno, never by message.
func classify(err error) error {
	if errors.Is(err, iofs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%w: %w", archive.ErrNotFound, err)
	}
	return err
}

// Get returns the open file; a later replacement of the key does not change what this
// reader sees (it holds the old inode).
func (b *Bucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, archive.Error("get", key, b.loc, err)
	}
	f, fi, err := b.open(key)
	if err != nil {
		return nil, archive.Error("get", key, b.loc, err)
	}
	return archive.CheckedBody(f, fi.Size(), func(err error) error { return archive.Error("read", key, b.loc, err) }), nil
}

func (b *Bucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	const verb = "get range of"
	if err := archive.CheckRange(off, length); err != nil {
		return nil, archive.Error(verb, key, b.loc, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, archive.Error(verb, key, b.loc, err)
	}
	f, fi, err := b.open(key)
	if err != nil {
		return nil, archive.Error(verb, key, b.loc, err)
	}
	if off+length > fi.Size() {
		f.Close()
		return nil, archive.Error(verb, key, b.loc,
			fmt.Errorf("%w: [%d, %d) of %d bytes", archive.ErrInvalidRange, off, off+length, fi.Size()))
	}
	body := struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, off, length), f}
	return archive.CheckedBody(body, length, func(err error) error { return archive.Error("read", key, b.loc, err) }), nil
}

func (b *Bucket) Stat(ctx context.Context, key string) (archive.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return archive.ObjectInfo{}, archive.Error("stat", key, b.loc, err)
	}
	p, err := b.path(key)
	if err != nil {
		return archive.ObjectInfo{}, archive.Error("stat", key, b.loc, err)
	}
	fi, err := os.Stat(p)
	if err == nil && !fi.Mode().IsRegular() {
		err = archive.ErrNotFound
	}
	if err != nil {
		return archive.ObjectInfo{}, archive.Error("stat", key, b.loc, classify(err))
	}
	return info(key, fi), nil
}

// etag derives a file's ETag from its inode, modification time and size: it changes
// when the object is replaced (each Put publishes a new inode) but is not a content
// hash.
func etag(fi iofs.FileInfo) string {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = uint64(st.Ino)
	}
	return fmt.Sprintf("%x-%x-%x", ino, fi.ModTime().UnixNano(), fi.Size())
}

// info describes a file.
func info(key string, fi iofs.FileInfo) archive.ObjectInfo {
	return archive.ObjectInfo{
		Key:          key,
		Size:         fi.Size(),
		ETag:         etag(fi),
		LastModified: fi.ModTime(),
	}
}

// List walks the directory tree in key order. Sorting each directory's entries by
// name, with "/" appended to subdirectories, yields exactly the byte-wise order of the
// full keys ("a.c" < "a/b" because '.' < '/').
func (b *Bucket) List(ctx context.Context, prefix string, fn func(archive.ObjectInfo) error) error {
	// Start at the deepest directory that the prefix names completely.
	start := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
		if archive.ValidateKey(start) != nil {
			return nil // no valid key lies under this prefix
		}
	}
	err := b.walk(ctx, start, prefix, fn)
	if errors.Is(err, errStop) {
		return err.(stopError).err
	}
	if err != nil {
		return archive.Error("list", prefix, b.loc, err)
	}
	return nil
}

var errStop = errors.New("stop")

// stopError carries fn's error through walk untouched.
type stopError struct{ err error }

func (s stopError) Error() string { return "stopped: " + s.err.Error() }
func (s stopError) Is(t error) bool {
	return t == errStop
}

// walk lists the objects under the directory of key dirKey ("" is the root) whose
// keys start with prefix.
func (b *Bucket) walk(ctx context.Context, dirKey, prefix string, fn func(archive.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := b.root
	if dirKey != "" {
		dir = filepath.Join(b.root, filepath.FromSlash(dirKey))
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, iofs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		if dirKey == "" {
			return fmt.Errorf("%w: %w", archive.ErrBucketNotFound, err)
		}
		return nil // removed while walking, or never there: nothing to list
	}
	if err != nil {
		return err
	}
	type entry struct {
		sortKey, key string
		e            iofs.DirEntry
	}
	list := make([]entry, 0, len(ents))
	for _, e := range ents {
		if dirKey == "" && e.Name() == tmpDir {
			continue
		}
		key := e.Name()
		if dirKey != "" {
			key = dirKey + "/" + key
		}
		sk := key
		if e.IsDir() {
			sk += "/"
		}
		// Skip whole subtrees that cannot hold a key with the prefix.
		if !strings.HasPrefix(sk, prefix) && !strings.HasPrefix(prefix, sk) {
			continue
		}
		list = append(list, entry{sortKey: sk, key: key, e: e})
	}
	slices.SortFunc(list, func(a, b entry) int { return strings.Compare(a.sortKey, b.sortKey) })
	for _, ent := range list {
		switch {
		case ent.e.IsDir():
			if err := b.walk(ctx, ent.key, prefix, fn); err != nil {
				return err
			}
		case ent.e.Type().IsRegular():
			if !strings.HasPrefix(ent.key, prefix) {
				continue
			}
			fi, err := ent.e.Info()
			if errors.Is(err, iofs.ErrNotExist) {
				continue // deleted while listing
			}
			if err != nil {
				return err
			}
			if err := fn(info(ent.key, fi)); err != nil {
				return stopError{err}
			}
		}
	}
	return nil
}

// Delete removes the file, fsyncs its directory and removes directories left empty.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return archive.Error("delete", key, b.loc, err)
	}
	p, err := b.path(key)
	if err != nil {
		return archive.Error("delete", key, b.loc, err)
	}
	fi, err := os.Lstat(p)
	if errors.Is(err, iofs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || (err == nil && fi.IsDir()) {
		return nil // no such object
	}
	if err != nil {
		return archive.Error("delete", key, b.loc, err)
	}
	if err := b.remove(key, p); err != nil {
		return archive.Error("delete", key, b.loc, err)
	}
	dir := filepath.Dir(p)
	if err := fsutil.SyncDir(dir); err != nil {
		return archive.Error("delete", key, b.loc, err)
	}
	// Remove empty parents; a failure (not empty, a concurrent Put) just stops it.
	for dir != b.root && strings.HasPrefix(dir, b.root+string(filepath.Separator)) {
		if os.Remove(dir) != nil {
			break
		}
		dir = filepath.Dir(dir)
	}
	return nil
}

// Close does nothing: the bucket holds no open files between calls.
func (b *Bucket) Close() error { return nil }

// mkdirAll creates dir and its missing parents, mode 0700, fsyncing each new
// directory's parent so that the new entries survive a crash. Existing directories
// keep their mode.
func mkdirAll(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s: %w", dir, syscall.ENOTDIR)
		}
		return nil
	}
	if !errors.Is(err, iofs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, iofs.ErrExist) {
		return err
	}
	return fsutil.SyncDir(parent)
}
