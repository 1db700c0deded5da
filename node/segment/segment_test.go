package segment

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"floe/internal/testenv"
)

func TestAppendReadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg.wal")
	s := openT(t, path, quiet())
	if got := s.Path(); got != path {
		t.Errorf("Path() = %q, want %q", got, path)
	}
	checkTotals(t, s, nil)

	want := [][]byte{
		[]byte("x"),
		[]byte("hello, segment"),
		bytes.Repeat([]byte{0}, 1024),
		bytes.Repeat([]byte("0123456789abcdef"), 100_000/16),
	}
	for i, p := range want {
		if got := mustAppend(t, s, p); got != uint64(i) {
			t.Fatalf("Append #%d returned index %d", i, got)
		}
	}
	for i, p := range want {
		got, err := s.Read(uint64(i), 1, 0)
		if err != nil {
			t.Fatalf("Read(%d): %v", i, err)
		}
		if len(got) != 1 || !bytes.Equal(got[0], p) {
			t.Fatalf("Read(%d) = %d records, want %q...", i, len(got), p[:min(len(p), 16)])
		}
	}
	checkTotals(t, s, want)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wantRecords(t, path, want)
}

func TestReadLimits(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "seg.wal"), quiet())
	// Five records of 10, 20, 30, 40 and 50 bytes.
	for i := 1; i <= 5; i++ {
		mustAppend(t, s, bytes.Repeat([]byte{byte('0' + i)}, 10*i))
	}
	tests := []struct {
		name     string
		index    uint64
		max      int
		maxBytes int
		want     []int // payload lengths
	}{
		{"all", 0, 100, 0, []int{10, 20, 30, 40, 50}},
		{"max", 1, 2, 0, []int{20, 30}},
		{"max zero counts as one", 2, 0, 0, []int{30}},
		{"max past the end", 3, 10, 0, []int{40, 50}},
		{"bytes exact", 0, 10, 60, []int{10, 20, 30}},
		{"bytes stop before exceeding", 0, 10, 59, []int{10, 20}},
		{"bytes below first record still returns one", 4, 10, 1, []int{50}},
		{"bytes and max", 0, 2, 1000, []int{10, 20}},
		{"last record", 4, 1, 0, []int{50}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Read(tt.index, tt.max, tt.maxBytes)
			if err != nil {
				t.Fatalf("Read(%d, %d, %d): %v", tt.index, tt.max, tt.maxBytes, err)
			}
			var lens []int
			for _, p := range got {
				lens = append(lens, len(p))
			}
			if fmt.Sprint(lens) != fmt.Sprint(tt.want) {
				t.Fatalf("Read(%d, %d, %d) payload lengths = %v, want %v", tt.index, tt.max, tt.maxBytes, lens, tt.want)
			}
			for k, p := range got {
				if want := byte('0' + int(tt.index) + k + 1); p[0] != want {
					t.Fatalf("record %d starts with %q, want %q", k, p[0], want)
				}
			}
		})
	}
	for _, index := range []uint64{5, 6, 1 << 63} {
		if _, err := s.Read(index, 1, 0); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("Read(%d) of 5 records: err = %v, want ErrOutOfRange", index, err)
		}
	}
}

