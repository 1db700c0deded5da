//go:build !linux

package segment

import "os"

// datasync flushes f to stable storage; outside Linux it is a full
// os.File.Sync (F_FULLFSYNC on Darwin).
func datasync(f *os.File) error { return f.Sync() }

// dropCache does nothing outside Linux: the page cache keeps what it keeps.
func dropCache(f *os.File, off, n int64) error { return nil }
