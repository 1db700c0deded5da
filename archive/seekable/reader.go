package seekable

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"sync"

	"github.com/klauspost/compress/zstd"

	"floe/record"
)

// Source is what a Reader reads an object through: ranged reads of an
// object of known size (the archive layer adapts a bucket's ranged GET to
// it). ReadAt follows io.ReaderAt: it returns len(p) bytes, or fewer and
// an error. A Source must be safe for concurrent use if the Reader is
// used concurrently.
type Source interface {
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
	Size() int64
}

// frameInfo locates one data frame, from the seek table and the index.
type frameInfo struct {
	first, count uint64 // absolute offset of its first record, and records
	off, csize   int64  // compressed byte range in the object
	dsize        int64  // decompressed size
	checksum     uint32 // seek-table checksum: low 32 bits of XXH64(decompressed)
}

// Reader reads records from one object. Open has checked the object's
// footer, seek table and metadata frame; frames are checked as they are
// read. A Reader is immutable and safe for concurrent use; it holds no
// resources and needs no closing.
type Reader struct {
	src    Source
	meta   Meta
	frames []frameInfo
	whole  []byte // the whole object, when Open's first read fetched all of it
}

// minDataFrame is the smallest zstd frame: magic, frame header
// descriptor, a 1-byte content size, one empty block header and the
// 4-byte content checksum.
const minDataFrame = 4 + 1 + 1 + 3 + 4

// decoder is shared by every Reader: DecodeAll is safe for concurrent
// use, and runs up to GOMAXPROCS decodes at once.
var decoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(maxFrameRaw),
		zstd.WithDecoderMaxWindow(maxFrameRaw),
		zstd.WithDecodeAllCapLimit(true), // never decode past the seek table's size
	)
})

