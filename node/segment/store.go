package segment

import (
	"container/list"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"floe/topicname"
)

// fileExt ends the name of every segment file.
const fileExt = ".wal"

// idDigits is the width of the zero-padded segment id in a file name, enough
// for every uint64, so names sort like ids.
const idDigits = 20

// Store manages the segment files of one node under one directory:
//
//	<dir>/<topic key>/<segment id, zero-padded to 20 digits>.wal
//
// where the topic key names one incarnation of a topic (topicname.Key: the
// bare name for incarnation 0). Every "topic" argument below is such a key.
//
// It is the one owner of open segment files. It keeps at most one open
// Segment per file and hands the same *Segment to every caller, each time
// with a reference: Create and Acquire take one, and the caller gives it
// back with Release once it no longer uses the Segment. A Segment is never
// closed while a reference is held (only Store.Close does that), so a
// caller never sees ErrClosed because of another caller or of the bound:
//
//   - an unsealed segment stays open until Remove or Close;
//   - a sealed segment nobody holds is idle: the Store keeps at most
//     Options.MaxIdleSealed idle segments open and closes the least recently
//     released beyond that. Open sealed segments therefore number at most
//     MaxIdleSealed plus those held at the moment.
//
// All methods are safe for concurrent use.
type Store struct {
	dir  string
	fs   FS
	opts Options

	mu     sync.Mutex
	closed bool
	segs   map[segKey]*storeEntry
	idle   *list.List // of *storeEntry: sealed, open, unreferenced; most recently released first
}

type segKey struct {
	topic string
	id    uint64
}

// storeEntry is an open segment, or one being opened: ready is closed once
// seg or err is set, so concurrent openers of one file wait for one
// recovery instead of holding the Store lock through it. refs, idle and
// removed are guarded by Store.mu.
type storeEntry struct {
	key   segKey
	ready chan struct{}
	seg   *Segment
	err   error
	refs  int           // references handed out and not released
	idle  *list.Element // in Store.idle, or nil
	// removed: Remove deleted the file while references were held; the
	// segment is closed on the last Release.
	removed bool
}

// DefaultMaxIdleSealed is the default of Options.MaxIdleSealed.
const DefaultMaxIdleSealed = 8

// OpenStore opens the store rooted at dir, creating dir if needed (and
// fsyncing its parent directory). It opens
// no segment: use List to see what is on disk. The Options are used for
// every segment it opens. The caller must Close the Store.
func OpenStore(dir string, opts Options) (*Store, error) {
	o := opts.withDefaults()
	if _, err := o.FS.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := o.FS.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("cannot create store directory %q: %w", dir, err)
		}
		if err := o.FS.SyncDir(filepath.Dir(dir)); err != nil {
			return nil, fmt.Errorf("cannot sync the parent of store directory %q: %w", dir, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("cannot open store directory %q: %w", dir, err)
	}
	return &Store{dir: dir, fs: o.FS, opts: o, segs: make(map[segKey]*storeEntry), idle: list.New()}, nil
}

// Dir returns the directory of the store.
func (st *Store) Dir() string { return st.dir }

// Path returns the path of the file of segment id of topic (whether or not
// it exists).
func (st *Store) Path(topic string, id uint64) string {
	return filepath.Join(st.dir, topic, fileName(id))
}

func fileName(id uint64) string {
	return fmt.Sprintf("%0*d%s", idDigits, id, fileExt)
}

// parseFileName returns the segment id of a segment file name.
func parseFileName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, fileExt)
	if !ok || len(digits) != idDigits {
		return 0, false
	}
	id, err := strconv.ParseUint(digits, 10, 64)
	return id, err == nil
}

// Create returns segment id of topic open for appending, with a reference
// the caller must Release: the Segment already open, else the file on disk
// opened with Open (recovering it), else a new file (its topic directory
// and directory entries fsynced). A segment already open sealed is returned
// as it is.
func (st *Store) Create(topic string, id uint64) (*Segment, error) {
	return st.open(topic, id, true, false)
}

