package logstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
)

var (
	// ErrKeyNotFound is returned, never wrapped, by Get and GetUint64 for a key that was
	// never set. Its message is exactly "not found" and must stay so: hashicorp/raft
	// v1.8.0 recognises a missing stable key only by err.Error() == "not found" (see
	// doc.go), so it cannot carry the package prefix the other errors have.
	ErrKeyNotFound = errors.New("not found")

	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("logstore: closed")

	// ErrCorrupt wraps every error about bytes read back from Pebble that do not decode:
	// an entry, a log key, a uint64 stable value, the format marker.
	ErrCorrupt = errors.New("logstore: corrupt")

	// ErrInvalidLog is returned by StoreLog and StoreLogs for a nil entry or index 0
	// (raft numbers entries from 1, and 0 means "no entries" to FirstIndex and LastIndex).
	ErrInvalidLog = errors.New("logstore: invalid log entry")
)

// Defaults for Options; see doc.go for why they are small.
const (
	DefaultMemTableSize = 4 << 20
	DefaultCacheSize    = 4 << 20

	maxOpenFiles = 256
	// flushDelayDeleteRange bounds how long a range tombstone (log compaction) stays
	// in the memtable before Pebble flushes it so the space can be reclaimed.
	flushDelayDeleteRange = 10 * time.Second
	// diskSlowThreshold is how long a write or sync may take before it is logged.
	diskSlowThreshold = time.Second
)

// Options configures a Store. The zero value is ready to use.
type Options struct {
	// Logger receives Pebble's messages (routine ones at debug level) and the
	// Store's own. Nil means slog.Default().
	Logger *slog.Logger
	// MemTableSize is the size of one Pebble memtable; at most two are in memory
	// before writes stall. Zero means DefaultMemTableSize.
	MemTableSize uint64
	// CacheSize is the size of Pebble's block cache. Zero means DefaultCacheSize.
	CacheSize int64
	// FS is the file system Pebble uses. Nil means the operating system's; tests
	// pass vfs.NewCrashableMem() to check what survives a crash.
	FS vfs.FS
}

// Store keeps the Raft log and stable state of one node in a Pebble database.
//
// All methods are safe for concurrent use. Every write is fsynced before it returns
// (see doc.go); after Close every method returns ErrClosed.
type Store struct {
	log *slog.Logger

	// mu is held shared by every operation and exclusively by Close, so Close waits
	// for operations in flight and none reaches a closed Pebble (which panics).
	mu       sync.RWMutex
	db       *pebble.DB // nil once closed
	fsCloser io.Closer  // stops the disk-health checker
}

var (
	_ raft.LogStore    = (*Store)(nil)
	_ raft.StableStore = (*Store)(nil)
	_ io.Closer        = (*Store)(nil)
)

// Open opens the Store in dir, creating it if needed. Only one Store may have dir
// open at a time (Pebble holds a lock file). A directory that holds some other Pebble
// database is refused.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MemTableSize == 0 {
		opts.MemTableSize = DefaultMemTableSize
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	log := opts.Logger.With("component", "logstore", "dir", dir)
	plog := pebbleLogger{log: log.With("component", "pebble")}
	listener := eventListener(log, plog)

	fs, fsCloser := vfs.WithDiskHealthChecks(opts.FS, diskSlowThreshold, nil, listener.DiskSlow)
	po := &pebble.Options{
		FS:                          fs,
		Logger:                      plog,
		EventListener:               listener,
		MemTableSize:                opts.MemTableSize,
		MemTableStopWritesThreshold: 2,
		CacheSize:                   opts.CacheSize,
		MaxOpenFiles:                maxOpenFiles,
		FlushDelayDeleteRange:       flushDelayDeleteRange,
		FormatMajorVersion:          pebble.FormatNewest,
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		fsCloser.Close()
		return nil, fmt.Errorf("cannot open raft log store at %s: %w", dir, err)
	}
	s := &Store{log: log, db: db, fsCloser: fsCloser}
	if err := s.checkFormat(); err != nil {
		s.Close()
		return nil, fmt.Errorf("cannot open raft log store at %s: %w", dir, err)
	}
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	log.Debug("opened raft log store", "first_index", first, "last_index", last)
	return s, nil
}

// checkFormat writes the format marker into a new database and checks it in an
// existing one.
func (s *Store) checkFormat() error {
	v, closer, err := s.db.Get(formatKey)
	if errors.Is(err, pebble.ErrNotFound) {
		it, err := s.db.NewIter(nil)
		if err != nil {
			return err
		}
		nonEmpty := it.First()
		var key []byte
		if nonEmpty {
			key = append(key, it.Key()...)
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return err
		}
		if nonEmpty {
			return fmt.Errorf("%w: database has key %q but no format marker: not a raft log store", ErrCorrupt, key)
		}
		if err := s.db.Set(formatKey, formatValue, pebble.Sync); err != nil {
			return fmt.Errorf("cannot write format marker: %w", err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	ok := bytes.Equal(v, formatValue)
	got := string(v) // copies, before the closer releases v
	if err := closer.Close(); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: format marker %q, want %q", ErrCorrupt, got, formatValue)
	}
	return nil
}

// Close flushes nothing (every write is already durable) and closes Pebble. It waits
// for operations in flight. Close is idempotent: later calls return nil.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	s.fsCloser.Close()
	if err != nil {
		return fmt.Errorf("cannot close raft log store: %w", err)
	}
	return nil
}

// acquire returns the open database with s.mu held shared; the caller must call
// s.mu.RUnlock when done, and only if err is nil.
func (s *Store) acquire() (*pebble.DB, error) {
	s.mu.RLock()
	if s.db == nil {
		s.mu.RUnlock()
		return nil, ErrClosed
	}
	return s.db, nil
}

// FirstIndex returns the lowest index in the log, or 0 if the log is empty.
func (s *Store) FirstIndex() (uint64, error) {
	return s.edgeIndex(true)
}

// LastIndex returns the highest index in the log, or 0 if the log is empty.
func (s *Store) LastIndex() (uint64, error) {
	return s.edgeIndex(false)
}

func (s *Store) edgeIndex(first bool) (idx uint64, err error) {
	db, err := s.acquire()
	if err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	// The bounds keep the iterator inside the log's keys: it neither sees stable
	// keys nor walks past the log's range tombstones into them.
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: logLower, UpperBound: logUpper})
	if err != nil {
		return 0, fmt.Errorf("cannot read raft log bounds: %w", err)
	}
	defer func() {
		if cerr := it.Close(); cerr != nil && err == nil {
			idx, err = 0, fmt.Errorf("cannot read raft log bounds: %w", cerr)
		}
	}()
	var ok bool
	if first {
		ok = it.First()
	} else {
		ok = it.Last()
	}
	if !ok {
		if err := it.Error(); err != nil {
			return 0, fmt.Errorf("cannot read raft log bounds: %w", err)
		}
		return 0, nil
	}
	// decodeLogKey reads the key before Close releases it.
	return decodeLogKey(it.Key())
}

