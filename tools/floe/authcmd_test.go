package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"os/exec"
	"strings"
	"testing"
	"time"

	"floe/auth"
)

// runFloeStdin runs the floe binary with args and stdin, and returns its stdout and
// stderr apart.
func runFloeStdin(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, floeBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// TestAuthHash: floe auth hash prints the --auth-file line that grants the token
// read from stdin the role and prefix asked for; it refuses what cannot be a token,
// warns about a short one, and never prints the token.
func TestAuthHash(t *testing.T) {
	const token = "Zx9-long-enough_token.value"
	for _, tc := range []struct {
		name   string
		stdin  string
		args   []string
		role   auth.Role
		prefix string
		warn   bool   // a warning on stderr
		err    string // refused, with this on stderr
	}{
		{name: "default role read", stdin: token + "\n", role: auth.Read},
		{name: "no final newline", stdin: token, role: auth.Read},
		{name: "CRLF", stdin: token + "\r\n", role: auth.Read},
		{name: "blank lines after it", stdin: token + "\n\n", role: auth.Read},
		{name: "write", stdin: token + "\n", args: []string{"--role", "write"}, role: auth.Write},
		{name: "admin with a prefix", stdin: token + "\n", args: []string{"--role", "admin", "--prefix", "orders."}, role: auth.Admin, prefix: "orders."},
		{name: "short token", stdin: "abc\n", role: auth.Read, warn: true},
		{name: "empty stdin", stdin: "", err: "no token on stdin"},
		{name: "empty line", stdin: "\n", err: "the token on stdin is empty"},
		{name: "space inside", stdin: token + " " + token + "\n", err: "holds whitespace at byte 27"},
		{name: "leading space", stdin: " " + token + "\n", err: "holds whitespace at byte 0"},
		{name: "trailing tab", stdin: token + "\t\n", err: "holds whitespace"},
		{name: "control character", stdin: token + "\x00\n", err: "control character"},
		{name: "invalid UTF-8", stdin: token + "\xff\n", err: "not valid UTF-8"},
		{name: "two lines", stdin: token + "\n" + token + "x\n", err: "more than one line"},
		{name: "too long", stdin: strings.Repeat("x", 5000) + "\n", err: "over 4096 bytes"},
		{name: "unknown role", stdin: token + "\n", args: []string{"--role", "owner"}, err: `unknown role "owner"`},
		{name: "role none", stdin: token + "\n", args: []string{"--role", "none"}, err: "unknown role"},
		{name: "bad prefix", stdin: token + "\n", args: []string{"--prefix", "orders/"}, err: "invalid topic prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := runFloeStdin(t, tc.stdin, append([]string{"auth", "hash"}, tc.args...)...)
			if strings.Contains(stdout, token) || strings.Contains(stderr, token) || strings.Contains(stderr, "abc") {
				t.Fatalf("the token is in the output:\n%s%s", stdout, stderr)
			}
			if tc.err != "" {
				if err == nil || stdout != "" || !strings.Contains(stderr, tc.err) {
					t.Fatalf("%v, stdout %q, stderr %q; want a failure saying %q", err, stdout, stderr, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v: %s", err, stderr)
			}
			if got := strings.Contains(stderr, "warning: the token is 3 bytes, under 16"); got != tc.warn {
				t.Errorf("warning %v, want %v: stderr %q", got, tc.warn, stderr)
			}
			tok := strings.TrimRight(strings.TrimRight(tc.stdin, "\n"), "\r")
			want, err := auth.Line(tok, tc.role, tc.prefix)
			if err != nil {
				t.Fatal(err)
			}
			if stdout != want+"\n" {
				t.Fatalf("stdout %q, want %q", stdout, want+"\n")
			}
			// The line is one an --auth-file takes, and grants exactly what was asked.
			tab, err := auth.Parse(strings.NewReader(stdout))
			if err != nil {
				t.Fatalf("the printed line does not parse: %v", err)
			}
			p, ok := tab.Authenticate(tok)
			if !ok {
				t.Fatal("the printed line does not authenticate the token")
			}
			topic := tc.prefix + "t"
			if !p.Allow(tc.role, topic) || (tc.role < auth.Admin && p.Allow(tc.role+1, topic)) {
				t.Errorf("the line grants other than %v on %q", tc.role, topic)
			}
			if tc.prefix != "" && (p.Allow(auth.Read, "other") || p.AllowCluster(auth.Read)) {
				t.Error("a prefixed line grants outside its prefix")
			}
		})
	}
}

// TestAuthToken: floe auth token prints a new token of 32 random bytes in
// base64url, different each time, that floe auth hash takes without a warning.
func TestAuthToken(t *testing.T) {
	first, _, err := runFloeStdin(t, "", "auth", "token")
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := runFloeStdin(t, "", "auth", "token")
	if err != nil {
		t.Fatal(err)
	}
	if first == second {
		t.Fatalf("two tokens are the same: %q", first)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimSuffix(first, "\n"))
	if err != nil || len(raw) != 32 || !strings.HasSuffix(first, "\n") {
		t.Fatalf("token %q: %d bytes, %v; want 32 bytes in base64url and a newline", first, len(raw), err)
	}
	stdout, stderr, err := runFloeStdin(t, first, "auth", "hash", "--role", "admin")
	if err != nil || stderr != "" {
		t.Fatalf("floe auth hash of a new token: %v, stderr %q", err, stderr)
	}
	if want, _ := auth.Line(strings.TrimSuffix(first, "\n"), auth.Admin, ""); stdout != want+"\n" {
		t.Errorf("floe auth hash of a new token: %q, want %q", stdout, want+"\n")
	}
}
