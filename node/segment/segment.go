package segment

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	"floe/record"
)

// Errors returned by this package, always wrapped with the facts (path,
// index, offset, stored and computed values); test with errors.Is.
var (
	// ErrSealed: the segment no longer takes appends, because Seal was
	// called or it was opened with OpenSealed.
	ErrSealed = errors.New("segment: sealed")
	// ErrCorrupt: data that must be intact is not (a CRC mismatch, an
	// impossible length, a bad file header, a file shorter than its index).
	// Damaged bytes are never returned as data.
	ErrCorrupt = errors.New("segment: corrupt")
	// ErrOutOfRange: a read at an index >= Count().
	ErrOutOfRange = errors.New("segment: index out of range")
	// ErrClosed: the Segment or Store was closed.
	ErrClosed = errors.New("segment: closed")
	// ErrTooLarge: a payload over MaxPayload bytes.
	ErrTooLarge = errors.New("segment: payload too large")
	// ErrEmpty: a zero-length payload, or an AppendBatch of no payloads.
	// Records are never empty, so that zero bytes on disk (a torn or
	// preallocated tail) can never decode as records.
	ErrEmpty = errors.New("segment: empty payload")
	// ErrBroken: an append failed and the segment could not be truncated
	// back to its last durable size. Reads of acknowledged records still
	// work; appends fail until the file is reopened (Open repairs it).
	ErrBroken = errors.New("segment: broken")
	// ErrDamaged: Open found a damaged record followed by intact ones, so
	// records after the damage may have been acknowledged. The file is left
	// as it is; the records before the damage are readable, and Append and
	// Seal are refused, so that no index a lost record had is given to a
	// new one. Moving writes off the segment is the operator's decision.
	ErrDamaged = errors.New("segment: damaged before intact records")
)

// Defaults of Options.
const (
	DefaultSlowSync      = time.Second
	DefaultMaxBatchBytes = 8 << 20
)

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
	// MaxBatchBytes bounds the bytes queued behind the fsync in progress;
	// appends beyond it wait (back pressure). A single append or batch
	// larger than this is still accepted, alone. Zero means
	// DefaultMaxBatchBytes.
	MaxBatchBytes int
	// MaxIdleSealed is used by OpenStore only: the most sealed segments the
	// Store keeps open while no caller holds a reference to them. Zero means
	// DefaultMaxIdleSealed.
	MaxIdleSealed int
	// OnFlush, if set, is called after every group commit (write and
	// fdatasync) with its outcome, for metrics. It runs on the segment's
	// flusher goroutine and must return quickly.
	OnFlush func(FlushInfo)
}

