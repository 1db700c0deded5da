package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"floe/record"
)

// recover reads the file header and every record, rebuilding offsets, end
// and crc. For an active segment it writes the header of a new file and
// cuts a damaged tail; for a sealed one any damage is an error. Called by
// open only, before the segment is shared.
func (s *Segment) recover(sealed bool) error {
	what := "segment"
	if sealed {
		what = "sealed segment"
	}
	size, err := s.f.Size()
	if err != nil {
		return fmt.Errorf("cannot open %s %q: size: %w", what, s.path, err)
	}
	if size < HeaderSize {
		h := make([]byte, size)
		if _, err := s.f.ReadAt(h, 0); err != nil {
			return fmt.Errorf("cannot open %s %q: read header: %w", what, s.path, err)
		}
		if sealed || !isHeaderPrefix(h) {
			return fmt.Errorf("cannot open %s %q: %w", what, s.path, checkHeader(h))
		}
		return s.initFile(size)
	}

	h := make([]byte, HeaderSize)
	if _, err := s.f.ReadAt(h, 0); err != nil {
		return fmt.Errorf("cannot open %s %q: read header: %w", what, s.path, err)
	}
	if err := checkHeader(h); err != nil {
		return fmt.Errorf("cannot open %s %q: %w", what, s.path, err)
	}

	w := newWalker(s.f, HeaderSize, size)
	var crc uint32
	var bad *RecordInfo
	for {
		info, payload, err := w.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("cannot open %s %q: %w", what, s.path, err)
		}
		if info.Err != nil {
			bad = &info
			break
		}
		s.offsets = append(s.offsets, info.Offset)
		var rh [RecordHeaderSize]byte
		crc = record.UpdateCRC(crc, record.AppendHeader(rh[:0], info.Length, info.StoredCRC))
		crc = record.UpdateCRC(crc, payload)
	}
	s.crc = crc
	s.end, s.alloc = size, size
	if bad == nil {
		return nil
	}
	s.end = bad.Offset // readers see the records before the damage
	data, err := dataEnd(s.f, bad.Offset, size)
	if err != nil {
		return fmt.Errorf("cannot open %s %q: reading past the last record at offset %d: %w", what, s.path, bad.Offset, err)
	}
	if data == bad.Offset {
		return nil // only zeros after the last record: the file's preallocated space
	}
	if sealed {
		return fmt.Errorf("cannot open sealed segment %q: record %d: %w", s.path, len(s.offsets), bad.Err)
	}
	// Candidates may start anywhere before data and end in zeros, up to size.
	at, err := s.intactAfter(bad.Offset, size)
	if err != nil {
		return fmt.Errorf("cannot open %q: looking past the damaged record at offset %d: %w", s.path, bad.Offset, err)
	}
	if at != 0 {
		torn, err := s.tornOverZeros(*bad, data)
		if err != nil {
			return fmt.Errorf("cannot open %q: reading the damaged record at offset %d: %w", s.path, bad.Offset, err)
		}
		if !torn {
			s.damaged = damagedError(s.path, len(s.offsets), *bad, at)
			s.log.Error("segment: damaged record followed by intact ones: records after the damage may have been acknowledged; the file is left as it is, appends and seal are refused",
				"records_before", len(s.offsets), "offset", bad.Offset, "intact_at", at, "size", size, "reason", bad.Err)
			return nil
		}
		s.log.Warn("segment: a sector of zeros in the last records, then intact ones: the last group commit, not acknowledged, torn by a crash while the disk wrote its sectors out of order; cutting it",
			"offset", bad.Offset, "intact_at", at)
	}
	return s.cutTail(*bad, size)
}

// sectorSize is the unit a disk writes atomically, at the least: a crash leaves each
// sector of a write either whole or as it was.
const sectorSize = 512

// tornOverZeros reports whether the damaged record bad, followed by intact records
// (data: the end of the bytes that are not zero), is what a crash during the last
// group commit leaves when the disk wrote its sectors out of order over the file's
// preallocated zeros: a sector the record overlaps still holds only zeros from bad's
// offset, or from the sector's start, to data (at least RecordHeaderSize of them: a
// sector not written), and everything that is not zero from bad on fits in one append
// (MaxTornBytes). An acknowledged record cannot look like that, since its fdatasync
// returned, and a flipped bit or other damage does not zero a sector: it stays damage.
func (s *Segment) tornOverZeros(bad RecordInfo, data int64) (bool, error) {
	if data-bad.Offset > MaxTornBytes {
		return false, nil
	}
	recEnd := bad.Offset + RecordHeaderSize
	if record.CheckLength(bad.Length) == nil {
		recEnd += int64(bad.Length)
	}
	buf := make([]byte, sectorSize)
	for sec := bad.Offset / sectorSize * sectorSize; sec < min(recEnd, data); sec += sectorSize {
		from, to := max(sec, bad.Offset), min(sec+sectorSize, data)
		if to-from < RecordHeaderSize {
			continue
		}
		b := buf[:to-from]
		if _, err := s.f.ReadAt(b, from); err != nil {
			return false, err
		}
		if len(bytes.TrimLeft(b, "\x00")) == 0 {
			return true, nil
		}
	}
	return false, nil
}