// GetLog reads the entry at index into log, overwriting every field. It returns
// raft.ErrLogNotFound itself (raft compares by identity) if there is no entry at
// index, including when it was deleted or never written. The entry's Data and
// Extensions are the caller's own: they share no memory with Pebble.
func (s *Store) GetLog(index uint64, log *raft.Log) error {
	db, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	var key [logKeyLen]byte
	encodeLogKey(key[:], index)
	v, closer, err := db.Get(key[:])
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("cannot read raft log entry %d: %w", index, err)
	}
	// v is valid only until closer.Close: copy it, and decode from the copy.
	buf := append([]byte(nil), v...)
	if err := closer.Close(); err != nil {
		return fmt.Errorf("cannot read raft log entry %d: %w", index, err)
	}
	var l raft.Log
	if err := decodeLog(buf, &l); err != nil {
		return fmt.Errorf("cannot decode raft log entry %d: %w", index, err)
	}
	if l.Index != index {
		return fmt.Errorf("%w: entry under key %d holds index %d", ErrCorrupt, index, l.Index)
	}
	*log = l
	return nil
}

// StoreLog stores one entry, replacing any entry at its index, and fsyncs.
func (s *Store) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores the entries in one Pebble batch committed with Sync: after a crash
// either all of them are there or none. Entries replace any at the same index. The
// indexes need not follow the current last index (raft may leave a gap after
// installing a snapshot). A nil entry or index 0 fails the whole call with
// ErrInvalidLog and stores nothing.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	size := 0
	for i, l := range logs {
		if l == nil {
			return fmt.Errorf("%w: entry %d of %d is nil", ErrInvalidLog, i, len(logs))
		}
		if l.Index == 0 {
			return fmt.Errorf("%w: entry %d of %d has index 0", ErrInvalidLog, i, len(logs))
		}
		// Rough batch overhead per record: kind byte and two length varints.
		size += logKeyLen + encodedLen(l) + 12
	}
	db, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	b := db.NewBatchWithSize(size)
	defer b.Close()
	for _, l := range logs {
		// Encode straight into the batch's buffer; no intermediate copy.
		op := b.SetDeferred(logKeyLen, encodedLen(l))
		encodeLog(op.Value, l)
		encodeLogKey(op.Key, l.Index)
		if err := op.Finish(); err != nil {
			return fmt.Errorf("cannot batch raft log entry %d: %w", l.Index, err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("cannot store raft log entries %d..%d: %w", logs[0].Index, logs[len(logs)-1].Index, err)
	}
	return nil
}

// DeleteRange deletes the entries with indexes in [min, max], both inclusive, with
// one range tombstone committed with Sync. Absent indexes are ignored; min > max
// deletes nothing.
func (s *Store) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	db, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if err := db.DeleteRange(logKey(min), logRangeEnd(max), pebble.Sync); err != nil {
		return fmt.Errorf("cannot delete raft log entries %d..%d: %w", min, max, err)
	}
	return nil
}

// Set stores val under key, replacing any value, and fsyncs. A nil or empty val is
// stored as an empty value (Get returns it as a non-nil empty slice).
func (s *Store) Set(key, val []byte) error {
	db, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if err := db.Set(stableKey(key), val, pebble.Sync); err != nil {
		return fmt.Errorf("cannot set raft stable key %q: %w", key, err)
	}
	return nil
}

// Get returns a copy of the value stored under key by Set, or (nil, ErrKeyNotFound),
// never wrapped, if key was never set.
func (s *Store) Get(key []byte) ([]byte, error) {
	db, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	v, closer, err := db.Get(stableKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("cannot get raft stable key %q: %w", key, err)
	}
	out := make([]byte, len(v)) // non-nil even when empty; v dies with closer
	copy(out, v)
	if err := closer.Close(); err != nil {
		return nil, fmt.Errorf("cannot get raft stable key %q: %w", key, err)
	}
	return out, nil
}

// SetUint64 stores val under key as 8 big-endian bytes and fsyncs. It shares the key
// space of Set.
func (s *Store) SetUint64(key []byte, val uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], val)
	return s.Set(key, b[:])
}

// GetUint64 returns the value stored under key by SetUint64, or (0, ErrKeyNotFound),
// never wrapped, if key was never set. A value that is not 8 bytes long (one stored
// by Set) is an ErrCorrupt error.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: raft stable key %q holds %d bytes, want 8 for a uint64", ErrCorrupt, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