// Open reads an object's footer, seek table and metadata frame, in one
// ranged read of the last TailReadSize bytes, plus one more read when
// they are larger than that. An object no larger than TailReadSize is
// thus read whole, and the Reader keeps it and reads no more.
//
// Open checks every byte it reads: the footer, the seek table (through
// the metadata frame's CRC of it) and the metadata frame's own CRC, and
// that sizes, counts and the entry index agree. An object that is not a
// floe segment object fails with ErrFormat (or ErrVersion), a damaged one
// with ErrCorrupt; a Source error is returned wrapped.
func Open(ctx context.Context, src Source) (*Reader, error) {
	size := src.Size()
	if size < seekFooterSize {
		return nil, fmt.Errorf("%w: object is %d bytes, shorter than a seekable footer", ErrFormat, size)
	}
	tailLen := min(size, TailReadSize)
	tail := make([]byte, tailLen)
	if err := readFull(ctx, src, tail, size-tailLen); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	ft := tail[tailLen-seekFooterSize:]
	if magic := le.Uint32(ft[5:9]); magic != seekableMagic {
		return nil, fmt.Errorf("%w: object ends with %#08x, not the seekable magic %#08x", ErrFormat, magic, seekableMagic)
	}
	desc := ft[4]
	if desc&reservedBits != 0 || desc&checksumFlag == 0 {
		return nil, fmt.Errorf("%w: seek table descriptor %#02x, want checksums (%#02x) and no reserved bits", ErrFormat, desc, checksumFlag)
	}
	if size < minObject {
		return nil, fmt.Errorf("%w: object is %d bytes, the smallest is %d", ErrCorrupt, size, minObject)
	}
	n := uint64(le.Uint32(ft[0:4])) // seek-table entries: data frames + the metadata frame
	if n < 1 || n-1 > MaxFrames {
		return nil, fmt.Errorf("%w: seek table footer says %d frames, want 1 to %d", ErrCorrupt, n, MaxFrames+1)
	}
	stSize := seekTableSize(n)
	if stSize+minMetaFrame > uint64(size) {
		return nil, fmt.Errorf("%w: seek table of %d frames (%d bytes) does not fit in a %d-byte object", ErrCorrupt, n, stSize, size)
	}
	// The last entry, just before the footer, is the metadata frame's.
	last := parseSeekEntry(tail[tailLen-seekFooterSize-seekEntrySize:])
	metaLen := uint64(last.csize)
	if last.dsize != 0 || last.checksum != emptyChecksum ||
		metaLen < metaFrameSize(1, n-1) || metaLen > metaFrameSize(MaxTopicLen, n-1) || stSize+metaLen > uint64(size) {
		return nil, fmt.Errorf("%w: seek table entry %d (compressed %d, decompressed %d, checksum %#08x) is not a metadata frame of %d data frames in a %d-byte object",
			ErrCorrupt, n-1, last.csize, last.dsize, last.checksum, n-1, size)
	}
	need := int64(stSize + metaLen)
	metaOff := size - need
	buf := tail[max(0, tailLen-need):]
	if need > tailLen {
		buf = make([]byte, need)
		copy(buf[need-tailLen:], tail)
		if err := readFull(ctx, src, buf[:need-tailLen], metaOff); err != nil {
			return nil, err
		}
	}
	mf, err := parseMetaFrame(buf[:metaLen])
	if err != nil {
		return nil, fmt.Errorf("%w (metadata frame at object bytes %d+%d)", err, metaOff, metaLen)
	}
	st := buf[metaLen:]
	if magic := le.Uint32(st[0:4]); magic != seekTableMagic {
		return nil, fmt.Errorf("%w: seek table frame at object byte %d has magic %#08x, want %#08x", ErrCorrupt, metaOff+int64(metaLen), magic, seekTableMagic)
	}
	if fs := le.Uint32(st[4:8]); uint64(fs) != stSize-skippableHeaderSize {
		return nil, fmt.Errorf("%w: seek table frame size field %d, footer's %d frames need %d", ErrCorrupt, fs, n, stSize-skippableHeaderSize)
	}
	if mf.frames != n-1 {
		return nil, fmt.Errorf("%w: metadata frame lists %d data frames, seek table %d", ErrCorrupt, mf.frames, n-1)
	}
	dataEntries := st[skippableHeaderSize : skippableHeaderSize+(n-1)*seekEntrySize]
	if computed := crc32.Checksum(dataEntries, castagnoli); computed != mf.seekCRC {
		return nil, fmt.Errorf("%w: seek table crc32c mismatch: stored in metadata %#08x, computed %#08x", ErrCorrupt, mf.seekCRC, computed)
	}
	r := &Reader{src: src, meta: mf.Meta, frames: make([]frameInfo, n-1)}
	var off, raw int64
	for i := range r.frames {
		e := parseSeekEntry(dataEntries[i*seekEntrySize:])
		next := mf.Count
		if i+1 < len(mf.firsts) {
			next = mf.firsts[i+1]
		}
		fi := frameInfo{
			first: mf.Base + mf.firsts[i], count: next - mf.firsts[i],
			off: off, csize: int64(e.csize), dsize: int64(e.dsize), checksum: e.checksum,
		}
		if fi.csize < minDataFrame || fi.dsize > maxFrameRaw || uint64(fi.dsize) < fi.count*(RecordHeaderSize+1) {
			return nil, fmt.Errorf("%w: seek table entry %d: compressed %d, decompressed %d bytes for %d records", ErrCorrupt, i, fi.csize, fi.dsize, fi.count)
		}
		r.frames[i] = fi
		off += fi.csize
		raw += fi.dsize
	}
	if off != metaOff {
		return nil, fmt.Errorf("%w: data frames end at object byte %d, metadata frame starts at %d", ErrCorrupt, off, metaOff)
	}
	if raw != mf.RawBytes {
		return nil, fmt.Errorf("%w: data frames decompress to %d bytes, metadata says %d", ErrCorrupt, raw, mf.RawBytes)
	}
	if tailLen == size {
		r.whole = tail // small object: frames are served from Open's read
	}
	return r, nil
}

// Meta returns the segment's metadata as stored in the object.
func (r *Reader) Meta() Meta { return r.meta }

// NumFrames returns the number of data frames (0 for an empty segment).
func (r *Reader) NumFrames() int { return len(r.frames) }

