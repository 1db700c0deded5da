package segment

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
)

// sealedSegments writes n sealed segments of perSeg records each to topic, all
// released, and returns the store.
func sealedSegments(t *testing.T, opts Options, topic string, n, perSeg int) *Store {
	t.Helper()
	st, err := OpenStore(filepath.Join(t.TempDir(), "data"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	for id := uint64(1); id <= uint64(n); id++ {
		s, err := st.Create(topic, id)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < perSeg; j++ {
			if _, err := s.Append([]byte(fmt.Sprintf("%d/%d", id, j))); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, _, err := s.Seal(); err != nil {
			t.Fatal(err)
		}
		st.Release(s)
	}
	return st
}

// TestStoreReferences: a held segment is never closed by the bound on idle sealed
// segments, however many others are opened; once released it is idle, and the least
// recently released idle ones beyond the bound are closed.
func TestStoreReferences(t *testing.T) {
	opts := quiet()
	opts.MaxIdleSealed = 2
	st := sealedSegments(t, opts, "t", 6, 3)
	if idle, open := st.OpenIdle(); idle != 2 || open != 2 {
		t.Fatalf("after writing 6 segments: %d idle, %d open; want 2, 2", idle, open)
	}
	held, err := st.Acquire("t", 1, true)
	if err != nil {
		t.Fatal(err)
	}
	for id := uint64(2); id <= 6; id++ {
		s, err := st.Acquire("t", id, true)
		if err != nil {
			t.Fatal(err)
		}
		st.Release(s)
	}
	if got, err := held.Read(0, 3, 0); err != nil || len(got) != 3 {
		t.Fatalf("Read of a held segment after opening 5 others over a bound of 2: %d records, %v", len(got), err)
	}
	if idle, open := st.OpenIdle(); idle != 2 || open != 3 {
		t.Errorf("with one held: %d idle, %d open; want 2, 3", idle, open)
	}
	again, err := st.Acquire("t", 1, true)
	if err != nil || again != held {
		t.Fatalf("Acquire of a held segment = %p, %v; want the same %p", again, err, held)
	}
	st.Release(again)
	st.Release(held)
	if _, err := held.Read(0, 1, 0); err != nil {
		t.Errorf("Read of the most recently released segment: %v", err)
	}
	if idle, open := st.OpenIdle(); idle != 2 || open != 2 {
		t.Errorf("all released: %d idle, %d open; want 2, 2", idle, open)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a Release without a reference did not panic")
			}
		}()
		st.Release(held)
	}()
}

// TestStoreManyReadersManySegments: 100 readers read random records of 3000 small
// sealed segments at once through a store that keeps 8 idle ones open, while a writer
// removes some segments. Every read of a segment it could acquire returns its records:
// no read fails because the store closed a segment to stay within its bound, or because
// it was removed meanwhile.
func TestStoreManyReadersManySegments(t *testing.T) {
	const (
		segments = 3000
		perSeg   = 10
		readers  = 100
		reads    = 300
		removed  = 100 // segments segments-removed+1 .. segments are removed while read
	)
	st := sealedSegments(t, quiet(), "many", segments, perSeg)
	var wg sync.WaitGroup
	errs := make(chan error, readers+1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for id := uint64(segments - removed + 1); id <= segments; id++ {
			if err := st.Remove("many", id); err != nil {
				errs <- fmt.Errorf("Remove %d: %v", id, err)
				return
			}
		}
	}()
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			for k := 0; k < reads; k++ {
				id := uint64(rng.IntN(segments) + 1)
				at := uint64(rng.IntN(perSeg))
				s, err := st.Acquire("many", id, true)
				if id > segments-removed && errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					errs <- fmt.Errorf("reader %d: Acquire %d: %v", r, id, err)
					return
				}
				recs, err := s.Read(at, perSeg, 0)
				st.Release(s)
				if err != nil {
					errs <- fmt.Errorf("reader %d: Read segment %d at %d: %v", r, id, at, err)
					return
				}
				for i, p := range recs {
					if want := fmt.Sprintf("%d/%d", id, at+uint64(i)); string(p) != want {
						errs <- fmt.Errorf("reader %d: segment %d record %d = %q, want %q", r, id, at+uint64(i), p, want)
						return
					}
				}
				if len(recs) != perSeg-int(at) {
					errs <- fmt.Errorf("reader %d: segment %d at %d: %d records, want %d", r, id, at, len(recs), perSeg-int(at))
					return
				}
			}
		}(r)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if idle, open := st.OpenIdle(); idle > DefaultMaxIdleSealed || open != idle {
		t.Errorf("after the readers: %d idle, %d open; want at most %d, all idle", idle, open, DefaultMaxIdleSealed)
	}
}
