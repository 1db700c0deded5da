package seekable

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
)

// readAll opens obj and reads every frame. It returns the error that
// stopped it, if any; it fails the test if it returned anything other
// than the original metadata, frames and records.
func readAll(t *testing.T, obj []byte, want *Reader, payloads [][]byte) error {
	t.Helper()
	ctx := context.Background()
	r, err := Open(ctx, BytesSource(obj))
	if err != nil {
		if !isFormatError(err) {
			t.Fatalf("Open error %v wraps none of ErrCorrupt, ErrFormat, ErrVersion", err)
		}
		return err
	}
	if r.Meta() != want.Meta() || r.NumFrames() != want.NumFrames() {
		t.Fatalf("Open of a damaged object succeeded with meta %+v and %d frames, want %+v and %d", r.Meta(), r.NumFrames(), want.Meta(), want.NumFrames())
	}
	var firstErr error
	for i := range r.NumFrames() {
		a1, a2, a3, a4 := r.FrameRange(i)
		b1, b2, b3, b4 := want.FrameRange(i)
		if a1 != b1 || a2 != b2 || a3 != b3 || a4 != b4 {
			t.Fatalf("FrameRange(%d) of a damaged object = %d %d %d %d, want %d %d %d %d", i, a1, a2, a3, a4, b1, b2, b3, b4)
		}
		recs, err := r.ReadFrame(ctx, i)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ReadFrame(%d) error %v does not wrap ErrCorrupt", i, err)
			}
			if len(recs) != 0 {
				t.Fatalf("ReadFrame(%d) returned %d records with its error", i, len(recs))
			}
			firstErr = cmpOr(firstErr, err)
			continue
		}
		if !equalRecords(recs, frameRecords(want, i, payloads)) {
			t.Fatalf("ReadFrame(%d) of a damaged object returned wrong records", i)
		}
	}
	return firstErr
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// TestCorruptionNeverGivesWrongData flips every byte of a small object,
// whole and one bit at a time: Open and every frame read either fail with
// ErrCorrupt, ErrFormat or ErrVersion, or return exactly the original
// data. Damage to the tail (metadata frame, seek table, footer) is always
// caught by Open, except in the two bits of the seek table descriptor
// that the seekable spec says readers must ignore; Verify catches
// whatever a read catches.
func TestCorruptionNeverGivesWrongData(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(11, 12))
	payloads := randomPayloads(rng, 30, func() int { return 1 + rng.IntN(150) })
	payloads = append(payloads, randomPayloads(rng, 1, func() int { return 700 })...) // a frame of its own
	payloads = append(payloads, []byte("x"))
	obj, _ := writeObject(t, testMeta(0), payloads, WriterOptions{FrameSize: 512})
	orig, err := Open(context.Background(), BytesSource(obj))
	if err != nil {
		t.Fatal(err)
	}
	n := orig.NumFrames()
	_, _, lastOff, lastSize := orig.FrameRange(n - 1)
	metaOff := lastOff + lastSize
	stOff := int64(len(obj)) - int64(seekTableSize(uint64(n+1)))
	footerOff := int64(len(obj)) - seekFooterSize
	descOff := footerOff + 4
	region := func(p int64) string {
		switch {
		case p < metaOff:
			return "data frames"
		case p < stOff:
			return "metadata frame"
		case p < footerOff:
			return "seek table"
		default:
			return "footer"
		}
	}
	t.Logf("object: %d bytes, %d data frames, metadata at %d, seek table at %d", len(obj), n, metaOff, stOff)

	type tally struct{ flips, caught int }
	tallies := map[string]*tally{}
	for p := range int64(len(obj)) {
		for _, mask := range []byte{0xFF, 1 << (p % 8)} {
			bad := slices.Clone(obj)
			bad[p] ^= mask
			err := readAll(t, bad, orig, payloads)
			reg := region(p)
			tl := tallies[reg]
			if tl == nil {
				tl = &tally{}
				tallies[reg] = tl
			}
			tl.flips++
			if err != nil {
				tl.caught++
			}
			if p >= metaOff && err == nil && !(p == descOff && mask&^0x03 == 0) {
				t.Errorf("byte %d (%s) ^ %#02x: Open accepted damage to the tail", p, reg, mask)
			}
			if p < metaOff && mask != 0xFF {
				continue // Verify is checked on every tail flip and one flip per data byte
			}
			_, verr := Verify(context.Background(), BytesSource(bad), nil)
			if err != nil && verr == nil {
				t.Errorf("byte %d (%s) ^ %#02x: a read fails with %v, Verify finds nothing", p, reg, mask, err)
			}
			if verr != nil && !isFormatError(verr) {
				t.Errorf("byte %d (%s) ^ %#02x: Verify error %v wraps none of the sentinels", p, reg, mask, verr)
			}
		}
	}
	for reg, tl := range tallies {
		t.Logf("%-15s %5d flips, %5d caught, %4d harmless (same data returned)", reg, tl.flips, tl.caught, tl.flips-tl.caught)
	}
}

