package segment

import (
	"errors"
	"path/filepath"
	"testing"
)

// TestSealAt: a follower's copy sealed at its leader's count keeps exactly those
// records, durably (a reopen sees them, and the file holds nothing after them),
// with the totals of a segment that was only ever written with them; a copy sealed
// at its own count is Seal; one asked for more records than it holds fails with
// ErrOutOfRange and takes no appends.
func TestSealAt(t *testing.T) {
	dir := t.TempDir()
	var all [][]byte
	for i := 0; i < 50; i++ {
		all = append(all, payload(i))
	}
	for _, keep := range []int{0, 1, 30, 50} {
		path := filepath.Join(dir, "keep.wal")
		s := openT(t, path, quiet())
		if _, err := s.AppendBatch(all); err != nil {
			t.Fatal(err)
		}
		count, bytes, crc, err := s.SealAt(uint64(keep))
		if err != nil {
			t.Fatalf("SealAt(%d): %v", keep, err)
		}
		checkTotals(t, s, all[:keep])
		if count != uint64(keep) || bytes != s.Bytes() || crc != s.CRC() {
			t.Fatalf("SealAt(%d) = %d, %d, %#x; segment says %d, %d, %#x", keep, count, bytes, crc, s.Count(), s.Bytes(), s.CRC())
		}
		if _, err := s.Append([]byte("x")); !errors.Is(err, ErrSealed) {
			t.Fatalf("append after SealAt: %v, want ErrSealed", err)
		}
		if keep > 0 {
			if got := readAll(t, s); len(got) != keep || string(got[keep-1]) != string(all[keep-1]) {
				t.Fatalf("read after SealAt(%d): %d records", keep, len(got))
			}
		}
		s.Close()
		wantRecords(t, path, all[:keep])
		if err := OS.Remove(path); err != nil {
			t.Fatal(err)
		}
	}

	path := filepath.Join(dir, "short.wal")
	s := openT(t, path, quiet())
	if _, err := s.AppendBatch(all[:10]); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.SealAt(11); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("SealAt(11) of 10 records: %v, want ErrOutOfRange", err)
	}
	if _, err := s.Append([]byte("x")); !errors.Is(err, ErrSealed) {
		t.Fatalf("append after a failed SealAt: %v, want ErrSealed", err)
	}
	checkTotals(t, s, all[:10])
}
