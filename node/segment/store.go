package segment

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// fileExt ends the name of every segment file.
const fileExt = ".wal"

// idDigits is the width of the zero-padded segment id in a file name, enough
// for every uint64, so names sort like ids.
const idDigits = 20

// Store manages the segment files of one node under one directory:
//
//	<dir>/<topic>/<segment id, zero-padded to 20 digits>.wal
//
// It keeps at most one open Segment per file and hands the same *Segment to
// every caller. All methods are safe for concurrent use, but a caller must
// not Remove a segment while it opens the same segment.
type Store struct {
	dir  string
	fs   FS
	opts Options

	mu     sync.Mutex
	closed bool
	segs   map[segKey]*storeEntry
}

type segKey struct {
	topic string
	id    uint64
}

// storeEntry is an open segment, or one being opened: ready is closed once
// seg or err is set, so concurrent openers of one file wait for one
// recovery instead of holding the Store lock through it.
type storeEntry struct {
	ready chan struct{}
	seg   *Segment
	err   error
}

// OpenStore opens the store rooted at dir, creating dir if needed (and
// fsyncing its parent directory). It opens
// no segment: use List to see what is on disk. The Options are used for
// every segment it opens. The caller must Close the Store.
func OpenStore(dir string, opts Options) (*Store, error) {
	o := opts.withDefaults()
	if _, err := o.FS.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := o.FS.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("segment: cannot create store directory %q: %w", dir, err)
		}
		if err := o.FS.SyncDir(filepath.Dir(dir)); err != nil {
			return nil, fmt.Errorf("segment: cannot sync the parent of store directory %q: %w", dir, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("segment: cannot open store directory %q: %w", dir, err)
	}
	return &Store{dir: dir, fs: o.FS, opts: o, segs: make(map[segKey]*storeEntry)}, nil
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

// ValidateTopic checks a topic name against DESIGN section 2: 1 to 249
// characters of [A-Za-z0-9._-], and neither "." nor "..". The error wraps
// ErrInvalidTopic.
func ValidateTopic(topic string) error {
	if len(topic) == 0 || len(topic) > 249 {
		return fmt.Errorf("%w: %q: length %d, want 1 to 249", ErrInvalidTopic, topic, len(topic))
	}
	if topic == "." || topic == ".." {
		return fmt.Errorf("%w: %q", ErrInvalidTopic, topic)
	}
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q: character %q at %d, want [A-Za-z0-9._-]", ErrInvalidTopic, topic, c, i)
		}
	}
	return nil
}

// Create returns segment id of topic open for appending: the Segment
// already open, else the file on disk opened with Open (recovering it),
// else a new file (its topic directory and directory entries fsynced).
// A segment already open sealed is returned as it is.
func (st *Store) Create(topic string, id uint64) (*Segment, error) {
	return st.open(topic, id, true, false)
}

// Get returns segment id of topic if it is open in the store. It never
// touches the disk and never waits for a segment being opened.
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

// OpenExisting returns segment id of topic: the Segment already open (as it
// is, sealed or not), else the file on disk opened with OpenSealed if
// sealed, Open otherwise. If there is no such file the error wraps
// fs.ErrNotExist and nothing is created.
func (st *Store) OpenExisting(topic string, id uint64, sealed bool) (*Segment, error) {
	return st.open(topic, id, false, sealed)
}

func (st *Store) open(topic string, id uint64, create, sealed bool) (*Segment, error) {
	if err := ValidateTopic(topic); err != nil {
		return nil, fmt.Errorf("segment: cannot open segment %d: %w", id, err)
	}
	k := segKey{topic, id}
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil, fmt.Errorf("segment: cannot open segment %d of %q: store %q: %w", id, topic, st.dir, ErrClosed)
	}
	if e, ok := st.segs[k]; ok {
		st.mu.Unlock()
		<-e.ready
		return e.seg, e.err
	}
	e := &storeEntry{ready: make(chan struct{})}
	st.segs[k] = e
	st.mu.Unlock()

	seg, err := st.openFile(k, create, sealed)
	if seg != nil {
		seg.onClose = func() { st.forget(k, seg) }
	}
	st.mu.Lock()
	if err == nil && st.closed {
		err = fmt.Errorf("segment: cannot open segment %d of %q: store %q: %w", id, topic, st.dir, ErrClosed)
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
			return nil, fmt.Errorf("segment: cannot open %q: %w", path, err)
		}
		if sealed {
			return OpenSealed(path, st.opts)
		}
		return Open(path, st.opts)
	}
	dir := filepath.Dir(path)
	if _, err := st.fs.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := st.fs.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("segment: cannot create topic directory %q: %w", dir, err)
		}
		if err := st.fs.SyncDir(st.dir); err != nil {
			return nil, fmt.Errorf("segment: cannot sync store directory %q: %w", st.dir, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("segment: cannot stat topic directory %q: %w", dir, err)
	}
	return Open(path, st.opts)
}

func (st *Store) checkOpen() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return fmt.Errorf("segment: store %q: %w", st.dir, ErrClosed)
	}
	return nil
}

// forget drops seg from the open set, if it is still the one there. Called
// by Segment.Close.
func (st *Store) forget(k segKey, seg *Segment) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if e, ok := st.segs[k]; ok && e.seg == seg {
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
		return nil, fmt.Errorf("segment: cannot list store %q: %w", st.dir, err)
	}
	for _, t := range topics {
		if !t.IsDir() || ValidateTopic(t.Name()) != nil {
			continue
		}
		files, err := st.fs.ReadDir(filepath.Join(st.dir, t.Name()))
		if err != nil {
			return nil, fmt.Errorf("segment: cannot list topic %q in %q: %w", t.Name(), st.dir, err)
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

// Remove closes segment id of topic if it is open and deletes its file,
// durably (the directory is fsynced). Removing a segment that does not
// exist is not an error. .broken copies are left for the operator.
func (st *Store) Remove(topic string, id uint64) error {
	if err := ValidateTopic(topic); err != nil {
		return fmt.Errorf("segment: cannot remove segment %d: %w", id, err)
	}
	st.mu.Lock()
	e, ok := st.segs[segKey{topic, id}]
	closed := st.closed
	st.mu.Unlock()
	if closed {
		return fmt.Errorf("segment: cannot remove segment %d of %q: store %q: %w", id, topic, st.dir, ErrClosed)
	}
	if ok {
		<-e.ready
		if e.seg != nil {
			if err := e.seg.Close(); err != nil {
				return err
			}
		}
	}
	path := st.Path(topic, id)
	if err := st.fs.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("segment: cannot remove %q: %w", path, err)
	}
	if err := st.fs.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("segment: cannot sync directory after removing %q: %w", path, err)
	}
	return nil
}

// Close closes every open segment (committing appends already queued) and
// the store; later calls to its methods fail with ErrClosed, except Close,
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
