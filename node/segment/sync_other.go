//go:build !linux

package segment

import "os"

// datasync flushes f to stable storage; outside Linux it is a full
// os.File.Sync (F_FULLFSYNC on Darwin).
func datasync(f *os.File) error { return f.Sync() }
