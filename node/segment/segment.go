package segment

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"floe/record"
)

// Errors returned by this package, always wrapped with the facts (path,
// index, offset, stored and computed values); test with errors.Is. Their
// texts, and the messages that wrap them, are part of the client protocol:
// an append or a read that fails on a segment file answers the client with
// the error's text verbatim, so none carries a package prefix.
var (
	// ErrSealed: the segment no longer takes appends, because Seal was
	// called or it was opened with OpenSealed.
	ErrSealed = errors.New("segment sealed")
	// ErrCorrupt: data that must be intact is not (a CRC mismatch, an
	// impossible length, a bad file header, a file shorter than its index).
	// Damaged bytes are never returned as data.
	ErrCorrupt = errors.New("segment corrupt")
	// ErrOutOfRange: a read at an index >= Count().
	ErrOutOfRange = errors.New("segment index out of range")
	// ErrClosed: the Segment or Store was closed.
	ErrClosed = errors.New("segment closed")
	// ErrTooLarge: a payload over MaxPayload bytes, or a batch over
	// MaxTornBytes.
	ErrTooLarge = errors.New("payload too large")
	// ErrEmpty: a zero-length payload, or an AppendBatch of no payloads.
	// Records are never empty, so that zero bytes on disk (a torn or
	// preallocated tail) can never decode as records.
	ErrEmpty = errors.New("empty payload")
	// ErrBroken: an append failed and the segment could not be truncated
	// back to its last durable size. Reads of acknowledged records still
	// work; appends fail until the file is reopened (Open repairs it).
	ErrBroken = errors.New("segment broken")
	// ErrDamaged: Open found a damaged record followed by intact ones, so
	// records after the damage may have been acknowledged. The file is left
	// as it is; the records before the damage are readable, and Append and
	// Seal are refused, so that no index a lost record had is given to a
	// new one. Moving writes off the segment is the operator's decision.
	ErrDamaged = errors.New("segment damaged before intact records")
)

// DefaultSlowSync is the default of Options.SlowSync.
const DefaultSlowSync = time.Second

// DefaultCacheWindow is the default of Options.CacheWindow: 64 MiB of an
// active segment stay in the page cache behind its end.
const DefaultCacheWindow = 64 << 20

// dropStep is the least an append drops from the page cache at a time, so
// that the fadvise call comes once per dropStep bytes written, not per append.
const dropStep = 8 << 20

// DefaultPrealloc is the default of Options.Prealloc: 1 MiB of zeros ahead
// of the records.
const DefaultPrealloc = 1 << 20

// Options configure Open, OpenSealed and OpenStore. The zero value is ready
// to use.
type Options struct {
	// FS is the file system under the segment; nil means OS.
	FS FS
	// Logger receives repairs of a torn tail (Warn) or of damage followed
	// by intact records (Error), failed appends (Warn; Error when they
	// cannot be undone) and slow fsyncs (Warn). Nil means slog.Default().
	Logger *slog.Logger
	// SlowSync is the fsync duration above which a sync is logged; zero
	// means DefaultSlowSync.
	SlowSync time.Duration
	// NoSync skips the fdatasync of appends, so an acknowledgement only
	// means the data reached the page cache. For benchmarks only. Repairs
	// on open are still synced.
	NoSync bool
	// MaxIdleSealed is used by OpenStore only: the most sealed segments the
	// Store keeps open while no caller holds a reference to them. Zero means
	// DefaultMaxIdleSealed.
	MaxIdleSealed int
	// Prealloc is the most, in bytes, an active segment's file is extended
	// by with written zeros ahead of its records at a time (see
	// "Preallocation" in the package doc). Zero means DefaultPrealloc;
	// negative means none, so the file ends at its last record.
	Prealloc int64
	// CacheWindow is how many bytes of an active segment, behind its durable
	// end, are left in the page cache; the durable bytes before them are
	// dropped from it (see "Page cache" in the package doc). Zero means
	// DefaultCacheWindow; negative means none are dropped.
	CacheWindow int64
	// OnFlush, if set, is called after every append's write and fdatasync
	// with its outcome, for metrics. It runs on the appending goroutine,
	// with the segment's write lock held, and must return quickly.
	OnFlush func(FlushInfo)
}

