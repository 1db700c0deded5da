package segment

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
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
		return fmt.Errorf("segment: cannot open %s %q: size: %w", what, s.path, err)
	}
	if size < HeaderSize {
		h := make([]byte, size)
		if _, err := s.f.ReadAt(h, 0); err != nil {
			return fmt.Errorf("segment: cannot open %s %q: read header: %w", what, s.path, err)
		}
		if sealed || !isHeaderPrefix(h) {
			return fmt.Errorf("segment: cannot open %s %q: %w", what, s.path, checkHeader(h))
		}
		return s.initFile(size)
	}

	h := make([]byte, HeaderSize)
	if _, err := s.f.ReadAt(h, 0); err != nil {
		return fmt.Errorf("segment: cannot open %s %q: read header: %w", what, s.path, err)
	}
	if err := checkHeader(h); err != nil {
		return fmt.Errorf("segment: cannot open %s %q: %w", what, s.path, err)
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
			return fmt.Errorf("segment: cannot open %s %q: %w", what, s.path, err)
		}
		if info.Err != nil {
			bad = &info
			break
		}
		s.offsets = append(s.offsets, info.Offset)
		rh := recordHeader(info.Length, info.StoredCRC)
		crc = crc32.Update(crc, castagnoli, rh[:])
		crc = crc32.Update(crc, castagnoli, payload)
	}
	s.crc = crc
	s.end = size
	if bad == nil {
		return nil
	}
	if sealed {
		return fmt.Errorf("segment: cannot open sealed segment %q: record %d: %w", s.path, len(s.offsets), bad.Err)
	}
	if err := s.cutTail(*bad, size); err != nil {
		return err
	}
	s.end = bad.Offset
	return nil
}

// initFile writes the header of a new (or torn-at-creation) file, syncs it
// and its directory entry.
func (s *Segment) initFile(size int64) error {
	if size > 0 {
		s.log.Warn("segment: completing a file header torn at creation", "size", size)
	}
	if _, err := s.f.WriteAt(fileHeader(), 0); err != nil {
		return fmt.Errorf("segment: cannot write header of %q: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("segment: cannot sync header of %q: %w", s.path, err)
	}
	if err := s.fs.SyncDir(filepath.Dir(s.path)); err != nil {
		return fmt.Errorf("segment: cannot sync directory of %q: %w", s.path, err)
	}
	s.end = HeaderSize
	return nil
}

// cutTail repairs the file after the damaged record bad: it saves the bytes
// from bad.Offset to size as a durable .broken file, then truncates the
// file at bad.Offset and syncs it.
func (s *Segment) cutTail(bad RecordInfo, size int64) error {
	cut := bad.Offset
	// Records that still decode after the damage mean damage in the middle
	// of the file rather than a torn write: worth an operator's look.
	intactAfter := 0
	if next := cut + bad.Size; next < size {
		w := newWalker(s.f, next, size)
		for {
			info, _, err := w.next()
			if err != nil {
				break
			}
			if info.Err == nil {
				intactAfter++
			}
		}
	}

	broken, err := s.saveBroken(cut, size)
	if err != nil {
		return fmt.Errorf("segment: cannot repair %q: keep the %d bytes from offset %d: %w", s.path, size-cut, cut, err)
	}
	if err := s.f.Truncate(cut); err != nil {
		return fmt.Errorf("segment: cannot repair %q: truncate to %d: %w", s.path, cut, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("segment: cannot repair %q: sync after truncating to %d: %w", s.path, cut, err)
	}
	attrs := []any{
		"records", len(s.offsets), "offset", cut, "cut_bytes", size - cut,
		"intact_records_after", intactAfter, "broken", broken, "reason", bad.Err,
	}
	if intactAfter > 0 {
		s.log.Error("segment: damaged record followed by intact ones; truncated at the damage, the rest is kept in the .broken file", attrs...)
	} else {
		s.log.Warn("segment: truncated a torn or damaged tail", attrs...)
	}
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
