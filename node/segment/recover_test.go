package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"floe/record"
)

// repaired checks that Open of the file at path (holding data) keeps
// exactly the records want, cutting the file at cut and saving data[cut:]
// in path+".broken" (nothing if only zeros follow the records: they are
// their end, and stay); then that the segment takes an append and holds it
// after a reopen.
func repaired(t *testing.T, path string, data []byte, cut int, want [][]byte) {
	t.Helper()
	s, err := Open(path, quiet())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	got := readAll(t, s)
	if len(got) != len(want) {
		t.Fatalf("Open kept %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record %d = %q, want %q", i, got[i], want[i])
		}
	}
	checkTotals(t, s, want)
	broken, err := os.ReadFile(path + ".broken")
	cutBytes := data[cut:]
	switch {
	case allZero(cutBytes):
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("nothing cut, but %s.broken exists (err %v)", path, err)
		}
	case err != nil:
		t.Errorf("no .broken copy: %v", err)
	case !bytes.Equal(broken, cutBytes):
		t.Errorf(".broken holds %q, want the cut bytes %q", broken, cutBytes)
	}
	next := []byte("appended after repair")
	if i, err := s.Append(next); err != nil || i != uint64(len(want)) {
		t.Fatalf("Append after repair = %d, %v; want %d, nil", i, err, len(want))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wantRecords(t, path, append(want[:len(want):len(want)], next))
}

// TestOpenTruncatedAtEveryByte cuts a small segment file at every byte
// position inside its last record.
func TestOpenTruncatedAtEveryByte(t *testing.T) {
	payloads := [][]byte{[]byte("alpha"), []byte("bravo"), []byte("charlie!")}
	_, data, offsets := buildFile(t, payloads)
	last := int(offsets[2])
	for cut := last; cut < len(data); cut++ {
		t.Run(fmt.Sprintf("cut at %d of %d", cut, len(data)), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "seg.wal")
			writeFile(t, path, data[:cut])
			repaired(t, path, data[:cut], last, payloads[:2])
		})
	}
	t.Run("intact", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "seg.wal")
		writeFile(t, path, data)
		repaired(t, path, data, len(data), payloads)
	})
}

// TestOpenTornHeader covers a crash while a new file's header was written.
func TestOpenTornHeader(t *testing.T) {
	for n := 0; n < HeaderSize; n++ {
		t.Run(fmt.Sprintf("%d bytes", n), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "seg.wal")
			writeFile(t, path, fileHeader()[:n])
			s := openT(t, path, quiet())
			checkTotals(t, s, nil)
			mustAppend(t, s, []byte("first"))
			checkTotals(t, s, [][]byte{[]byte("first")})
			if _, err := OpenSealed(filepath.Join(t.TempDir(), "missing.wal"), quiet()); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("OpenSealed of a missing file: err = %v, want ErrNotExist", err)
			}
		})
	}
}

func TestOpenDamagedTail(t *testing.T) {
	good := [][]byte{[]byte("one"), []byte("two"), []byte("three")}
	validRecord := record.Append(nil, []byte("four"))
	badCRC := bytes.Clone(validRecord)
	badCRC[RecordHeaderSize] ^= 0x01
	tests := []struct {
		name string
		tail []byte
	}{
		{"0xff garbage", bytes.Repeat([]byte{0xff}, 100)},
		{"zero-filled", make([]byte, 4096)},
		{"zero length header", make([]byte, RecordHeaderSize)},
		{"length past end of file", append([]byte{100, 0, 0, 0, 1, 2, 3, 4}, "short"...)},
		{"length over MaxPayload", []byte{0, 0, 0, 0x10, 1, 2, 3, 4, 5}},
		{"bit flip in last payload", badCRC},
		{"bit flip in last crc", func() []byte { b := bytes.Clone(validRecord); b[5] ^= 0x80; return b }()},
		{"bit flip in last length", func() []byte { b := bytes.Clone(validRecord); b[0] ^= 0x02; return b }()},
		{"valid record then garbage", append(bytes.Clone(validRecord), 0xde, 0xad)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, data, _ := buildFile(t, good)
			cut := len(data)
			want := good
			if strings.HasPrefix(tt.name, "valid record") {
				cut += len(validRecord)
				want = append(bytes.Split([]byte("one two three"), []byte(" ")), []byte("four"))
			}
			data = append(data, tt.tail...)
			path := filepath.Join(t.TempDir(), "seg.wal")
			writeFile(t, path, data)
			repaired(t, path, data, cut, want)
		})
	}
}