// FlushInfo describes one append (one WriteAt and one fdatasync), for
// Options.OnFlush.
type FlushInfo struct {
	Path    string
	Records int           // records in the append
	Bytes   int           // bytes written, record headers included
	Sync    time.Duration // time spent in fdatasync
	Err     error         // nil if the batch is durable
}

func (o Options) withDefaults() Options {
	if o.FS == nil {
		o.FS = OS
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SlowSync <= 0 {
		o.SlowSync = DefaultSlowSync
	}
	if o.MaxIdleSealed <= 0 {
		o.MaxIdleSealed = DefaultMaxIdleSealed
	}
	if o.Prealloc == 0 {
		o.Prealloc = DefaultPrealloc
	}
	if o.CacheWindow == 0 {
		o.CacheWindow = DefaultCacheWindow
	}
	return o
}

type state uint8

const (
	stateOpen state = iota
	stateSealed
	stateClosed
)

// Segment is one segment file: an append-only sequence of records, each
// acknowledged only once fdatasync has made it durable. All methods are safe
// for concurrent use.
//
// Appends are synchronous and take turns: each one (Append, or AppendBatch
// with all its records) encodes its records, writes them with one WriteAt
// at the durable end of the file, calls File.Sync once, publishes the
// records to readers and returns. The segment does no batching of its own:
// batching is the caller's, who hands everything it wants to share an
// fdatasync to one AppendBatch (floe's appender does: see node/doc.go).
// Readers see only records whose fdatasync has returned and never wait
// for a sync in progress.
type Segment struct {
	path string
	fs   FS
	f    File
	log  *slog.Logger
	opts Options

	// writeMu makes appends take turns: it is held across one append's
	// check, WriteAt, fdatasync and publication or undo, and Seal and
	// Close take it to wait for the append in progress. It guards buf, the
	// encoding buffer kept between appends, the file's bytes beyond end
	// (the append in progress), and alloc.
	writeMu sync.Mutex
	buf     []byte
	// alloc is how far the zeros written ahead of the records reach
	// (Options.Prealloc): at least end. The file may be shorter (an
	// extension failed) or longer (one failed part way, or a read-only file
	// opened with zeros) than alloc; only appends past alloc extend it.
	alloc int64
	// cached is where the part of the file left in the page cache begins:
	// the durable bytes before it were dropped (dropCache). Guarded by writeMu.
	cached int64

	// mu guards state, broken and damaged. It is never held during I/O, so
	// Sealed, Damaged and the refusal of appends never wait for a sync.
	mu      sync.Mutex
	state   state
	broken  error
	damaged error // set by open only: see ErrDamaged

	// idxMu guards what readers see: the durable records. Only appends
	// (under writeMu) and open write them; end and crc are also read
	// under writeMu without idxMu.
	idxMu   sync.RWMutex
	offsets []int64 // file offset of every durable record
	end     int64   // durable file size: HeaderSize + Bytes()
	crc     uint32  // CRC32C of file bytes [HeaderSize, end)

	// fileMu keeps Close from closing the file under a ReadAt.
	fileMu     sync.RWMutex
	fileClosed bool

	// onClose is set by Store to forget the segment when it is closed.
	onClose func()
	// owner is the Store's entry of the segment (its references), nil for a
	// segment opened outside a Store.
	owner *storeEntry
}

// Open opens the segment file at path for appending, creating it (and
// fsyncing its directory) if it does not exist, and recovers it (see
// "Recovery" in the package doc): it scans every record; zeros after the
// last one are its end (preallocated space) and stay; at the first damaged
// record (torn, impossible length, CRC mismatch) with no intact record
// after it, or only the rest of a torn last append, it copies the bytes
// from there to the end into a durable path+".broken" file (".broken.1",
// ".broken.2", ... if that exists), truncates the file there and fsyncs it,
// so that the file ends at the last record whose CRC matches; damage
// followed by intact records is left as it is (ErrDamaged). Count, Bytes
// and CRC are rebuilt from the file.
// A file whose header is not a floe segment header is refused (ErrCorrupt),
// never truncated.
//
// At most one Segment may have a file open at a time; Store enforces this
// for its files. The caller must Close the Segment.
func Open(path string, opts Options) (*Segment, error) {
	return open(path, opts, false)
}

// OpenSealed opens the segment file at path read-only, as one known to be
// complete: zeros after the last record are its end, and any damaged
// record, including a torn tail, fails with an error wrapping ErrCorrupt
// that names the file and offset. Nothing is truncated, Seal included. Appends return ErrSealed. The caller must Close the Segment.
func OpenSealed(path string, opts Options) (*Segment, error) {
	return open(path, opts, true)
}

func open(path string, opts Options, sealed bool) (*Segment, error) {
	o := opts.withDefaults()
	flag := os.O_RDWR | os.O_CREATE
	if sealed {
		flag = os.O_RDONLY
	}
	f, err := o.FS.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open %q: %w", path, err)
	}
	s := &Segment{
		path: path,
		fs:   o.FS,
		f:    f,
		log:  o.Logger.With("path", path),
		opts: o,
	}
	if err := s.recover(sealed); err != nil {
		_ = f.Close()
		return nil, err
	}
	if sealed {
		s.state = stateSealed
		s.alloc = s.end // read-only: zeros after the records stay, trim leaves them
	} else if !o.NoSync {
		// What the scan read, now, rather than in the first append's commit.
		s.dropCache(s.end)
	}
	return s, nil
}

