package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"floe/record"
)

// fileSize returns the size of the file at path.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestPreallocatedZeros: an append writes Prealloc bytes of zeros after its
// records when they reach past the zeros already there, and the appends
// after it overwrite them; a reopen takes the zeros for the end of the
// records (no repair, no .broken, the file unchanged); Seal cuts them off;
// a sealed file that still has them (a crash between Seal and the cut)
// opens with OpenSealed and holds the same records.
func TestPreallocatedZeros(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg.wal")
	opts := quiet()
	opts.Prealloc = 4096
	s := openT(t, path, opts)
	var want [][]byte
	sizes := map[int64]bool{}
	for i := range 100 {
		want = append(want, payload(i))
		mustAppend(t, s, want[i])
		size := fileSize(t, path)
		if end := HeaderSize + s.Bytes(); size <= end || size > end+opts.Prealloc {
			t.Fatalf("after append %d: file is %d bytes, records end at %d; want up to %d bytes of zeros after them", i, size, end, opts.Prealloc)
		}
		sizes[size] = true
	}
	if len(sizes) >= 50 {
		t.Errorf("the file grew %d times in 100 appends; want it extended in steps of %d bytes", len(sizes), opts.Prealloc)
	}
	checkTotals(t, s, want)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, path)

	s = openT(t, path, opts)
	checkTotals(t, s, want)
	if got := readFile(t, path); !bytes.Equal(got, before) {
		t.Errorf("reopen changed the file: %d bytes, were %d", len(got), len(before))
	}
	if _, err := os.Stat(path + ".broken"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("reopen saved %s.broken (err %v); zeros after the records are not damage", path, err)
	}
	want = append(want, []byte("after reopen"))
	mustAppend(t, s, want[len(want)-1])
	if _, _, _, err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	checkTotals(t, s, want) // sealed: no zeros left
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A crash between Seal and the cut: zeros after a sealed file's records.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(fileSize(t, path) + 5000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sealed, err := OpenSealed(path, opts)
	if err != nil {
		t.Fatalf("OpenSealed of records followed by zeros: %v", err)
	}
	if got := readAll(t, sealed); len(got) != len(want) || !bytes.Equal(got[len(got)-1], want[len(want)-1]) {
		t.Errorf("OpenSealed read %d records, want %d", len(got), len(want))
	}
	sealed.Close()
}

// TestPreallocOff: a negative Prealloc leaves the file ending at its last
// record, as before preallocation.
func TestPreallocOff(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg.wal")
	opts := quiet()
	opts.Prealloc = -1
	s := openT(t, path, opts)
	defer s.Close()
	for i := range 10 {
		mustAppend(t, s, payload(i))
		if size, end := fileSize(t, path), HeaderSize+s.Bytes(); size != end {
			t.Fatalf("after append %d: file is %d bytes, records end at %d", i, size, end)
		}
	}
}

// TestTornAppendIntoZeros: a crash tears an append written over the
// preallocated zeros (its header and part of its payload reached the disk).
// Open cuts the file at the torn record and saves the bytes cut, the torn
// record and the zeros after it, in .broken; the next append takes the torn
// record's index.
func TestTornAppendIntoZeros(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg.wal")
	opts := quiet()
	opts.Prealloc = 4096
	s := openT(t, path, opts)
	want := [][]byte{[]byte("one"), []byte("two")}
	for _, p := range want {
		mustAppend(t, s, p)
	}
	end := HeaderSize + s.Bytes()
	s.Close()

	torn := []byte{20, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd, 'p', 'a', 'r', 't'} // 20 payload bytes announced, 4 written
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(torn, end); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sizeBefore := fileSize(t, path)

	s = openT(t, path, opts)
	defer s.Close()
	checkTotals(t, s, want)
	if got := readFile(t, path+".broken"); !bytes.HasPrefix(got, torn) || !allZero(got[len(torn):]) || int64(len(got)) != sizeBefore-end {
		t.Errorf(".broken holds %d bytes, want the %d cut: the torn record's %d bytes, then zeros", len(got), sizeBefore-end, len(torn))
	}
	if i := mustAppend(t, s, []byte("three")); i != 2 {
		t.Errorf("the append after the repair took index %d, want 2", i)
	}
}

