package seekable

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// FuzzOpenRead opens arbitrary bytes as an object and reads every frame
// and the first offset. It must never panic, errors must wrap the
// package's sentinels, and every frame returned must match an
// independent decode of the frame's bytes with intact record CRCs.
func FuzzOpenRead(f *testing.F) {
	rng := rand.New(rand.NewPCG(17, 18))
	for _, tc := range []struct {
		payloads [][]byte
		opts     WriterOptions
	}{
		{nil, WriterOptions{}},
		{[][]byte{[]byte("x")}, WriterOptions{}},
		{randomPayloads(rng, 20, func() int { return 1 + rng.IntN(100) }), WriterOptions{FrameSize: 256}},
		{randomPayloads(rng, 5, func() int { return 300 }), WriterOptions{FrameSize: 1, Level: zstd.SpeedFastest}},
	} {
		obj, _ := writeObject(f, testMeta(0), tc.payloads, tc.opts)
		f.Add(obj)
	}
	f.Add([]byte{})
	f.Add([]byte{0xB1, 0xEA, 0x92, 0x8F})

	dec, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxFrameRaw), zstd.WithDecoderConcurrency(1))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(dec.Close)

	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		r, err := Open(ctx, BytesSource(data))
		if err != nil {
			if !isFormatError(err) {
				t.Fatalf("Open error %v wraps none of the sentinels", err)
			}
			return
		}
		for i := range r.NumFrames() {
			recs, err := r.ReadFrame(ctx, i)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("ReadFrame(%d) error %v does not wrap ErrCorrupt", i, err)
				}
				continue
			}
			// The oracle: decode the frame's bytes independently and
			// check every record's CRC.
			first, count, off, size := r.FrameRange(i)
			raw, err := dec.DecodeAll(data[off:off+size], nil)
			if err != nil {
				t.Fatalf("ReadFrame(%d) returned records from a frame zstd cannot decode: %v", i, err)
			}
			var want [][]byte
			for len(raw) >= RecordHeaderSize {
				n := binary.LittleEndian.Uint32(raw)
				if uint64(n) > uint64(len(raw)-RecordHeaderSize) {
					t.Fatalf("frame %d: record length %d overruns the frame", i, n)
				}
				p := raw[RecordHeaderSize : RecordHeaderSize+n]
				if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(raw[4:]) {
					t.Fatalf("ReadFrame(%d) returned a frame with a bad record CRC", i)
				}
				want = append(want, p)
				raw = raw[RecordHeaderSize+n:]
			}
			if len(raw) != 0 || uint64(len(want)) != count || !equalRecords(recs, want) {
				t.Fatalf("ReadFrame(%d) (offsets %d+%d) returned %d records, the frame holds %d", i, first, count, len(recs), len(want))
			}
		}
		m := r.Meta()
		if m.Count > 0 {
			if _, err := r.Read(ctx, m.Base, 1); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Read(%d) error %v does not wrap ErrCorrupt", m.Base, err)
			}
		}
		if _, err := Verify(ctx, BytesSource(data), nil); err != nil && !isFormatError(err) {
			t.Fatalf("Verify error %v wraps none of the sentinels", err)
		}
	})
}
