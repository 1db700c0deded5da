package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"floe/record"
)

// fuzzSeeds are valid records and files, and a few damaged ones.
func fuzzSeeds() [][]byte {
	one := record.Append(nil, []byte("hello"))
	two := record.Append(record.Append(nil, []byte("a")), bytes.Repeat([]byte("xyz"), 100))
	file := append(fileHeader(), two...)
	flipped := bytes.Clone(file)
	flipped[HeaderSize+RecordHeaderSize] ^= 1
	return [][]byte{
		one,
		two,
		file,
		append(fileHeader(), one...),
		file[:len(file)-3],
		flipped,
		append(bytes.Clone(file), 0xff, 0xff, 0xff, 0xff),
		fileHeader(),
		nil,
	}
}

// FuzzDecode feeds arbitrary bytes to decodeRecord, as a stream of records,
// and to Inspect, as a segment file. Neither may panic, and neither may
// ever present a record whose CRC32C does not match its payload.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b := data
		for len(b) > 0 {
			p, n, err := decodeRecord(b)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("decodeRecord error %v does not wrap ErrCorrupt", err)
				}
				break
			}
			if len(p) == 0 || n != RecordHeaderSize+len(p) || n > len(b) {
				t.Fatalf("decodeRecord returned %d payload bytes and n=%d from %d bytes", len(p), n, len(b))
			}
			if binary.LittleEndian.Uint32(b[0:4]) != uint32(len(p)) {
				t.Fatalf("payload length %d differs from the stored %d", len(p), binary.LittleEndian.Uint32(b[0:4]))
			}
			if got, stored := record.CRC(p), binary.LittleEndian.Uint32(b[4:8]); got != stored {
				t.Fatalf("decodeRecord returned a payload with crc %#x, stored %#x", got, stored)
			}
			b = b[n:]
		}

		size := int64(len(data))
		next := int64(HeaderSize)
		walked := false
		err := Inspect(bytes.NewReader(data), size, func(ri RecordInfo) bool {
			walked = true
			if ri.Offset != next || ri.Size <= 0 || ri.Offset+ri.Size > size {
				t.Fatalf("entry at %d spanning %d bytes; expected one at %d within %d bytes", ri.Offset, ri.Size, next, size)
			}
			if ri.Intact() {
				p := data[ri.Offset+RecordHeaderSize : ri.Offset+ri.Size]
				if int64(ri.Length) != int64(len(p)) || record.CRC(p) != ri.StoredCRC || ri.StoredCRC != ri.ComputedCRC {
					t.Fatalf("intact record at %d: length %d, stored crc %#x, computed %#x, actual %#x", ri.Offset, ri.Length, ri.StoredCRC, ri.ComputedCRC, record.CRC(p))
				}
			} else if !errors.Is(ri.Err, ErrCorrupt) {
				t.Fatalf("damaged entry at %d: %v does not wrap ErrCorrupt", ri.Offset, ri.Err)
			}
			next = ri.Offset + ri.Size
			return true
		})
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Inspect of an in-memory file: %v", err)
		}
		zeroTail := size >= HeaderSize && next < size && allZero(data[next:])
		if size > HeaderSize && !walked && !zeroTail || size >= HeaderSize && next != size && !zeroTail {
			t.Fatalf("Inspect covered bytes up to %d of %d", next, size)
		}
	})
}

// FuzzOpen writes arbitrary bytes as a segment file and opens it. Open
// must refuse it, or repair it to a prefix of itself holding only intact
// records, with the rest saved in .broken, or (damage followed by intact
// records) leave it unchanged and refuse appends with ErrDamaged while its
// intact prefix reads back; zeros after the last intact record are kept and
// not saved. OpenSealed must accept only intact records, then only zeros.
func FuzzOpen(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "seg.wal")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		opts := quiet()
		opts.FS = noSyncFS{OS} // fsyncs would make this fuzzer crawl
		sealed, serr := OpenSealed(path, opts)
		if serr == nil {
			sealed.Close()
		} else if !errors.Is(serr, ErrCorrupt) {
			t.Fatalf("OpenSealed: %v", serr)
		}

		s, err := Open(path, opts)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v", err)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
				t.Fatal("Open refused the file but changed it")
			}
			return
		}
		defer s.Close()
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		end := HeaderSize + s.Bytes()
		if derr := s.Damaged(); derr != nil {
			if !errors.Is(derr, ErrDamaged) || !bytes.Equal(got, data) || end >= int64(len(data)) || serr == nil {
				t.Fatalf("damaged (%v): file changed %v, prefix %d of %d bytes, OpenSealed err %v", derr, !bytes.Equal(got, data), end, len(data), serr)
			}
			if _, err := s.Append([]byte("x")); !errors.Is(err, ErrDamaged) {
				t.Fatalf("Append to a damaged segment: %v, want ErrDamaged", err)
			}
			got = got[:end]
		}
		zeroTail := len(data) >= HeaderSize && int64(len(data)) >= end && allZero(data[end:])
		switch {
		case s.Damaged() != nil:
		case zeroTail && !bytes.Equal(got, data) && len(data) >= HeaderSize:
			t.Fatalf("Open changed a file of records followed by %d zeros", int64(len(data))-end)
		case !zeroTail && int64(len(got)) != end:
			t.Fatalf("file is %d bytes after Open, segment says %d", len(got), end)
		}
		if len(data) >= HeaderSize && !bytes.Equal(got[:end], data[:end]) {
			t.Fatal("Open left a file that is not a prefix of the original")
		}
		if (serr == nil) != zeroTail {
			t.Fatalf("OpenSealed err %v, but Open kept %d of %d bytes", serr, end, len(data))
		}
		if len(data) > HeaderSize && !zeroTail && s.Damaged() == nil {
			broken, err := os.ReadFile(path + ".broken")
			if cut := data[end:]; err != nil || !bytes.Equal(broken, cut) {
				t.Fatalf(".broken: err %v, %d bytes; want the %d cut bytes", err, len(broken), len(cut))
			}
		}
		if s.Count() > 0 {
			recs, err := s.Read(0, int(s.Count()), 0)
			if err != nil {
				t.Fatalf("Read of the repaired file: %v", err)
			}
			var enc []byte
			for _, p := range recs {
				enc = record.Append(enc, p)
			}
			if !bytes.Equal(enc, got[HeaderSize:]) || record.CRC(enc) != s.CRC() {
				t.Fatal("records read back do not re-encode to the file, or CRC() differs")
			}
		}
	})
}

// noSyncFS is an FS whose syncs do nothing, for fuzzing speed.
type noSyncFS struct{ FS }

func (n noSyncFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := n.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

func (noSyncFS) SyncDir(string) error { return nil }

type noSyncFile struct{ File }

func (noSyncFile) Sync() error { return nil }
