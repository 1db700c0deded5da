// Package topicname holds the one rule for topic names, shared by the
// metadata layer (meta), the segment store (node/segment, which makes each
// topic a directory) and the request parser (wire). It imports nothing of
// floe, so any package may use it.
package topicname

import (
	"errors"
	"fmt"
)

// ErrInvalid: a topic name breaks the rule of Validate. Its text is the
// reason clients read in an ERR reply or an HTTP 400, so it carries no
// package prefix.
var ErrInvalid = errors.New("invalid topic name")

// MaxLen is the longest topic name accepted, in bytes.
const MaxLen = 249

// Validate reports whether name is a valid topic name: 1 to MaxLen
// characters of [A-Za-z0-9._-], and neither "." nor "..". Such a name is
// safe as a single path element and as part of an object key. The error
// wraps ErrInvalid and says what is wrong.
func Validate(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalid)
	}
	if len(name) > MaxLen {
		return fmt.Errorf("%w: %d characters, at most %d", ErrInvalid, len(name), MaxLen)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%w: %q", ErrInvalid, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("%w: %q: character %q at %d (allowed: A-Z a-z 0-9 . _ -)", ErrInvalid, name, c, i)
		}
	}
	return nil
}
