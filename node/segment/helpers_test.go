package segment

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"floe/record"
)

// quiet returns Options whose logger discards everything.
func quiet() Options {
	return Options{Logger: slog.New(slog.DiscardHandler)}
}

// logCapture is a slog handler that keeps every record, for assertions on
// what was logged.
type logCapture struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}
func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCapture) WithGroup(string) slog.Handler      { return l }

// find returns the first record with message msg.
func (l *logCapture) find(msg string) (slog.Record, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		if r.Message == msg {
			return r, true
		}
	}
	return slog.Record{}, false
}

func attr(r slog.Record, key string) (slog.Value, bool) {
	var v slog.Value
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v, found = a.Value, true
			return false
		}
		return true
	})
	return v, found
}

// payload returns a deterministic payload of a length that varies with i.
func payload(i int) []byte {
	n := 1 + (i*37)%200
	b := bytes.Repeat([]byte{byte('a' + i%26)}, n)
	copy(b, fmt.Sprintf("p%d:", i))
	return b
}

// openT opens path with Open and closes it at the end of the test.
func openT(t *testing.T, path string, opts Options) *Segment {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mustAppend(t *testing.T, s *Segment, p []byte) uint64 {
	t.Helper()
	i, err := s.Append(p)
	if err != nil {
		t.Fatalf("Append(%q): %v", p, err)
	}
	return i
}

// readAll reads every record of s one call at a time.
func readAll(t *testing.T, s *Segment) [][]byte {
	t.Helper()
	n := s.Count()
	if n == 0 {
		return nil
	}
	got, err := s.Read(0, int(n), 0)
	if err != nil {
		t.Fatalf("Read(0, %d): %v", n, err)
	}
	if uint64(len(got)) != n {
		t.Fatalf("Read(0, %d) returned %d records", n, len(got))
	}
	return got
}

// wantRecords checks that the segment file at path holds exactly want,
// reopening it, and that Count, Bytes and CRC agree with the file.
func wantRecords(t *testing.T, path string, want [][]byte) {
	t.Helper()
	s, err := Open(path, quiet())
	if err != nil {
		t.Fatalf("reopen %q: %v", path, err)
	}
	defer s.Close()
	got := readAll(t, s)
	if len(got) != len(want) {
		t.Fatalf("after reopen: got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("after reopen: record %d = %q, want %q", i, got[i], want[i])
		}
	}
	checkTotals(t, s, want)
}

// checkTotals checks Count, Bytes and CRC of s against the records want
// and against the file on disk.
func checkTotals(t *testing.T, s *Segment, want [][]byte) {
	t.Helper()
	var enc []byte
	for _, p := range want {
		enc = record.Append(enc, p)
	}
	if got := s.Count(); got != uint64(len(want)) {
		t.Errorf("Count() = %d, want %d", got, len(want))
	}
	if got := s.Bytes(); got != int64(len(enc)) {
		t.Errorf("Bytes() = %d, want %d", got, len(enc))
	}
	if got, w := s.CRC(), record.CRC(enc); got != w {
		t.Errorf("CRC() = %#x, want %#x", got, w)
	}
	file, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	records := append(fileHeader(), enc...)
	if len(file) < len(records) || !bytes.Equal(file[:len(records)], records) || !allZero(file[len(records):]) {
		t.Errorf("file %q is %d bytes and is not header+records (%d bytes) followed by zeros", s.Path(), len(file), HeaderSize+len(enc))
	}
	if s.Sealed() && len(file) != len(records) {
		t.Errorf("sealed file %q is %d bytes; want the %d of header+records, no zeros after them", s.Path(), len(file), len(records))
	}
}

// allZero reports whether every byte of b is zero.
func allZero(b []byte) bool {
	return len(bytes.TrimLeft(b, "\x00")) == 0
}

// buildFile writes a clean segment file holding payloads and returns its
// path, contents and the offset of each record.
func buildFile(t *testing.T, payloads [][]byte) (path string, data []byte, offsets []int64) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "seg.wal")
	data = fileHeader()
	for _, p := range payloads {
		offsets = append(offsets, int64(len(data)))
		data = record.Append(data, p)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, data, offsets
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// flipBit flips one bit of the file at path, underneath any open Segment.
func flipBit(t *testing.T, path string, off int64, bit uint) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1 << bit
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