// Path returns the file path the segment was opened with.
func (s *Segment) Path() string { return s.path }

// Append appends one record carrying payload (1 to MaxPayload bytes) and
// returns its index, 0-based within the segment. It returns only after an
// fdatasync covering the record has returned. Concurrent appends take turns
// (each with its own write and fdatasync) and get distinct, contiguous
// indexes in the order they took their turns.
//
// If the write or the sync fails, the append fails, the file is truncated
// back to its last durable size, earlier records are untouched and later
// appends work again. Append fails with ErrSealed after Seal, ErrClosed
// after Close, ErrTooLarge or ErrEmpty for a bad payload, ErrDamaged on a
// segment Open found damaged, and ErrBroken if a failed append could not be
// undone. payload is not retained.
func (s *Segment) Append(payload []byte) (uint64, error) {
	arr := [1][]byte{payload}
	return s.AppendBatch(arr[:])
}

// AppendBatch appends payloads as consecutive records, in order, with one
// WriteAt and one fdatasync (group commit: the caller batches), with the
// durability of Append, and returns the index of the first. The batch
// succeeds or fails as a whole: it is never interleaved with other appends,
// and if its write or sync fails, every record of it fails, none of it is
// acknowledged or left in the file, and no index is consumed. As with any
// unacknowledged append, a crash before it returns may leave a prefix of
// it in the file. payloads are not retained.
func (s *Segment) AppendBatch(payloads [][]byte) (uint64, error) {
	if len(payloads) == 0 {
		return 0, fmt.Errorf("cannot append an empty batch to %q: %w", s.path, ErrEmpty)
	}
	for i, p := range payloads {
		if len(p) == 0 {
			return 0, fmt.Errorf("cannot append payload %d of %d to %q: %w", i, len(payloads), s.path, ErrEmpty)
		}
		if len(p) > MaxPayload {
			return 0, fmt.Errorf("cannot append payload %d of %d to %q: %d bytes, max %d: %w", i, len(payloads), s.path, len(p), MaxPayload, ErrTooLarge)
		}
	}
	// Refuse before waiting for the append in progress, and again once it
	// is done (Seal or Close may have come meanwhile).
	if err := s.accepting(); err != nil {
		return 0, err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.accepting(); err != nil {
		return 0, err
	}
	total := 0
	for _, p := range payloads {
		total += RecordHeaderSize + len(p)
	}
	if total > MaxTornBytes {
		return 0, fmt.Errorf("cannot append %d records to %q: %d bytes in one batch, max %d: %w", len(payloads), s.path, total, MaxTornBytes, ErrTooLarge)
	}
	buf := s.buf[:0]
	for _, p := range payloads {
		buf = record.AppendHeader(buf, uint32(len(p)), record.CRC(p))
		buf = append(buf, p...)
	}
	first, err := s.commit(buf, payloads)
	s.buf = nil
	if cap(buf) <= maxSpareBuffer {
		s.buf = buf[:0]
	}
	return first, err
}

// accepting reports why the segment takes no appends, or nil.
func (s *Segment) accepting() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.state == stateClosed:
		return fmt.Errorf("cannot append to %q: %w", s.path, ErrClosed)
	case s.state == stateSealed:
		return fmt.Errorf("cannot append to %q: %w", s.path, ErrSealed)
	case s.broken != nil:
		return s.broken
	case s.damaged != nil:
		return s.damaged
	}
	return nil
}

