package segment

import (
	"io"
	"io/fs"
	"os"

	"floe/internal/fsutil"
)

// File is the seam between a Segment and the disk: the few file operations
// the WAL needs, so tests can fail any one of them on demand (see FaultFS).
//
// A File is used by one Segment. ReadAt may be called concurrently with
// WriteAt, Sync and Truncate on other ranges; Close is never called
// concurrently with anything else.
type File interface {
	io.ReaderAt
	io.WriterAt
	// Sync makes all data written so far durable, together with the file
	// size (fdatasync on Linux). It returns only after the device reported
	// the data stable.
	Sync() error
	// Truncate changes the size of the file; it is not durable until Sync.
	Truncate(size int64) error
	// Size reports the current size of the file.
	Size() (int64, error)
	Close() error
}

// CacheDropper is implemented by a File that can drop a range of itself from
// the operating system's page cache (posix_fadvise POSIX_FADV_DONTNEED on
// Linux). The range's data stays in the file; only its cached copy goes, if
// it is clean.
type CacheDropper interface {
	DropCache(off, n int64) error
}

// FS is the seam under the directory operations of a Segment and a Store.
// All names are paths as understood by the operating system.
type FS interface {
	// OpenFile opens name with the os.OpenFile flags; it fails with an
	// error wrapping fs.ErrNotExist when the file is absent and O_CREATE is
	// not set.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Remove removes a file or an empty directory; it is not durable until
	// SyncDir of the parent.
	Remove(name string) error
	// Rename renames a file atomically; it is not durable until SyncDir of
	// the parent.
	Rename(oldpath, newpath string) error
	MkdirAll(path string, perm os.FileMode) error
	ReadDir(name string) ([]fs.DirEntry, error)
	Stat(name string) (fs.FileInfo, error)
	// SyncDir fsyncs the directory dir so that entries created, renamed or
	// removed in it survive a crash.
	SyncDir(dir string) error
}

// OS is the FS of the real operating system. Its File.Sync is fdatasync on
// Linux and os.File.Sync elsewhere.
var OS FS = osFS{}

type osFS struct{}

var (
	_ FS           = osFS{}
	_ File         = (*osFile)(nil)
	_ CacheDropper = (*osFile)(nil)
)

// osFile is an *os.File whose Sync is a data sync.
type osFile struct {
	f *os.File
}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &osFile{f: f}, nil
}

func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) Rename(oldpath, newpath string) error         { return os.Rename(oldpath, newpath) }
func (osFS) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }
func (osFS) ReadDir(name string) ([]fs.DirEntry, error)   { return os.ReadDir(name) }
func (osFS) Stat(name string) (fs.FileInfo, error)        { return os.Stat(name) }

func (osFS) SyncDir(dir string) error { return fsutil.SyncDir(dir) }

func (o *osFile) ReadAt(p []byte, off int64) (int, error)  { return o.f.ReadAt(p, off) }
func (o *osFile) WriteAt(p []byte, off int64) (int, error) { return o.f.WriteAt(p, off) }
func (o *osFile) Truncate(size int64) error                { return o.f.Truncate(size) }
func (o *osFile) Sync() error                              { return datasync(o.f) }
func (o *osFile) Close() error                             { return o.f.Close() }
func (o *osFile) DropCache(off, n int64) error             { return dropCache(o.f, off, n) }

func (o *osFile) Size() (int64, error) {
	fi, err := o.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
