package seekable

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"

	"floe/archive/seekable/seekabletest"
)

// jsonEntries returns n JSON-like log events of about 1 KiB each.
func jsonEntries(n int) [][]byte {
	rng := rand.New(rand.NewPCG(19, 20))
	out := make([][]byte, n)
	for i := range out {
		out[i] = seekabletest.JSONEntry(rng, i)
	}
	return out
}

// countingWriter discards what it is given and counts it.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// BenchmarkWrite encodes a 16 MiB segment of 1 KiB JSON-like entries and
// reports throughput of record bytes and the compression ratio (record
// bytes / object bytes).
func BenchmarkWrite(b *testing.B) {
	entries := jsonEntries(16 << 10)
	raw := int64(len(encodeRecords(entries)))
	for _, o := range []WriterOptions{
		{Level: zstd.SpeedFastest},
		{Level: zstd.SpeedDefault},
		{Level: zstd.SpeedBetterCompression},
		{Level: zstd.SpeedDefault, Concurrency: 2},
	} {
		name := o.Level.String()
		if o.Concurrency > 1 {
			name += fmt.Sprintf("-conc%d", o.Concurrency)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(raw)
			b.ReportAllocs()
			var size int64
			for b.Loop() {
				cw := &countingWriter{}
				m := testMeta(uint64(len(entries)))
				w, err := NewWriter(cw, m, o)
				if err != nil {
					b.Fatal(err)
				}
				for _, e := range entries {
					if err := w.Append(e); err != nil {
						b.Fatal(err)
					}
				}
				sum, err := w.Close()
				if err != nil {
					b.Fatal(err)
				}
				size = sum.Size
			}
			b.ReportMetric(float64(raw)/float64(size), "ratio")
			b.ReportMetric(float64(size)/float64(len(entries)), "obj-B/entry")
		})
	}
}

// BenchmarkDecodeFrame decodes and checks 1 MiB frames of 1 KiB JSON-like
// entries (bytes/s are decompressed record bytes).
func BenchmarkDecodeFrame(b *testing.B) {
	entries := jsonEntries(16 << 10)
	obj, _ := writeObject(b, testMeta(0), entries, WriterOptions{})
	r, err := Open(context.Background(), BytesSource(obj))
	if err != nil {
		b.Fatal(err)
	}
	frames := make([][]byte, r.NumFrames())
	var raw int64
	for i := range frames {
		_, _, off, size := r.FrameRange(i)
		frames[i] = obj[off : off+size]
		raw += r.frames[i].dsize
	}
	b.SetBytes(raw / int64(len(frames)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := r.DecodeFrame(i, frames[i]); err != nil {
			b.Fatal(err)
		}
		i = (i + 1) % len(frames)
	}
}

// BenchmarkReadSegment reads a whole 16 MiB segment frame by frame
// through a Source (Open included), as a cold reader would.
func BenchmarkReadSegment(b *testing.B) {
	entries := jsonEntries(16 << 10)
	raw := int64(len(encodeRecords(entries)))
	obj, _ := writeObject(b, testMeta(0), entries, WriterOptions{})
	b.SetBytes(raw)
	b.ReportAllocs()
	ctx := context.Background()
	for b.Loop() {
		r, err := Open(ctx, BytesSource(obj))
		if err != nil {
			b.Fatal(err)
		}
		for i := range r.NumFrames() {
			if _, err := r.ReadFrame(ctx, i); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkPlainZstd is the baseline for BenchmarkReadSegment: a plain
// streaming decode of the same object, with no checks of floe's own.
func BenchmarkPlainZstd(b *testing.B) {
	entries := jsonEntries(16 << 10)
	raw := int64(len(encodeRecords(entries)))
	obj, _ := writeObject(b, testMeta(0), entries, WriterOptions{})
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		b.Fatal(err)
	}
	defer dec.Close()
	b.SetBytes(raw)
	for b.Loop() {
		if err := dec.Reset(bytes.NewReader(obj)); err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, dec); err != nil {
			b.Fatal(err)
		}
	}
}