// FrameOf returns the data frame that holds the record at the absolute
// offset, or an error wrapping ErrOutOfRange if the segment does not
// hold it.
func (r *Reader) FrameOf(offset uint64) (int, error) {
	if offset < r.meta.Base || offset-r.meta.Base >= r.meta.Count {
		return 0, fmt.Errorf("%w: offset %d, segment %d of %q holds %d records from %d", ErrOutOfRange, offset, r.meta.Segment, r.meta.Topic, r.meta.Count, r.meta.Base)
	}
	i := sort.Search(len(r.frames), func(i int) bool { return r.frames[i].first > offset })
	return i - 1, nil
}

// FrameRange returns data frame i's records (absolute offsets first to
// first+count-1) and its compressed byte range in the object, off to
// off+size-1, so that a cache can fetch and key frames by (object, i).
// It returns zeros if i is not in [0, NumFrames()).
func (r *Reader) FrameRange(i int) (first, count uint64, off, size int64) {
	if i < 0 || i >= len(r.frames) {
		return 0, 0, 0, 0
	}
	f := r.frames[i]
	return f.first, f.count, f.off, f.csize
}

// DecodeFrame decodes data frame i from its compressed bytes (exactly
// the range FrameRange gives) and returns its records' payloads, in
// offset order. It checks the zstd content checksum, the seek table's
// checksum, the length and CRC32C of every record and the record count;
// a frame that fails any check gives an error wrapping ErrCorrupt and no
// records. The payloads share one new buffer, which the caller owns; the
// compressed bytes are not retained.
func (r *Reader) DecodeFrame(i int, compressed []byte) ([][]byte, error) {
	if i < 0 || i >= len(r.frames) {
		return nil, fmt.Errorf("%w: frame %d, segment %d of %q has %d", ErrOutOfRange, i, r.meta.Segment, r.meta.Topic, len(r.frames))
	}
	raw, err := r.inflate(i, compressed)
	if err != nil {
		return nil, err
	}
	recs, problems := r.records(i, raw, false)
	if len(problems) > 0 {
		return nil, problems[0]
	}
	return recs, nil
}

// ReadFrame fetches data frame i with one ranged read (none if Open read
// the whole object) and decodes it as DecodeFrame does.
func (r *Reader) ReadFrame(ctx context.Context, i int) ([][]byte, error) {
	compressed, err := r.fetch(ctx, i)
	if err != nil {
		return nil, err
	}
	return r.DecodeFrame(i, compressed)
}

// Read returns the payloads of up to max records from the absolute
// offset on, all from the frame that holds offset (so possibly fewer than
// max even if the segment holds more); max <= 0 means to the end of that
// frame. It fetches one frame; errors are those of FrameOf and ReadFrame.
func (r *Reader) Read(ctx context.Context, offset uint64, max int) ([][]byte, error) {
	i, err := r.FrameOf(offset)
	if err != nil {
		return nil, err
	}
	recs, err := r.ReadFrame(ctx, i)
	if err != nil {
		return nil, err
	}
	recs = recs[offset-r.frames[i].first:]
	if max > 0 && len(recs) > max {
		recs = recs[:max]
	}
	return recs, nil
}

// where describes frame i for error messages.
func (r *Reader) where(i int) string {
	f := r.frames[i]
	return fmt.Sprintf("segment %d of %q: frame %d (offsets %d-%d, object bytes %d+%d)",
		r.meta.Segment, r.meta.Topic, i, f.first, f.first+f.count-1, f.off, f.csize)
}

func (r *Reader) fetch(ctx context.Context, i int) ([]byte, error) {
	if i < 0 || i >= len(r.frames) {
		return nil, fmt.Errorf("%w: frame %d, segment %d of %q has %d", ErrOutOfRange, i, r.meta.Segment, r.meta.Topic, len(r.frames))
	}
	f := r.frames[i]
	if r.whole != nil {
		return r.whole[f.off : f.off+f.csize : f.off+f.csize], nil // only read from
	}
	buf := make([]byte, f.csize)
	if err := readFull(ctx, r.src, buf, f.off); err != nil {
		return nil, fmt.Errorf("%s: %w", r.where(i), err)
	}
	return buf, nil
}