// maxSpareBuffer is the largest encoding buffer a segment keeps for reuse
// between appends, so an idle segment holds little memory.
const maxSpareBuffer = 1 << 20

// commit writes and syncs buf, the encoded records of payloads, at the
// durable end of the file and publishes them, returning the index of the
// first; or fails them all and undoes the write. The caller holds writeMu.
func (s *Segment) commit(buf []byte, payloads [][]byte) (uint64, error) {
	start := s.end
	var took time.Duration
	_, err := s.f.WriteAt(buf, start)
	if err == nil {
		s.extend(start+int64(len(buf)), len(buf))
	}
	if err == nil && !s.opts.NoSync {
		t0 := time.Now()
		err = s.f.Sync()
		took = time.Since(t0)
		if took > s.opts.SlowSync {
			s.log.Warn("segment: slow fsync", "duration", took, "records", len(payloads), "bytes", len(buf), "err", err)
		}
	}
	if err == nil && !s.opts.NoSync {
		s.dropCache(start + int64(len(buf)))
	}
	var first uint64
	if err != nil {
		err = fmt.Errorf("cannot append %d records to %q at offset %d: %w", len(payloads), s.path, start, err)
		s.rollback(start, err)
	} else {
		crc := record.UpdateCRC(s.crc, buf)
		s.idxMu.Lock()
		first = uint64(len(s.offsets))
		off := start
		for _, p := range payloads {
			s.offsets = append(s.offsets, off)
			off += RecordHeaderSize + int64(len(p))
		}
		s.end = off
		s.crc = crc
		s.idxMu.Unlock()
	}
	if s.opts.OnFlush != nil {
		s.opts.OnFlush(FlushInfo{Path: s.path, Records: len(payloads), Bytes: len(buf), Sync: took, Err: err})
	}
	return first, err
}

// minPrealloc is the fewest zeros extend writes (64 KiB).
const minPrealloc = 64 << 10

// maxPreallocAppend is the largest append that extends the file with zeros:
// a larger one grows the file by itself (see "Preallocation" in the package
// doc).
const maxPreallocAppend = 64 << 10

// zeros is written after the records to extend a file (extend): never
// modified, so reading it maps no memory.
var zeros [256 << 10]byte

// extend writes zeros after to, the end of the records an append of n bytes
// has just written, if the file's zeroed space does not already reach past
// to and the append is small (at most maxPreallocAppend): as many bytes as
// the records hold, at least minPrealloc and at most Options.Prealloc, so
// that a segment written slowly (one of a thousand topics, say) holds few
// zeros, and one written fast extends its file once per Options.Prealloc
// bytes. The append's fdatasync then makes the zeros and the new file size
// durable together with its records, and the appends after it overwrite
// written blocks, which an fdatasync flushes without a journal commit for
// the file's size and extents. A failed extension (ENOSPC, say) fails
// nothing: the zeros are an optimisation, and alloc is set to to so the next
// append tries again. The caller holds writeMu.
func (s *Segment) extend(to int64, n int) {
	pre := min(s.opts.Prealloc, max(minPrealloc, to-HeaderSize))
	if pre <= 0 || to <= s.alloc || n > maxPreallocAppend {
		s.alloc = max(s.alloc, to)
		return
	}
	s.alloc = to
	for off := to; off < to+pre; {
		n := min(int64(len(zeros)), to+pre-off)
		if _, err := s.f.WriteAt(zeros[:n], off); err != nil {
			s.log.Debug("segment: cannot write zeros ahead of the records", "offset", off, "err", err)
			return
		}
		off += n
		s.alloc = off
	}
}

