package node

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"floe/auth"
)

// syncBuffer is a bytes.Buffer safe for the node's goroutines to log into.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWarnExposed: a node whose client, HTTP or cluster port is bound beyond
// loopback says so at start when nothing guards it, and not when tokens (client and
// HTTP) or the secret (cluster) do.
func TestWarnExposed(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	line, err := auth.Line("0123456789abcdef-token", auth.Admin, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokens, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("0123456789abcdef-0123456789abcdef-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name                 string
		guard                func(*Config)
		wantClient, wantRaft bool
	}{
		{"open", func(*Config) {}, true, true},
		{"guarded", func(c *Config) { c.AuthFile, c.ClusterSecretFile = tokens, secret }, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			startNode(t, func(c *Config) {
				c.ClientHost, c.HTTPHost, c.RaftHost, c.RaftAdvertiseHost = "0.0.0.0", "0.0.0.0", "0.0.0.0", "127.0.0.1"
				c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
				tc.guard(c)
			})
			out := logs.String()
			if got := strings.Count(out, "reachable beyond loopback with neither TLS nor tokens"); got != map[bool]int{true: 2}[tc.wantClient] {
				t.Errorf("client and HTTP port warnings: %d, want %d\n%s", got, map[bool]int{true: 2}[tc.wantClient], out)
			}
			if got := strings.Contains(out, "cluster port is reachable beyond loopback"); got != tc.wantRaft {
				t.Errorf("cluster port warning: %v, want %v\n%s", got, tc.wantRaft, out)
			}
		})
	}
}
