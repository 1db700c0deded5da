package seekable

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cespare/xxhash/v2"
)

func TestEmptyChecksumConstant(t *testing.T) {
	if got, want := uint32(xxhash.Sum64(nil)), uint32(0x51D8E999); got != want {
		t.Fatalf("low 32 bits of XXH64(\"\") = %#08x, doc.go says %#08x", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	const frameSize = 16 << 10
	rng := rand.New(rand.NewPCG(1, 2))
	many := randomPayloads(rng, 3000, func() int {
		switch rng.IntN(100) {
		case 0:
			return frameSize + rng.IntN(3*frameSize) // bigger than a frame
		case 1, 2:
			return 1
		default:
			return 1 + rng.IntN(2000)
		}
	})
	// Records that fill frames exactly: 4 records of frameSize/4 bytes.
	exact := randomPayloads(rng, 40, func() int { return frameSize/4 - RecordHeaderSize })
	cases := []struct {
		name     string
		payloads [][]byte
		opts     WriterOptions
	}{
		{"empty", nil, WriterOptions{}},
		{"one byte", [][]byte{{'x'}}, WriterOptions{}},
		{"one big", randomPayloads(rng, 1, func() int { return 3 * frameSize }), WriterOptions{FrameSize: frameSize}},
		{"many", many, WriterOptions{FrameSize: frameSize}},
		{"many fastest", many[:500], WriterOptions{FrameSize: frameSize, Level: 1}},
		{"exact frames", exact, WriterOptions{FrameSize: frameSize}},
		{"frame per record", many[:50], WriterOptions{FrameSize: 1}},
		{"default frame size", many, WriterOptions{}},
		{"concurrent", many, WriterOptions{FrameSize: frameSize, Concurrency: 3}},
		{"concurrent frame per record", many[:50], WriterOptions{FrameSize: 1, Concurrency: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			m := testMeta(0)
			obj, sum := writeObject(t, m, tc.payloads, tc.opts)
			raw := encodeRecords(tc.payloads)
			if got, want := sum.Size, int64(len(obj)); got != want {
				t.Errorf("Summary.Size = %d, object is %d bytes", got, want)
			}
			if got, want := sum.Checksum, crc32.Checksum(obj, castagnoli); got != want {
				t.Errorf("Summary.Checksum = %#08x, want %#08x", got, want)
			}
			if sum.Count != uint64(len(tc.payloads)) || sum.RawBytes != int64(len(raw)) || sum.RecordCRC != crc32.Checksum(raw, castagnoli) {
				t.Errorf("Summary = %+v, want count %d, raw bytes %d, record crc %#08x", sum, len(tc.payloads), len(raw), crc32.Checksum(raw, castagnoli))
			}

			src := &countingSource{BytesSource: obj}
			r, err := Open(ctx, src)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if src.reads != 1 {
				t.Errorf("Open made %d reads, want 1", src.reads)
			}
			want := m
			want.Count = uint64(len(tc.payloads))
			want.RecordCRC = crc32.Checksum(raw, castagnoli)
			want.RawBytes = int64(len(raw))
			if got := r.Meta(); got != want {
				t.Errorf("Meta() = %+v, want %+v", got, want)
			}
			if got := r.NumFrames(); got != sum.Frames {
				t.Errorf("NumFrames() = %d, Summary.Frames = %d", got, sum.Frames)
			}

			// Frames tile the offsets and the object, in order, and hold
			// whole records within the frame size (or one big record).
			next, off := want.Base, int64(0)
			for i := range r.NumFrames() {
				first, count, foff, size := r.FrameRange(i)
				if first != next || count == 0 || foff != off || size <= 0 {
					t.Fatalf("FrameRange(%d) = %d, %d, %d, %d; want first %d, count > 0, off %d", i, first, count, foff, size, next, off)
				}
				recs, err := r.ReadFrame(ctx, i)
				if err != nil {
					t.Fatalf("ReadFrame(%d): %v", i, err)
				}
				if !equalRecords(recs, frameRecords(r, i, tc.payloads)) {
					t.Fatalf("ReadFrame(%d): records differ", i)
				}
				fs := tc.opts.FrameSize
				if fs == 0 {
					fs = DefaultFrameSize
				}
				if n := len(encodeRecords(recs)); n > fs && count != 1 {
					t.Errorf("frame %d holds %d records in %d bytes, over frame size %d", i, count, n, fs)
				}
				for j := first; j < first+count; j++ {
					if got, err := r.FrameOf(j); err != nil || got != i {
						t.Fatalf("FrameOf(%d) = %d, %v; want %d", j, got, err, i)
					}
				}
				next, off = first+count, off+size
			}
			if next != want.Base+want.Count {
				t.Fatalf("frames end at offset %d, want %d", next, want.Base+want.Count)
			}

			// Read at every frame boundary, and at random offsets.
			check := func(offset uint64, max int) {
				t.Helper()
				got, err := r.Read(ctx, offset, max)
				if err != nil {
					t.Fatalf("Read(%d, %d): %v", offset, max, err)
				}
				i, _ := r.FrameOf(offset)
				first, count, _, _ := r.FrameRange(i)
				n := int(first + count - offset)
				if max > 0 && max < n {
					n = max
				}
				rel := offset - want.Base
				if !equalRecords(got, tc.payloads[rel:rel+uint64(n)]) {
					t.Fatalf("Read(%d, %d): got %d records, want %d, or contents differ", offset, max, len(got), n)
				}
			}
			for i := range r.NumFrames() {
				first, count, _, _ := r.FrameRange(i)
				check(first, 0)
				check(first, 1)
				check(first+count-1, 0)
				if first > want.Base {
					check(first-1, 2) // the last of the previous frame: only it
				}
			}
			for range 200 {
				if want.Count == 0 {
					break
				}
				check(want.Base+rng.Uint64N(want.Count), rng.IntN(5))
			}

			for _, off := range []uint64{0, want.Base - 1, want.Base + want.Count, want.Base + want.Count + 1000} {
				if _, err := r.Read(ctx, off, 0); !errors.Is(err, ErrOutOfRange) {
					t.Errorf("Read(%d) = %v, want ErrOutOfRange", off, err)
				}
			}
			if _, err := r.ReadFrame(ctx, r.NumFrames()); !errors.Is(err, ErrOutOfRange) {
				t.Errorf("ReadFrame(%d) = %v, want ErrOutOfRange", r.NumFrames(), err)
			}

			var reports []FrameReport
			vm, err := Verify(ctx, BytesSource(obj), func(fr FrameReport) { reports = append(reports, fr) })
			if err != nil || vm != want {
				t.Fatalf("Verify = %+v, %v; want %+v, nil", vm, err, want)
			}
			if len(reports) != r.NumFrames() {
				t.Fatalf("Verify reported %d frames, want %d", len(reports), r.NumFrames())
			}
			for i, fr := range reports {
				first, count, off, size := r.FrameRange(i)
				if fr.Err != nil || fr.Frame != i || fr.First != first || fr.Count != count || fr.Offset != off || fr.Size != size {
					t.Errorf("Verify report %d = %+v", i, fr)
				}
			}
		})
	}
}

func TestBigRecordGetsOwnFrame(t *testing.T) {
	const frameSize = 4096
	payloads := [][]byte{
		bytes.Repeat([]byte("a"), 100),
		bytes.Repeat([]byte("b"), 3*frameSize),
		bytes.Repeat([]byte("c"), 100),
		bytes.Repeat([]byte("d"), frameSize-RecordHeaderSize), // exactly a frame
		bytes.Repeat([]byte("e"), 100),
	}
	obj, _ := writeObject(t, testMeta(0), payloads, WriterOptions{FrameSize: frameSize})
	r, err := Open(context.Background(), BytesSource(obj))
	if err != nil {
		t.Fatal(err)
	}
	var counts []uint64
	for i := range r.NumFrames() {
		_, count, _, _ := r.FrameRange(i)
		counts = append(counts, count)
	}
	// a | b | c | d | e: the big record and the exact one stand alone,
	// and neither takes a neighbour with it.
	if want := []uint64{1, 1, 1, 1, 1}; !slices.Equal(counts, want) {
		t.Fatalf("frame record counts = %v, want %v", counts, want)
	}
}

func TestWriterMisuse(t *testing.T) {
	newW := func(m Meta) *Writer {
		t.Helper()
		w, err := NewWriter(&bytes.Buffer{}, m, WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	t.Run("bad meta and options", func(t *testing.T) {
		bad := []struct {
			name string
			m    Meta
			o    WriterOptions
		}{
			{"no topic", Meta{Count: 1}, WriterOptions{}},
			{"long topic", Meta{Topic: string(bytes.Repeat([]byte("t"), MaxTopicLen+1))}, WriterOptions{}},
			{"overflow", Meta{Topic: "t", Base: ^uint64(0), Count: 2}, WriterOptions{}},
			{"negative raw", Meta{Topic: "t", RawBytes: -1}, WriterOptions{}},
			{"frame size", Meta{Topic: "t"}, WriterOptions{FrameSize: MaxFrameSize + 1}},
			{"negative frame size", Meta{Topic: "t"}, WriterOptions{FrameSize: -1}},
			{"level", Meta{Topic: "t"}, WriterOptions{Level: 99}},
		}
		for _, b := range bad {
			if _, err := NewWriter(&bytes.Buffer{}, b.m, b.o); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: NewWriter = %v, want ErrInvalid", b.name, err)
			}
		}
	})
	t.Run("payload sizes", func(t *testing.T) {
		w := newW(testMeta(1))
		if err := w.Append(nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("Append(empty) = %v, want ErrInvalid", err)
		}
		if err := w.Append(make([]byte, MaxPayload+1)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Append(too large) = %v, want ErrInvalid", err)
		}
		if err := w.Append([]byte("ok")); err != nil {
			t.Errorf("Append after misuse: %v", err)
		}
	})
	t.Run("too many", func(t *testing.T) {
		w := newW(testMeta(1))
		if err := w.Append([]byte("1")); err != nil {
			t.Fatal(err)
		}
		if err := w.Append([]byte("2")); !errors.Is(err, ErrInvalid) {
			t.Errorf("second Append to a 1-record segment = %v, want ErrInvalid", err)
		}
	})
	t.Run("too few", func(t *testing.T) {
		w := newW(testMeta(2))
		_ = w.Append([]byte("1"))
		if _, err := w.Close(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Close after 1 of 2 records = %v, want ErrInvalid", err)
		}
	})
	t.Run("record crc", func(t *testing.T) {
		p := []byte("payload")
		m := testMeta(1)
		m.RecordCRC = crc32.Checksum(encodeRecords([][]byte{p}), castagnoli)
		obj, _ := writeObject(t, m, [][]byte{p}, WriterOptions{}) // the right CRC
		if _, err := Open(context.Background(), BytesSource(obj)); err != nil {
			t.Fatal(err)
		}
		m.RecordCRC ^= 1
		w := newW(m)
		_ = w.Append(p)
		if _, err := w.Close(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Close with a wrong RecordCRC = %v, want ErrInvalid", err)
		}
	})
	t.Run("raw bytes", func(t *testing.T) {
		m := testMeta(1)
		m.RawBytes = 100
		w := newW(m)
		_ = w.Append([]byte("x"))
		if _, err := w.Close(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Close with a wrong RawBytes = %v, want ErrInvalid", err)
		}
	})
	t.Run("after close", func(t *testing.T) {
		w := newW(testMeta(0))
		if _, err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.Append([]byte("x")); !errors.Is(err, ErrInvalid) {
			t.Errorf("Append after Close = %v, want ErrInvalid", err)
		}
		if _, err := w.Close(); !errors.Is(err, ErrInvalid) {
			t.Errorf("second Close = %v, want ErrInvalid", err)
		}
	})
	t.Run("write error is sticky", func(t *testing.T) {
		boom := errors.New("disk full")
		w, err := NewWriter(failingWriter{boom}, testMeta(2), WriterOptions{FrameSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Append([]byte("x")); !errors.Is(err, boom) {
			t.Fatalf("Append = %v, want %v", err, boom)
		}
		if err := w.Append([]byte("y")); !errors.Is(err, boom) {
			t.Errorf("Append after a write error = %v, want %v", err, boom)
		}
		if _, err := w.Close(); !errors.Is(err, boom) {
			t.Errorf("Close after a write error = %v, want %v", err, boom)
		}
	})
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

// TestGoldenEmptyObject pins the byte layout of doc.go: the object of an
// empty segment has no data frames, so it is the same bytes whatever the
// zstd library.
func TestGoldenEmptyObject(t *testing.T) {
	const golden = "" +
		"5f2a4d18" + "4c000000" + // metadata skippable frame: magic 0x184D2A5F, 76 bytes
		"464c4f45534547" + "01" + // "FLOESEG", version 1
		"0300000000000000" + "6400000000000000" + "0000000000000000" + "0900000000000000" + // segment 3, base 100, count 0, term 9
		"00000000" + "0000000000000000" + "006c50c4a0010000" + // record crc, raw bytes, created ms
		"00000000" + "00000000" + "0200" + "7431" + // 0 frames, seek crc, topic "t1"
		"d894cb1f" + // body crc32c
		"5e2a4d18" + "15000000" + // seek table: magic 0x184D2A5E, 21 bytes
		"54000000" + "00000000" + "99e9d851" + // entry 0: the metadata frame, 84 bytes, 0 decompressed, XXH64("")
		"01000000" + "80" + "b1ea928f" // footer: 1 frame, checksums, seekable magic
	obj, sum := writeObject(t, Meta{Topic: "t1", Segment: 3, Base: 100, LeaderTerm: 9, CreatedUnixMS: 1_790_000_000_000}, nil, WriterOptions{})
	if got := hex.EncodeToString(obj); got != golden {
		t.Fatalf("empty object:\n got %s\nwant %s", got, golden)
	}
	if sum.Frames != 0 || sum.Count != 0 || sum.Size != int64(len(golden)/2) {
		t.Errorf("Summary = %+v", sum)
	}
	r, err := Open(context.Background(), BytesSource(obj))
	if err != nil {
		t.Fatal(err)
	}
	if r.NumFrames() != 0 || r.Meta().Count != 0 {
		t.Errorf("NumFrames() = %d, Meta() = %+v", r.NumFrames(), r.Meta())
	}
	if _, err := r.Read(context.Background(), 100, 1); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Read of an empty segment = %v, want ErrOutOfRange", err)
	}
}

// TestConcurrentWriterSameBytes: compressing frames concurrently writes
// the same object as compressing them one by one.
func TestConcurrentWriterSameBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	payloads := randomPayloads(rng, 2000, func() int { return 1 + rng.IntN(2000) })
	want, wantSum := writeObject(t, testMeta(0), payloads, WriterOptions{FrameSize: 8 << 10})
	for _, conc := range []int{2, 4, 16} {
		got, sum := writeObject(t, testMeta(0), payloads, WriterOptions{FrameSize: 8 << 10, Concurrency: conc})
		if !bytes.Equal(got, want) || sum != wantSum {
			t.Errorf("Concurrency %d: object of %d bytes (%+v), want the sequential one of %d bytes (%+v)", conc, len(got), sum, len(want), wantSum)
		}
	}
	// A write error stops a concurrent writer too.
	boom := errors.New("disk full")
	w, err := NewWriter(failingWriter{boom}, testMeta(uint64(len(payloads))), WriterOptions{FrameSize: 1024, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	var appendErr error
	for _, p := range payloads {
		if appendErr = w.Append(p); appendErr != nil {
			break
		}
	}
	if _, err := w.Close(); !errors.Is(appendErr, boom) || !errors.Is(err, boom) {
		t.Errorf("Append = %v, Close = %v; want %v", appendErr, err, boom)
	}
}
