package seekable

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"sync"
	"testing"
)

// testMeta returns the metadata of a test segment of count records.
func testMeta(count uint64) Meta {
	return Meta{Topic: "orders.eu-1", Segment: 7, Base: 1000, Count: count, LeaderTerm: 42, CreatedUnixMS: 1_790_000_000_000}
}

// encodeRecords returns the records as the WAL stores them: what an
// object decompresses to.
func encodeRecords(payloads [][]byte) []byte {
	var raw []byte
	for _, p := range payloads {
		raw = binary.LittleEndian.AppendUint32(raw, uint32(len(p)))
		raw = binary.LittleEndian.AppendUint32(raw, crc32.Checksum(p, castagnoli))
		raw = append(raw, p...)
	}
	return raw
}

// writeObject encodes payloads into an object for m (m.Count is set from
// payloads) and returns it with the writer's summary.
func writeObject(t testing.TB, m Meta, payloads [][]byte, opts WriterOptions) ([]byte, Summary) {
	t.Helper()
	m.Count = uint64(len(payloads))
	var buf bytes.Buffer
	w, err := NewWriter(&buf, m, opts)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	for i, p := range payloads {
		if err := w.Append(p); err != nil {
			t.Fatalf("Append record %d: %v", i, err)
		}
	}
	sum, err := w.Close()
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.Bytes(), sum
}

// randomPayloads returns n payloads of sizes drawn from sizes, with
// mildly compressible content.
func randomPayloads(rng *rand.Rand, n int, sizes func() int) [][]byte {
	words := []string{"alpha", "beta", "gamma", "delta", "order", "paid", "shipped", " ", "42", "\n"}
	out := make([][]byte, n)
	for i := range out {
		size := sizes()
		p := make([]byte, 0, size)
		for len(p) < size {
			if rng.IntN(4) == 0 {
				p = append(p, byte(rng.IntN(256)))
			} else {
				p = append(p, words[rng.IntN(len(words))]...)
			}
		}
		out[i] = p[:size]
	}
	return out
}

// countingSource counts the reads and bytes fetched from an object.
type countingSource struct {
	BytesSource
	mu           sync.Mutex
	reads, bytes int64
}

func (c *countingSource) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	c.mu.Lock()
	c.reads++
	c.bytes += int64(len(p))
	c.mu.Unlock()
	return c.BytesSource.ReadAt(ctx, p, off)
}

// isFormatError reports whether err is one of the errors damaged or
// foreign bytes may give.
func isFormatError(err error) bool {
	return errors.Is(err, ErrCorrupt) || errors.Is(err, ErrFormat) || errors.Is(err, ErrVersion)
}

// frameRecords returns the expected payloads of frame i of r.
func frameRecords(r *Reader, i int, payloads [][]byte) [][]byte {
	first, count, _, _ := r.FrameRange(i)
	rel := first - r.Meta().Base
	return payloads[rel : rel+count]
}

func equalRecords(got, want [][]byte) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			return false
		}
	}
	return true
}
