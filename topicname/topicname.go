// Package topicname holds the one rule for topic names, shared by the
// metadata layer (meta), the segment store (node/segment, which makes each
// topic a directory) and the request parser (wire). It imports nothing of
// floe, so any package may use it.
package topicname

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
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

// A topic's key names one incarnation of it: the topic created under a name,
// as opposed to another topic created later under the same name after the
// first was deleted. Its form is "<name>@<id>", where id is the incarnation id
// the metadata layer gave the topic at its creation (1, 2, 3, ... across the
// cluster), or the bare name for incarnation 0: the topics created before
// incarnation ids existed, whose directories and objects are named by the
// bare name. '@' is not a name character, so a key never reads as another
// topic's name nor as another incarnation's key. Keys name every local
// directory and archive object of a topic and are what nodes send one another,
// so nothing of a deleted topic can be taken for the one re-created after it.

// KeySep separates a topic's name from its incarnation id in its key.
const KeySep = '@'

// MaxKeyLen is the longest key, in bytes: a key is one path element of a directory
// and of object keys (tombstones included), and file systems (a file:// archive,
// MinIO's disks, the data dir) take at most 255 bytes per element. A name of MaxLen
// characters fits with ids up to 99999; a topic whose key would be longer is not
// created (the metadata layer refuses it).
const MaxKeyLen = 255

// Key returns the key of incarnation id of topic name (name itself for 0).
func Key(name string, id uint64) string {
	if id == 0 {
		return name
	}
	return name + string(KeySep) + strconv.FormatUint(id, 10)
}

// SplitKey is the inverse of Key: the name and incarnation id of a key, or
// an error wrapping ErrInvalid when key is not one Key builds from a valid
// name (a leading zero or an id of 0 included, so each incarnation has one
// key).
func SplitKey(key string) (name string, id uint64, err error) {
	if len(key) > MaxKeyLen {
		return "", 0, fmt.Errorf("%w: key of %d bytes, at most %d", ErrInvalid, len(key), MaxKeyLen)
	}
	name, digits, found := strings.Cut(key, string(KeySep))
	if err := Validate(name); err != nil {
		return "", 0, err
	}
	if !found {
		return name, 0, nil
	}
	id, perr := strconv.ParseUint(digits, 10, 64)
	if perr != nil || id == 0 || digits[0] == '0' {
		return "", 0, fmt.Errorf("%w: %q: the incarnation after %q is not a positive number", ErrInvalid, key, string(KeySep))
	}
	return name, id, nil
}

// ValidateKey reports whether key is a valid topic key (SplitKey).
func ValidateKey(key string) error {
	_, _, err := SplitKey(key)
	return err
}

// NameOf returns the name part of a key (the key itself if it holds no
// KeySep). It does not validate.
func NameOf(key string) string {
	name, _, _ := strings.Cut(key, string(KeySep))
	return name
}
