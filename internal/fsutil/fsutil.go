// Package fsutil holds the file-system steps that make a change durable, shared by
// every package that writes files floe relies on after a crash.
package fsutil

import (
	"fmt"
	"os"
)

// SyncDir fsyncs directory dir, so that the names created, renamed or removed in it
// survive a crash: fsyncing a file makes its contents durable, not its name.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot fsync directory %q: %w", dir, err)
	}
	return nil
}
