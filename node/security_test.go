package node

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"floe/auth"
	"floe/client"
	"floe/internal/certs"
	"floe/internal/testenv"
	"floe/wire"
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

// testToken is the admin token of writeAdminToken's file.
const testToken = "0123456789abcdef-token"

// writeAdminToken writes a token file granting testToken admin and returns its path.
func writeAdminToken(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	line, err := auth.Line(testToken, auth.Admin, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestWarnExposed: a node whose client, HTTP or cluster port is bound beyond
// loopback says so at start when nothing guards it, and not when tokens (client and
// HTTP) or the secret (cluster) do; a credential file others may read is named.
func TestWarnExposed(t *testing.T) {
	dir := t.TempDir()
	tokens := writeAdminToken(t)
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("0123456789abcdef-0123456789abcdef-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	readable := filepath.Join(dir, "readable-secret")
	if err := os.WriteFile(readable, []byte("0123456789abcdef-0123456789abcdef-secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name                           string
		guard                          func(*Config)
		wantClient, wantRaft, wantMode bool
	}{
		{"open", func(*Config) {}, true, true, false},
		{"guarded", func(c *Config) { c.AuthFile, c.ClusterSecretFile = tokens, secret }, false, false, false},
		{"readable secret", func(c *Config) { c.ClusterSecretFile = readable }, true, false, true},
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
			if got := strings.Contains(out, "readable by other users"); got != tc.wantMode {
				t.Errorf("file mode warning: %v, want %v\n%s", got, tc.wantMode, out)
			}
		})
	}
}

// TestAuthDeadline: with a token file, a client connection that has not sent AUTH
// within the wait is answered ERR unauthorized and closed; one that authenticated in
// time is served after the wait has passed.
func TestAuthDeadline(t *testing.T) {
	tokens := writeAdminToken(t)
	n := startNode(t, func(c *Config) { c.AuthFile, c.authWait = tokens, 300*time.Millisecond })

	early, err := client.Dialer{Token: testToken}.Dial(n.ClientAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	late, err := net.Dial("tcp", n.ClientAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	late.SetReadDeadline(time.Now().Add(10 * time.Second))
	reply, err := wire.ReadFrame(bufio.NewReader(late), wire.MaxReply)
	if err != nil || !strings.HasPrefix(string(reply), "ERR unauthorized: no AUTH within") {
		t.Fatalf("a silent connection got %q, %v; want ERR unauthorized", reply, err)
	}
	if _, err := late.Read(make([]byte, 1)); err == nil {
		t.Fatal("the silent connection stayed open")
	}
	// early opened before late, so its wait is over too.
	if _, err := early.Metrics(); err != nil {
		t.Fatalf("a connection that authenticated in time: %v", err)
	}
}

// TestCertificateReloadedOnChange: without a SIGHUP, a node takes a renewed client
// port certificate once its files change (checked every CredentialCheckInterval).
func TestCertificateReloadedOnChange(t *testing.T) {
	ca, err := certs.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	issue := func() {
		cert, key, err := ca.Issue(certs.Request{CommonName: "node", Hosts: []string{"127.0.0.1"}, ValidFor: time.Hour, Client: true, Server: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := certs.WritePair(dir, "node", cert, key); err != nil {
			t.Fatal(err)
		}
	}
	issue()
	n := startNode(t, func(c *Config) {
		c.TLSCert, c.TLSKey = certs.CertPath(dir, "node"), certs.KeyPath(dir, "node")
		c.CredentialCheckInterval = 20 * time.Millisecond
	})
	serial := func() string {
		conn, err := tls.Dial("tcp", n.ClientAddr(), &tls.Config{RootCAs: ca.Pool()})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	issue()
	testenv.WaitFor(t, 10*time.Second, "the renewed certificate presented", func() bool { return serial() != before })
}

// TestUnauthenticatedClientCut: with a token file, a client that keeps sending
// requests without a token is cut after maxRefusedBeforeAuth refusals, however slowly
// it reads; and a failed AUTH after a good one leaves the connection with no rights
// and the AUTH deadline again.
func TestUnauthenticatedClientCut(t *testing.T) {
	tokens := writeAdminToken(t)
	n := startNode(t, func(c *Config) { c.AuthFile, c.authWait = tokens, time.Minute })

	flood, err := net.Dial("tcp", n.ClientAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	var reqs bytes.Buffer
	for range 4 * maxRefusedBeforeAuth {
		wire.WriteFrame(&reqs, []byte("READ t 0 10000"))
	}
	flood.SetDeadline(time.Now().Add(30 * time.Second))
	flood.Write(reqs.Bytes()) // the node may stop reading, and close, before it took all
	br := bufio.NewReader(flood)
	replies := 0
	for {
		reply, err := wire.ReadFrame(br, wire.MaxReply)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the connection is still open after %d replies", replies)
			}
			break
		}
		if !strings.HasPrefix(string(reply), "ERR unauthorized") {
			t.Fatalf("reply %d: %q", replies, reply)
		}
		replies++
	}
	if replies > maxRefusedBeforeAuth {
		t.Fatalf("%d requests answered before the cut, want at most %d", replies, maxRefusedBeforeAuth)
	}

	c, err := client.Dialer{Token: testToken}.Dial(n.ClientAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth("not-the-token"); err == nil {
		t.Fatal("a wrong token was taken")
	}
	if _, err := c.Metrics(); err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("METRICS after a failed AUTH: %v, want unauthorized", err)
	}
}

// TestSameOrigin: a change a browser sends for a page of another origin is refused;
// one from the node's own page, or from a client that is not a browser, passes; reads
// always pass.
func TestSameOrigin(t *testing.T) {
	h := sameOrigin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, tc := range []struct {
		method, origin, fetchSite string
		want                      int
	}{
		{"POST", "", "", http.StatusOK},
		{"POST", "http://node1:9080", "same-origin", http.StatusOK},
		{"POST", "http://evil.example", "", http.StatusForbidden},
		{"DELETE", "http://evil.example", "cross-site", http.StatusForbidden},
		{"POST", "", "cross-site", http.StatusForbidden},
		{"POST", "null", "", http.StatusForbidden},
		{"GET", "http://evil.example", "cross-site", http.StatusOK},
	} {
		r := httptest.NewRequest(tc.method, "http://node1:9080/v1/cluster/transfer-leadership", nil)
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if tc.fetchSite != "" {
			r.Header.Set("Sec-Fetch-Site", tc.fetchSite)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s with Origin %q, Sec-Fetch-Site %q: %d, want %d", tc.method, tc.origin, tc.fetchSite, w.Code, tc.want)
		}
	}
}
