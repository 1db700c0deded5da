package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"testing"
)

// TestEncoding pins the byte layout drawn in doc comment of the package:
// the WAL and every archived object hold records in exactly this form.
func TestEncoding(t *testing.T) {
	got := Append([]byte{0xAA}, []byte("floe"))
	want := []byte{0xAA, 4, 0, 0, 0}
	want = binary.LittleEndian.AppendUint32(want, crc32.Checksum([]byte("floe"), crc32.MakeTable(crc32.Castagnoli)))
	want = append(want, "floe"...)
	if !bytes.Equal(got, want) {
		t.Fatalf("Append = % x, want % x", got, want)
	}
	var crc uint32
	for _, b := range [][]byte{got[1:5], got[5:9], got[9:]} {
		crc = UpdateCRC(crc, b)
	}
	if crc != CRC(got[1:]) {
		t.Errorf("UpdateCRC in pieces = %#x, CRC at once = %#x", crc, CRC(got[1:]))
	}
}

func TestDecode(t *testing.T) {
	rec := Append(nil, []byte("payload"))
	tests := []struct {
		name  string
		in    []byte
		want  string
		n     int
		isErr error
	}{
		{"valid", rec, "payload", len(rec), nil},
		{"valid with trailing bytes", append(bytes.Clone(rec), 1, 2, 3), "payload", len(rec), nil},
		{"empty", nil, "", 0, ErrTruncated},
		{"short header", rec[:7], "", 0, ErrTruncated},
		{"short payload", rec[:len(rec)-1], "", 0, ErrTruncated},
		{"crc mismatch", func() []byte { b := bytes.Clone(rec); b[9] ^= 1; return b }(), "", len(rec), ErrChecksum},
		{"zero length", make([]byte, 16), "", 0, ErrLength},
		{"length over MaxPayload", []byte{1, 0, 0, 4, 0, 0, 0, 0}, "", 0, ErrLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, n, err := Decode(tt.in)
			if tt.isErr == nil {
				if err != nil || string(p) != tt.want || n != tt.n {
					t.Fatalf("Decode = %q, %d, %v; want %q, %d, nil", p, n, err, tt.want, tt.n)
				}
				return
			}
			if !errors.Is(err, tt.isErr) || p != nil || n != tt.n {
				t.Fatalf("Decode = %q, %d, %v; want nil, %d, %v", p, n, err, tt.n, tt.isErr)
			}
			if got, want := errors.Is(err, io.ErrUnexpectedEOF), tt.isErr == ErrTruncated; got != want {
				t.Errorf("errors.Is(err, io.ErrUnexpectedEOF) = %v, want %v (err %v)", got, want, err)
			}
		})
	}
}

// FuzzDecode feeds arbitrary bytes to Decode as a stream of records. It may
// never panic, never return a payload whose CRC32C differs from the stored
// one, and its errors wrap one of the package's sentinels.
func FuzzDecode(f *testing.F) {
	one := Append(nil, []byte("hello"))
	two := Append(Append(nil, []byte("a")), bytes.Repeat([]byte("xyz"), 100))
	flipped := bytes.Clone(two)
	flipped[HeaderSize] ^= 1
	for _, s := range [][]byte{one, two, two[:len(two)-3], flipped, append(bytes.Clone(two), 0xff, 0xff, 0xff, 0xff), nil} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for b := data; len(b) > 0; {
			p, n, err := Decode(b)
			if err != nil {
				if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrLength) && !errors.Is(err, ErrChecksum) {
					t.Fatalf("Decode error %v wraps no sentinel", err)
				}
				if errors.Is(err, ErrChecksum) && (n <= HeaderSize || n > len(b)) {
					t.Fatalf("Decode of a bad checksum returned n=%d from %d bytes", n, len(b))
				}
				break
			}
			length, stored := ParseHeader(b)
			if len(p) == 0 || n != HeaderSize+len(p) || n > len(b) || uint32(len(p)) != length {
				t.Fatalf("Decode returned %d payload bytes and n=%d from %d bytes, stored length %d", len(p), n, len(b), length)
			}
			if got := CRC(p); got != stored {
				t.Fatalf("Decode returned a payload with crc %#x, stored %#x", got, stored)
			}
			b = b[n:]
		}
	})
}