// TestCorruptionErrorNamesFrame: the error of a damaged frame names the
// segment, frame and offsets, and Verify reports that frame alone and
// keeps going.
func TestCorruptionErrorNamesFrame(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(13, 14))
	payloads := randomPayloads(rng, 400, func() int { return 100 + rng.IntN(200) })
	obj, _ := writeObject(t, testMeta(0), payloads, WriterOptions{FrameSize: 4096})
	r, err := Open(ctx, BytesSource(obj))
	if err != nil {
		t.Fatal(err)
	}
	if r.NumFrames() < 4 {
		t.Fatalf("%d frames, want at least 4", r.NumFrames())
	}
	first, count, off, size := r.FrameRange(2)
	bad := slices.Clone(obj)
	bad[off+size/2] ^= 0x10
	rb, err := Open(ctx, BytesSource(bad))
	if err != nil {
		t.Fatal(err)
	}
	_, err = rb.Read(ctx, first+1, 0)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read of the damaged frame = %v, want ErrCorrupt", err)
	}
	for _, want := range []string{`segment 7 of "orders.eu-1"`, "frame 2", "offsets"} {
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if got, err := rb.Read(ctx, first+count, 0); err != nil || len(got) == 0 {
		t.Errorf("Read of the next frame = %d records, %v", len(got), err)
	}
	var reports []FrameReport
	_, err = Verify(ctx, BytesSource(bad), func(fr FrameReport) { reports = append(reports, fr) })
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify = %v, want ErrCorrupt", err)
	}
	if len(reports) != r.NumFrames() {
		t.Fatalf("Verify reported %d frames, want %d", len(reports), r.NumFrames())
	}
	for i, fr := range reports {
		if (fr.Err != nil) != (i == 2) {
			t.Errorf("Verify report for frame %d: err %v", i, fr.Err)
		}
	}
	t.Logf("read error: %v", reports[2].Err)
	t.Logf("verify error: %v", err)
}

// TestVerifyReportsEveryBadRecord: in inspect mode a bad record CRC does
// not hide the records after it. The damage is made before compression
// (a record whose stored CRC is wrong), so the zstd and seek-table
// checksums hold and only the record CRCs catch it.
func TestVerifyReportsEveryBadRecord(t *testing.T) {
	ctx := context.Background()
	payloads := [][]byte{[]byte("zero"), []byte("one"), []byte("two"), []byte("three"), []byte("four")}
	obj, _ := writeObject(t, testMeta(0), payloads, WriterOptions{})
	// Rebuild the object with records 1 and 3 carrying wrong CRCs.
	raw := encodeRecords(payloads)
	pos := 0
	for i, p := range payloads {
		if i == 1 || i == 3 {
			raw[pos+4] ^= 0xFF
		}
		pos += RecordHeaderSize + len(p)
	}
	bad := rebuildWithRaw(t, obj, raw)
	r, err := Open(ctx, BytesSource(bad))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := r.Read(ctx, 1000, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read = %v, want ErrCorrupt", err)
	}
	var reports []FrameReport
	if _, err := Verify(ctx, BytesSource(bad), func(fr FrameReport) { reports = append(reports, fr) }); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify = %v, want ErrCorrupt", err)
	}
	msg := reports[0].Err.Error()
	for _, want := range []string{"offset 1001", "offset 1003"} {
		if !bytes.Contains([]byte(msg), []byte(want)) {
			t.Errorf("Verify report %q does not name %s", msg, want)
		}
	}
	if bytes.Contains([]byte(msg), []byte("offset 1002")) {
		t.Errorf("Verify report %q names the intact record 1002", msg)
	}
}

// rebuildWithRaw returns a one-frame object like obj whose data frame is
// raw compressed, with seek table and metadata made consistent with it.
func rebuildWithRaw(t *testing.T, obj, raw []byte) []byte {
	t.Helper()
	r, err := Open(context.Background(), BytesSource(obj))
	if err != nil || r.NumFrames() != 1 {
		t.Fatalf("rebuildWithRaw needs a one-frame object: %v", err)
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, r.Meta(), WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.raw = append(w.raw, raw...)
	w.firsts = []uint64{0}
	w.count = r.Meta().Count
	w.rawBytes = int64(len(raw))
	w.meta.RecordCRC = 0
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestTruncatedObjects: every prefix of an object fails to open, and a
// Source that serves fewer bytes than its Size fails reads with
// ErrCorrupt.
func TestTruncatedObjects(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(15, 16))
	payloads := randomPayloads(rng, 50, func() int { return 1 + rng.IntN(300) })
	obj, _ := writeObject(t, testMeta(0), payloads, WriterOptions{FrameSize: 1024})
	for n := range len(obj) {
		if _, err := Open(ctx, BytesSource(obj[:n])); !isFormatError(err) {
			t.Fatalf("Open of the first %d of %d bytes = %v, want an ErrCorrupt or ErrFormat error", n, len(obj), err)
		}
	}
	// The store lost the object's start but reports its full size.
	if _, err := Open(ctx, shortSource{BytesSource: obj, from: 100}); !errors.Is(err, ErrCorrupt) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Open of a small object the store cut short = %v, want ErrCorrupt and io.ErrUnexpectedEOF", err)
	}
	big := make([]byte, 2*TailReadSize) // an object larger than one tail read
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	obj, _ = writeObject(t, testMeta(0), [][]byte{big[:TailReadSize], big[TailReadSize:]}, WriterOptions{FrameSize: TailReadSize})
	r, err := Open(ctx, shortSource{BytesSource: obj, from: 100})
	if err != nil {
		t.Fatal(err) // the tail is intact
	}
	if _, err := r.ReadFrame(ctx, 0); !errors.Is(err, ErrCorrupt) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadFrame of a frame the store cut short = %v, want ErrCorrupt and io.ErrUnexpectedEOF", err)
	}
}

// shortSource serves only the bytes from 'from' on, as if the start of
// the object had been lost, while reporting the full size.
type shortSource struct {
	BytesSource
	from int64
}

func (s shortSource) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < s.from {
		return 0, io.EOF
	}
	return s.BytesSource.ReadAt(ctx, p, off)
}
