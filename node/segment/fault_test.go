package segment

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

var errInjected = errors.New("injected fault")

func TestAppendFailureIsUndone(t *testing.T) {
	tests := []struct {
		name   string
		inject func(*FaultFS)
	}{
		{"write fails", func(f *FaultFS) { f.FailNextWrite(errInjected) }},
		{"write torn after header", func(f *FaultFS) { f.TearNextWrite(RecordHeaderSize, errInjected) }},
		{"write torn mid payload", func(f *FaultFS) { f.TearNextWrite(RecordHeaderSize+3, errInjected) }},
		{"fdatasync fails", func(f *FaultFS) { f.FailNextSync(errInjected) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ffs := &FaultFS{}
			opts := quiet()
			opts.FS = ffs
			path := filepath.Join(t.TempDir(), "seg.wal")
			s := openT(t, path, opts)
			a, b, c, d := []byte("alpha"), []byte("bravo"), []byte("charlie, never acknowledged"), []byte("delta")
			mustAppend(t, s, a)
			mustAppend(t, s, b)

			tt.inject(ffs)
			if i, err := s.Append(c); !errors.Is(err, errInjected) {
				t.Fatalf("Append during fault = %d, %v; want error wrapping the injected one", i, err)
			}
			// Nothing earlier lost, nothing of the failed append visible or
			// left in the file.
			checkTotals(t, s, [][]byte{a, b})
			if _, err := s.Read(2, 1, 0); !errors.Is(err, ErrOutOfRange) {
				t.Errorf("Read(2) after failed append: err = %v, want ErrOutOfRange", err)
			}
			// The segment keeps working, and the index is not consumed.
			if i := mustAppend(t, s, d); i != 2 {
				t.Errorf("Append after the fault = index %d, want 2", i)
			}
			checkTotals(t, s, [][]byte{a, b, d})
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			wantRecords(t, path, [][]byte{a, b, d})
		})
	}
}

