package auth

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// TestReloadKeepsTableOnError: a reload of a file with a bad line, or of a file that
// is gone, fails and leaves the table in force; a good one replaces it.
func TestReloadKeepsTableOnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, path, hashOf("alice")+" write\n")
	src, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if src.Path() != path {
		t.Errorf("Path() = %q, want %q", src.Path(), path)
	}
	before := src.Current()

	writeFile(t, path, hashOf("alice")+" write\n"+hashOf("bob")+" wirte\n") // a typo
	if err := src.Reload(); !errors.Is(err, ErrBadFile) {
		t.Fatalf("Reload of a bad file: %v, want ErrBadFile", err)
	}
	if src.Current() != before {
		t.Fatal("a failed reload replaced the table")
	}
	if _, ok := src.Current().Authenticate("alice"); !ok {
		t.Fatal("a failed reload locked alice out")
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := src.Reload(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Reload of a missing file: %v, want os.ErrNotExist", err)
	}
	if src.Current() != before {
		t.Fatal("a failed reload replaced the table")
	}

	writeFile(t, path, hashOf("bob")+" read\n")
	if err := src.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := src.Current().Authenticate("bob"); !ok {
		t.Error("bob is not in the reloaded table")
	}
	if _, ok := src.Current().Authenticate("alice"); ok {
		t.Error("alice is still in the reloaded table")
	}
}

// TestReloadReachesAuthenticatedConnections: a connection keeps its credential, not
// its rights: after a reload, its next request is checked against the new file.
func TestReloadReachesAuthenticatedConnections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, path, hashOf("alice")+" write\n"+hashOf("bob")+" read\n")
	src, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := NewCredential("alice"), NewCredential("bob") // AUTH on two connections
	put := ForCommand("PUT")
	if _, err := src.Current().Authorize(alice, put, "t"); err != nil {
		t.Fatalf("alice PUT before the reload: %v", err)
	}
	if _, err := src.Current().Authorize(bob, put, "t"); err == nil {
		t.Fatal("bob PUT before the reload was allowed")
	}

	// alice is revoked, bob promoted.
	writeFile(t, path, hashOf("bob")+" write\n")
	if err := src.Reload(); err != nil {
		t.Fatal(err)
	}
	_, err = src.Current().Authorize(alice, put, "t")
	var rf *Refusal
	if !errors.As(err, &rf) || rf.Reason != "unknown token" {
		t.Errorf("alice PUT after her token was removed: %v, want unknown token", err)
	}
	if _, err := src.Current().Authorize(bob, put, "t"); err != nil {
		t.Errorf("bob PUT after he was given write: %v", err)
	}
}

// TestCurrentDuringReload (run with -race): readers see one whole table or the
// other while files are reloaded, never a mixture and never none.
func TestCurrentDuringReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens")
	fileA := hashOf("a") + " read\n" + hashOf("a2") + " read\n"
	fileB := hashOf("b") + " read\n" + hashOf("b2") + " read\n"
	writeFile(t, path, fileA)
	src, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var sawA, sawB atomic.Int64
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				tab := src.Current()
				_, a := tab.Authenticate("a")
				_, a2 := tab.Authenticate("a2")
				_, b := tab.Authenticate("b")
				_, b2 := tab.Authenticate("b2")
				switch {
				case a && a2 && !b && !b2:
					sawA.Add(1)
				case b && b2 && !a && !a2:
					sawB.Add(1)
				default:
					t.Errorf("a table with a=%v a2=%v b=%v b2=%v", a, a2, b, b2)
					return
				}
			}
		})
	}
	// Each reload reads a file written beside and renamed over the path, as an
	// operator's editor or config management does, so no reload sees half a file.
	for i := range 200 {
		content := fileA
		if i%2 == 0 {
			content = fileB
		}
		tmp := filepath.Join(dir, "tokens.tmp")
		writeFile(t, tmp, content)
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		if err := src.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("readers saw table A %d times, B %d times", sawA.Load(), sawB.Load())
}

// TestConcurrentReloads (run with -race): reloads from several goroutines at once
// (two SIGHUPs close together) do not race, and all succeed.
func TestConcurrentReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, path, hashOf("a")+" read\n")
	src, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if err := src.Reload(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if _, ok := src.Current().Authenticate("a"); !ok {
		t.Error("a is not in the table after the reloads")
	}
}

// TestLoadFails: Load of a bad file returns the error and no Source.
func TestLoadFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, path, "my-raw-token read\n")
	src, err := Load(path)
	if src != nil || !errors.Is(err, ErrBadFile) {
		t.Errorf("Load of a bad file = %v, %v; want nil, ErrBadFile", src, err)
	}
}