// zeroWriteFailFS fails every write of zeros only: the extension of a
// file by Options.Prealloc, as on a full disk.
type zeroWriteFailFS struct{ FS }

func (z zeroWriteFailFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := z.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return zeroWriteFailFile{f}, nil
}

type zeroWriteFailFile struct{ File }

func (z zeroWriteFailFile) WriteAt(b []byte, off int64) (int, error) {
	if allZero(b) {
		return 0, &os.PathError{Op: "write", Path: "zeros", Err: syscall.ENOSPC}
	}
	return z.File.WriteAt(b, off)
}

// TestFailedPreallocFailsNoAppend: when the zeros cannot be written (a full
// disk), appends still succeed and are durable; the file ends at the last
// record.
func TestFailedPreallocFailsNoAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg.wal")
	opts := quiet()
	opts.Prealloc = 4096
	opts.FS = zeroWriteFailFS{OS}
	s := openT(t, path, opts)
	var want [][]byte
	for i := range 20 {
		want = append(want, payload(i))
		mustAppend(t, s, want[i])
	}
	if size, end := fileSize(t, path), HeaderSize+s.Bytes(); size != end {
		t.Errorf("file is %d bytes, records end at %d; the zeros could not be written", size, end)
	}
	s.Close()
	wantRecords(t, path, want)
}

// TestPreallocGrowsWithTheRecords: a file's zeros are as many bytes as its
// records, at least 64 KiB and at most Prealloc, so a slowly written segment
// holds little more than its records.
func TestPreallocGrowsWithTheRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg.wal")
	opts := quiet()
	opts.Prealloc = 1 << 20
	s := openT(t, path, opts)
	defer s.Close()
	mustAppend(t, s, []byte("first"))
	if size, end := fileSize(t, path), HeaderSize+s.Bytes(); size-end > minPrealloc {
		t.Errorf("after one small append: %d bytes of zeros, want at most %d", size-end, minPrealloc)
	}
	big := bytes.Repeat([]byte("x"), 64<<10)
	for range 64 { // 4 MiB of records
		mustAppend(t, s, big)
		size, end := fileSize(t, path), HeaderSize+s.Bytes()
		if zeros := size - end; zeros > max(minPrealloc, min(end, opts.Prealloc)) {
			t.Fatalf("records end at %d: %d bytes of zeros after them, want at most %d", end, zeros, max(minPrealloc, min(end, opts.Prealloc)))
		}
	}
}

// kibRecords returns n payloads that make records of 1 KiB each, header
// included, payload i filled with the byte i+1.
func kibRecords(n int) [][]byte {
	ps := make([][]byte, n)
	for i := range ps {
		ps[i] = bytes.Repeat([]byte{byte(i + 1)}, 1024-RecordHeaderSize)
	}
	return ps
}

// TestLargeAppendWritesNoZeros: an append larger than maxPreallocAppend that
// reaches past the zeros grows the file by itself (its zeros would cost the
// disk more than they save its fdatasync); the next small append past the
// end writes zeros again, and a reopen finds every record either way.
func TestLargeAppendWritesNoZeros(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg.wal")
	opts := quiet()
	opts.Prealloc = 1 << 20
	s := openT(t, path, opts)
	var want [][]byte
	zerosAfter := func() int64 { return fileSize(t, path) - (HeaderSize + s.Bytes()) }

	want = append(want, payload(0))
	mustAppend(t, s, want[0])
	if z := zerosAfter(); z != minPrealloc {
		t.Fatalf("after a small append: %d bytes of zeros, want %d", z, minPrealloc)
	}
	// One batch of 128 KiB: past the 64 KiB of zeros, and too large to extend.
	big := kibRecords(128)
	if _, err := s.AppendBatch(big); err != nil {
		t.Fatal(err)
	}
	want = append(want, big...)
	if z := zerosAfter(); z != 0 {
		t.Fatalf("after a %d-byte append past the zeros: %d bytes of zeros, want none", 128*1024, z)
	}
	want = append(want, payload(1))
	mustAppend(t, s, want[len(want)-1])
	if z := zerosAfter(); z <= 0 || z > opts.Prealloc {
		t.Fatalf("after a small append past the end: %d bytes of zeros, want 1 to %d", z, opts.Prealloc)
	}
	checkTotals(t, s, want)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, path, opts)
	defer s.Close()
	checkTotals(t, s, want)
}

