package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"floe/topicname"
)

// hashOf returns the token file digest field of token.
func hashOf(token string) string {
	d := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(d[:])
}

func mustParse(t *testing.T, file string) *Table {
	t.Helper()
	tab, err := Parse(strings.NewReader(file))
	if err != nil {
		t.Fatalf("Parse(%q): %v", file, err)
	}
	return tab
}

// TestParse: files that parse, and the canonical lines of the table each gives.
func TestParse(t *testing.T) {
	a, b := hashOf("token-a"), hashOf("token-b")
	for _, tc := range []struct {
		name string
		file string
		want []string // Lines()
	}{
		{"empty file", "", nil},
		{"comments and blank lines only", "# tokens\n\n   \n\t# more\n", nil},
		{"one line", a + " read\n", []string{a + " read"}},
		{"no final newline", a + " write", []string{a + " write"}},
		{"prefix", a + " admin orders.\n", []string{a + " admin orders."}},
		{"upper-case hex is normalised", "sha256:" + strings.ToUpper(a[len("sha256:"):]) + " read", []string{a + " read"}},
		{"tabs, extra spaces, CRLF", "  " + a + "\t\twrite   logs \r\n", []string{a + " write logs"}},
		{"trailing comment", a + " read # dashboards\n", []string{a + " read"}},
		{"comment glued to the last field", a + " read#dashboards\n", []string{a + " read"}},
		{"byte order mark", "\ufeff" + a + " read\n", []string{a + " read"}},
		{"prefix . and ..", a + " read .\n" + a + " read ..\n", []string{a + " read .", a + " read .."}},
		{"longest prefix", a + " read " + strings.Repeat("x", topicname.MaxLen), []string{a + " read " + strings.Repeat("x", topicname.MaxLen)}},
		{"same token on several lines: the union", a + " read\n" + a + " write orders.\n" + a + " admin ops-\n",
			[]string{a + " admin ops-", a + " read", a + " write orders."}},
		{"exact duplicates count once", a + " read\n" + a + "  read\n", []string{a + " read"}},
		{"two tokens", b + " admin\n" + a + " read\n", []string{a + " read", b + " admin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab := mustParse(t, tc.file)
			want := slices.Sorted(slices.Values(tc.want))
			if got := tab.Lines(); !slices.Equal(got, want) {
				t.Errorf("Lines() = %q, want %q", got, want)
			}
		})
	}
}

