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
// never a mix. The file's mode is 0600.
func WriteFile(dir, name string, data []byte) error {
	return WriteFileMode(dir, name, data, 0o600)
}

// WriteFileMode is WriteFile with the file's mode set to perm, whatever the umask. The
// temporary file is created 0600 and given perm before any data is written, so a
// secret written with perm 0600 is never readable by others, not even for a moment,
// and the name never points at a file of another mode than perm.
func WriteFileMode(dir, name string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(dir, "."+name+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
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
