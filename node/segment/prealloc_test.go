package segment

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
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
// Open cuts the file at the torn record and saves only its bytes that are
// not zero in .broken; the next append takes the torn record's index.
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

	s = openT(t, path, opts)
	defer s.Close()
	checkTotals(t, s, want)
	if got := readFile(t, path + ".broken"); !bytes.Equal(got, torn) {
		t.Errorf(".broken holds %d bytes %q, want the torn record's %d bytes %q", len(got), got, len(torn), torn)
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