// TestFailedBatchFailsEveryAppendInIt holds the fdatasync of one append
// while a batch of three records waits for its turn behind it, then fails
// the fdatasync of that batch: the append before it succeeds, every record
// of the batch fails, none is left in the file or consumes an index, and
// the append after it succeeds.
func TestFailedBatchFailsEveryAppendInIt(t *testing.T) {
	ffs := &FaultFS{}
	opts := quiet()
	opts.FS = ffs
	path := filepath.Join(t.TempDir(), "seg.wal")
	s := openT(t, path, opts)

	type result struct {
		first uint64
		err   error
	}
	appendAsync := func(payloads ...string) chan result {
		ps := make([][]byte, len(payloads))
		for i, p := range payloads {
			ps[i] = []byte(p)
		}
		ch := make(chan result, 1)
		go func() {
			first, err := s.AppendBatch(ps)
			ch <- result{first, err}
		}()
		return ch
	}
	entered, release := ffs.HoldNextSync()
	defer release()
	x := appendAsync("x")
	<-entered
	ffs.FailNextSync(errInjected) // the sync of the next append: the batch's
	y := appendAsync("y1", "y2", "y3")
	release()
	if r := <-x; r.err != nil || r.first != 0 {
		t.Fatalf("x: index %d, err %v; want 0, nil", r.first, r.err)
	}
	if r := <-y; !errors.Is(r.err, errInjected) {
		t.Errorf("batch y: index %d, err %v; want the injected fault", r.first, r.err)
	}
	if i := mustAppend(t, s, []byte("w")); i != 1 {
		t.Errorf("append after the failed batch: index %d, want 1", i)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wantRecords(t, path, [][]byte{[]byte("x"), []byte("w")})
}

// TestFaultsUnderConcurrentAppends injects write and fdatasync failures
// while many goroutines append, and checks that the file holds exactly the
// acknowledged records at their acknowledged indexes, and none that failed.
func TestFaultsUnderConcurrentAppends(t *testing.T) {
	ffs := &FaultFS{}
	opts := quiet()
	opts.FS = ffs
	path := filepath.Join(t.TempDir(), "seg.wal")
	s := openT(t, path, opts)

	const writers, each = 16, 60
	var (
		mu     sync.Mutex
		acked  = make(map[uint64]string)
		failed = make(map[string]bool)
		wg     sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for k := range each {
				// One writer injects the faults: each is consumed by the
				// batch holding its next append (or an earlier one), and
				// that batch is undone, before it injects the next one, so
				// an injected sync fault never hits the undo of a failed
				// write (which would break the segment).
				if w == 0 && k%6 == 1 {
					ffs.FailNextWrite(errInjected)
				}
				if w == 0 && k%6 == 4 {
					ffs.FailNextSync(errInjected)
				}
				p := fmt.Sprintf("w%d-%d", w, k)
				i, err := s.Append([]byte(p))
				mu.Lock()
				switch {
				case err == nil:
					if prev, dup := acked[i]; dup {
						t.Errorf("index %d acknowledged twice: %q and %q", i, prev, p)
					}
					acked[i] = p
				case errors.Is(err, errInjected):
					failed[p] = true
				default:
					t.Errorf("Append(%q): unexpected error %v", p, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failed) == 0 {
		t.Fatal("no append failed: the faults were not injected")
	}
	t.Logf("%d acknowledged, %d failed", len(acked), len(failed))
	want := make([][]byte, len(acked))
	for i := range want {
		p, ok := acked[uint64(i)]
		if !ok {
			t.Fatalf("acknowledged indexes are not contiguous: %d missing of %d", i, len(acked))
		}
		want[i] = []byte(p)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wantRecords(t, path, want) // exactly the acknowledged ones, so none that failed
}

// TestFailedUndoBreaksSegment fails an fdatasync and then the truncate that
// should undo the batch: the segment refuses appends with ErrBroken but
// still serves what was acknowledged.
func TestFailedUndoBreaksSegment(t *testing.T) {
	ffs := &FaultFS{}
	opts := quiet()
	opts.FS = ffs
	path := filepath.Join(t.TempDir(), "seg.wal")
	s := openT(t, path, opts)
	a := []byte("acknowledged")
	mustAppend(t, s, a)

	ffs.FailNextSync(errInjected)
	ffs.FailNextTruncate(errors.New("truncate failed too"))
	if _, err := s.Append([]byte("lost")); !errors.Is(err, errInjected) {
		t.Fatalf("Append: err = %v, want the injected fault", err)
	}
	for _, err := range []error{
		func() error { _, err := s.Append([]byte("refused")); return err }(),
		func() error { _, err := s.AppendBatch([][]byte{[]byte("refused")}); return err }(),
	} {
		if !errors.Is(err, ErrBroken) {
			t.Errorf("append on a broken segment: err = %v, want ErrBroken", err)
		}
	}
	got, err := s.Read(0, 10, 0)
	if err != nil || len(got) != 1 || !bytes.Equal(got[0], a) {
		t.Fatalf("Read on a broken segment = %q, %v; want [%q]", got, err, a)
	}
	count, _, _, err := s.Seal()
	if !errors.Is(err, ErrBroken) || count != 1 {
		t.Errorf("Seal on a broken segment = count %d, err %v; want 1, ErrBroken", count, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The undo never happened, so the unacknowledged record is still in
	// the file; reopening must keep the acknowledged one intact.
	r, err := Open(path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got = readAll(t, r)
	if len(got) < 1 || !bytes.Equal(got[0], a) {
		t.Fatalf("after reopen: records %q, want %q first", got, a)
	}
}

func TestReadErrorIsReported(t *testing.T) {
	ffs := &FaultFS{}
	opts := quiet()
	opts.FS = ffs
	s := openT(t, filepath.Join(t.TempDir(), "seg.wal"), opts)
	mustAppend(t, s, []byte("a"))
	ffs.FailNextRead(errInjected)
	if got, err := s.Read(0, 1, 0); !errors.Is(err, errInjected) || got != nil {
		t.Fatalf("Read = %q, %v; want nil and the injected fault", got, err)
	}
	if got, err := s.Read(0, 1, 0); err != nil || string(got[0]) != "a" {
		t.Fatalf("Read after the fault = %q, %v", got, err)
	}
}

func TestOpenFailsCleanlyOnIOErrors(t *testing.T) {
	tests := []struct {
		name   string
		inject func(*FaultFS)
	}{
		{"header sync of a new file", func(f *FaultFS) { f.FailNextSync(errInjected) }},
		{"header write of a new file", func(f *FaultFS) { f.FailNextWrite(errInjected) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ffs := &FaultFS{}
			opts := quiet()
			opts.FS = ffs
			path := filepath.Join(t.TempDir(), "seg.wal")
			tt.inject(ffs)
			if s, err := Open(path, opts); !errors.Is(err, errInjected) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("Open: err = %v, want the injected fault", err)
			}
			// A retry succeeds and gives an empty, usable segment.
			s := openT(t, path, opts)
			mustAppend(t, s, []byte("after"))
			checkTotals(t, s, [][]byte{[]byte("after")})
		})
	}
}
