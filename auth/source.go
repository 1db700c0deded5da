package auth

import (
	"sync"
	"sync/atomic"
)

// Source is a token file and the table last parsed from it. Current is safe to call
// from any number of goroutines at once, also during Reload, and never blocks.
type Source struct {
	path    string
	current atomic.Pointer[Table]
	reload  sync.Mutex // serialises Reload: a slow older read never replaces a newer one
}

// Load parses the token file at path and returns a Source holding it. The caller
// logs a warning when Current().Len() is 0: such a table refuses every token.
func Load(path string) (*Source, error) {
	t, err := ParseFile(path)
	if err != nil {
		return nil, err
	}
	s := &Source{path: path}
	s.current.Store(t)
	return s, nil
}

// Path returns the token file's path.
func (s *Source) Path() string { return s.path }

// Current returns the table in force: the one parsed by Load or by the last
// successful Reload. Check every request against it (Table.Authorize), not against a
// table or a Principal kept from an earlier request.
func (s *Source) Current() *Table { return s.current.Load() }

// Reload parses the token file again and makes it current. On any error (the file
// is gone, unreadable, or has a bad line) the table in force stays, so a typo in the
// file neither locks everyone out nor lets anyone in, and the error is returned for
// the caller to log. Requests that read Current after Reload returns nil are checked
// against the new table, also on connections authenticated before it.
func (s *Source) Reload() error {
	s.reload.Lock()
	defer s.reload.Unlock()
	t, err := ParseFile(s.path)
	if err != nil {
		return err
	}
	s.current.Store(t)
	return nil
}