// dropCache drops from the page cache the durable bytes of the file before
// the last Options.CacheWindow ones up to end, in whole pages, once there are
// at least dropStep of them. Only bytes a completed fdatasync covered are
// dropped (the kernel keeps dirty pages anyway). A file system without the
// call (CacheDropper) drops nothing; a failed drop is ignored, since it only
// leaves the pages cached. The caller holds writeMu.
func (s *Segment) dropCache(end int64) {
	if s.opts.CacheWindow < 0 {
		return
	}
	upto := (end - s.opts.CacheWindow) &^ (pageSize - 1)
	if upto-s.cached < dropStep {
		return
	}
	if d, ok := s.f.(CacheDropper); ok {
		if err := d.DropCache(s.cached, upto-s.cached); err != nil {
			s.log.Debug("segment: cannot drop written bytes from the page cache", "from", s.cached, "to", upto, "err", err)
		}
	}
	s.cached = upto
}

// pageSize is the unit dropCache drops in: a page on every system floe runs
// on, or a fraction of one (the kernel rounds inwards).
const pageSize = 4096

// rollback truncates the file back to its durable size end after a failed
// write or sync, and syncs the truncation so the failed records cannot
// reappear after a crash. If that fails too, the segment is broken. The
// caller holds writeMu.
func (s *Segment) rollback(end int64, cause error) {
	s.alloc = end
	err := s.f.Truncate(end)
	if err == nil {
		err = s.f.Sync()
	}
	if err == nil {
		s.log.Warn("segment: append failed; truncated back to the last durable record", "size", end, "err", cause)
		return
	}
	broken := fmt.Errorf("%w: %q: after %v, cannot truncate back to %d bytes: %w", ErrBroken, s.path, cause, end, err)
	s.log.Error("segment: append failed and cannot be undone; appends refused until reopened", "size", end, "err", broken)
	s.mu.Lock()
	s.broken = broken
	s.mu.Unlock()
}

// Read returns up to max records starting at index, in order. It stops
// early, but always returns at least one record, once the next record would
// take the payload total over maxBytes (maxBytes <= 0: no limit; max < 1
// counts as 1). Only durable records are visible. Every record is checked
// against its CRC: a damaged one fails the whole call with an error
// wrapping ErrCorrupt, and no data is returned. index >= Count() fails with
// ErrOutOfRange, a closed segment with ErrClosed.
//
// The payloads are sub-slices of one newly allocated buffer owned by the
// caller. Read never waits for an fsync in progress.
func (s *Segment) Read(index uint64, max int, maxBytes int) ([][]byte, error) {
	s.idxMu.RLock()
	offsets, end := s.offsets, s.end
	s.idxMu.RUnlock()
	count := uint64(len(offsets))
	if index >= count {
		return nil, fmt.Errorf("cannot read index %d of %q, count %d: %w", index, s.path, count, ErrOutOfRange)
	}
	recEnd := func(i uint64) int64 {
		if i+1 < count {
			return offsets[i+1]
		}
		return end
	}
	avail := count - index
	if max < 1 {
		max = 1
	}
	if uint64(max) < avail {
		avail = uint64(max)
	}
	n, total := 0, 0
	start, stop := offsets[index], offsets[index]
	for i := index; i < index+avail; i++ {
		e := recEnd(i)
		plen := int(e - offsets[i] - RecordHeaderSize)
		if n > 0 && maxBytes > 0 && total+plen > maxBytes {
			break
		}
		total += plen
		n++
		stop = e
	}

	buf := make([]byte, stop-start)
	s.fileMu.RLock()
	if s.fileClosed {
		s.fileMu.RUnlock()
		return nil, fmt.Errorf("cannot read index %d of %q: %w", index, s.path, ErrClosed)
	}
	_, err := s.f.ReadAt(buf, start)
	s.fileMu.RUnlock()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: file ends before offset %d: %w", ErrCorrupt, stop, err)
		}
		return nil, fmt.Errorf("cannot read %d records from index %d of %q at offset %d: %w", n, index, s.path, start, err)
	}

	out := make([][]byte, 0, n)
	pos := int64(0)
	for i := index; i < index+uint64(n); i++ {
		want := recEnd(i) - offsets[i]
		p, m, err := decodeRecord(buf[pos : pos+want])
		if err == nil && int64(m) != want {
			err = fmt.Errorf("%w: record length %d, index says %d", ErrCorrupt, m-RecordHeaderSize, want-RecordHeaderSize)
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read index %d of %q at offset %d: %w", i, s.path, offsets[i], err)
		}
		out = append(out, p)
		pos += want
	}
	return out, nil
}

