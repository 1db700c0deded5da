package seekable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/cespare/xxhash/v2"

	"floe/record"
)

// Errors returned by this package, always wrapped with the facts (frame
// number, entry offsets, object byte range, stored and computed values);
// test with errors.Is. Their texts reach clients verbatim (a read of a
// damaged object answers with its error), so they carry no package prefix.
var (
	// ErrCorrupt: bytes that must be intact are not: a CRC or checksum
	// mismatch, a size that does not add up, a zstd frame that does not
	// decode, a truncated object. Damaged bytes are never returned as
	// data.
	ErrCorrupt = errors.New("corrupt segment object")
	// ErrFormat: the object is not a floe segment object at all: it does
	// not end with the seekable-format footer, its seek table uses
	// features this package does not write (no checksums, reserved bits),
	// or its last frame is not a floe metadata frame.
	ErrFormat = errors.New("not a floe segment object")
	// ErrVersion: a floe segment object of a format version this package
	// cannot read (written by a newer floe).
	ErrVersion = errors.New("unsupported segment object format version")
	// ErrOutOfRange: an offset outside [Base, Base+Count) or a frame number
	// outside [0, NumFrames()).
	ErrOutOfRange = errors.New("out of range of the segment object")
	// ErrInvalid: a Writer misuse: bad Meta or options, an empty or
	// oversized payload, more or fewer records than Meta.Count, a record
	// CRC or byte count other than the one promised in Meta, or a call
	// after Close or after an error.
	ErrInvalid = errors.New("invalid use of the segment object writer")
)

const (
	// Version is the floe segment object format version this package
	// writes and reads (the byte after "FLOESEG" in the metadata frame).
	Version = 1

	// RecordHeaderSize is the size of the header before every payload
	// inside a data frame. Records are encoded by package record, as in
	// the WAL (node/segment).
	RecordHeaderSize = record.HeaderSize
	// MaxPayload is the largest payload a record may carry (64 MiB,
	// package record's limit, the WAL's too).
	MaxPayload = record.MaxPayload

	// DefaultFrameSize is the default target of uncompressed record bytes
	// per data frame.
	DefaultFrameSize = 1 << 20
	// MaxFrameSize is the largest WriterOptions.FrameSize accepted.
	MaxFrameSize = 64 << 20
	// maxFrameRaw is the largest decompressed size of a data frame: a
	// frame holds at most MaxFrameSize bytes of records, or a single
	// record that is larger than that.
	maxFrameRaw = RecordHeaderSize + MaxPayload

	// MaxFrames is the largest number of data frames an object may have
	// (1 TiB of records at the default frame size). It bounds what Open
	// reads and allocates for a seek table whose footer is damaged.
	MaxFrames = 1 << 20
	// MaxTopicLen bounds the topic name stored in the metadata frame
	// (topic names are at most 249 bytes, package topicname).
	MaxTopicLen = 255

	// TailReadSize is how many bytes at the end of an object Open fetches
	// in its first ranged read; it holds the footer, seek table and
	// metadata frame of any object of up to about 3000 frames (3 GiB at
	// the default frame size), and Open issues one more read otherwise.
	TailReadSize = 64 << 10
)

// Magic numbers of the frames in an object (all little-endian u32 on the
// wire).
const (
	// zstdMagic starts every zstd data frame.
	zstdMagic = 0xFD2FB528
	// MetadataMagic is the skippable-frame magic of the floe metadata
	// frame. Skippable magics are 0x184D2A50-0x184D2A5F; 0x184D2A5E is
	// the seek table's and 0x184D2A50 is written by pzstd, so floe takes
	// 0x184D2A5F.
	MetadataMagic = 0x184D2A5F
	// seekTableMagic is the skippable-frame magic of the seek table.
	seekTableMagic = 0x184D2A5E
	// seekableMagic is the last 4 bytes of every object.
	seekableMagic = 0x8F92EAB1
)

const (
	skippableHeaderSize = 8 // u32 magic, u32 frame size
	seekEntrySize       = 12
	seekFooterSize      = 9
	// checksumFlag is Seek_Table_Descriptor bit 7; bits 6-2 are reserved
	// (must be 0), bits 1-0 unused (ignored, as the spec asks).
	checksumFlag  = 0x80
	reservedBits  = 0x7C
	descriptorOut = checksumFlag

	metaMagic = "FLOESEG"
	// metaFixedSize is the fixed part of the metadata body, up to and
	// including the topic length; then come the topic, the index and the
	// CRC (see doc.go).
	metaFixedSize = 70
	metaCRCSize   = 4
	// minMetaFrame is the smallest metadata frame: a 1-byte topic and no
	// data frames.
	minMetaFrame = skippableHeaderSize + metaFixedSize + 1 + metaCRCSize
	// minObject is the smallest object: the smallest metadata frame and a
	// seek table of its one entry.
	minObject = minMetaFrame + skippableHeaderSize + seekEntrySize + seekFooterSize
)

