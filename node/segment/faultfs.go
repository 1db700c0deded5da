package segment

import (
	"io/fs"
	"os"
	"sync"
)

// FaultFS is an FS that passes every call to an underlying FS and can be told
// to fail the next write, sync, truncate or read of any file opened through
// it. Every fault is one-shot: it hits the next matching call and is then
// cleared. It is meant for tests, of this package and of others, and is safe
// for concurrent use.
//
// The zero value wraps OS.
type FaultFS struct {
	// FS is the underlying file system; nil means OS.
	FS FS

	mu       sync.Mutex
	writeErr error
	tearN    int // with writeErr: bytes actually written before failing
	syncErr  error
	truncErr error
	readErr  error
	broken   error // every write, sync and truncate fails with it (Break)
	hold     *syncHold
	writes   int
	syncs    int
	drops    []Range
	// unsynced is set by a write (or truncation) and cleared by a sync that
	// succeeded after it.
	unsynced bool
	changes  int // writes and truncations
}

// Range is a byte range of a file dropped from the page cache: Len bytes from
// Off. Unsynced is set if a write came after the last successful sync when it
// was dropped.
type Range struct {
	Off, Len int64
	Unsynced bool
}

type syncHold struct {
	entered chan struct{}
	release chan struct{}
}

var _ FS = (*FaultFS)(nil)

// FailNextWrite makes the next File.WriteAt fail with err, writing nothing.
func (f *FaultFS) FailNextWrite(err error) { f.TearNextWrite(0, err) }

// TearNextWrite makes the next File.WriteAt write only its first n bytes
// (fewer if the write is shorter) and then fail with err, like a device that
// filled up or failed in the middle of a write.
func (f *FaultFS) TearNextWrite(n int, err error) {
	f.mu.Lock()
	f.writeErr, f.tearN = err, n
	f.mu.Unlock()
}

// Break makes every File.WriteAt, Sync and Truncate fail with err, writing nothing,
// until Break(nil): a disk that died under a running process.
func (f *FaultFS) Break(err error) {
	f.mu.Lock()
	f.broken = err
	f.mu.Unlock()
}

// FailNextSync makes the next File.Sync fail with err without syncing.
func (f *FaultFS) FailNextSync(err error) {
	f.mu.Lock()
	f.syncErr = err
	f.mu.Unlock()
}

// FailNextTruncate makes the next File.Truncate fail with err without
// truncating.
func (f *FaultFS) FailNextTruncate(err error) {
	f.mu.Lock()
	f.truncErr = err
	f.mu.Unlock()
}

// FailNextRead makes the next File.ReadAt fail with err.
func (f *FaultFS) FailNextRead(err error) {
	f.mu.Lock()
	f.readErr = err
	f.mu.Unlock()
}

// HoldNextSync makes the next File.Sync block until release is called.
// entered is closed once that Sync has started (and is blocked), so a test
// can queue more work behind a sync in progress without sleeping. release
// is idempotent.
func (f *FaultFS) HoldNextSync() (entered <-chan struct{}, release func()) {
	h := &syncHold{entered: make(chan struct{}), release: make(chan struct{})}
	f.mu.Lock()
	f.hold = h
	f.mu.Unlock()
	var once sync.Once
	return h.entered, func() { once.Do(func() { close(h.release) }) }
}

// Writes reports how many File.WriteAt calls were made, failed ones included.
func (f *FaultFS) Writes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes
}

// Syncs reports how many File.Sync calls were made, failed ones included.
func (f *FaultFS) Syncs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncs
}

// Drops returns the ranges dropped from the page cache through the FaultFS's
// files (CacheDropper), in order.
func (f *FaultFS) Drops() []Range {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Range(nil), f.drops...)
}

func (f *FaultFS) inner() FS {
	if f.FS == nil {
		return OS
	}
	return f.FS
}

// OpenFile opens name on the underlying FS; the File it returns obeys the
// faults set on f.
func (f *FaultFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	file, err := f.inner().OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

// Remove passes through to the underlying FS; no fault applies.
func (f *FaultFS) Remove(name string) error { return f.inner().Remove(name) }

// Rename passes through to the underlying FS; no fault applies.
func (f *FaultFS) Rename(oldpath, newpath string) error { return f.inner().Rename(oldpath, newpath) }

// MkdirAll passes through to the underlying FS; no fault applies.
func (f *FaultFS) MkdirAll(path string, perm os.FileMode) error {
	return f.inner().MkdirAll(path, perm)
}

// ReadDir passes through to the underlying FS; no fault applies.
func (f *FaultFS) ReadDir(name string) ([]fs.DirEntry, error) { return f.inner().ReadDir(name) }

// Stat passes through to the underlying FS; no fault applies.
func (f *FaultFS) Stat(name string) (fs.FileInfo, error) { return f.inner().Stat(name) }

// SyncDir passes through to the underlying FS; no fault applies
// (FailNextSync concerns File.Sync only).
func (f *FaultFS) SyncDir(dir string) error { return f.inner().SyncDir(dir) }

type faultFile struct {
	File
	fs *FaultFS
}

// DropCache records the range and drops it through the underlying file, if it
// can.
func (ff *faultFile) DropCache(off, n int64) error {
	ff.fs.mu.Lock()
	ff.fs.drops = append(ff.fs.drops, Range{off, n, ff.fs.unsynced})
	ff.fs.mu.Unlock()
	if d, ok := ff.File.(CacheDropper); ok {
		return d.DropCache(off, n)
	}
	return nil
}

func (ff *faultFile) WriteAt(p []byte, off int64) (int, error) {
	f := ff.fs
	f.mu.Lock()
	f.writes++
	f.changes++
	f.unsynced = true
	err, n := f.writeErr, f.tearN
	f.writeErr = nil
	if f.broken != nil {
		err, n = f.broken, 0
	}
	f.mu.Unlock()
	if err == nil {
		return ff.File.WriteAt(p, off)
	}
	n = min(max(n, 0), len(p))
	if n > 0 {
		if w, werr := ff.File.WriteAt(p[:n], off); werr != nil {
			return w, werr
		}
	}
	return n, err
}

func (ff *faultFile) Sync() error {
	f := ff.fs
	f.mu.Lock()
	f.syncs++
	err, h := f.syncErr, f.hold
	f.syncErr, f.hold = nil, nil
	if f.broken != nil {
		err = f.broken
	}
	f.mu.Unlock()
	if h != nil {
		close(h.entered)
		<-h.release
	}
	if err != nil {
		return err
	}
	f.mu.Lock()
	before := f.changes
	f.mu.Unlock()
	if err := ff.File.Sync(); err != nil {
		return err
	}
	f.mu.Lock()
	if f.changes == before {
		f.unsynced = false
	}
	f.mu.Unlock()
	return nil
}

func (ff *faultFile) Truncate(size int64) error {
	f := ff.fs
	f.mu.Lock()
	f.changes++
	f.unsynced = true
	err := f.truncErr
	f.truncErr = nil
	if f.broken != nil {
		err = f.broken
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	return ff.File.Truncate(size)
}

func (ff *faultFile) ReadAt(p []byte, off int64) (int, error) {
	f := ff.fs
	f.mu.Lock()
	err := f.readErr
	f.readErr = nil
	f.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return ff.File.ReadAt(p, off)
}