// Get returns segment id of topic if it is open in the store, without a
// reference: the Segment may be closed at any time, so the caller may only
// look at its totals (Count, Bytes, CRC, Sealed, Damaged), which stay valid
// after Close. Get never touches the disk and never waits for a segment
// being opened. To read records, use Acquire.
func (st *Store) Get(topic string, id uint64) (*Segment, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	e, ok := st.segs[segKey{topic, id}]
	if !ok {
		return nil, false
	}
	select {
	case <-e.ready:
		return e.seg, e.seg != nil
	default:
		return nil, false
	}
}

// Acquire returns segment id of topic with a reference the caller must
// Release: the Segment already open (as it is, sealed or not), else the
// file on disk opened with OpenSealed if sealed, Open otherwise. If there is
// no such file the error wraps fs.ErrNotExist and nothing is created. The
// Segment stays open, and readable, until the reference is released.
func (st *Store) Acquire(topic string, id uint64, sealed bool) (*Segment, error) {
	return st.open(topic, id, false, sealed)
}

// Release gives back a reference taken by Create or Acquire. The caller
// must not use seg afterwards. Releasing the last reference of a removed
// segment closes it; of a sealed one makes it idle, and may close the least
// recently released idle segments beyond Options.MaxIdleSealed. Releasing
// more references than were taken panics.
func (st *Store) Release(seg *Segment) {
	e := seg.owner
	if e == nil {
		panic(fmt.Sprintf("segment: Release of %q, which no Store opened", seg.path))
	}
	var toClose []*Segment
	st.mu.Lock()
	if e.refs <= 0 {
		st.mu.Unlock()
		panic(fmt.Sprintf("segment: Release of %q without a reference", seg.path))
	}
	e.refs--
	switch {
	case e.refs > 0:
	case e.removed:
		toClose = append(toClose, seg)
	case st.closed: // Close closed it
	case seg.Sealed():
		e.idle = st.idle.PushFront(e)
		for st.idle.Len() > st.opts.MaxIdleSealed {
			old := st.idle.Remove(st.idle.Back()).(*storeEntry)
			old.idle = nil
			delete(st.segs, old.key)
			toClose = append(toClose, old.seg)
		}
	}
	st.mu.Unlock()
	for _, s := range toClose {
		if err := s.Close(); err != nil {
			st.opts.Logger.Warn("segment: cannot close an idle segment", "err", err)
		}
	}
}

// Exists reports whether the file of segment id of topic exists, without
// opening it.
func (st *Store) Exists(topic string, id uint64) (bool, error) {
	if err := topicname.ValidateKey(topic); err != nil {
		return false, fmt.Errorf("cannot look for segment %d: %w", id, err)
	}
	path := st.Path(topic, id)
	_, err := st.fs.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cannot look for %q: %w", path, err)
	}
	return true, nil
}

// OpenIdle returns how many sealed segments are open with no reference
// held (at most Options.MaxIdleSealed) and how many segments are open in
// all.
func (st *Store) OpenIdle() (idle, open int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.idle.Len(), len(st.segs)
}

// Damaged returns the open segments whose Damaged error is set, as
// "<topic>/<id>", in no particular order.
func (st *Store) Damaged() []string {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []string
	for k, e := range st.segs {
		select {
		case <-e.ready:
			if e.seg != nil && e.seg.Damaged() != nil {
				out = append(out, fmt.Sprintf("%s/%d", k.topic, k.id))
			}
		default:
		}
	}
	return out
}