// inflate decompresses frame i and checks it against the seek table.
func (r *Reader) inflate(i int, compressed []byte) ([]byte, error) {
	f := r.frames[i]
	if int64(len(compressed)) != f.csize {
		return nil, fmt.Errorf("%w: %s: given %d compressed bytes, seek table says %d", ErrCorrupt, r.where(i), len(compressed), f.csize)
	}
	var h zstd.Header
	if err := h.Decode(compressed); err != nil {
		return nil, fmt.Errorf("%w: %s: zstd frame header: %w", ErrCorrupt, r.where(i), err)
	}
	if magic := binary.LittleEndian.Uint32(compressed); magic != zstdMagic || h.Skippable || !h.HasFCS || !h.HasCheckSum || h.DictionaryID != 0 {
		return nil, fmt.Errorf("%w: %s: zstd frame header (magic %#08x, content size %v, checksum %v, dictionary %d) is not a floe data frame",
			ErrCorrupt, r.where(i), magic, h.HasFCS, h.HasCheckSum, h.DictionaryID)
	}
	if h.FrameContentSize != uint64(f.dsize) {
		return nil, fmt.Errorf("%w: %s: zstd frame content size %d, seek table says %d", ErrCorrupt, r.where(i), h.FrameContentSize, f.dsize)
	}
	dec, err := decoder()
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	raw, err := dec.DecodeAll(compressed, make([]byte, 0, f.dsize))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: zstd: %w", ErrCorrupt, r.where(i), err)
	}
	if int64(len(raw)) != f.dsize {
		return nil, fmt.Errorf("%w: %s: decompressed %d bytes, seek table says %d", ErrCorrupt, r.where(i), len(raw), f.dsize)
	}
	// The decoder has checked raw against the frame's content checksum (its last four
	// bytes: the low 32 bits of XXH64, as the seek table's checksum is), so comparing
	// the two checksums checks raw against the seek table without hashing it again.
	if inFrame := binary.LittleEndian.Uint32(compressed[len(compressed)-4:]); inFrame != f.checksum {
		return nil, fmt.Errorf("%w: %s: seek table checksum mismatch: seek table %#08x, frame %#08x", ErrCorrupt, r.where(i), f.checksum, inFrame)
	}
	return raw, nil
}

// records splits frame i's decompressed bytes into payloads, checking
// each record's length and CRC32C and the record count. With inspect
// false it stops at the first problem; with inspect true it goes on past
// a bad CRC (the length still frames the next record) and reports every
// problem it finds.
func (r *Reader) records(i int, raw []byte, inspect bool) ([][]byte, []error) {
	f := r.frames[i]
	var problems []error
	recs := make([][]byte, 0, f.count)
	pos := 0
	for pos < len(raw) {
		offset := f.first + uint64(len(recs))
		payload, n, err := record.Decode(raw[pos:])
		if err != nil {
			problems = append(problems, fmt.Errorf("%w: %s: record at offset %d: %w", ErrCorrupt, r.where(i), offset, err))
			if !inspect || !errors.Is(err, record.ErrChecksum) {
				break
			}
			// The length still frames the next record: the damaged payload
			// keeps its place, so the offsets after it stay right.
			payload = raw[pos+RecordHeaderSize : pos+n : pos+n]
		}
		recs = append(recs, payload)
		pos += n
	}
	if len(problems) == 0 && uint64(len(recs)) != f.count {
		problems = append(problems, fmt.Errorf("%w: %s: frame holds %d records, index says %d", ErrCorrupt, r.where(i), len(recs), f.count))
	}
	if len(problems) > 0 && !inspect {
		return nil, problems
	}
	return recs, problems
}

// readFull reads exactly len(p) bytes at off. A short read means the
// object is shorter than its Source says: ErrCorrupt.
func readFull(ctx context.Context, src Source, p []byte, off int64) error {
	n, err := src.ReadAt(ctx, p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: object bytes %d+%d: read %d bytes: %w", ErrCorrupt, off, len(p), n, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("cannot read object bytes %d+%d: %w", off, len(p), err)
}