// TestParseErrors: each bad line fails the file with ErrBadFile, its line number
// and what is wrong.
func TestParseErrors(t *testing.T) {
	a := hashOf("token-a")
	for _, tc := range []struct {
		name, file, want string
	}{
		{"raw token", "s3cr3t-t0k3n read", "line 1: expected sha256:<64 hex digits>"},
		{"no scheme", a[len("sha256:"):] + " read", "line 1: expected sha256:<64 hex digits>"},
		{"other scheme", "sha512:" + a[len("sha256:"):] + " read", "line 1: expected sha256:<64 hex digits>"},
		{"upper-case scheme", "SHA256:" + a[len("sha256:"):] + " read", "line 1: expected sha256:<64 hex digits>"},
		{"short digest", a[:len(a)-1] + " read", "line 1: sha256: digest of 63 characters, want 64 hex digits"},
		{"long digest", a + "0 read", "line 1: sha256: digest of 65 characters, want 64 hex digits"},
		{"empty digest", "sha256: read", "line 1: sha256: digest of 0 characters"},
		{"not hex", a[:len(a)-1] + "g read", "line 1: sha256: digest holds a character that is not a hex digit"},
		{"no role", a, "line 1: no role after the digest"},
		{"unknown role", a + " wrte", "line 1: unknown role (want read, write or admin)"},
		{"role none", a + " none", "line 1: unknown role"},
		{"upper-case role", a + " READ", "line 1: unknown role"},
		{"four fields", a + " read orders extra", "line 1: 4 fields, want sha256:<64 hex digits> <role> [<topic prefix>]"},
		{"prefix with a slash", a + " read orders/", "line 1: invalid topic prefix (1 to 249 characters of A-Z a-z 0-9 . _ -)"},
		{"prefix with a star", a + " read orders.*", "line 1: invalid topic prefix"},
		{"prefix too long", a + " read " + strings.Repeat("x", topicname.MaxLen+1), "line 1: invalid topic prefix"},
		{"non-ASCII prefix", a + " read é", "line 1: invalid topic prefix"},
		{"line number counts comments and blanks", "# head\n\n" + a + " read\n  \n" + a + " rwx\n", "line 5: unknown role"},
		{"line too long", a + " read\n" + strings.Repeat("x", maxLine+1), "line 2: longer than 65536 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.file))
			if err == nil {
				t.Fatalf("Parse(%q) = nil error, want %q", tc.file, tc.want)
			}
			if !errors.Is(err, ErrBadFile) {
				t.Errorf("error %v does not wrap ErrBadFile", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestParseErrorsNeverQuoteTheLine: wherever an operator pastes a raw token on a
// line, the error names the line and not the token.
func TestParseErrorsNeverQuoteTheLine(t *testing.T) {
	const token = "Zm9vYmFyLXNlY3JldC10b2tlbi12YWx1ZQ+/=" // base64 with + / = (not topic characters)
	a := hashOf("token-a")
	for _, line := range []string{
		token,
		token + " read",
		"sha256:" + token + " read",
		"sha256:" + token + strings.Repeat("0", 64-len(token)) + " read", // 64 characters, not hex
		a + " " + token,
		a + " read " + token,
		a + " read orders " + token,
		token + " " + a + " read",
	} {
		_, err := Parse(strings.NewReader("# tokens\n" + line + "\n"))
		if err == nil {
			t.Fatalf("Parse(%q) = nil error", line)
		}
		if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), token[:12]) {
			t.Errorf("the error for %q quotes the token: %v", line, err)
		}
		if !strings.Contains(err.Error(), "line 2: ") {
			t.Errorf("the error for %q does not name line 2: %v", line, err)
		}
	}
}

// TestValidPrefix: a prefix is accepted exactly when some valid topic name begins
// with it.
func TestValidPrefix(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		ok     bool
	}{
		{"o", true}, {"orders.", true}, {"orders-eu_1", true}, {".", true}, {"..", true}, {"...", true},
		{strings.Repeat("x", topicname.MaxLen), true},
		{"", false}, {"a/b", false}, {"a b", false}, {"a*", false}, {"é", false}, {"a\x00", false},
		{strings.Repeat("x", topicname.MaxLen+1), false},
	} {
		if got := validPrefix(tc.prefix); got != tc.ok {
			t.Errorf("validPrefix(%q) = %v, want %v", tc.prefix, got, tc.ok)
		}
		// The rule is topicname's: the prefix itself or the prefix and one more
		// character is a valid topic name exactly when the prefix is accepted ("" is
		// no prefix, not a prefix: it never reaches validPrefix from a file).
		if tc.prefix == "" {
			continue
		}
		matches := topicname.Validate(tc.prefix) == nil || topicname.Validate(tc.prefix+"a") == nil
		if matches != tc.ok {
			t.Errorf("prefix %q: some topic name begins with it = %v, want %v", tc.prefix, matches, tc.ok)
		}
	}
}

// TestEmptyFileRefusesEveryone: an empty table is valid, knows no token, and
// refuses every request that needs a role.
func TestEmptyFileRefusesEveryone(t *testing.T) {
	tab := mustParse(t, "# nobody yet\n")
	if tab.Len() != 0 {
		t.Fatalf("Len() = %d, want 0", tab.Len())
	}
	if _, ok := tab.Authenticate(""); ok {
		t.Error("the empty token authenticated")
	}
	if _, err := tab.Authorize(NewCredential("anything"), ForCommand("GET"), "t"); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("GET with an unknown token: %v, want a refusal", err)
	}
}

// TestAuthenticate: the token, not its digest, authenticates; the principal holds
// the union of the token's lines and names it by its digest's start only.
func TestAuthenticate(t *testing.T) {
	const token = "correct horse battery staple"
	tab := mustParse(t, hashOf(token)+" read\n"+hashOf(token)+" write orders.\n"+hashOf("other")+" admin\n")
	if tab.Len() != 2 {
		t.Errorf("Len() = %d, want 2", tab.Len())
	}
	p, ok := tab.Authenticate(token)
	if !ok {
		t.Fatal("the token did not authenticate")
	}
	if _, ok := tab.Authenticate(hashOf(token)); ok {
		t.Error("the digest authenticated as if it were the token")
	}
	if _, ok := tab.Authenticate(token + " "); ok {
		t.Error("the token with a trailing space authenticated")
	}
	if !p.Allow(Read, "payments") || p.Allow(Write, "payments") || !p.Allow(Write, "orders.eu") || p.Allow(Admin, "orders.eu") {
		t.Errorf("grants are not the union of read and write orders.: %+v", p.grants)
	}
	if got, want := p.String(), hashOf(token)[:len("sha256:")+8]+"…"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if strings.Contains(p.String(), token) {
		t.Error("String() holds the token")
	}
}

// TestLine: the line Line prints parses back to the grant it was asked for.
func TestLine(t *testing.T) {
	const token = "Tok_3n-with.symbols~!"
	for _, tc := range []struct {
		role   Role
		prefix string
	}{{Read, ""}, {Write, "orders."}, {Admin, ""}, {Admin, "."}} {
		line, err := Line(token, tc.role, tc.prefix)
		if err != nil {
			t.Fatalf("Line(%v, %q): %v", tc.role, tc.prefix, err)
		}
		want := hashOf(token) + " " + tc.role.String()
		if tc.prefix != "" {
			want += " " + tc.prefix
		}
		if line != want {
			t.Errorf("Line(%v, %q) = %q, want %q", tc.role, tc.prefix, line, want)
		}
		p, ok := mustParse(t, line+"\n").Authenticate(token)
		if !ok || len(p.grants) != 1 || p.grants[0] != (grant{tc.role, tc.prefix}) {
			t.Errorf("%q parses to %+v (%v), want %v %q", line, p.grants, ok, tc.role, tc.prefix)
		}
	}
	for _, r := range []Role{None, Admin + 1, -1} {
		if _, err := Line(token, r, ""); !errors.Is(err, ErrBadRole) {
			t.Errorf("Line with role %v: %v, want ErrBadRole", r, err)
		}
	}
	for _, p := range []string{"a/b", "a b", strings.Repeat("x", topicname.MaxLen+1)} {
		if _, err := Line(token, Read, p); !errors.Is(err, ErrBadPrefix) {
			t.Errorf("Line with prefix %q: %v, want ErrBadPrefix", p, err)
		}
	}
}

// TestParseFile: the error of a missing or bad file names the path; a good one parses.
func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens")
	if _, err := ParseFile(path); err == nil || !strings.Contains(err.Error(), path) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want an error naming %s that wraps os.ErrNotExist", err, path)
	}
	writeFile(t, path, "# x\nnot-a-line\n")
	if _, err := ParseFile(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad file: %v, want an error naming %s and line 2", err, path)
	}
	writeFile(t, path, hashOf("x")+" read\n")
	tab, err := ParseFile(path)
	if err != nil || tab.Len() != 1 {
		t.Errorf("good file: %v, %v", tab, err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