// Count returns the number of durable records.
func (s *Segment) Count() uint64 {
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	return uint64(len(s.offsets))
}

// Bytes returns the size in bytes of the durable records as stored, record
// headers included and the file header excluded: the file is HeaderSize +
// Bytes() long.
func (s *Segment) Bytes() int64 {
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	return s.end - HeaderSize
}

// CRC returns the CRC32C (Castagnoli) of the durable records as stored: of
// the concatenation of every record, header and payload, in order, which is
// the file from offset HeaderSize to its end. An empty segment has CRC 0.
// Open recomputes it from the file.
func (s *Segment) CRC() uint32 {
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	return s.crc
}

func (s *Segment) totals() (uint64, int64, uint32) {
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	return uint64(len(s.offsets)), s.end - HeaderSize, s.crc
}

// Seal stops the segment taking appends (they fail with ErrSealed from
// now), waits until the append in progress, if any, has been committed or
// failed, cuts the zeros after the records off the file (not synced; not
// for a file opened with OpenSealed) and returns the final Count, Bytes and
// CRC. Reads keep working.
// Seal is idempotent: later calls return the same totals. On a closed
// segment it fails with ErrClosed; on a broken one it returns the totals of
// the acknowledged records together with the ErrBroken error. A damaged
// segment (ErrDamaged) is not sealed: Seal returns the totals of the records
// before the damage with an error wrapping ErrDamaged, since those totals
// may not cover every acknowledged record.
func (s *Segment) Seal() (count uint64, bytes int64, crc uint32, err error) {
	s.mu.Lock()
	if s.state == stateClosed {
		s.mu.Unlock()
		return 0, 0, 0, fmt.Errorf("cannot seal %q: %w", s.path, ErrClosed)
	}
	if s.damaged != nil {
		s.mu.Unlock()
		count, bytes, crc = s.totals()
		return count, bytes, crc, fmt.Errorf("cannot seal: %w", s.damaged)
	}
	s.state = stateSealed
	broken := s.broken
	s.mu.Unlock()
	s.trim()
	count, bytes, crc = s.totals()
	if broken == nil {
		s.mu.Lock()
		broken = s.broken
		s.mu.Unlock()
	}
	return count, bytes, crc, broken
}