// TestOpenDamageInTheMiddle damages a record followed by intact ones, in
// its payload (a CRC mismatch) or in its length (which then cannot be
// trusted to find the next record): records after the damage may have been
// acknowledged, so Open changes nothing, logs it at Error, serves the
// records before the damage and refuses appends and Seal with ErrDamaged,
// again on every reopen: no index of a lost record is ever reused.
func TestOpenDamageInTheMiddle(t *testing.T) {
	var payloads [][]byte
	for i := range 10 {
		payloads = append(payloads, payload(i))
	}
	for _, tt := range []struct {
		name string
		at   func(offsets []int64) int64
		mask byte
	}{
		{"payload bit flip", func(o []int64) int64 { return o[4] + RecordHeaderSize + 2 }, 0x10},
		{"length too large", func(o []int64) int64 { return o[4] + 3 }, 0x40},
		{"length zeroed", func(o []int64) int64 { return o[4] }, 0xff},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path, data, offsets := buildFile(t, payloads)
			if tt.mask == 0xff {
				copy(data[offsets[4]:], make([]byte, 4))
			} else {
				data[tt.at(offsets)] ^= tt.mask
			}
			writeFile(t, path, data)
			for open := 1; open <= 2; open++ {
				logs := &logCapture{}
				s, err := Open(path, Options{Logger: slog.New(logs)})
				if err != nil {
					t.Fatal(err)
				}
				if got := readAll(t, s); !reflect.DeepEqual(got, payloads[:4]) {
					t.Errorf("open %d: read %d records, want the 4 before the damage", open, len(got))
				}
				if s.Bytes() != offsets[4]-HeaderSize {
					t.Errorf("open %d: Bytes() = %d, want %d", open, s.Bytes(), offsets[4]-HeaderSize)
				}
				if err := s.Damaged(); !errors.Is(err, ErrDamaged) {
					t.Errorf("open %d: Damaged() = %v, want ErrDamaged", open, err)
				}
				if _, err := s.Append([]byte("new")); !errors.Is(err, ErrDamaged) {
					t.Errorf("open %d: Append = %v, want ErrDamaged", open, err)
				}
				if _, _, _, err := s.Seal(); !errors.Is(err, ErrDamaged) || s.Sealed() {
					t.Errorf("open %d: Seal = %v, sealed %v; want ErrDamaged, not sealed", open, err, s.Sealed())
				}
				s.Close()
				if got := readFile(t, path); !bytes.Equal(got, data) {
					t.Errorf("open %d changed the file: %d bytes, want the %d written", open, len(got), len(data))
				}
				if _, err := os.Stat(path + ".broken"); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("open %d: .broken: %v, want none (nothing cut)", open, err)
				}
				var rec slog.Record
				for _, r := range logs.recs {
					if r.Level == slog.LevelError {
						rec = r
					}
				}
				if rec.Level != slog.LevelError {
					t.Fatalf("open %d: damage in the middle not logged at Error; logged %d records", open, len(logs.recs))
				}
				if v, ok := attr(rec, "intact_at"); !ok || v.Int64() != offsets[5] {
					t.Errorf("open %d: intact_at = %v, want %d", open, v, offsets[5])
				}
			}
		})
	}
}

// TestRepeatedRepairsKeepEveryBrokenCopy checks that a second repair does
// not overwrite the first .broken file.
func TestRepeatedRepairsKeepEveryBrokenCopy(t *testing.T) {
	path, data, _ := buildFile(t, [][]byte{[]byte("kept")})
	for i, tail := range []string{"\xffgarbage one", "\xffgarbage two", "\xffgarbage three"} {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(tail); err != nil {
			t.Fatal(err)
		}
		f.Close()
		s, err := Open(path, quiet())
		if err != nil {
			t.Fatal(err)
		}
		checkTotals(t, s, [][]byte{[]byte("kept")})
		s.Close()
		name := path + ".broken"
		if i > 0 {
			name += fmt.Sprintf(".%d", i)
		}
		if got := string(readFile(t, name)); got != tail {
			t.Errorf("%s = %q, want %q", name, got, tail)
		}
	}
	if got := readFile(t, path); !bytes.Equal(got, data) {
		t.Errorf("file after repairs differs from the original")
	}
}

