package fs_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"floe/archive"
	"floe/archive/archivetest"
	"floe/archive/fs"
)

func TestAcceptance(t *testing.T) {
	archivetest.Run(t, func(t *testing.T) archive.Bucket {
		b, err := fs.Open(t.TempDir(), archive.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestOpenMissingRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "a", "b")
	if _, err := fs.Open(root, archive.Options{}); !errors.Is(err, archive.ErrBucketNotFound) {
		t.Fatalf("Open of a missing root: error %v; want ErrBucketNotFound", err)
	}
	if _, err := fs.Open(root, archive.Options{CreateBucket: true}); err != nil {
		t.Fatalf("Open with CreateBucket: %v", err)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		t.Fatalf("root not created: %v", err)
	}
	if _, err := fs.Open("relative/dir", archive.Options{CreateBucket: true}); !errors.Is(err, archive.ErrBadURL) {
		t.Fatalf("Open of a relative root: error %v; want ErrBadURL", err)
	}
}

// TestLayout checks the on-disk layout of the package comment: one file per object
// holding its bytes, no temporary files left, empty directories removed by Delete.
func TestLayout(t *testing.T) {
	root := t.TempDir()
	b, err := fs.Open(root, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data := []byte("segment bytes")
	if err := b.Put(ctx, "topics/t/000001.seg", bytes.NewReader(data), int64(len(data)), archive.PutOptions{IfNoneMatch: true}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "topics", "t", "000001.seg"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file content = %q, %v; want %q", got, err, data)
	}
	ents, _ := os.ReadDir(filepath.Join(root, ".floe-tmp"))
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "lock-") { // publish locks stay, by design
			t.Fatalf("temporary files left: %v", ents)
		}
	}
	if err := b.Put(ctx, ".floe-tmp/x", bytes.NewReader(data), int64(len(data)), archive.PutOptions{}); !errors.Is(err, archive.ErrInvalidKey) {
		t.Fatalf("Put into the reserved directory: error %v; want ErrInvalidKey", err)
	}
	if err := b.Delete(ctx, "topics/t/000001.seg"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "topics")); !os.IsNotExist(err) {
		t.Fatalf("empty directories left after Delete: %v", err)
	}
}

// TestKeyIsDirectory documents the fs-only limitation: a key cannot be both an object
// and a prefix directory of other keys.
func TestKeyIsDirectory(t *testing.T) {
	b, err := fs.Open(t.TempDir(), archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Put(ctx, "a/b", strings.NewReader("x"), 1, archive.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, cond := range []bool{false, true} {
		err := b.Put(ctx, "a", strings.NewReader("y"), 1, archive.PutOptions{IfNoneMatch: cond})
		if err == nil || archive.IsExists(err) {
			t.Errorf("Put of a key that is a directory (IfNoneMatch %v): error %v; want a plain error", cond, err)
		}
	}
	if err := b.Put(ctx, "a/b/c", strings.NewReader("y"), 1, archive.PutOptions{}); err == nil {
		t.Errorf("Put below an object's key succeeded")
	}
}

// TestPermissions: objects are 0600 and the directories the backend creates 0700,
// whatever path published them (link for IfNoneMatch, rename otherwise, rename over an
// existing object) and even under a umask that takes nothing away.
func TestPermissions(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	root := filepath.Join(t.TempDir(), "made", "archive")
	b, err := fs.Open(root, archive.Options{CreateBucket: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		key  string
		opts archive.PutOptions
	}{
		{"topics/t/1.seg", archive.PutOptions{IfNoneMatch: true}},
		{"topics/t/2.seg", archive.PutOptions{}},
		{"topics/t/2.seg", archive.PutOptions{}}, // replaces the object
	} {
		if err := b.Put(ctx, tc.key, strings.NewReader("secret"), 6, tc.opts); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		path string
		want os.FileMode
	}{
		{filepath.Join(root, "topics", "t", "1.seg"), 0o600},
		{filepath.Join(root, "topics", "t", "2.seg"), 0o600},
		{filepath.Join(root, "topics", "t"), 0o700 | os.ModeDir},
		{filepath.Join(root, "topics"), 0o700 | os.ModeDir},
		{filepath.Join(root, ".floe-tmp"), 0o700 | os.ModeDir},
		{root, 0o700 | os.ModeDir},
		{filepath.Dir(root), 0o700 | os.ModeDir},
	} {
		fi, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (os.ModeDir | os.ModePerm); got != tc.want {
			t.Errorf("%s: mode %v; want %v", tc.path, got, tc.want)
		}
	}
	ents, err := os.ReadDir(filepath.Join(root, ".floe-tmp"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents { // the publish locks
		if fi, err := e.Info(); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf(".floe-tmp/%s: mode %v, %v; want 0600", e.Name(), fi.Mode(), err)
		}
	}
}

// TestOpenRefusesSSE: a directory cannot encrypt at rest, so asking for it fails.
func TestOpenRefusesSSE(t *testing.T) {
	for _, opts := range []archive.Options{{SSE: archive.SSES3}, {SSE: archive.SSEKMS, SSEKMSKeyID: "k"}} {
		if _, err := fs.Open(t.TempDir(), opts); !errors.Is(err, archive.ErrBadSSE) {
			t.Errorf("Open with SSE %q: error %v; want ErrBadSSE", opts.SSE, err)
		}
	}
}
