// Package record is the encoding of one entry as floe stores it: in the WAL
// file of a segment (node/segment) and in the data frames of the segment's
// archive object (archive/seekable). Both use this package, so a segment's
// records are byte for byte the same on disk and, decompressed, in the
// archive, and a CRC over the records as stored (the WAL's Segment.CRC, the
// object's Meta.RecordCRC) has one meaning. All integers are little-endian:
//
//	+-------------+-------------+---------------------------+
//	| length  u32 | crc32c  u32 | payload (length bytes)    |
//	+-------------+-------------+---------------------------+
//	 0             4             8                  8+length
//
// length is 1 to MaxPayload; crc32c is the CRC32C (Castagnoli) of the
// payload. The package holds no state and is safe for concurrent use. Its
// errors describe the damage; the callers wrap them in their own ErrCorrupt
// together with where the record lies.
package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

const (
	// HeaderSize is the size of the header before every payload: u32
	// payload length and u32 CRC32C of the payload.
	HeaderSize = 8
	// MaxPayload is the largest payload a record may carry (64 MiB). It
	// bounds the memory a reader allocates for one record, so a damaged
	// length field can never make a decoder allocate gigabytes.
	MaxPayload = 64 << 20
)

// Errors of Decode and CheckLength; test with errors.Is. Their texts reach
// clients verbatim (inside the error of a read that met a damaged record), so
// they carry no package prefix.
var (
	// ErrTruncated: the bytes end before the record does (a torn write or
	// a short buffer). Always wrapped together with io.ErrUnexpectedEOF.
	ErrTruncated = errors.New("truncated record")
	// ErrLength: the length field is 0 or over MaxPayload: never written
	// by Append, so the header is damaged.
	ErrLength = errors.New("bad record length")
	// ErrChecksum: the payload's CRC32C differs from the stored one.
	ErrChecksum = errors.New("record crc32c mismatch")
)

// castagnoli is the CRC32C table of every record checksum.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC returns the CRC32C of b: of a payload, the checksum its header
// stores.
func CRC(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// UpdateCRC returns crc extended by b. Fed the records as stored, headers
// included, from 0, it yields the checksum of a run of records that the WAL
// and the archive object both keep.
func UpdateCRC(crc uint32, b []byte) uint32 { return crc32.Update(crc, castagnoli, b) }

// AppendHeader appends the header of a record whose payload has length
// bytes and CRC32C crc.
func AppendHeader(dst []byte, length, crc uint32) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, length)
	return binary.LittleEndian.AppendUint32(dst, crc)
}

// Append appends the encoding of one record carrying payload to dst and
// returns the extended slice. The payload must be 1 to MaxPayload bytes
// long; Append does not check (the writers refuse other payloads with an
// error of their own).
func Append(dst, payload []byte) []byte {
	return append(AppendHeader(dst, uint32(len(payload)), CRC(payload)), payload...)
}

// ParseHeader returns the length and CRC32C stored in the header at the
// start of b, which must hold at least HeaderSize bytes. Neither is checked.
func ParseHeader(b []byte) (length, crc uint32) {
	return binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint32(b[4:8])
}

// CheckLength returns nil if length is a valid payload length (1 to
// MaxPayload), otherwise an error wrapping ErrLength.
func CheckLength(length uint32) error {
	if length == 0 {
		return fmt.Errorf("%w: zero", ErrLength)
	}
	if length > MaxPayload {
		return fmt.Errorf("%w: %d, over MaxPayload %d", ErrLength, length, MaxPayload)
	}
	return nil
}

// ChecksumError is the error of a payload whose CRC32C computed differs
// from the stored one; it wraps ErrChecksum.
func ChecksumError(stored, computed uint32) error {
	return fmt.Errorf("%w: stored %#08x, computed %#08x", ErrChecksum, stored, computed)
}

// Decode decodes the record at the start of b. It returns the payload (a
// sub-slice of b, not a copy) and the number of bytes the record takes,
// HeaderSize+len(payload). A payload is returned only if its CRC32C
// matches. Otherwise err wraps ErrTruncated (and io.ErrUnexpectedEOF),
// ErrLength or ErrChecksum. With ErrChecksum, n is still the size the
// header gives the record, so an inspecting caller can step over it;
// with the other errors n is 0, since the length cannot be trusted.
func Decode(b []byte) (payload []byte, n int, err error) {
	if len(b) < HeaderSize {
		return nil, 0, fmt.Errorf("%w: header needs %d bytes, have %d: %w", ErrTruncated, HeaderSize, len(b), io.ErrUnexpectedEOF)
	}
	length, stored := ParseHeader(b)
	if err := CheckLength(length); err != nil {
		return nil, 0, err
	}
	n = HeaderSize + int(length)
	if len(b) < n {
		return nil, 0, fmt.Errorf("%w: record of %d bytes, have %d: %w", ErrTruncated, n, len(b), io.ErrUnexpectedEOF)
	}
	payload = b[HeaderSize:n:n]
	if computed := CRC(payload); computed != stored {
		return nil, n, ChecksumError(stored, computed)
	}
	return payload, n, nil
}
