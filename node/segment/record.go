package segment

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"floe/record"
)

const (
	// HeaderSize is the size of the file header that starts every segment
	// file: the 7-byte magic "FLOEWAL" and a 1-byte format version.
	HeaderSize = 8
	// Version is the segment file format version this package writes and
	// reads.
	Version = 1
	// RecordHeaderSize is the size of the header before every payload
	// (package record: u32 payload length and u32 CRC32C of the payload).
	RecordHeaderSize = record.HeaderSize
	// MaxPayload is the largest payload a record may carry (64 MiB, package
	// record's limit). Larger appends fail with ErrTooLarge; a larger length
	// on disk is damage.
	MaxPayload = record.MaxPayload
	// MaxTornBytes is the most an AppendBatch may write, record headers
	// included (larger batches fail with ErrTooLarge): one record of
	// MaxPayload. Recovery counts on a crash tearing at most that many bytes
	// at the end of the records (see "Recovery" in the package doc). floe's
	// appender keeps its group commits to 8 MiB plus one request of at most
	// 64 KiB.
	MaxTornBytes = RecordHeaderSize + MaxPayload
)

// magic starts every segment file; the byte after it is the version.
const magic = "FLOEWAL"

// fileHeader returns the header of a new segment file.
func fileHeader() []byte {
	return append([]byte(magic), Version)
}

// checkHeader reports whether h (the first bytes of a file, at most
// HeaderSize) is a valid header; err wraps ErrCorrupt if not.
func checkHeader(h []byte) error {
	if len(h) < HeaderSize {
		return fmt.Errorf("%w: file header is %d bytes, want %d: %w", ErrCorrupt, len(h), HeaderSize, io.ErrUnexpectedEOF)
	}
	if string(h[:len(magic)]) != magic {
		return fmt.Errorf("%w: bad magic %q, want %q", ErrCorrupt, h[:len(magic)], magic)
	}
	if v := h[len(magic)]; v != Version {
		return fmt.Errorf("%w: unsupported format version %d, want %d", ErrCorrupt, v, Version)
	}
	return nil
}

// decodeRecord is record.Decode with its errors wrapping ErrCorrupt, and n
// 0 on every error.
func decodeRecord(b []byte) (payload []byte, n int, err error) {
	payload, n, err = record.Decode(b)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return payload, n, nil
}

// RecordInfo describes one record, or one damaged stretch, of a segment file
// as Inspect found it.
type RecordInfo struct {
	// Index is the position of this entry among those reported so far,
	// damaged ones included; for an undamaged file it is the record index.
	Index uint64
	// Offset is the file offset of the record header.
	Offset int64
	// Length is the payload length stored in the header (meaningless when
	// the header itself is damaged).
	Length uint32
	// Size is the number of file bytes this entry spans: RecordHeaderSize +
	// Length, or, when the length cannot be trusted, everything to the end
	// of the file.
	Size int64
	// StoredCRC is the CRC32C from the header, ComputedCRC that of the
	// payload as read (0 when the payload could not be read).
	StoredCRC, ComputedCRC uint32
	// Err is nil for an intact record. Otherwise it wraps ErrCorrupt, and
	// io.ErrUnexpectedEOF when the file ends inside the record.
	Err error
}

// Intact reports whether the record is undamaged.
func (ri RecordInfo) Intact() bool { return ri.Err == nil }

