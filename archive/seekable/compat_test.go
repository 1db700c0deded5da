package seekable

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	stz "github.com/SaveTheRbtz/zstd-seekable-format-go/pkg"
	"github.com/klauspost/compress/zstd"
)

// compatObjects returns objects of 0, 1 and many records with the bytes
// each must decompress to.
func compatObjects(t *testing.T) map[string][2][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	out := map[string][2][]byte{}
	for _, tc := range []struct {
		name     string
		payloads [][]byte
		opts     WriterOptions
	}{
		{"empty", nil, WriterOptions{}},
		{"one", [][]byte{[]byte("hello")}, WriterOptions{}},
		{"many", randomPayloads(rng, 2000, func() int { return 1 + rng.IntN(3000) }), WriterOptions{FrameSize: 64 << 10}},
		{"big records", randomPayloads(rng, 6, func() int { return 200<<10 + rng.IntN(100<<10) }), WriterOptions{FrameSize: 64 << 10}},
	} {
		obj, _ := writeObject(t, testMeta(0), tc.payloads, tc.opts)
		out[tc.name] = [2][]byte{obj, encodeRecords(tc.payloads)}
	}
	return out
}

// TestPlainZstdDecoder: a plain streaming zstd decoder, knowing nothing of
// the seekable format, decompresses a whole object to its records as the
// WAL stores them (skippable frames are skipped).
func TestPlainZstdDecoder(t *testing.T) {
	t.Parallel()
	for name, c := range compatObjects(t) {
		t.Run(name, func(t *testing.T) {
			obj, want := c[0], c[1]
			dec, err := zstd.NewReader(bytes.NewReader(obj))
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()
			got, err := io.ReadAll(dec)
			if err != nil {
				t.Fatalf("streaming decode of the whole object: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("streaming decode gave %d bytes, want the %d record bytes", len(got), len(want))
			}
		})
	}
}

// TestZstdCLI runs the zstd command-line tool, where the machine has it.
func TestZstdCLI(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("zstd")
	if err != nil {
		t.Skip("no zstd command on this machine")
	}
	dir := t.TempDir()
	for name, c := range compatObjects(t) {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name+".seg")
			if err := os.WriteFile(path, c[0], 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, "-t", "-q", path).CombinedOutput(); err != nil {
				t.Fatalf("zstd -t: %v: %s", err, out)
			}
			got, err := exec.Command(bin, "-d", "-c", "-q", path).Output()
			if err != nil {
				t.Fatalf("zstd -d: %v", err)
			}
			if !bytes.Equal(got, c[1]) {
				t.Fatalf("zstd -d gave %d bytes, want the %d record bytes", len(got), len(c[1]))
			}
		})
	}
}

// TestSeekableFormatReader: an independent reader of zstd's seekable
// format accepts an object, lists the metadata frame as an empty frame,
// and reads any range of the decompressed bytes.
func TestSeekableFormatReader(t *testing.T) {
	t.Parallel()
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	for name, c := range compatObjects(t) {
		t.Run(name, func(t *testing.T) {
			obj, want := c[0], c[1]
			sr, err := stz.NewReader(bytes.NewReader(obj), dec)
			if err != nil {
				t.Fatalf("seekable-format reader refuses the object: %v", err)
			}
			defer sr.Close()
			table, err := sr.SeekTable()
			if err != nil {
				t.Fatal(err)
			}
			r, err := Open(t.Context(), BytesSource(obj))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := table.NumFrames(), int64(r.NumFrames()+1); got != want {
				t.Errorf("seek table has %d frames, want %d data frames + the metadata frame", got, want)
			}
			if got := table.Size(); got != uint64(len(want)) {
				t.Errorf("seek table decompressed size %d, want %d", got, len(want))
			}
			for i := range r.NumFrames() {
				e, ok := table.EntryByID(int64(i))
				_, _, off, size := r.FrameRange(i)
				if !ok || int64(e.CompressedOffset) != off || int64(e.CompressedSize) != size {
					t.Errorf("seek table entry %d = %+v, want compressed bytes %d+%d", i, e, off, size)
				}
			}
			all, err := io.ReadAll(sr)
			if err != nil || !bytes.Equal(all, want) {
				t.Fatalf("sequential read: %d bytes, %v; want %d bytes", len(all), err, len(want))
			}
			for range 50 {
				if len(want) == 0 {
					break
				}
				off := rng.IntN(len(want))
				n := min(1+rng.IntN(100<<10), len(want)-off)
				got := make([]byte, n)
				if _, err := sr.ReadAt(got, int64(off)); err != nil && err != io.EOF {
					t.Fatalf("ReadAt(%d, %d): %v", off, n, err)
				}
				if !bytes.Equal(got, want[off:off+n]) {
					t.Fatalf("ReadAt(%d, %d): bytes differ", off, n)
				}
			}
		})
	}
}