// FlushInfo describes one group commit, for Options.OnFlush.
type FlushInfo struct {
	Path    string
	Records int           // records in the batch
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
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if o.MaxIdleSealed <= 0 {
		o.MaxIdleSealed = DefaultMaxIdleSealed
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
// Writes go through one flusher goroutine per open, unsealed segment: each
// append copies its records into the pending batch and waits; the flusher
// takes everything pending, writes it with one WriteAt, calls File.Sync once
// (group commit), publishes the records to readers and wakes the waiters.
// While one fdatasync runs, the next batch fills. Readers see only records
// whose fdatasync has returned and never wait for a sync in progress.
type Segment struct {
	path string
	fs   FS
	f    File
	log  *slog.Logger
	opts Options

	// mu guards the write side: state, broken, pending and the spare
	// buffers. work wakes the flusher, room wakes appenders waiting for
	// the pending batch to drain.
	mu        sync.Mutex
	work      sync.Cond
	room      sync.Cond
	state     state
	broken    error
	damaged   error // set by open only: see ErrDamaged
	pending   *batch
	spareBuf  []byte
	spareLens []uint32

	// flusherDone is closed when the flusher goroutine exits; nil for a
	// segment opened sealed.
	flusherDone chan struct{}

	// idxMu guards what readers see: the durable records. Only the flusher
	// (and open) write them; end and crc are also read by the flusher
	// without the lock.
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

// batch is one group commit: the records of every append queued while the
// previous fdatasync ran. Its first and err are written by the flusher
// before done is closed and read by the waiters after.
type batch struct {
	buf   []byte   // encoded records
	lens  []uint32 // payload length of each record
	first uint64   // index of the first record, once durable
	err   error    // why the batch failed
	done  chan struct{}
}

// Open opens the segment file at path for appending, creating it (and
// fsyncing its directory) if it does not exist, and recovers it: it scans
// every record; at the first damaged one (torn, zero or impossible length,
// CRC mismatch) it copies the bytes from there to the end into a durable
// path+".broken" file (".broken.1", ".broken.2", ... if that exists),
// truncates the file there and fsyncs it, so that the file ends at the last
// record whose CRC matches. Count, Bytes and CRC are rebuilt from the file.
// A file whose header is not a floe segment header is refused (ErrCorrupt),
// never truncated.
//
// At most one Segment may have a file open at a time; Store enforces this
// for its files. The caller must Close the Segment.
func Open(path string, opts Options) (*Segment, error) {
	return open(path, opts, false)
}

// OpenSealed opens the segment file at path read-only, as one known to be
// complete: any damaged record, including a torn tail, fails with an error
// wrapping ErrCorrupt that names the file and offset, and nothing is
// truncated. Appends return ErrSealed. The caller must Close the Segment.
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
		return nil, fmt.Errorf("segment: cannot open %q: %w", path, err)
	}
	s := &Segment{
		path: path,
		fs:   o.FS,
		f:    f,
		log:  o.Logger.With("path", path),
		opts: o,
	}
	s.work.L = &s.mu
	s.room.L = &s.mu
	if err := s.recover(sealed); err != nil {
		_ = f.Close()
		return nil, err
	}
	if sealed {
		s.state = stateSealed
		return s, nil
	}
	s.flusherDone = make(chan struct{})
	go s.flushLoop()
	return s, nil
}

// Path returns the file path the segment was opened with.
func (s *Segment) Path() string { return s.path }

// Append appends one record carrying payload (1 to MaxPayload bytes) and
// returns its index, 0-based within the segment. It returns only after an
// fdatasync covering the record has returned. Concurrent appends share
// fdatasyncs (group commit) and get distinct, contiguous indexes in the
// order they were queued.
//
// If the write or the sync of its batch fails, every append of that batch
// fails, the file is truncated back to its last durable size, earlier
// records are untouched and later appends work again. Append fails with
// ErrSealed after Seal, ErrClosed after Close, ErrTooLarge or ErrEmpty for
// a bad payload, and ErrBroken if a failed batch could not be undone.
// payload is not retained.
func (s *Segment) Append(payload []byte) (uint64, error) {
	b, pos, err := s.enqueue1(payload)
	if err != nil {
		return 0, err
	}
	<-b.done
	if b.err != nil {
		return 0, b.err
	}
	return b.first + uint64(pos), nil
}

// AppendBatch appends payloads as consecutive records, in order, with the
// durability of Append, and returns the index of the first. The batch
// succeeds or fails as a whole: it is never interleaved with other appends,
// and if it fails none of it is acknowledged or left in the file. As with
// any unacknowledged append, a crash before it returns may leave a prefix
// of it in the file. payloads are not retained.
func (s *Segment) AppendBatch(payloads [][]byte) (uint64, error) {
	b, pos, err := s.enqueue(payloads)
	if err != nil {
		return 0, err
	}
	<-b.done
	if b.err != nil {
		return 0, b.err
	}
	return b.first + uint64(pos), nil
}

// Ack is the outcome, available later, of AppendAsync.
type Ack struct {
	b   *batch
	pos int
}

// AppendAsync queues payloads like AppendBatch but returns at once, without
// waiting for the fdatasync; the Ack reports the outcome. It lets one
// goroutine pipeline many appends (acknowledging them in order as their
// Acks complete). Records are queued in the order of the AppendAsync calls.
// payloads are copied before AppendAsync returns and may be reused. It may
// block, without holding any lock a reader needs, while more than
// MaxBatchBytes are queued.
func (s *Segment) AppendAsync(payloads [][]byte) Ack {
	b, pos, err := s.enqueue(payloads)
	if err != nil {
		b = &batch{err: err, done: closedChan}
	}
	return Ack{b: b, pos: pos}
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Done returns a channel closed once the outcome is known.
func (a Ack) Done() <-chan struct{} { return a.b.done }

// Wait waits for the outcome and returns the index of the first record, as
// AppendBatch does. It may be called any number of times.
func (a Ack) Wait() (uint64, error) {
	<-a.b.done
	if a.b.err != nil {
		return 0, a.b.err
	}
	return a.b.first + uint64(a.pos), nil
}

// enqueue1 is enqueue for one payload, without allocating a slice.
func (s *Segment) enqueue1(payload []byte) (*batch, int, error) {
	arr := [1][]byte{payload}
	return s.enqueue(arr[:])
}

// enqueue checks payloads, copies them as records into the pending batch
// and wakes the flusher. It returns the batch and the position of the
// first record in it.
func (s *Segment) enqueue(payloads [][]byte) (*batch, int, error) {
	if len(payloads) == 0 {
		return nil, 0, fmt.Errorf("segment: cannot append an empty batch to %q: %w", s.path, ErrEmpty)
	}
	var small [8]uint32
	crcs := small[:0]
	if len(payloads) > len(small) {
		crcs = make([]uint32, 0, len(payloads))
	}
	size := 0
	for i, p := range payloads {
		if len(p) == 0 {
			return nil, 0, fmt.Errorf("segment: cannot append payload %d of %d to %q: %w", i, len(payloads), s.path, ErrEmpty)
		}
		if len(p) > MaxPayload {
			return nil, 0, fmt.Errorf("segment: cannot append payload %d of %d to %q: %d bytes, max %d: %w", i, len(payloads), s.path, len(p), MaxPayload, ErrTooLarge)
		}
		crcs = append(crcs, record.CRC(p))
		size += RecordHeaderSize + len(p)
	}

	s.mu.Lock()
	for {
		if err := s.acceptingLocked(); err != nil {
			s.mu.Unlock()
			return nil, 0, err
		}
		if s.pending == nil || len(s.pending.lens) == 0 || len(s.pending.buf)+size <= s.opts.MaxBatchBytes {
			break
		}
		s.room.Wait()
	}
	b := s.pending
	if b == nil {
		b = &batch{buf: s.spareBuf, lens: s.spareLens, done: make(chan struct{})}
		s.spareBuf, s.spareLens = nil, nil
		s.pending = b
	}
	pos := len(b.lens)
	for i, p := range payloads {
		b.buf = record.AppendHeader(b.buf, uint32(len(p)), crcs[i])
		b.buf = append(b.buf, p...)
		b.lens = append(b.lens, uint32(len(p)))
	}
	s.mu.Unlock()
	s.work.Signal()
	return b, pos, nil
}

// acceptingLocked reports why the segment takes no appends, or nil.
// The caller holds s.mu.
func (s *Segment) acceptingLocked() error {
	switch {
	case s.state == stateClosed:
		return fmt.Errorf("segment: cannot append to %q: %w", s.path, ErrClosed)
	case s.state == stateSealed:
		return fmt.Errorf("segment: cannot append to %q: %w", s.path, ErrSealed)
	case s.broken != nil:
		return s.broken
	case s.damaged != nil:
		return s.damaged
	}
	return nil
}

// maxSpareBuffer is the largest batch buffer a segment keeps for reuse
// between group commits, so an idle segment holds little memory.
const maxSpareBuffer = 1 << 20

// flushLoop is the flusher goroutine: it commits pending batches until the
// segment is sealed or closed and nothing is pending.
func (s *Segment) flushLoop() {
	defer close(s.flusherDone)
	s.mu.Lock()
	for {
		for s.pending == nil && s.state == stateOpen {
			s.work.Wait()
		}
		b := s.pending
		if b == nil {
			s.mu.Unlock()
			return
		}
		s.pending = nil
		broken := s.broken
		s.mu.Unlock()
		s.room.Broadcast()

		if broken != nil {
			b.err = broken
		} else {
			s.commit(b)
		}
		buf, lens := b.buf, b.lens
		b.buf, b.lens = nil, nil
		close(b.done)
		// Let the appenders just woken queue their next records before the
		// next batch is cut, so batches stay large under closed-loop load.
		runtime.Gosched()

		s.mu.Lock()
		if cap(buf) <= maxSpareBuffer && s.spareBuf == nil {
			s.spareBuf, s.spareLens = buf[:0], lens[:0]
		}
	}
}

// commit writes and syncs one batch and publishes its records, or fails it
// and undoes its write. Only the flusher calls it.
func (s *Segment) commit(b *batch) {
	start := s.end
	var took time.Duration
	_, err := s.f.WriteAt(b.buf, start)
	if err == nil && !s.opts.NoSync {
		t0 := time.Now()
		err = s.f.Sync()
		took = time.Since(t0)
		if took > s.opts.SlowSync {
			s.log.Warn("segment: slow fsync", "duration", took, "records", len(b.lens), "bytes", len(b.buf), "err", err)
		}
	}
	if err != nil {
		b.err = fmt.Errorf("segment: cannot append %d records to %q at offset %d: %w", len(b.lens), s.path, start, err)
		s.rollback(start, err)
	} else {
		crc := record.UpdateCRC(s.crc, b.buf)
		s.idxMu.Lock()
		b.first = uint64(len(s.offsets))
		off := start
		for _, l := range b.lens {
			s.offsets = append(s.offsets, off)
			off += RecordHeaderSize + int64(l)
		}
		s.end = off
		s.crc = crc
		s.idxMu.Unlock()
	}
	if s.opts.OnFlush != nil {
		s.opts.OnFlush(FlushInfo{Path: s.path, Records: len(b.lens), Bytes: len(b.buf), Sync: took, Err: b.err})
	}
}

// rollback truncates the file back to its durable size end after a failed
// write or sync, and syncs the truncation so the failed records cannot
// reappear after a crash. If that fails too, the segment is broken.
func (s *Segment) rollback(end int64, cause error) {
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
		return nil, fmt.Errorf("segment: cannot read index %d of %q, count %d: %w", index, s.path, count, ErrOutOfRange)
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
		return nil, fmt.Errorf("segment: cannot read index %d of %q: %w", index, s.path, ErrClosed)
	}
	_, err := s.f.ReadAt(buf, start)
	s.fileMu.RUnlock()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: file ends before offset %d: %w", ErrCorrupt, stop, err)
		}
		return nil, fmt.Errorf("segment: cannot read %d records from index %d of %q at offset %d: %w", n, index, s.path, start, err)
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
			return nil, fmt.Errorf("segment: cannot read index %d of %q at offset %d: %w", i, s.path, offsets[i], err)
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
// now), waits until every append already queued has been committed or
// failed, and returns the final Count, Bytes and CRC. Reads keep working.
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
		return 0, 0, 0, fmt.Errorf("segment: cannot seal %q: %w", s.path, ErrClosed)
	}
	if s.damaged != nil {
		s.mu.Unlock()
		count, bytes, crc = s.totals()
		return count, bytes, crc, fmt.Errorf("segment: cannot seal: %w", s.damaged)
	}
	s.state = stateSealed
	broken := s.broken
	s.mu.Unlock()
	s.work.Broadcast()
	s.room.Broadcast()
	if s.flusherDone != nil {
		<-s.flusherDone
	}
	count, bytes, crc = s.totals()
	if broken == nil {
		s.mu.Lock()
		broken = s.broken
		s.mu.Unlock()
	}
	return count, bytes, crc, broken
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

// Close commits or fails every append already queued, then closes the
// file. Appends and reads fail with ErrClosed afterwards. Close is
// idempotent; later calls return nil.
func (s *Segment) Close() error {
	s.mu.Lock()
	if s.state == stateClosed {
		s.mu.Unlock()
		return nil
	}
	s.state = stateClosed
	s.mu.Unlock()
	s.work.Broadcast()
	s.room.Broadcast()
	if s.flusherDone != nil {
		<-s.flusherDone
	}
	s.fileMu.Lock()
	s.fileClosed = true
	err := s.f.Close()
	s.fileMu.Unlock()
	if s.onClose != nil {
		s.onClose()
	}
	if err != nil {
		return fmt.Errorf("segment: cannot close %q: %w", s.path, err)
	}
	return nil
}