// Inspect walks the segment file held in r (size bytes long) and calls fn
// for every record in order, with its offset, length and CRC status, until
// fn returns false. It keeps going past damage where it can: a record whose
// CRC does not match is reported and skipped by its stored length; a header
// whose length cannot be right (zero, over MaxPayload, or past the end of
// the file) is reported as one damaged entry spanning the rest of the file,
// and the walk ends there. Zeros from a record boundary to the end of the
// file are preallocated space (Options.Prealloc): they end the walk and are
// not reported.
//
// Inspect returns an error only for an I/O error from r, or, after the
// walk, when the file header is damaged (wrapping ErrCorrupt): the records
// after a damaged header are still walked. It never modifies r. It is the
// decoder behind Open and OpenSealed and meant for tools such as a WAL dump.
func Inspect(r io.ReaderAt, size int64, fn func(RecordInfo) bool) error {
	var hdrErr error
	if size < HeaderSize {
		h := make([]byte, max(size, 0))
		if _, err := r.ReadAt(h, 0); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("cannot read file header: %w", err)
		}
		return checkHeader(h)
	}
	h := make([]byte, HeaderSize)
	if _, err := r.ReadAt(h, 0); err != nil {
		return fmt.Errorf("cannot read file header: %w", err)
	}
	hdrErr = checkHeader(h)

	w := newWalker(r, HeaderSize, size)
	for i := uint64(0); ; i++ {
		info, _, err := w.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if info.Err != nil {
			data, err := dataEnd(r, info.Offset, size)
			if err != nil {
				return fmt.Errorf("cannot read past offset %d: %w", info.Offset, err)
			}
			if data == info.Offset {
				break // zeros to the end: preallocated space, not a record
			}
		}
		info.Index = i
		if !fn(info) {
			break
		}
	}
	return hdrErr
}

// walker decodes records sequentially from [off, end) of a file through a
// large read buffer. It is not safe for concurrent use.
type walker struct {
	br  *bufio.Reader
	off int64
	end int64
	buf []byte
}

const walkBuffer = 1 << 20

func newWalker(r io.ReaderAt, start, end int64) *walker {
	return &walker{
		br:  bufio.NewReaderSize(io.NewSectionReader(r, start, end-start), min(walkBuffer, max(int(end-start), 16))),
		off: start,
		end: end,
	}
}

// next decodes the record at w.off. It returns io.EOF at the end of the
// range, another error only for I/O errors (including the file shrinking
// underneath), and otherwise the record's RecordInfo (Index unset) with Err
// set for damage. The payload is valid until the next call and is nil unless
// the record is intact.
func (w *walker) next() (RecordInfo, []byte, error) {
	info := RecordInfo{Offset: w.off}
	left := w.end - w.off
	if left == 0 {
		return info, nil, io.EOF
	}
	if left < RecordHeaderSize {
		info.Size = left
		info.Err = fmt.Errorf("%w: %d bytes left at offset %d, record header needs %d: %w", ErrCorrupt, left, w.off, RecordHeaderSize, io.ErrUnexpectedEOF)
		w.off = w.end
		return info, nil, nil
	}
	var hdr [RecordHeaderSize]byte
	if _, err := io.ReadFull(w.br, hdr[:]); err != nil {
		return info, nil, w.ioError(err)
	}
	info.Length, info.StoredCRC = record.ParseHeader(hdr[:])
	if err := record.CheckLength(info.Length); err != nil {
		info.Size = left
		info.Err = fmt.Errorf("%w: at offset %d: %w", ErrCorrupt, w.off, err)
		w.off = w.end
		return info, nil, nil
	}
	info.Size = RecordHeaderSize + int64(info.Length)
	if info.Size > left {
		info.Size = left
		info.Err = fmt.Errorf("%w: record at offset %d needs %d bytes, file has %d: %w", ErrCorrupt, w.off, RecordHeaderSize+int64(info.Length), left, io.ErrUnexpectedEOF)
		w.off = w.end
		return info, nil, nil
	}
	if cap(w.buf) < int(info.Length) {
		w.buf = make([]byte, info.Length)
	}
	payload := w.buf[:info.Length]
	if _, err := io.ReadFull(w.br, payload); err != nil {
		return info, nil, w.ioError(err)
	}
	info.ComputedCRC = record.CRC(payload)
	if info.ComputedCRC != info.StoredCRC {
		info.Err = fmt.Errorf("%w: record at offset %d: %w", ErrCorrupt, w.off, record.ChecksumError(info.StoredCRC, info.ComputedCRC))
		payload = nil
	}
	w.off += info.Size
	return info, payload, nil
}

func (w *walker) ioError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("file shorter than %d bytes while reading offset %d: %w", w.end, w.off, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("cannot read at offset %d: %w", w.off, err)
}

// isHeaderPrefix reports whether b is a (possibly empty) prefix of a valid
// file header: what a crash while creating the file can leave.
func isHeaderPrefix(b []byte) bool {
	return len(b) < HeaderSize && bytes.HasPrefix(fileHeader(), b)
}