// SealAt seals a copy of a segment whose leader sealed it with count records
// (a follower's copy of a replicated segment): records after the first count are
// cut off the file, durably, and the totals returned are those of the records
// kept (their CRC read back from the file when records were cut). A copy
// holding fewer than count records is sealed as it is and fails with
// ErrOutOfRange; a damaged one is not sealed (see Seal). Appends fail with
// ErrSealed afterwards; reads keep working.
func (s *Segment) SealAt(count uint64) (uint64, int64, uint32, error) {
	s.mu.Lock()
	switch {
	case s.state == stateClosed:
		s.mu.Unlock()
		return 0, 0, 0, fmt.Errorf("cannot seal %q: %w", s.path, ErrClosed)
	case s.damaged != nil:
		s.mu.Unlock()
		return 0, 0, 0, fmt.Errorf("cannot seal: %w", s.damaged)
	}
	s.state = stateSealed
	s.mu.Unlock()
	s.writeMu.Lock()
	s.idxMu.RLock()
	n := uint64(len(s.offsets))
	s.idxMu.RUnlock()
	if count > n {
		s.writeMu.Unlock()
		s.trim()
		return 0, 0, 0, fmt.Errorf("cannot seal %q at %d records: it holds %d: %w", s.path, count, n, ErrOutOfRange)
	}
	if count < n {
		if err := s.cut(count); err != nil {
			s.writeMu.Unlock()
			return 0, 0, 0, err
		}
	}
	s.writeMu.Unlock()
	s.trim()
	c, b, crc := s.totals()
	return c, b, crc, nil
}

// cut truncates the file durably after its first count records and recomputes
// the CRC of those from the file. The caller holds writeMu.
func (s *Segment) cut(count uint64) error {
	s.idxMu.RLock()
	end := s.offsets[count]
	s.idxMu.RUnlock()
	crc := uint32(0)
	buf := make([]byte, 1<<20)
	for off := int64(HeaderSize); off < end; {
		n := min(int64(len(buf)), end-off)
		if _, err := s.f.ReadAt(buf[:n], off); err != nil {
			return fmt.Errorf("cannot read %q to cut it at %d records: %w", s.path, count, err)
		}
		crc = record.UpdateCRC(crc, buf[:n])
		off += n
	}
	err := s.f.Truncate(end)
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		return fmt.Errorf("cannot cut %q at %d records: %w", s.path, count, err)
	}
	s.idxMu.Lock()
	s.offsets, s.end, s.crc = s.offsets[:count], end, crc
	s.idxMu.Unlock()
	s.alloc = end
	return nil
}

// Damaged returns nil, or the error wrapping ErrDamaged that Open found:
// it names the file, the damaged record and the intact record after it.
func (s *Segment) Damaged() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.damaged
}

// Sealed reports whether Seal has been called (and Close has not).
func (s *Segment) Sealed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == stateSealed
}

// Close waits until the append in progress, if any, has been committed or
// failed, then closes the file. Appends and reads fail with ErrClosed afterwards. Close is
// idempotent; later calls return nil.
func (s *Segment) Close() error {
	s.mu.Lock()
	if s.state == stateClosed {
		s.mu.Unlock()
		return nil
	}
	s.state = stateClosed
	s.mu.Unlock()
	s.waitAppend()
	s.fileMu.Lock()
	s.fileClosed = true
	err := s.f.Close()
	s.fileMu.Unlock()
	if s.onClose != nil {
		s.onClose()
	}
	if err != nil {
		return fmt.Errorf("cannot close %q: %w", s.path, err)
	}
	return nil
}

// trim waits for the append in progress like waitAppend, then cuts the
// zeros ahead of the records (Options.Prealloc) off the file of a segment
// that takes no more appends, so that a sealed file ends at its last
// record. The cut is not synced: the zeros are harmless if a crash brings
// them back, since Open and OpenSealed take zeros after the last record
// for the end of the file. A failed cut is logged and changes nothing else.
func (s *Segment) trim() {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.alloc <= s.end {
		return
	}
	if err := s.f.Truncate(s.end); err != nil {
		s.log.Warn("segment: cannot cut the zeros after the last record of a sealed segment", "size", s.end, "err", err)
		return
	}
	s.alloc = s.end
}

// waitAppend returns once no append is in progress. Called after the state
// has left stateOpen, so that no append starts after it: an append checks
// the state under writeMu before it writes.
func (s *Segment) waitAppend() {
	s.writeMu.Lock()
	s.writeMu.Unlock() // an empty critical section, used as a barrier
}
