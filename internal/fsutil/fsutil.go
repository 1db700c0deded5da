// Package fsutil holds the file-system steps that make a change durable, shared by
// every package that writes files floe relies on after a crash.
package fsutil

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile replaces dir/name with data durably: a temporary file in dir, fsynced,
// renamed over name, and dir fsynced. A crash leaves the old content or the new,
// never a mix.
func WriteFile(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, "."+name+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	return SyncDir(dir)
}

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
