package auth

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"

	"floe/topicname"
)

// maxLine is the longest token file line Parse reads, in bytes.
const maxLine = 64 << 10

// digest is the SHA-256 digest of a token: all the table and a connection keep of it.
type digest [sha256.Size]byte

// id is the digest's name in logs and replies: its first 4 bytes in hex,
// "sha256:ab12cd34…". It names a line of the token file to an operator who has the
// file, and is no help in guessing the token.
func (d digest) id() string { return "sha256:" + hex.EncodeToString(d[:4]) + "…" }

// grant is one line's rights: role on the topics whose names start with prefix, or
// on every topic and the cluster when prefix is "".
type grant struct {
	role   Role
	prefix string
}

// Table is a parsed token file: for each token digest, the union of the grants of
// its lines. A Table is never changed after Parse, so any number of goroutines may
// use it at once.
type Table struct {
	tokens map[digest][]grant
}

// ParseFile parses the token file at path (see Parse).
func ParseFile(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot load token file %q: %w", path, err)
	}
	defer f.Close()
	t, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("cannot load token file %q: %w", path, err)
	}
	return t, nil
}

// Parse parses a token file (see the package doc for the format). It is strict: the
// first line that breaks the format fails the whole file, with an error that wraps
// ErrBadFile and names the line number and what is wrong, never the line's content
// (an operator may have pasted a raw token on it). An empty file, or one of comments
// only, is a Table that refuses every token.
func Parse(r io.Reader) (*Table, error) {
	t := &Table{tokens: map[digest][]grant{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff") // a byte order mark some editors write
		}
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		d, g, problem := parseLine(fields)
		if problem != "" {
			return nil, fmt.Errorf("%w: line %d: %s", ErrBadFile, n, problem)
		}
		t.add(d, g)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%w: line %d: longer than %d bytes", ErrBadFile, n+1, maxLine)
		}
		return nil, err
	}
	return t, nil
}

// parseLine parses the fields of one line, or says what is wrong with them without
// quoting any of them.
func parseLine(fields []string) (digest, grant, string) {
	var d digest
	if len(fields) > 3 {
		return d, grant{}, fmt.Sprintf("%d fields, want sha256:<64 hex digits> <role> [<topic prefix>]", len(fields))
	}
	h, ok := strings.CutPrefix(fields[0], "sha256:")
	if !ok {
		return d, grant{}, "expected sha256:<64 hex digits>"
	}
	if len(h) != 2*sha256.Size {
		return d, grant{}, fmt.Sprintf("sha256: digest of %d characters, want 64 hex digits", len(h))
	}
	if _, err := hex.Decode(d[:], []byte(h)); err != nil {
		return d, grant{}, "sha256: digest holds a character that is not a hex digit"
	}
	if len(fields) < 2 {
		return d, grant{}, "no role after the digest (want read, write or admin)"
	}
	role, ok := lookupRole(fields[1])
	if !ok {
		return d, grant{}, "unknown role (want read, write or admin)"
	}
	g := grant{role: role}
	if len(fields) == 3 {
		if !validPrefix(fields[2]) {
			return d, grant{}, fmt.Sprintf("invalid topic prefix (1 to %d characters of A-Z a-z 0-9 . _ -)", topicname.MaxLen)
		}
		g.prefix = fields[2]
	}
	return d, g, ""
}

// validPrefix reports whether p is a prefix of some valid topic name (see
// topicname.Validate): a non-empty string of topic name characters, at most
// topicname.MaxLen long. Only "." and "..", themselves not topic names, need the
// exception: they begin the valid names "..." and "..a".
func validPrefix(p string) bool {
	if p == "." || p == ".." {
		return true
	}
	return topicname.Validate(p) == nil
}

// add records g for d, once.
func (t *Table) add(d digest, g grant) {
	if !slices.Contains(t.tokens[d], g) {
		t.tokens[d] = append(t.tokens[d], g)
	}
}

// Line returns the token file line that grants role to token, on the topics whose
// names start with prefix, or on everything when prefix is "": "sha256:<hex> <role>
// [<prefix>]". The role must be Read, Write or Admin (ErrBadRole) and a non-empty
// prefix a prefix of some valid topic name (ErrBadPrefix). floe auth hash prints it.
func Line(token string, role Role, prefix string) (string, error) {
	if role < Read || role > Admin {
		return "", fmt.Errorf("%w: %v", ErrBadRole, role)
	}
	if prefix != "" && !validPrefix(prefix) {
		return "", fmt.Errorf("%w %q: want 1 to %d characters of A-Z a-z 0-9 . _ -", ErrBadPrefix, prefix, topicname.MaxLen)
	}
	return formatLine(sha256.Sum256([]byte(token)), grant{role, prefix}), nil
}

func formatLine(d digest, g grant) string {
	s := "sha256:" + hex.EncodeToString(d[:]) + " " + g.role.String()
	if g.prefix != "" {
		s += " " + g.prefix
	}
	return s
}

// Lines returns the table as token file lines, one per grant, in a canonical form
// (lower-case hex, single spaces, no comments) and sorted: Parse of the lines joined
// by newlines is a table with the same grants.
func (t *Table) Lines() []string {
	var out []string
	for d, gs := range t.tokens {
		for _, g := range gs {
			out = append(out, formatLine(d, g))
		}
	}
	slices.Sort(out)
	return out
}

// Len returns the number of distinct tokens the table knows. 0: it refuses everyone.
func (t *Table) Len() int { return len(t.tokens) }

// Authenticate hashes token with SHA-256 and returns the principal it names, and
// false for a token no line names.
//
// The lookup is an ordinary map lookup, not a constant-time comparison, and leaks
// nothing of the token: hashing takes a time that depends on the token's length
// only, and what the lookup's timing could reveal is about the digest, which the
// caller does not control (choosing a token that hashes to a wanted digest prefix is
// the preimage problem SHA-256 is built to resist), so timing a guess tells the
// attacker nothing about any token in the file.
func (t *Table) Authenticate(token string) (Principal, bool) {
	return t.lookup(sha256.Sum256([]byte(token)))
}

func (t *Table) lookup(d digest) (Principal, bool) {
	gs, ok := t.tokens[d]
	if !ok {
		return Principal{}, false
	}
	return Principal{d: d, grants: gs}, true
}

// Identify returns the principal of the token c was made from, or a 401 *Refusal:
// "no token" for the zero Credential, "unknown token" for a token the table does not
// name (any more: the file may have changed since c was made).
func (t *Table) Identify(c Credential) (Principal, error) {
	if !c.ok {
		return Principal{}, &Refusal{Status: http.StatusUnauthorized, Reason: "no token"}
	}
	p, ok := t.lookup(c.d)
	if !ok {
		return Principal{}, &Refusal{Status: http.StatusUnauthorized, Reason: "unknown token"}
	}
	return p, nil
}

// Authorize is the check of one request: nil when op needs no role; otherwise
// Identify, then Principal.Check. Call it on Source.Current() for every request, so
// that a token removed from the file is refused from the next reload on. The
// principal is returned (when known) also with a 403, to name it in a log line.
func (t *Table) Authorize(c Credential, op Op, topic string) (Principal, error) {
	if op.Need == None {
		p, _ := t.Identify(c)
		return p, nil
	}
	p, err := t.Identify(c)
	if err != nil {
		return p, err
	}
	return p, p.Check(op, topic)
}
