package segment

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"floe/topicname"
)

func openStoreT(t *testing.T, dir string) *Store {
	t.Helper()
	st, err := OpenStore(dir, quiet())
	if err != nil {
		t.Fatalf("OpenStore(%q): %v", dir, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestStoreLifecycle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	st := openStoreT(t, dir)
	if got, err := st.List(); err != nil || len(got) != 0 {
		t.Fatalf("List of a new store = %v, %v; want empty", got, err)
	}
	if _, ok := st.Get("orders", 1); ok {
		t.Fatal("Get found a segment in a new store")
	}

	s1, err := st.Create("orders", 1)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if want := filepath.Join(dir, "orders", "00000000000000000001.wal"); s1.Path() != want || st.Path("orders", 1) != want {
		t.Errorf("segment path = %q, Store.Path = %q; want %q", s1.Path(), st.Path("orders", 1), want)
	}
	mustAppend(t, s1, []byte("first"))
	if again, err := st.Create("orders", 1); err != nil || again != s1 {
		t.Errorf("second Create = %p, %v; want the open segment %p", again, err, s1)
	}
	if got, ok := st.Get("orders", 1); !ok || got != s1 {
		t.Errorf("Get = %p, %v; want %p", got, ok, s1)
	}
	if got, err := st.Acquire("orders", 1, true); err != nil || got != s1 {
		t.Errorf("Acquire of an open segment = %p, %v; want %p", got, err, s1)
	}
	for _, id := range []uint64{2, 10, 18446744073709551615} {
		if _, err := st.Create("orders", id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Create("users.v2", 7); err != nil {
		t.Fatal(err)
	}
	// Files that are not segments are ignored by List.
	writeFile(t, filepath.Join(dir, "orders", "00000000000000000003.wal.broken"), []byte("x"))
	writeFile(t, filepath.Join(dir, "orders", "notes.txt"), []byte("x"))
	writeFile(t, filepath.Join(dir, "stray-file"), []byte("x"))
	if err := os.Mkdir(filepath.Join(dir, "bad topic"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := map[string][]uint64{"orders": {1, 2, 10, 18446744073709551615}, "users.v2": {7}}
	if got, err := st.List(); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("List = %v, %v; want %v", got, err, want)
	}

	// Closing a segment forgets it; Acquire reopens it from disk.
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Get("orders", 1); ok {
		t.Error("Get found a closed segment")
	}
	s1b, err := st.Acquire("orders", 1, true)
	if err != nil {
		t.Fatalf("Acquire sealed: %v", err)
	}
	if s1b == s1 || s1b.Count() != 1 {
		t.Errorf("Acquire returned %p with %d records; want a new segment with 1", s1b, s1b.Count())
	}
	if _, err := s1b.Append([]byte("x")); !errors.Is(err, ErrSealed) {
		t.Errorf("Append to a segment opened sealed: err = %v, want ErrSealed", err)
	}

	// Remove deletes; the holder of a reference keeps reading until it releases
	// it, which closes the segment. Removing again is fine.
	if err := st.Remove("orders", 1); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := s1b.Read(0, 1, 0); err != nil {
		t.Errorf("Read of a removed segment still held: %v", err)
	}
	st.Release(s1b)
	if _, err := s1b.Read(0, 1, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Read of a removed segment released: err = %v, want ErrClosed", err)
	}
	if err := st.Remove("orders", 1); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if _, err := st.Acquire("orders", 1, false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Acquire of a removed segment: err = %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(st.Path("orders", 1)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Acquire created the file it did not find (stat err %v)", err)
	}
	if _, err := st.Acquire("nosuchtopic", 1, true); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Acquire in a missing topic: err = %v, want fs.ErrNotExist", err)
	}

	// Close closes every open segment; the store refuses work afterwards.
	s2, _ := st.Get("orders", 2)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Append([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Store.Close: err = %v, want ErrClosed", err)
	}
	if _, err := st.Create("orders", 99); !errors.Is(err, ErrClosed) {
		t.Errorf("Create after Close: err = %v, want ErrClosed", err)
	}
	if _, err := st.List(); !errors.Is(err, ErrClosed) {
		t.Errorf("List after Close: err = %v, want ErrClosed", err)
	}
	if err := st.Remove("orders", 2); !errors.Is(err, ErrClosed) {
		t.Errorf("Remove after Close: err = %v, want ErrClosed", err)
	}
	if err := st.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestStoreReopensAndRecovers(t *testing.T) {
	dir := t.TempDir()
	st := openStoreT(t, dir)
	s, err := st.Create("t", 5)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, []byte("kept"))
	path := s.Path()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// A torn tail, as a crash leaves it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{9, 0, 0, 0, 1, 2})
	f.Close()

	st2 := openStoreT(t, dir)
	if got, err := st2.List(); err != nil || !reflect.DeepEqual(got, map[string][]uint64{"t": {5}}) {
		t.Fatalf("List after reopen = %v, %v", got, err)
	}
	s2, err := st2.Create("t", 5)
	if err != nil {
		t.Fatal(err)
	}
	checkTotals(t, s2, [][]byte{[]byte("kept")})
	if i := mustAppend(t, s2, []byte("more")); i != 1 {
		t.Errorf("Append after recovery: index %d, want 1", i)
	}
}

func TestStoreConcurrentCreateOpensOnce(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	const n = 16
	segs := make([]*Segment, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := st.Create("topic", 1)
			if err != nil {
				t.Errorf("Create: %v", err)
			}
			segs[i] = s
		})
	}
	wg.Wait()
	for i, s := range segs {
		if s != segs[0] {
			t.Fatalf("Create #%d returned %p, #0 returned %p: opened twice", i, s, segs[0])
		}
	}
}

func TestStoreRejectsBadTopics(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	bad := []string{"", ".", "..", "a/b", "../escape", "sp ace", "ünï", strings.Repeat("x", 250), "a\x00b"}
	for _, topic := range bad {
		if _, err := st.Create(topic, 1); !errors.Is(err, topicname.ErrInvalid) {
			t.Errorf("Create(%q): err = %v, want ErrInvalid", topic, err)
		}
		if _, err := st.Acquire(topic, 1, false); !errors.Is(err, topicname.ErrInvalid) {
			t.Errorf("Acquire(%q): err = %v, want ErrInvalid", topic, err)
		}
		if err := st.Remove(topic, 1); !errors.Is(err, topicname.ErrInvalid) {
			t.Errorf("Remove(%q): err = %v, want ErrInvalid", topic, err)
		}
	}
}

func TestStoreOpenFailureIsNotCached(t *testing.T) {
	ffs := &FaultFS{}
	opts := quiet()
	opts.FS = ffs
	st, err := OpenStore(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ffs.FailNextSync(errInjected) // the header sync of the new file
	if _, err := st.Create("t", 1); !errors.Is(err, errInjected) {
		t.Fatalf("Create: err = %v, want the injected fault", err)
	}
	if _, ok := st.Get("t", 1); ok {
		t.Fatal("Get found a segment whose open failed")
	}
	s, err := st.Create("t", 1)
	if err != nil {
		t.Fatalf("Create after a failed one: %v", err)
	}
	mustAppend(t, s, []byte("ok"))
}
