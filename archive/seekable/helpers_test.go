package seekable

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
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

// jsonEntry returns a JSON-like log event of about 1 KiB.
func jsonEntry(rng *rand.Rand, i int) []byte {
	services := []string{"checkout", "payments", "inventory", "search", "auth", "shipping"}
	levels := []string{"info", "info", "info", "debug", "warn", "error"}
	paths := []string{"/api/v1/orders", "/api/v1/cart/items", "/api/v2/search", "/healthz", "/api/v1/users/me", "/api/v1/payments/authorize"}
	agents := []string{
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
		"okhttp/4.12.0", "curl/8.5.0",
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"ts":"2026-10-27T%02d:%02d:%02d.%03dZ","seq":%d,"level":%q,"service":%q,"host":"node-%02d.eu-west-1.internal",`,
		(i/3600000)%24, (i/60000)%60, (i/1000)%60, i%1000, i, levels[rng.IntN(len(levels))], services[rng.IntN(len(services))], rng.IntN(32))
	fmt.Fprintf(&b, `"trace_id":"%016x%016x","span_id":"%016x","user_id":%d,"session":"%08x",`,
		rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.IntN(1_000_000), rng.Uint32())
	fmt.Fprintf(&b, `"http":{"method":%q,"path":%q,"status":%d,"bytes":%d,"latency_ms":%.3f,"user_agent":%q,"remote_ip":"10.%d.%d.%d"},`,
		[]string{"GET", "POST", "PUT"}[rng.IntN(3)], paths[rng.IntN(len(paths))], []int{200, 200, 200, 201, 204, 404, 500}[rng.IntN(7)],
		rng.IntN(100000), rng.Float64()*250, agents[rng.IntN(len(agents))], rng.IntN(256), rng.IntN(256), rng.IntN(256))
	b.WriteString(`"cart":{"items":[`)
	for j := range 1 + rng.IntN(4) {
		if j > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"SKU-%06d","qty":%d,"price_cents":%d,"currency":"EUR"}`, rng.IntN(999999), 1+rng.IntN(5), rng.IntN(20000))
	}
	b.WriteString(`]},"msg":"`)
	for b.Len() < 1000 {
		b.WriteString([]string{"request ", "completed ", "for ", "customer ", "order ", "with ", "retry ", "cache ", "miss ", "hit "}[rng.IntN(10)])
	}
	b.WriteString(`"}`)
	return b.Bytes()
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