func (st *Store) open(topic string, id uint64, create, sealed bool) (*Segment, error) {
	if err := topicname.ValidateKey(topic); err != nil {
		return nil, fmt.Errorf("cannot open segment %d: %w", id, err)
	}
	k := segKey{topic, id}
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil, fmt.Errorf("cannot open segment %d of %q: store %q: %w", id, topic, st.dir, ErrClosed)
	}
	if e, ok := st.segs[k]; ok {
		// The reference is taken before the open completes, so the segment
		// cannot become idle and be closed in between.
		e.refs++
		if e.idle != nil {
			st.idle.Remove(e.idle)
			e.idle = nil
		}
		st.mu.Unlock()
		<-e.ready
		return e.seg, e.err
	}
	e := &storeEntry{key: k, ready: make(chan struct{}), refs: 1}
	st.segs[k] = e
	st.mu.Unlock()

	seg, err := st.openFile(k, create, sealed)
	if seg != nil {
		seg.owner = e
		seg.onClose = func() { st.forget(k, seg) }
	}
	st.mu.Lock()
	if err == nil && st.closed {
		err = fmt.Errorf("cannot open segment %d of %q: store %q: %w", id, topic, st.dir, ErrClosed)
	}
	if err != nil {
		delete(st.segs, k)
	}
	e.seg, e.err = seg, err
	if err != nil {
		e.seg = nil
	}
	close(e.ready)
	st.mu.Unlock()
	if err != nil && seg != nil {
		_ = seg.Close()
		seg = nil
	}
	return seg, err
}

func (st *Store) openFile(k segKey, create, sealed bool) (*Segment, error) {
	path := st.Path(k.topic, k.id)
	if !create {
		if _, err := st.fs.Stat(path); err != nil {
			return nil, fmt.Errorf("cannot open %q: %w", path, err)
		}
		if sealed {
			return OpenSealed(path, st.opts)
		}
		return Open(path, st.opts)
	}
	dir := filepath.Dir(path)
	if _, err := st.fs.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := st.fs.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("cannot create topic directory %q: %w", dir, err)
		}
		if err := st.fs.SyncDir(st.dir); err != nil {
			return nil, fmt.Errorf("cannot sync store directory %q: %w", st.dir, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("cannot stat topic directory %q: %w", dir, err)
	}
	return Open(path, st.opts)
}

func (st *Store) checkOpen() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return fmt.Errorf("store %q: %w", st.dir, ErrClosed)
	}
	return nil
}

// forget drops seg from the open set, if it is still the one there. Called
// by Segment.Close.
func (st *Store) forget(k segKey, seg *Segment) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if e, ok := st.segs[k]; ok && e.seg == seg {
		if e.idle != nil {
			st.idle.Remove(e.idle)
			e.idle = nil
		}
		delete(st.segs, k)
	}
}

// List returns the segment ids on disk, by topic, each list in ascending
// order. Files that are not segment files (such as .broken copies) and
// directories that are not topic names are ignored; an empty or missing
// store gives an empty map.
func (st *Store) List() (map[string][]uint64, error) {
	if err := st.checkOpen(); err != nil {
		return nil, err
	}
	out := make(map[string][]uint64)
	topics, err := st.fs.ReadDir(st.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot list store %q: %w", st.dir, err)
	}
	for _, t := range topics {
		if !t.IsDir() || topicname.ValidateKey(t.Name()) != nil {
			continue
		}
		files, err := st.fs.ReadDir(filepath.Join(st.dir, t.Name()))
		if err != nil {
			return nil, fmt.Errorf("cannot list topic %q in %q: %w", t.Name(), st.dir, err)
		}
		var ids []uint64
		for _, f := range files {
			if id, ok := parseFileName(f.Name()); ok && f.Type().IsRegular() {
				ids = append(ids, id)
			}
		}
		if len(ids) > 0 {
			slices.Sort(ids)
			out[t.Name()] = ids
		}
	}
	return out, nil
}