// castagnoli is the CRC32C table of the object's own CRCs (metadata frame,
// seek-table entries); record CRCs are package record's.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// emptyChecksum is the seek-table checksum of a frame that decompresses
// to nothing (the metadata frame): the low 32 bits of XXH64("").
var emptyChecksum = uint32(xxhash.Sum64(nil))

// Meta is the self-describing metadata of one sealed segment, stored in
// the object's metadata frame.
type Meta struct {
	// Topic is the topic the segment belongs to (1 to MaxTopicLen bytes).
	Topic string
	// Segment is the segment id.
	Segment uint64
	// Base is the offset of the segment's first record; its records hold
	// offsets Base to Base+Count-1.
	Base uint64
	// Count is the number of records.
	Count uint64
	// LeaderTerm is the leader term of the node that wrote the segment
	// (it is also part of the object key).
	LeaderTerm uint64
	// RecordCRC is the CRC32C of all records as stored, headers included,
	// that is of the object's decompressed bytes; the same value as the
	// WAL's Segment.CRC. 0 for an empty segment.
	RecordCRC uint32
	// RawBytes is the length of the records as stored, headers included
	// (the WAL's Segment.Bytes, and what `zstd -d` of the object yields).
	RawBytes int64
	// CreatedUnixMS is when the object was written, in Unix milliseconds.
	CreatedUnixMS int64
}

// seekEntry is one seek-table entry as stored.
type seekEntry struct {
	csize, dsize uint32
	checksum     uint32
}

func appendSeekEntry(dst []byte, e seekEntry) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, e.csize)
	dst = binary.LittleEndian.AppendUint32(dst, e.dsize)
	return binary.LittleEndian.AppendUint32(dst, e.checksum)
}

func parseSeekEntry(b []byte) seekEntry {
	return seekEntry{
		csize:    binary.LittleEndian.Uint32(b[0:4]),
		dsize:    binary.LittleEndian.Uint32(b[4:8]),
		checksum: binary.LittleEndian.Uint32(b[8:12]),
	}
}

// seekTableSize is the size of a seek-table frame of n entries, headers
// and footer included.
func seekTableSize(n uint64) uint64 {
	return skippableHeaderSize + n*seekEntrySize + seekFooterSize
}

// metaFrameSize is the size of a metadata frame, skippable header
// included, for a topic of topicLen bytes and frames data frames.
func metaFrameSize(topicLen int, frames uint64) uint64 {
	return skippableHeaderSize + metaFixedSize + uint64(topicLen) + 8*frames + metaCRCSize
}

// appendSeekTable appends the seek-table frame listing entries.
func appendSeekTable(dst []byte, entries []seekEntry) []byte {
	n := uint64(len(entries))
	dst = binary.LittleEndian.AppendUint32(dst, seekTableMagic)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(seekTableSize(n)-skippableHeaderSize))
	for _, e := range entries {
		dst = appendSeekEntry(dst, e)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, descriptorOut)
	return binary.LittleEndian.AppendUint32(dst, seekableMagic)
}

// seekCRC is the CRC32C of the data frames' seek-table entries as stored,
// kept in the metadata frame so that every byte of the seek table is
// checked.
func seekCRC(entries []seekEntry) uint32 {
	var buf [seekEntrySize]byte
	var crc uint32
	for _, e := range entries {
		crc = crc32.Update(crc, castagnoli, appendSeekEntry(buf[:0], e))
	}
	return crc
}

// metaFrame is the decoded metadata frame.
type metaFrame struct {
	Meta
	frames  uint64   // number of data frames
	seekCRC uint32   // CRC32C of the data frames' seek-table entries
	firsts  []uint64 // first offset of each data frame, relative to Base
}

// appendMetaFrame appends the metadata skippable frame of m.
func appendMetaFrame(dst []byte, m *metaFrame) []byte {
	start := len(dst)
	size := metaFrameSize(len(m.Topic), uint64(len(m.firsts)))
	dst = binary.LittleEndian.AppendUint32(dst, MetadataMagic)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(size-skippableHeaderSize))
	body := len(dst)
	dst = append(dst, metaMagic...)
	dst = append(dst, Version)
	dst = binary.LittleEndian.AppendUint64(dst, m.Segment)
	dst = binary.LittleEndian.AppendUint64(dst, m.Base)
	dst = binary.LittleEndian.AppendUint64(dst, m.Count)
	dst = binary.LittleEndian.AppendUint64(dst, m.LeaderTerm)
	dst = binary.LittleEndian.AppendUint32(dst, m.RecordCRC)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(m.RawBytes))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(m.CreatedUnixMS))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(m.firsts)))
	dst = binary.LittleEndian.AppendUint32(dst, m.seekCRC)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(m.Topic)))
	dst = append(dst, m.Topic...)
	for _, f := range m.firsts {
		dst = binary.LittleEndian.AppendUint64(dst, f)
	}
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[body:], castagnoli))
	if uint64(len(dst)-start) != size {
		panic("seekable: metadata frame size mismatch")
	}
	return dst
}