func TestOpenSealed(t *testing.T) {
	payloads := [][]byte{[]byte("one"), []byte("two"), []byte("three")}
	t.Run("intact", func(t *testing.T) {
		path, _, _ := buildFile(t, payloads)
		s, err := OpenSealed(path, quiet())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		checkTotals(t, s, payloads)
		if _, err := s.Append([]byte("x")); !errors.Is(err, ErrSealed) {
			t.Errorf("Append to a segment opened sealed: err = %v, want ErrSealed", err)
		}
		count, bytes_, crc, err := s.Seal()
		if err != nil || count != 3 || bytes_ != s.Bytes() || crc != s.CRC() {
			t.Errorf("Seal = %d, %d, %#x, %v", count, bytes_, crc, err)
		}
		if got := readAll(t, s); string(got[2]) != "three" {
			t.Errorf("record 2 = %q", got[2])
		}
	})
	damage := []struct {
		name   string
		record int // damaged record
		mutate func(data []byte, offsets []int64) []byte
	}{
		{"bit flip in the middle", 1, func(d []byte, o []int64) []byte { d[o[1]+RecordHeaderSize] ^= 4; return d }},
		{"bit flip in a length", 0, func(d []byte, o []int64) []byte { d[o[0]] ^= 0x40; return d }},
		{"torn tail", 2, func(d []byte, o []int64) []byte { return d[:len(d)-1] }},
		{"garbage tail", 3, func(d []byte, o []int64) []byte { return append(d, 0xff) }},
	}
	for _, tt := range damage {
		t.Run(tt.name, func(t *testing.T) {
			path, data, offsets := buildFile(t, payloads)
			off := int64(len(data)) // where the damaged record starts
			if tt.record < len(offsets) {
				off = offsets[tt.record]
			}
			data = tt.mutate(data, offsets)
			writeFile(t, path, data)
			s, err := OpenSealed(path, quiet())
			if !errors.Is(err, ErrCorrupt) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("OpenSealed: err = %v, want ErrCorrupt", err)
			}
			for _, fact := range []string{path, fmt.Sprintf("offset %d", off)} {
				if !strings.Contains(err.Error(), fact) {
					t.Errorf("error %q does not say %q", err, fact)
				}
			}
			if got := readFile(t, path); !bytes.Equal(got, data) {
				t.Error("OpenSealed modified the file")
			}
			if _, err := os.Stat(path + ".broken"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("OpenSealed wrote a .broken file (stat err %v)", err)
			}
		})
	}
}

// TestReadDetectsDamageUnderneath damages records of an open segment on
// disk: Read fails with ErrCorrupt and returns no data.
func TestReadDetectsDamageUnderneath(t *testing.T) {
	tests := []struct {
		name string
		at   func(off int64) int64 // byte to flip, from the record offset
	}{
		{"payload", func(o int64) int64 { return o + RecordHeaderSize + 1 }},
		{"crc", func(o int64) int64 { return o + 4 }},
		{"length", func(o int64) int64 { return o }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "seg.wal")
			s := openT(t, path, quiet())
			for i := range 3 {
				mustAppend(t, s, []byte(fmt.Sprintf("record %d", i)))
			}
			s.idxMu.RLock()
			off := s.offsets[1]
			s.idxMu.RUnlock()
			flipBit(t, path, tt.at(off), 1)

			for _, r := range []struct {
				index uint64
				max   int
			}{{1, 1}, {0, 3}, {1, 2}} {
				got, err := s.Read(r.index, r.max, 0)
				if !errors.Is(err, ErrCorrupt) || got != nil {
					t.Errorf("Read(%d, %d) = %q, %v; want nil, ErrCorrupt", r.index, r.max, got, err)
				}
			}
			for _, i := range []uint64{0, 2} {
				got, err := s.Read(i, 1, 0)
				if err != nil || string(got[0]) != fmt.Sprintf("record %d", i) {
					t.Errorf("Read(%d) of an intact record = %q, %v", i, got, err)
				}
			}
		})
	}
}

func TestReadOfTruncatedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg.wal")
	s := openT(t, path, quiet())
	mustAppend(t, s, []byte("one"))
	mustAppend(t, s, []byte("two"))
	if err := os.Truncate(path, HeaderSize+RecordHeaderSize+3+2); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Read(1, 1, 0); !errors.Is(err, ErrCorrupt) || got != nil {
		t.Errorf("Read of a record cut off underneath = %q, %v; want nil, ErrCorrupt", got, err)
	}
}