// dataEnd returns the offset just past the last byte in [from, size) of r
// that is not zero, or from if they all are. Zeros after the last record
// are the file's preallocated space (Options.Prealloc), or what remains of
// an append torn before any of its bytes reached the disk: neither holds
// anything to keep.
func dataEnd(r io.ReaderAt, from, size int64) (int64, error) {
	buf := make([]byte, min(size-from, 64<<10))
	for end := size; end > from; {
		n := min(int64(len(buf)), end-from)
		b := buf[:n]
		if _, err := r.ReadAt(b, end-n); err != nil {
			return 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != 0 {
				return end - n + int64(i) + 1, nil
			}
		}
		end -= n
	}
	return from, nil
}

func damagedError(path string, index int, bad RecordInfo, at int64) error {
	next := fmt.Sprintf("an intact record starts at offset %d", at)
	if at < 0 {
		next = "the rest is too long to be one torn write"
	}
	return fmt.Errorf("%w: %q: record %d at offset %d is damaged (%v) and %s", ErrDamaged, path, index, bad.Offset, bad.Err, next)
}

// Bounds of the search for intact records after a damaged one (intactAfter).
// A crash tears at most the last append (one AppendBatch, which floe's
// appender keeps to 8 MiB plus one request), so a longer rest is never
// taken for a torn tail.
const (
	maxResyncBytes = 256 << 20
	maxResyncCRC   = 1 << 30 // payload bytes checksummed while searching
)

// intactAfter tells a torn tail from damage followed by valid records: it
// returns the offset of the first intact record (a length of 1 to
// MaxPayload that fits in the file and a matching CRC) that starts at any
// byte after from, the offset of the damaged record; 0 if there is none;
// -1 if the rest of the file is too long to search (it then counts as
// followed by valid records). The search does not trust the damaged
// record's length, which may be the damaged part.
func (s *Segment) intactAfter(from, size int64) (int64, error) {
	rest := size - from
	if rest <= RecordHeaderSize+1 {
		return 0, nil
	}
	if rest > maxResyncBytes {
		return -1, nil
	}
	buf := make([]byte, rest)
	if _, err := s.f.ReadAt(buf, from); err != nil {
		return 0, err
	}
	budget := int64(maxResyncCRC)
	for p := 1; p+RecordHeaderSize < len(buf); p++ {
		if buf[p]|buf[p+1]|buf[p+2]|buf[p+3] == 0 {
			continue // a zero length: the common case in preallocated zeros
		}
		length, stored := record.ParseHeader(buf[p:])
		if record.CheckLength(length) != nil || int64(p)+RecordHeaderSize+int64(length) > rest {
			continue
		}
		if budget -= int64(length); budget < 0 {
			return -1, nil
		}
		payload := buf[p+RecordHeaderSize : p+RecordHeaderSize+int(length)]
		if record.CRC(payload) == stored {
			return from + int64(p), nil
		}
	}
	return 0, nil
}

// initFile writes the header of a new (or torn-at-creation) file, syncs it
// and its directory entry.
func (s *Segment) initFile(size int64) error {
	if size > 0 {
		s.log.Warn("segment: completing a file header torn at creation", "size", size)
	}
	if _, err := s.f.WriteAt(fileHeader(), 0); err != nil {
		return fmt.Errorf("cannot write header of %q: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("cannot sync header of %q: %w", s.path, err)
	}
	if err := s.fs.SyncDir(filepath.Dir(s.path)); err != nil {
		return fmt.Errorf("cannot sync directory of %q: %w", s.path, err)
	}
	s.end, s.alloc = HeaderSize, HeaderSize
	return nil
}

// cutTail repairs a torn tail, the damaged record bad and what follows it: it
// saves the bytes from bad.Offset to size as a durable .broken file, then
// truncates the file at bad.Offset and syncs it.
func (s *Segment) cutTail(bad RecordInfo, size int64) error {
	cut := bad.Offset
	broken, err := s.saveBroken(cut, size)
	if err != nil {
		return fmt.Errorf("cannot repair %q: keep the %d bytes from offset %d: %w", s.path, size-cut, cut, err)
	}
	if err := s.f.Truncate(cut); err != nil {
		return fmt.Errorf("cannot repair %q: truncate to %d: %w", s.path, cut, err)
	}
	s.alloc = cut
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("cannot repair %q: sync after truncating to %d: %w", s.path, cut, err)
	}
	s.log.Warn("segment: truncated a torn tail", "records", len(s.offsets), "offset", cut,
		"cut_bytes", size-cut, "broken", broken, "reason", bad.Err)
	return nil
}

// saveBroken copies the bytes [from, size) of the segment file to a new
// path+".broken" file (or ".broken.N" if taken), written to a temporary
// name, synced and renamed, and syncs the directory. It returns the name.
func (s *Segment) saveBroken(from, size int64) (string, error) {
	name := s.path + ".broken"
	for i := 1; ; i++ {
		_, err := s.fs.Stat(name)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return "", err
		}
		name = s.path + ".broken." + strconv.Itoa(i)
	}
	tmp := name + ".tmp"
	out, err := s.fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", err
	}
	buf := make([]byte, min(size-from, 1<<20))
	for off := from; off < size; {
		n := min(int64(len(buf)), size-off)
		if _, err := s.f.ReadAt(buf[:n], off); err != nil {
			_ = out.Close()
			return "", err
		}
		if _, err := out.WriteAt(buf[:n], off-from); err != nil {
			_ = out.Close()
			return "", err
		}
		off += n
	}
	err = out.Sync()
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if err := s.fs.Rename(tmp, name); err != nil {
		return "", err
	}
	if err := s.fs.SyncDir(filepath.Dir(s.path)); err != nil {
		return "", err
	}
	return name, nil
}