func TestAppendRejects(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "seg.wal"), quiet())
	mustAppend(t, s, []byte("kept"))
	tests := []struct {
		name     string
		payloads [][]byte
		want     error
	}{
		{"empty payload", [][]byte{{}}, ErrEmpty},
		{"nil payload", [][]byte{nil}, ErrEmpty},
		{"empty batch", nil, ErrEmpty},
		{"empty payload in a batch", [][]byte{[]byte("a"), nil}, ErrEmpty},
		{"too large", [][]byte{make([]byte, MaxPayload+1)}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.AppendBatch(tt.payloads); !errors.Is(err, tt.want) {
				t.Errorf("AppendBatch: err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := s.Append(nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("Append(nil): err = %v, want ErrEmpty", err)
	}
	if got := s.Count(); got != 1 {
		t.Errorf("Count() = %d after rejected appends, want 1", got)
	}
	if i := mustAppend(t, s, make([]byte, MaxPayload)); i != 1 {
		t.Errorf("Append of MaxPayload bytes: index %d, want 1", i)
	}
}

func TestConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg.wal")
	s := openT(t, path, quiet())
	const writers, each = 32, 100
	var (
		mu  sync.Mutex
		got = make(map[uint64][]byte)
		wg  sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for k := range each {
				p := []byte(fmt.Sprintf("writer %d entry %d", w, k))
				i, err := s.Append(p)
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				if prev, dup := got[i]; dup {
					t.Errorf("index %d returned twice: %q and %q", i, prev, p)
				}
				got[i] = p
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	want := make([][]byte, writers*each)
	for i := range want {
		p, ok := got[uint64(i)]
		if !ok {
			t.Fatalf("index %d never returned: indexes are not contiguous", i)
		}
		want[i] = p
	}
	// Each writer's entries are in its own order.
	last := make(map[string]int)
	for i, p := range want {
		var w, k int
		if _, err := fmt.Sscanf(string(p), "writer %d entry %d", &w, &k); err != nil {
			t.Fatal(err)
		}
		if prev, ok := last[fmt.Sprint(w)]; ok && prev >= i {
			t.Fatalf("writer %d: entry %d at index %d is not after its previous one", w, k, i)
		}
		last[fmt.Sprint(w)] = i
	}
	for i, p := range readAll(t, s) {
		if !bytes.Equal(p, want[i]) {
			t.Fatalf("Read index %d = %q, want %q", i, p, want[i])
		}
	}
	checkTotals(t, s, want)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wantRecords(t, path, want)
}

func TestAppendBatchIsContiguous(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg.wal")
	s := openT(t, path, quiet())
	const writers, batches, size = 8, 20, 5
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for k := range batches {
				var ps [][]byte
				for j := range size {
					ps = append(ps, []byte(fmt.Sprintf("w%d b%d r%d", w, k, j)))
				}
				first, err := s.AppendBatch(ps)
				if err != nil {
					t.Errorf("AppendBatch: %v", err)
					return
				}
				got, err := s.Read(first, size, 0)
				if err != nil {
					t.Errorf("Read(%d, %d): %v", first, size, err)
					return
				}
				for j := range ps {
					if !bytes.Equal(got[j], ps[j]) {
						t.Errorf("batch at %d: record %d = %q, want %q", first, j, got[j], ps[j])
					}
				}
			}
		})
	}
	wg.Wait()
	if got, want := s.Count(), uint64(writers*batches*size); got != want {
		t.Fatalf("Count() = %d, want %d", got, want)
	}
}

// TestAppendBatchIsOneWriteAndOneSync checks that a batch is committed by
// one write and one fdatasync, in order, and acknowledged only once that
// fdatasync has returned: the group commit of floe's write path is the
// caller's batch (node's appender), and the segment keeps it whole.
func TestAppendBatchIsOneWriteAndOneSync(t *testing.T) {
	ffs := &FaultFS{}
	opts := quiet()
	opts.FS = ffs
	s := openT(t, filepath.Join(t.TempDir(), "seg.wal"), opts)
	mustAppend(t, s, []byte("first"))
	writes0, syncs0 := ffs.Writes(), ffs.Syncs()

	const n = 50
	batch := make([][]byte, n)
	for i := range batch {
		batch[i] = payload(i)
	}
	entered, release := ffs.HoldNextSync()
	defer release()
	type result struct {
		first uint64
		err   error
	}
	done := make(chan result, 1)
	go func() {
		first, err := s.AppendBatch(batch)
		done <- result{first, err}
	}()
	<-entered // the batch is inside its fdatasync
	select {
	case r := <-done:
		t.Fatalf("batch acknowledged (%+v) before its fdatasync returned", r)
	default:
	}
	if got := s.Count(); got != 1 {
		t.Errorf("Count() = %d while the batch's fdatasync runs, want 1 (readers see durable records only)", got)
	}
	release()
	if r := <-done; r.err != nil || r.first != 1 {
		t.Fatalf("AppendBatch = %d, %v; want 1, nil", r.first, r.err)
	}
	if w, sy := ffs.Writes()-writes0, ffs.Syncs()-syncs0; w != 1 || sy != 1 {
		t.Errorf("a batch of %d records took %d writes and %d syncs, want 1 and 1", n, w, sy)
	}
	checkTotals(t, s, append([][]byte{[]byte("first")}, batch...))
}

