package certs

import (
	"fmt"
	"path/filepath"

	"floe/internal/fsutil"
)

// CertPath is where WritePair puts name's certificate in dir: dir/name.crt.
func CertPath(dir, name string) string { return filepath.Join(dir, name+".crt") }

// KeyPath is where WritePair puts name's private key in dir: dir/name.key.
func KeyPath(dir, name string) string { return filepath.Join(dir, name+".key") }

// WritePair publishes keyPEM as KeyPath(dir, name) with mode 0600 and certPEM as
// CertPath(dir, name) with mode 0644, replacing files of those names. Each file is
// written whole and durably (temporary file, fsync, rename, fsync of dir): a crash
// leaves each one old or new, never a mix; the key never exists with a wider mode.
// The pair is not one step: the key is written first, so a crash between the two
// leaves a new key beside the old certificate (or none), which fails to load as a
// pair rather than silently serving a stale one; write the pair again. dir must
// exist.
func WritePair(dir, name string, certPEM, keyPEM []byte) error {
	if err := fsutil.WriteFileMode(dir, name+".key", keyPEM, 0o600); err != nil {
		return fmt.Errorf("cannot write %q: %w", KeyPath(dir, name), err)
	}
	if err := fsutil.WriteFileMode(dir, name+".crt", certPEM, 0o644); err != nil {
		return fmt.Errorf("cannot write %q: %w", CertPath(dir, name), err)
	}
	return nil
}
