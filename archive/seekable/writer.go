package seekable

import (
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"

	"floe/record"
)

// WriterOptions tunes a Writer. The zero value is the default.
type WriterOptions struct {
	// FrameSize is the target of uncompressed record bytes (headers
	// included) per data frame: a frame is closed before the record that
	// would take it past FrameSize, and a record larger than FrameSize
	// gets a frame of its own. 0 means DefaultFrameSize; at most
	// MaxFrameSize.
	FrameSize int
	// Level is the zstd compression level; 0 means zstd.SpeedDefault.
	Level zstd.EncoderLevel
	// Concurrency is how many frames may be compressed at once, each in
	// its own goroutine, while Append fills the next; frames are still
	// written in order. 0 or 1 compresses each frame inside the Append
	// that completes it. Memory grows by about two frames per unit.
	Concurrency int
}

// Summary describes an object that a Writer completed.
type Summary struct {
	// Size is the number of object bytes written.
	Size int64
	// Frames is the number of data frames (the metadata and seek-table
	// frames are not counted).
	Frames int
	// Checksum is the CRC32C of all object bytes, for the archive layer
	// to record and to compare after an upload.
	Checksum uint32
	// Count is the number of records written.
	Count uint64
	// RawBytes is the length of the records as stored, headers included.
	RawBytes int64
	// RecordCRC is the CRC32C of the records as stored.
	RecordCRC uint32
}

// Writer encodes the records of one sealed segment into an object in
// the format of doc.go. Data frames are written to the underlying
// io.Writer as they fill; Close writes the metadata and seek-table
// frames. A Writer is not safe for concurrent use. The caller owns the
// io.Writer: Writer never closes or syncs it, and an object is complete
// only once Close has returned without error.
type Writer struct {
	w         io.Writer
	meta      Meta
	frameSize int
	enc       *zstd.Encoder

	raw     []byte      // records of the frame being filled
	comp    []byte      // compressed frame, reused
	entries []seekEntry // one per data frame written
	firsts  []uint64    // first offset of each data frame, relative to Base

	conc   int        // WriterOptions.Concurrency, at least 1
	queue  []*pending // frames being compressed, oldest first (conc > 1)
	spares []*pending // buffers of written frames, for reuse

	count     uint64 // records appended
	rawBytes  int64
	recordCRC uint32 // CRC32C of every record appended, as stored
	size      int64  // object bytes written
	objCRC    uint32 // CRC32C of the object bytes written

	err    error // first write error; every later call returns it
	closed bool
}

// NewWriter returns a Writer that writes the object of the segment that
// m describes to w. m.Topic, Segment, Base, Count and LeaderTerm are
// stored as given; m.RecordCRC and m.RawBytes, when not zero, are the
// values the caller expects (the WAL's Segment.CRC and Bytes), which
// Close checks against what was appended; m.CreatedUnixMS 0 means now.
func NewWriter(w io.Writer, m Meta, opts WriterOptions) (*Writer, error) {
	if len(m.Topic) < 1 || len(m.Topic) > MaxTopicLen {
		return nil, fmt.Errorf("%w: topic %q is %d bytes, want 1 to %d", ErrInvalid, m.Topic, len(m.Topic), MaxTopicLen)
	}
	if m.Base+m.Count < m.Base {
		return nil, fmt.Errorf("%w: base %d + count %d overflows", ErrInvalid, m.Base, m.Count)
	}
	if m.RawBytes < 0 {
		return nil, fmt.Errorf("%w: raw bytes %d is negative", ErrInvalid, m.RawBytes)
	}
	if m.CreatedUnixMS == 0 {
		m.CreatedUnixMS = time.Now().UnixMilli()
	}
	fs := opts.FrameSize
	if fs == 0 {
		fs = DefaultFrameSize
	}
	if fs < 1 || fs > MaxFrameSize {
		return nil, fmt.Errorf("%w: frame size %d, want 1 to %d", ErrInvalid, opts.FrameSize, MaxFrameSize)
	}
	level := opts.Level
	if level == 0 {
		level = zstd.SpeedDefault
	}
	conc := max(1, opts.Concurrency)
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderCRC(true),         // zstd content checksum in every frame
		zstd.WithSingleSegment(true),      // always store Frame_Content_Size
		zstd.WithEncoderConcurrency(conc), // EncodeAll only, conc frames at a time
	)
	if err != nil {
		return nil, fmt.Errorf("%w: zstd encoder: %w", ErrInvalid, err)
	}
	return &Writer{w: w, meta: m, frameSize: fs, enc: enc, conc: conc}, nil
}