// TestSealWaitsForAppendInProgress seals while an append is inside its
// fdatasync: Seal returns only once that append is committed, with totals
// that count it, and appends after Seal took effect fail with ErrSealed.
func TestSealWaitsForAppendInProgress(t *testing.T) {
	ffs := &FaultFS{}
	opts := quiet()
	opts.FS = ffs
	path := filepath.Join(t.TempDir(), "seg.wal")
	s := openT(t, path, opts)
	mustAppend(t, s, []byte("one"))

	entered, release := ffs.HoldNextSync()
	defer release()
	inFlight := make(chan error, 1)
	go func() {
		i, err := s.AppendBatch([][]byte{[]byte("two"), []byte("three")})
		if err == nil && i != 1 {
			err = fmt.Errorf("index %d, want 1", i)
		}
		inFlight <- err
	}()
	<-entered

	type totals struct {
		count uint64
		bytes int64
		crc   uint32
		err   error
	}
	sealed := make(chan totals, 1)
	go func() {
		c, b, crc, err := s.Seal()
		sealed <- totals{c, b, crc, err}
	}()
	testenv.WaitFor(t, 10*time.Second, "Seal to take effect", s.Sealed)
	if _, err := s.Append([]byte("late")); !errors.Is(err, ErrSealed) {
		t.Fatalf("append while the sync before Seal is held: err = %v, want ErrSealed", err)
	}
	select {
	case got := <-sealed:
		t.Fatalf("Seal returned %+v while an append was inside its fdatasync", got)
	default:
	}
	release()
	if err := <-inFlight; err != nil {
		t.Fatalf("append in progress when Seal came: %v", err)
	}
	got := <-sealed
	if got.err != nil {
		t.Fatalf("Seal: %v", got.err)
	}
	if got.count != s.Count() || got.count != 3 {
		t.Fatalf("Seal count = %d, Count() = %d; want 3", got.count, s.Count())
	}
	records := readAll(t, s)
	checkTotals(t, s, records)
	if got.bytes != s.Bytes() || got.crc != s.CRC() {
		t.Errorf("Seal = (%d, %d, %#x), segment has (%d, %d, %#x)", got.count, got.bytes, got.crc, s.Count(), s.Bytes(), s.CRC())
	}

	// Idempotent, and appends stay refused.
	c, b, crc, err := s.Seal()
	if err != nil || c != got.count || b != got.bytes || crc != got.crc {
		t.Errorf("second Seal = (%d, %d, %#x, %v), want (%d, %d, %#x, nil)", c, b, crc, err, got.count, got.bytes, got.crc)
	}
	for _, err := range []error{
		func() error { _, err := s.Append([]byte("x")); return err }(),
		func() error { _, err := s.AppendBatch([][]byte{[]byte("x")}); return err }(),
	} {
		if !errors.Is(err, ErrSealed) {
			t.Errorf("append after Seal: err = %v, want ErrSealed", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.Seal(); !errors.Is(err, ErrClosed) {
		t.Errorf("Seal after Close: err = %v, want ErrClosed", err)
	}
	wantRecords(t, path, records)
}

func TestClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg.wal")
	s, err := Open(path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, []byte("a"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
	if _, err := s.Append([]byte("b")); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: err = %v, want ErrClosed", err)
	}
	if _, err := s.Read(0, 1, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close: err = %v, want ErrClosed", err)
	}
	if got := s.Count(); got != 1 {
		t.Errorf("Count() after Close = %d, want 1", got)
	}
}

// TestCloseWaitsForAppendInProgress closes while an append is inside its
// fdatasync: the append is committed and acknowledged, then the file closes.
func TestCloseWaitsForAppendInProgress(t *testing.T) {
	ffs := &FaultFS{}
	opts := quiet()
	opts.FS = ffs
	path := filepath.Join(t.TempDir(), "seg.wal")
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	entered, release := ffs.HoldNextSync()
	defer release()
	inFlight := make(chan error, 1)
	go func() {
		_, err := s.AppendBatch([][]byte{[]byte("a"), []byte("b")})
		inFlight <- err
	}()
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	testenv.WaitFor(t, 10*time.Second, "Close to take effect", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.state == stateClosed
	})
	if _, err := s.Append([]byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("append while the sync before Close is held: err = %v, want ErrClosed", err)
	}
	release()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-inFlight; err != nil {
		t.Fatalf("append in progress when Close came: %v", err)
	}
	wantRecords(t, path, [][]byte{[]byte("a"), []byte("b")})
}

func TestSlowSyncIsLogged(t *testing.T) {
	logs := &logCapture{}
	var flushes []FlushInfo
	var mu sync.Mutex
	opts := Options{
		Logger:   slog.New(logs),
		SlowSync: 1, // every fsync takes longer than a nanosecond
		OnFlush: func(fi FlushInfo) {
			mu.Lock()
			flushes = append(flushes, fi)
			mu.Unlock()
		},
	}
	s := openT(t, filepath.Join(t.TempDir(), "seg.wal"), opts)
	mustAppend(t, s, []byte("hello"))
	r, ok := logs.find("segment: slow fsync")
	if !ok {
		t.Fatal("no slow fsync logged")
	}
	if r.Level != slog.LevelWarn {
		t.Errorf("slow fsync logged at %v, want WARN", r.Level)
	}
	if v, ok := attr(r, "records"); !ok || v.Int64() != 1 {
		t.Errorf("slow fsync records attr = %v, want 1", v)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(flushes) != 1 || flushes[0].Records != 1 || flushes[0].Bytes != RecordHeaderSize+5 || flushes[0].Err != nil || flushes[0].Sync <= 0 {
		t.Errorf("OnFlush calls = %+v, want one of 1 record, %d bytes, no error", flushes, RecordHeaderSize+5)
	}
}

func TestNoSyncSkipsFsync(t *testing.T) {
	ffs := &FaultFS{}
	opts := quiet()
	opts.FS, opts.NoSync = ffs, true
	s := openT(t, filepath.Join(t.TempDir(), "seg.wal"), opts)
	syncs0 := ffs.Syncs()
	for i := range 10 {
		mustAppend(t, s, payload(i))
	}
	if got := ffs.Syncs() - syncs0; got != 0 {
		t.Errorf("NoSync: %d syncs, want 0", got)
	}
}

func TestOpenRefusesForeignFile(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"short non-header", []byte("floe")},
		{"other magic", []byte("NOTAWAL\x01rest of some file")},
		{"future version", append([]byte(magic), 2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "seg.wal")
			writeFile(t, path, tt.data)
			for name, open := range map[string]func(string, Options) (*Segment, error){"Open": Open, "OpenSealed": OpenSealed} {
				s, err := open(path, quiet())
				if !errors.Is(err, ErrCorrupt) {
					if s != nil {
						s.Close()
					}
					t.Fatalf("%s: err = %v, want ErrCorrupt", name, err)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("%s: error %q does not name the file", name, err)
				}
			}
			if got := readFile(t, path); !bytes.Equal(got, tt.data) {
				t.Errorf("file changed to %q, want %q", got, tt.data)
			}
		})
	}
}