// TestTornLargeAppendPastTheZeros: a crash tears a large append (one that
// writes no zeros ahead) which started over the preallocated zeros and went
// on past the end of the file: Open keeps the records it wrote whole (an
// unacknowledged append may leave a prefix), cuts the torn one at the end of
// the file into .broken, and the next append takes the next index.
func TestTornLargeAppendPastTheZeros(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg.wal")
	opts := quiet()
	opts.Prealloc = 1 << 20
	s := openT(t, path, opts)
	want := [][]byte{payload(0), payload(1)}
	for _, p := range want {
		mustAppend(t, s, p)
	}
	end := HeaderSize + s.Bytes()
	if z := fileSize(t, path) - end; z <= 0 || z >= 100*1024 {
		t.Fatalf("%d bytes of zeros after two small appends, want some, fewer than the torn write's", z)
	}
	s.Close()

	// 128 records of 1 KiB as one append would encode them; the crash leaves the
	// first 100 whole and 500 bytes of the 101st, past the zeros.
	big := kibRecords(128)
	var batch []byte
	for _, p := range big {
		batch = record.AppendHeader(batch, uint32(len(p)), record.CRC(p))
		batch = append(batch, p...)
	}
	torn := batch[:100*1024+500]
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(torn, end); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if size := fileSize(t, path); size != end+int64(len(torn)) {
		t.Fatalf("file is %d bytes after the torn write, want %d (past the zeros)", size, end+int64(len(torn)))
	}

	s = openT(t, path, opts)
	defer s.Close()
	want = append(want, big[:100]...)
	checkTotals(t, s, want)
	if got := readFile(t, path+".broken"); !bytes.Equal(got, torn[100*1024:]) {
		t.Errorf(".broken holds %d bytes, want the torn record's %d", len(got), len(torn)-100*1024)
	}
	if i := mustAppend(t, s, []byte("after")); i != uint64(len(want)) {
		t.Errorf("the append after the repair took index %d, want %d", i, len(want))
	}
}

