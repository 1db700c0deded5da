package seekable

import (
	"context"
	"errors"
	"fmt"

	"floe/record"
)

// FrameReport is what Verify found in one data frame.
type FrameReport struct {
	// Frame is the data frame number, from 0.
	Frame int
	// First and Count give the records the index places in the frame:
	// absolute offsets First to First+Count-1.
	First, Count uint64
	// Offset and Size give the frame's compressed bytes in the object.
	Offset, Size int64
	// RawBytes is the frame's decompressed size per the seek table.
	RawBytes int64
	// Err is nil if the frame decoded and every record in it is intact;
	// otherwise it joins every problem found (each wrapping ErrCorrupt
	// and naming the frame and, where it can, the record's offset), or
	// is the Source's error if the frame could not be fetched.
	Err error
}

// Verify checks a whole object in inspect mode, for `floe archive
// verify`: it opens the object as Open does, then fetches and decodes
// every data frame, going on past damaged frames and past records with
// a bad CRC, and calls fn (if not nil) with a report for every frame, in
// order. Once every frame is intact it also checks the segment's record
// CRC and count against the metadata.
//
// It returns the object's metadata (zero if Open failed) and nil if
// everything is intact; otherwise an error wrapping ErrCorrupt that
// counts the damaged frames (the reports carry the details), Open's
// error, or the context's error if ctx is done.
func Verify(ctx context.Context, src Source, fn func(FrameReport)) (Meta, error) {
	r, err := Open(ctx, src)
	if err != nil {
		return Meta{}, err
	}
	m := r.Meta()
	var (
		bad     int
		fetchEr error
		crc     uint32
		count   uint64
	)
	for i, f := range r.frames {
		if err := ctx.Err(); err != nil {
			return m, err
		}
		rep := FrameReport{Frame: i, First: f.first, Count: f.count, Offset: f.off, Size: f.csize, RawBytes: f.dsize}
		compressed, err := r.fetch(ctx, i)
		if err == nil {
			var raw []byte
			raw, err = r.inflate(i, compressed)
			if err == nil {
				recs, problems := r.records(i, raw, true)
				err = errors.Join(problems...)
				crc = record.UpdateCRC(crc, raw)
				count += uint64(len(recs))
			}
		} else if !errors.Is(err, ErrCorrupt) && fetchEr == nil {
			fetchEr = err
		}
		if err != nil {
			bad++
			rep.Err = err
		}
		if fn != nil {
			fn(rep)
		}
	}
	switch {
	case bad > 0 && fetchEr != nil:
		return m, fmt.Errorf("%w: segment %d of %q: %d of %d frames unreadable or damaged, first read error: %w", ErrCorrupt, m.Segment, m.Topic, bad, len(r.frames), fetchEr)
	case bad > 0:
		return m, fmt.Errorf("%w: segment %d of %q: %d of %d frames damaged", ErrCorrupt, m.Segment, m.Topic, bad, len(r.frames))
	case count != m.Count:
		return m, fmt.Errorf("%w: segment %d of %q: frames hold %d records, metadata says %d", ErrCorrupt, m.Segment, m.Topic, count, m.Count)
	case crc != m.RecordCRC:
		return m, fmt.Errorf("%w: segment %d of %q: record crc32c mismatch: stored %#08x, computed %#08x", ErrCorrupt, m.Segment, m.Topic, m.RecordCRC, crc)
	}
	return m, nil
}