func TestInspect(t *testing.T) {
	payloads := [][]byte{[]byte("one"), []byte("two"), []byte("three"), []byte("four")}
	_, data, offsets := buildFile(t, payloads)
	data[offsets[1]+RecordHeaderSize] ^= 0x20 // CRC mismatch in record 1
	data = append(data, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1)

	type entry struct {
		off    int64
		length uint32
		size   int64
		intact bool
		eof    bool
	}
	collect := func(data []byte) ([]entry, []RecordInfo, error) {
		var got []entry
		var infos []RecordInfo
		err := Inspect(bytes.NewReader(data), int64(len(data)), func(ri RecordInfo) bool {
			got = append(got, entry{ri.Offset, ri.Length, ri.Size, ri.Intact(), errors.Is(ri.Err, io.ErrUnexpectedEOF)})
			infos = append(infos, ri)
			if !ri.Intact() && !errors.Is(ri.Err, ErrCorrupt) {
				t.Errorf("damaged record at %d: Err %v does not wrap ErrCorrupt", ri.Offset, ri.Err)
			}
			return true
		})
		return got, infos, err
	}
	got, infos, err := collect(data)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	end := offsets[3] + RecordHeaderSize + 4
	want := []entry{
		{offsets[0], 3, RecordHeaderSize + 3, true, false},
		{offsets[1], 3, RecordHeaderSize + 3, false, false},
		{offsets[2], 5, RecordHeaderSize + 5, true, false},
		{offsets[3], 4, RecordHeaderSize + 4, true, false},
		{end, 0xffffffff, 9, false, false},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Inspect saw\n%v\nwant\n%v", got, want)
	}
	for i, ri := range infos {
		if ri.Index != uint64(i) {
			t.Errorf("entry %d has Index %d", i, ri.Index)
		}
	}
	if ri := infos[1]; ri.StoredCRC == ri.ComputedCRC || ri.ComputedCRC != record.CRC(data[offsets[1]+RecordHeaderSize:offsets[2]]) {
		t.Errorf("record 1: stored %#x, computed %#x; want a mismatch", ri.StoredCRC, ri.ComputedCRC)
	}

	t.Run("stop early", func(t *testing.T) {
		n := 0
		if err := Inspect(bytes.NewReader(data), int64(len(data)), func(RecordInfo) bool { n++; return n < 2 }); err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Errorf("fn called %d times after returning false on the 2nd, want 2", n)
		}
	})
	t.Run("torn record", func(t *testing.T) {
		got, _, err := collect(data[:offsets[3]+6])
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 4 || !got[3].eof || got[3].size != 6 {
			t.Errorf("torn last record: got %v, want it reported as unexpected EOF spanning 6 bytes", got)
		}
	})
	t.Run("damaged file header", func(t *testing.T) {
		d := bytes.Clone(data)
		d[0] = 'X'
		got, _, err := collect(d)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("Inspect of a damaged header: err = %v, want ErrCorrupt", err)
		}
		if len(got) != len(want) {
			t.Errorf("Inspect of a damaged header walked %d records, want %d", len(got), len(want))
		}
	})
	t.Run("short file", func(t *testing.T) {
		if err := Inspect(bytes.NewReader(data[:3]), 3, func(RecordInfo) bool { return true }); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Inspect of 3 bytes: err = %v, want ErrCorrupt", err)
		}
	})
	t.Run("read error", func(t *testing.T) {
		r := &failingReader{data: data, failAt: offsets[2]}
		if err := Inspect(r, int64(len(data)), func(RecordInfo) bool { return true }); !errors.Is(err, errInjected) {
			t.Errorf("Inspect with a failing reader: err = %v, want the injected fault", err)
		}
	})
}

// failingReader fails every read that reaches failAt.
type failingReader struct {
	data   []byte
	failAt int64
}

func (r *failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > r.failAt {
		return 0, errInjected
	}
	return copy(p, r.data[off:]), nil
}

func TestDecodeRecord(t *testing.T) {
	rec := record.Append(nil, []byte("payload"))
	tests := []struct {
		name    string
		in      []byte
		want    string
		n       int
		wantEOF bool
	}{
		{"valid", rec, "payload", len(rec), false},
		{"valid with trailing bytes", append(bytes.Clone(rec), 1, 2, 3), "payload", len(rec), false},
		{"empty", nil, "", 0, true},
		{"short header", rec[:7], "", 0, true},
		{"short payload", rec[:len(rec)-1], "", 0, true},
		{"crc mismatch", func() []byte { b := bytes.Clone(rec); b[9] ^= 1; return b }(), "", 0, false},
		{"zero length", make([]byte, 16), "", 0, false},
		{"length over MaxPayload", []byte{1, 0, 0, 4, 0, 0, 0, 0}, "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, n, err := decodeRecord(tt.in)
			if tt.want != "" {
				if err != nil || string(p) != tt.want || n != tt.n {
					t.Fatalf("decodeRecord = %q, %d, %v; want %q, %d, nil", p, n, err, tt.want, tt.n)
				}
				return
			}
			if !errors.Is(err, ErrCorrupt) || p != nil || n != 0 {
				t.Fatalf("decodeRecord = %q, %d, %v; want nil, 0, ErrCorrupt", p, n, err)
			}
			if got := errors.Is(err, io.ErrUnexpectedEOF); got != tt.wantEOF {
				t.Errorf("errors.Is(err, io.ErrUnexpectedEOF) = %v, want %v (err %v)", got, tt.wantEOF, err)
			}
		})
	}
}