// Remove deletes the file of segment id of topic, durably (the directory is
// fsynced), and drops the segment from the store. If no reference to it is
// held it is closed first; otherwise it is sealed (appends already queued
// are committed to the file, later ones fail with ErrSealed), its holders
// keep reading the deleted file, and it is closed on the last Release. A
// later Create or Acquire of the same id finds no file; a caller must not
// Remove a segment while it opens the same segment. Removing a segment that
// does not exist is not an error. .broken copies are left for the operator.
func (st *Store) Remove(topic string, id uint64) error {
	if err := topicname.ValidateKey(topic); err != nil {
		return fmt.Errorf("cannot remove segment %d: %w", id, err)
	}
	k := segKey{topic, id}
	for {
		st.mu.Lock()
		if st.closed {
			st.mu.Unlock()
			return fmt.Errorf("cannot remove segment %d of %q: store %q: %w", id, topic, st.dir, ErrClosed)
		}
		e, ok := st.segs[k]
		if !ok {
			st.mu.Unlock()
			break
		}
		select {
		case <-e.ready:
		default:
			st.mu.Unlock()
			<-e.ready // being opened: wait, then look again
			continue
		}
		delete(st.segs, k)
		if e.idle != nil {
			st.idle.Remove(e.idle)
			e.idle = nil
		}
		held := e.refs > 0
		e.removed = held
		st.mu.Unlock()
		if e.seg == nil {
			break
		}
		if held {
			if _, _, _, err := e.seg.Seal(); err != nil && !errors.Is(err, ErrClosed) {
				st.opts.Logger.Warn("segment: removing a segment that could not be sealed", "path", e.seg.path, "err", err)
			}
		} else if err := e.seg.Close(); err != nil {
			return err
		}
		break
	}
	path := st.Path(topic, id)
	if err := st.fs.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("cannot remove %q: %w", path, err)
	}
	if err := st.fs.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("cannot sync directory after removing %q: %w", path, err)
	}
	return nil
}

// Keys returns the topic keys that have a directory in the store, segment
// files or not, sorted; directories whose names are not topic keys are
// ignored.
func (st *Store) Keys() ([]string, error) {
	if err := st.checkOpen(); err != nil {
		return nil, err
	}
	entries, err := st.fs.ReadDir(st.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot list store %q: %w", st.dir, err)
	}
	var keys []string
	for _, e := range entries {
		if e.IsDir() && topicname.ValidateKey(e.Name()) == nil {
			keys = append(keys, e.Name())
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// Purge deletes the directory of topic key with everything in it, durably:
// every segment (each as Remove does: a held one is sealed, and closed on its
// last Release), the .broken copies, and the directory itself. Segments of key
// must not be opened meanwhile. Purging a key that has no directory is not an
// error.
func (st *Store) Purge(key string) error {
	if err := topicname.ValidateKey(key); err != nil {
		return fmt.Errorf("cannot purge: %w", err)
	}
	dir := filepath.Join(st.dir, key)
	files, err := st.fs.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot list %q: %w", dir, err)
	}
	for _, f := range files {
		if id, ok := parseFileName(f.Name()); ok {
			if err := st.Remove(key, id); err != nil {
				return err
			}
			continue
		}
		if err := st.fs.Remove(filepath.Join(dir, f.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cannot remove %q: %w", filepath.Join(dir, f.Name()), err)
		}
	}
	if err := st.fs.SyncDir(dir); err != nil {
		return fmt.Errorf("cannot sync %q: %w", dir, err)
	}
	if err := st.fs.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot remove %q: %w", dir, err)
	}
	if err := st.fs.SyncDir(st.dir); err != nil {
		return fmt.Errorf("cannot sync %q: %w", st.dir, err)
	}
	return nil
}

// Close closes every open segment, held or not (committing appends already
// queued), and the store; later calls to its methods fail with ErrClosed, except Close,
// which returns nil.
func (st *Store) Close() error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil
	}
	st.closed = true
	entries := make([]*storeEntry, 0, len(st.segs))
	for _, e := range st.segs {
		entries = append(entries, e)
	}
	clear(st.segs)
	st.idle.Init()
	st.mu.Unlock()
	var errs []error
	for _, e := range entries {
		<-e.ready
		if e.seg != nil {
			errs = append(errs, e.seg.Close())
		}
	}
	return errors.Join(errs...)
}