// TestDamageBeforeRecordEndingInZeros: a flipped bit in a record followed by an
// intact record whose payload ends in zero bytes is damage followed by intact
// records (ErrDamaged, the file left as it is), not a torn tail: the search for
// intact records reaches into the zeros after the last byte that is not zero.
func TestDamageBeforeRecordEndingInZeros(t *testing.T) {
	for _, pre := range []int64{4096, -1} {
		path := filepath.Join(t.TempDir(), "seg.wal")
		opts := quiet()
		opts.Prealloc = pre
		s := openT(t, path, opts)
		mustAppend(t, s, []byte("first"))
		mustAppend(t, s, []byte("second record"))
		last := make([]byte, 8)
		binary.LittleEndian.PutUint64(last, 7) // 07 00 00 00 00 00 00 00
		mustAppend(t, s, last)
		second := s.offsets[1]
		s.Close()
		before := readFile(t, path)
		flipBit(t, path, second+RecordHeaderSize+2, 0)

		s, err := Open(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Damaged(); !errors.Is(err, ErrDamaged) {
			t.Errorf("prealloc %d: Damaged() = %v, want ErrDamaged", pre, err)
		}
		if i, err := s.Append([]byte("new")); !errors.Is(err, ErrDamaged) {
			t.Errorf("prealloc %d: Append = %d, %v; want ErrDamaged (index 2 was acknowledged)", pre, i, err)
		}
		s.Close()
		if got := readFile(t, path); len(got) != len(before) {
			t.Errorf("prealloc %d: the damaged file changed size: %d bytes, were %d", pre, len(got), len(before))
		}
	}
}

// TestTornOverZerosOutOfOrder: a crash during the last, unacknowledged group
// commit, the disk having written a later sector of it but not an earlier one,
// leaves a sector of zeros in the batch's first record (its header, or a whole
// sector inside it) and intact records after it. That is the torn last append:
// Open cuts it (.broken keeps the bytes) and appends go on at its index.
func TestTornOverZerosOutOfOrder(t *testing.T) {
	batch := [][]byte{bytes.Repeat([]byte("a"), 5000), []byte("b"), []byte("c")}
	var enc []byte
	for _, p := range batch {
		enc = record.Append(enc, p)
	}
	for _, tc := range []struct {
		name string
		hole func(start int64) (from, to int64) // the sectors of the batch not written
	}{
		{"first sector", func(start int64) (int64, int64) { return start, (start/sectorSize + 1) * sectorSize }},
		{"a sector inside the first record", func(start int64) (int64, int64) {
			s := (start/sectorSize + 3) * sectorSize
			return s, s + sectorSize
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "seg.wal")
			s := openT(t, path, quiet())
			want := [][]byte{[]byte("acked one"), []byte("acked two")}
			for _, p := range want {
				mustAppend(t, s, p)
			}
			end := HeaderSize + s.Bytes()
			s.Close()
			size := fileSize(t, path)
			written := bytes.Clone(enc)
			from, to := tc.hole(end)
			clear(written[from-end : to-end])
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(written, end); err != nil {
				t.Fatal(err)
			}
			f.Close()

			s = openT(t, path, quiet())
			defer s.Close()
			if err := s.Damaged(); err != nil {
				t.Fatalf("a torn last append taken for damage: %v", err)
			}
			checkTotals(t, s, want)
			if got := readFile(t, path+".broken"); int64(len(got)) != size-end || !bytes.Equal(got[:len(written)], written) {
				t.Errorf(".broken holds %d bytes, want the %d cut from offset %d", len(got), size-end, end)
			}
			if i := mustAppend(t, s, []byte("next")); i != 2 {
				t.Errorf("the append after the repair took index %d, want 2", i)
			}
		})
	}
}

// TestZeroHoleFarFromTheEndIsDamage: a record header of zeros followed, more than
// one append (MaxTornBytes) later, by an intact record cannot be a torn last
// append: it is damage, and appends are refused.
func TestZeroHoleFarFromTheEndIsDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg.wal")
	s := openT(t, path, quiet())
	mustAppend(t, s, []byte("acked"))
	end := HeaderSize + s.Bytes()
	s.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(record.Append(nil, []byte("far")), end+MaxTornBytes+sectorSize); err != nil { // sparse: zeros between
		t.Fatal(err)
	}
	f.Close()
	s, err = Open(path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Damaged(); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Damaged() = %v, want ErrDamaged", err)
	}
}

// TestSealOfOpenSealedLeavesTheFile: Seal of a segment opened read-only with
// zeros after its records neither tries to cut them nor logs that it could not.
func TestSealOfOpenSealedLeavesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg.wal")
	s := openT(t, path, quiet())
	mustAppend(t, s, []byte("one"))
	s.Close() // the zeros stay
	size := fileSize(t, path)
	var lc logCapture
	opts := quiet()
	opts.Logger = slog.New(&lc)
	ro, err := OpenSealed(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, _, _, err := ro.Seal(); err != nil {
		t.Fatal(err)
	}
	if r, ok := lc.find("segment: cannot cut the zeros after the last record of a sealed segment"); ok {
		t.Errorf("Seal of a read-only segment logged %q", r.Message)
	}
	if got := fileSize(t, path); got != size {
		t.Errorf("file is %d bytes after Seal, was %d", got, size)
	}
}
