package seekable

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// TestReadOneEntryFetches: reading one entry of a 16 MiB segment fetches
// the tail (footer, seek table, metadata) in one read and that entry's
// frame in another, never the rest of the object.
func TestReadOneEntryFetches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 8))
	payloads := make([][]byte, 16<<10) // 16 Ki entries of 1 KiB, incompressible
	for i := range payloads {
		p := make([]byte, 1024-RecordHeaderSize)
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		payloads[i] = p
	}
	obj, sum := writeObject(t, testMeta(0), payloads, WriterOptions{})
	if sum.Frames < 16 {
		t.Fatalf("object has %d frames, want 16 or more", sum.Frames)
	}
	for _, offset := range []uint64{1000, 1000 + 8000, 1000 + uint64(len(payloads)) - 1} {
		src := &countingSource{BytesSource: obj}
		r, err := Open(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		tailBytes := src.bytes
		got, err := r.Read(ctx, offset, 1)
		if err != nil {
			t.Fatalf("Read(%d): %v", offset, err)
		}
		if want := payloads[offset-1000]; len(got) != 1 || string(got[0]) != string(want) {
			t.Fatalf("Read(%d) returned the wrong record", offset)
		}
		i, _ := r.FrameOf(offset)
		_, _, _, frameSize := r.FrameRange(i)
		const slack = 0 // exact: one tail read, one frame read
		if src.reads != 2 || tailBytes != TailReadSize || src.bytes > TailReadSize+frameSize+slack {
			t.Errorf("offset %d: %d reads, %d bytes (tail %d, frame %d %d bytes); want 2 reads of %d + %d bytes",
				offset, src.reads, src.bytes, tailBytes, i, frameSize, TailReadSize, frameSize)
		}
		if src.bytes*8 > int64(len(obj)) {
			t.Errorf("offset %d: fetched %d bytes of a %d-byte object", offset, src.bytes, len(obj))
		}
		t.Logf("offset %d: object %d bytes in %d frames; fetched %d bytes in %d reads (tail %d + frame %d)",
			offset, len(obj), sum.Frames, src.bytes, src.reads, tailBytes, frameSize)
	}
}

// TestOpenLargeTail: an object whose seek table and metadata outgrow
// TailReadSize is opened with exactly one more read, of exactly the
// missing bytes.
func TestOpenLargeTail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(9, 10))
	payloads := randomPayloads(rng, 10000, func() int { return 1 + rng.IntN(64) })
	obj, sum := writeObject(t, testMeta(0), payloads, WriterOptions{FrameSize: 1}) // a frame per record
	src := &countingSource{BytesSource: obj}
	r, err := Open(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	n := uint64(sum.Frames)
	need := int64(seekTableSize(n+1) + metaFrameSize(len(r.Meta().Topic), n))
	if need <= TailReadSize {
		t.Fatalf("tail is %d bytes, want more than %d for this test", need, TailReadSize)
	}
	if src.reads != 2 || src.bytes != need {
		t.Errorf("Open: %d reads of %d bytes, want 2 reads of %d", src.reads, src.bytes, need)
	}
	for _, off := range []uint64{1000, 1000 + 5000, 1000 + 9999} {
		got, err := r.Read(ctx, off, 0)
		if err != nil || len(got) != 1 || string(got[0]) != string(payloads[off-1000]) {
			t.Fatalf("Read(%d) = %d records, %v", off, len(got), err)
		}
	}
}

// hugeSource claims to be a huge object and serves a crafted tail.
type hugeSource struct {
	size  int64
	tail  []byte
	reads int
}

func (h *hugeSource) Size() int64 { return h.size }
func (h *hugeSource) ReadAt(_ context.Context, p []byte, off int64) (int, error) {
	h.reads++
	start := h.size - int64(len(h.tail))
	for i := range p {
		p[i] = 0
		if o := off + int64(i) - start; o >= 0 {
			p[i] = h.tail[o]
		}
	}
	return len(p), nil
}

// TestOpenRejectsAbsurdTables: a damaged footer or metadata entry that
// claims a huge seek table or metadata frame is rejected from the first
// read, before anything is allocated for it.
func TestOpenRejectsAbsurdTables(t *testing.T) {
	footer := func(frames uint32, metaLen uint32) []byte {
		var b []byte
		b = appendSeekEntry(b, seekEntry{csize: metaLen, dsize: 0, checksum: emptyChecksum})
		b = binary.LittleEndian.AppendUint32(b, frames)
		b = append(b, descriptorOut)
		return binary.LittleEndian.AppendUint32(b, seekableMagic)
	}
	cases := []struct {
		name   string
		frames uint32
		meta   uint32
	}{
		{"4 billion frames", ^uint32(0), 100},
		{"MaxFrames+2 frames", MaxFrames + 2, 100},
		{"no frames", 0, 100},
		{"huge metadata frame", 10, ^uint32(0)},
		{"metadata frame too small for its frames", 1000, uint32(metaFrameSize(1, 999) - 1)},
	}
	for _, tc := range cases {
		src := &hugeSource{size: 1 << 40, tail: footer(tc.frames, tc.meta)}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Open(context.Background(), src)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Open = %v, want ErrCorrupt", tc.name, err)
		}
		if src.reads != 1 {
			t.Errorf("%s: Open made %d reads, want 1", tc.name, src.reads)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
			t.Errorf("%s: Open allocated %d bytes", tc.name, alloc)
		}
	}
}

// TestSmallObjectOneRead: an object no larger than TailReadSize is read
// whole by Open, and frame reads fetch nothing more.
func TestSmallObjectOneRead(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(21, 22))
	payloads := randomPayloads(rng, 200, func() int { return 1 + rng.IntN(200) })
	obj, _ := writeObject(t, testMeta(0), payloads, WriterOptions{FrameSize: 2048})
	if len(obj) > TailReadSize {
		t.Fatalf("object is %d bytes, want at most %d", len(obj), TailReadSize)
	}
	src := &countingSource{BytesSource: obj}
	r, err := Open(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	for i := range r.NumFrames() {
		recs, err := r.ReadFrame(ctx, i)
		if err != nil || !equalRecords(recs, frameRecords(r, i, payloads)) {
			t.Fatalf("ReadFrame(%d): %d records, %v", i, len(recs), err)
		}
	}
	if src.reads != 1 || src.bytes != int64(len(obj)) {
		t.Errorf("%d reads of %d bytes for a %d-byte object, want 1 read of it all", src.reads, src.bytes, len(obj))
	}
}

// TestConcurrentReads shares one Reader between goroutines (run with
// -race).
func TestConcurrentReads(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(23, 24))
	payloads := randomPayloads(rng, 3000, func() int { return 1 + rng.IntN(500) })
	obj, _ := writeObject(t, testMeta(0), payloads, WriterOptions{FrameSize: 32 << 10})
	r, err := Open(ctx, &countingSource{BytesSource: obj})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(g), 0))
			for range 50 {
				off := 1000 + rng.Uint64N(uint64(len(payloads)))
				got, err := r.Read(ctx, off, 3)
				if err == nil && (len(got) == 0 || string(got[0]) != string(payloads[off-1000])) {
					err = errors.New("wrong record")
				}
				if err != nil {
					errs <- fmt.Errorf("Read(%d): %w", off, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