// Append adds the record carrying payload, at offset Base+n for the n-th
// call. The payload is copied; it must be 1 to MaxPayload bytes long.
// Append may write a completed data frame to the underlying io.Writer.
// A misuse error (ErrInvalid) leaves the Writer usable; a write error is
// returned by every later call.
func (w *Writer) Append(payload []byte) error {
	if err := w.usable(); err != nil {
		return err
	}
	if len(payload) == 0 || len(payload) > MaxPayload {
		return fmt.Errorf("%w: payload of %d bytes at offset %d, want 1 to %d", ErrInvalid, len(payload), w.meta.Base+w.count, MaxPayload)
	}
	if w.count >= w.meta.Count {
		return fmt.Errorf("%w: record %d appended to a segment of %d records", ErrInvalid, w.count+1, w.meta.Count)
	}
	rec := RecordHeaderSize + len(payload)
	if len(w.raw) > 0 && len(w.raw)+rec > w.frameSize {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if len(w.raw) == 0 {
		w.firsts = append(w.firsts, w.count)
	}
	start := len(w.raw)
	w.raw = record.Append(w.raw, payload)
	w.recordCRC = record.UpdateCRC(w.recordCRC, w.raw[start:])
	w.rawBytes += int64(rec)
	w.count++
	if len(w.raw) >= w.frameSize {
		return w.flush()
	}
	return nil
}

// Close flushes the last data frame and writes the metadata and seek-table
// frames. It fails with ErrInvalid, writing no metadata, if the number of
// records appended is not m.Count, or m.RecordCRC or m.RawBytes was given
// and differs from what was appended; the bytes written until then are
// not an object and must be discarded. Close does not close the
// underlying io.Writer. Calling Close again returns an error.
func (w *Writer) Close() (Summary, error) {
	if err := w.usable(); err != nil {
		return Summary{}, err
	}
	w.closed = true
	defer func() {
		for _, p := range w.queue { // frames still compressing if Close failed
			<-p.done
		}
		w.enc.Close()
	}()
	if w.count != w.meta.Count {
		return Summary{}, fmt.Errorf("%w: %d records appended, segment %d of %q has %d", ErrInvalid, w.count, w.meta.Segment, w.meta.Topic, w.meta.Count)
	}
	if w.meta.RecordCRC != 0 && w.meta.RecordCRC != w.recordCRC {
		return Summary{}, fmt.Errorf("%w: record crc32c of segment %d of %q: expected %#08x, computed %#08x", ErrInvalid, w.meta.Segment, w.meta.Topic, w.meta.RecordCRC, w.recordCRC)
	}
	if w.meta.RawBytes != 0 && w.meta.RawBytes != w.rawBytes {
		return Summary{}, fmt.Errorf("%w: segment %d of %q: expected %d record bytes, appended %d", ErrInvalid, w.meta.Segment, w.meta.Topic, w.meta.RawBytes, w.rawBytes)
	}
	if len(w.raw) > 0 {
		if err := w.flush(); err != nil {
			return Summary{}, err
		}
	}
	for len(w.queue) > 0 {
		if err := w.writeOldest(); err != nil {
			return Summary{}, err
		}
	}
	mf := &metaFrame{Meta: w.meta, seekCRC: seekCRC(w.entries), firsts: w.firsts}
	mf.RecordCRC = w.recordCRC
	mf.RawBytes = w.rawBytes
	tail := appendMetaFrame(nil, mf)
	entries := append(w.entries, seekEntry{csize: uint32(len(tail)), dsize: 0, checksum: emptyChecksum})
	tail = appendSeekTable(tail, entries)
	if err := w.write(tail, "metadata and seek table"); err != nil {
		return Summary{}, err
	}
	return Summary{
		Size:      w.size,
		Frames:    len(w.entries),
		Checksum:  w.objCRC,
		Count:     w.count,
		RawBytes:  w.rawBytes,
		RecordCRC: w.recordCRC,
	}, nil
}

func (w *Writer) usable() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return fmt.Errorf("%w: writer of segment %d of %q is closed", ErrInvalid, w.meta.Segment, w.meta.Topic)
	}
	return nil
}

// pending is a data frame being compressed in its own goroutine.
type pending struct {
	raw, comp []byte
	entry     seekEntry
	done      chan struct{} // closed when comp and entry are set
}

// flush compresses the records in w.raw into one data frame and writes
// it, or with Concurrency > 1 starts compressing it and writes the oldest
// frame once Concurrency frames are under way.
func (w *Writer) flush() error {
	if len(w.entries)+len(w.queue) >= MaxFrames {
		w.err = fmt.Errorf("%w: segment %d of %q needs more than %d frames; use a larger frame size", ErrInvalid, w.meta.Segment, w.meta.Topic, MaxFrames)
		return w.err
	}
	if w.conc == 1 {
		w.comp = w.enc.EncodeAll(w.raw, w.comp[:0])
		w.entries = append(w.entries, frameEntry(w.raw, w.comp))
		w.raw = w.raw[:0]
		return w.write(w.comp, fmt.Sprintf("data frame %d", len(w.entries)-1))
	}
	var p *pending
	if n := len(w.spares); n > 0 {
		p, w.spares = w.spares[n-1], w.spares[:n-1]
	} else {
		p = &pending{}
	}
	p.raw, w.raw = w.raw, p.raw[:0]
	p.done = make(chan struct{})
	go func(p *pending, enc *zstd.Encoder) {
		p.comp = enc.EncodeAll(p.raw, p.comp[:0])
		p.entry = frameEntry(p.raw, p.comp)
		close(p.done)
	}(p, w.enc)
	w.queue = append(w.queue, p)
	if len(w.queue) >= w.conc {
		return w.writeOldest()
	}
	return nil
}

// writeOldest waits for the oldest frame under compression and writes it.
func (w *Writer) writeOldest() error {
	p := w.queue[0]
	<-p.done
	w.queue = w.queue[1:]
	w.entries = append(w.entries, p.entry)
	if err := w.write(p.comp, fmt.Sprintf("data frame %d", len(w.entries)-1)); err != nil {
		return err
	}
	w.spares = append(w.spares, p)
	return nil
}

// frameEntry is the seek-table entry of a frame.
func frameEntry(raw, comp []byte) seekEntry {
	return seekEntry{csize: uint32(len(comp)), dsize: uint32(len(raw)), checksum: uint32(xxhash.Sum64(raw))}
}

func (w *Writer) write(b []byte, what string) error {
	n, err := w.w.Write(b)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("cannot write %s of segment %d of %q at object byte %d: %w", what, w.meta.Segment, w.meta.Topic, w.size, err)
		return w.err
	}
	w.objCRC = crc32.Update(w.objCRC, castagnoli, b)
	w.size += int64(len(b))
	return nil
}