// parseMetaFrame decodes and checks a whole metadata frame (skippable
// header included). It checks the frame's own structure and CRC, and
// that its index is consistent with its counts; the caller checks it
// against the seek table.
func parseMetaFrame(b []byte) (*metaFrame, error) {
	if len(b) < minMetaFrame {
		return nil, fmt.Errorf("%w: metadata frame is %d bytes, the minimum is %d", ErrCorrupt, len(b), minMetaFrame)
	}
	if magic := binary.LittleEndian.Uint32(b[0:4]); magic != MetadataMagic {
		return nil, fmt.Errorf("%w: last frame before the seek table has magic %#08x, want floe metadata %#08x", ErrFormat, magic, MetadataMagic)
	}
	if size := binary.LittleEndian.Uint32(b[4:8]); uint64(size) != uint64(len(b)-skippableHeaderSize) {
		return nil, fmt.Errorf("%w: metadata frame size field is %d, seek table says %d", ErrCorrupt, size, len(b)-skippableHeaderSize)
	}
	body := b[skippableHeaderSize:]
	stored := binary.LittleEndian.Uint32(body[len(body)-metaCRCSize:])
	if computed := crc32.Checksum(body[:len(body)-metaCRCSize], castagnoli); stored != computed {
		return nil, fmt.Errorf("%w: metadata frame crc32c mismatch: stored %#08x, computed %#08x", ErrCorrupt, stored, computed)
	}
	if string(body[:len(metaMagic)]) != metaMagic {
		return nil, fmt.Errorf("%w: metadata magic %q, want %q", ErrFormat, body[:len(metaMagic)], metaMagic)
	}
	if v := body[len(metaMagic)]; v != Version {
		return nil, fmt.Errorf("%w: metadata format version %d, this floe reads %d", ErrVersion, v, Version)
	}
	le := binary.LittleEndian
	m := &metaFrame{}
	m.Segment = le.Uint64(body[8:])
	m.Base = le.Uint64(body[16:])
	m.Count = le.Uint64(body[24:])
	m.LeaderTerm = le.Uint64(body[32:])
	m.RecordCRC = le.Uint32(body[40:])
	m.RawBytes = int64(le.Uint64(body[44:]))
	m.CreatedUnixMS = int64(le.Uint64(body[52:]))
	m.frames = uint64(le.Uint32(body[60:]))
	m.seekCRC = le.Uint32(body[64:])
	topicLen := int(le.Uint16(body[68:]))
	if topicLen < 1 || topicLen > MaxTopicLen {
		return nil, fmt.Errorf("%w: metadata topic length %d, want 1 to %d", ErrCorrupt, topicLen, MaxTopicLen)
	}
	if want := metaFrameSize(topicLen, m.frames); want != uint64(len(b)) {
		return nil, fmt.Errorf("%w: metadata frame is %d bytes, its topic length %d and %d frames need %d", ErrCorrupt, len(b), topicLen, m.frames, want)
	}
	m.Topic = string(body[metaFixedSize : metaFixedSize+topicLen])
	if m.RawBytes < 0 {
		return nil, fmt.Errorf("%w: metadata raw bytes %d is negative", ErrCorrupt, m.RawBytes)
	}
	if m.Base+m.Count < m.Base {
		return nil, fmt.Errorf("%w: metadata base %d + count %d overflows", ErrCorrupt, m.Base, m.Count)
	}
	// Every data frame holds at least one record, and every record at
	// least RecordHeaderSize+1 bytes.
	if m.Count == 0 && m.frames != 0 || m.Count != 0 && m.frames == 0 || m.frames > m.Count || m.frames > MaxFrames {
		return nil, fmt.Errorf("%w: metadata has %d data frames for %d records", ErrCorrupt, m.frames, m.Count)
	}
	if m.Count > uint64(m.RawBytes)/(RecordHeaderSize+1) {
		return nil, fmt.Errorf("%w: metadata has %d records in %d bytes", ErrCorrupt, m.Count, m.RawBytes)
	}
	idx := body[metaFixedSize+topicLen : len(body)-metaCRCSize]
	m.firsts = make([]uint64, m.frames)
	for i := range m.firsts {
		f := le.Uint64(idx[8*i:])
		switch {
		case i == 0 && f != 0:
			return nil, fmt.Errorf("%w: metadata index: frame 0 starts at relative offset %d, want 0", ErrCorrupt, f)
		case i > 0 && f <= m.firsts[i-1]:
			return nil, fmt.Errorf("%w: metadata index: frame %d starts at relative offset %d, not after frame %d at %d", ErrCorrupt, i, f, i-1, m.firsts[i-1])
		case f >= m.Count:
			return nil, fmt.Errorf("%w: metadata index: frame %d starts at relative offset %d, past count %d", ErrCorrupt, i, f, m.Count)
		}
		m.firsts[i] = f
	}
	return m, nil
}
