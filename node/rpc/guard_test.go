package rpc

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"floe/internal/certs"
	"floe/internal/credfiles"
	"floe/internal/testenv"
	"floe/wire"
)

// testCA makes a CA and writes one node key pair from it, plus the CA's certificate,
// into a new directory; it returns the loaded cluster TLS and the directory.
func testCA(t *testing.T, name string) (*credfiles.TLS, string) {
	t.Helper()
	_, dir := newCA(t, name)
	tl, err := credfiles.LoadTLS(nodeFiles(dir))
	if err != nil {
		t.Fatal(err)
	}
	return tl, dir
}

// newCA makes a CA and writes its certificate and a node key pair into a new
// directory.
func newCA(t *testing.T, name string) (*certs.CA, string) {
	t.Helper()
	ca, err := certs.NewCA(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	issue(t, ca, dir)
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return ca, dir
}

// issue writes a new node key pair of ca into dir.
func issue(t *testing.T, ca *certs.CA, dir string) {
	t.Helper()
	cert, key, err := ca.Issue(certs.Request{CommonName: "node", Hosts: []string{"127.0.0.1"}, ValidFor: time.Hour, Client: true, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WritePair(dir, "node", cert, key); err != nil {
		t.Fatal(err)
	}
}

func nodeFiles(dir string) credfiles.Files {
	return credfiles.Files{Cert: certs.CertPath(dir, "node"), Key: certs.KeyPath(dir, "node"), CA: filepath.Join(dir, "ca.crt")}
}

func writeSecret(t *testing.T, secret string) *credfiles.Secret {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := credfiles.LoadSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// guarded serves a cluster port behind g whose every RPC op counts itself in served;
// it returns the address, and the refusals g reported.
func guarded(t *testing.T, g *Guard, served *atomic.Int64) (string, *Listener, *atomic.Int64) {
	t.Helper()
	refused := &atomic.Int64{}
	g.Refused = func(string, error) { refused.Add(1) }
	s := &Server{}
	s.Handle(OpStatus, statusHandler(1))
	s.Handle(OpApply, func(r *Request) {
		served.Add(1)
		r.Reply([]byte("applied"), nil)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewListener(ln, ln.Addr().String(), g, s.ServeConn, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return ln.Addr().String(), l, refused
}

// TestGuardRefusesStrangers: behind mutual TLS, the shared secret or both, a peer
// with the same credentials calls ops (and Raft connects); a peer without any, with
// a certificate of another CA, or with another secret reaches no op handler, gets an
// error that wraps wire.ErrUnauthorized, and is counted.
func TestGuardRefusesStrangers(t *testing.T) {
	clusterTLS, _ := testCA(t, "cluster CA")
	otherTLS, _ := testCA(t, "other CA")
	secret := writeSecret(t, "correct horse battery staple, random 7f3a9c")
	otherSecret := writeSecret(t, "incorrect donkey battery staple, random 1b2c")

	cases := []struct {
		name      string
		server    Guard
		good      Guard
		strangers map[string]*Guard
	}{
		{"tls", Guard{TLS: clusterTLS}, Guard{TLS: clusterTLS}, map[string]*Guard{
			"none": nil, "other CA": {TLS: otherTLS}, "secret instead": {Secret: secret},
		}},
		{"secret", Guard{Secret: secret}, Guard{Secret: secret}, map[string]*Guard{
			"none": nil, "other secret": {Secret: otherSecret}, "tls instead": {TLS: clusterTLS},
		}},
		{"both", Guard{TLS: clusterTLS, Secret: secret}, Guard{TLS: clusterTLS, Secret: secret}, map[string]*Guard{
			"none": nil, "tls only": {TLS: clusterTLS}, "secret only": {Secret: secret},
			"other secret": {TLS: clusterTLS, Secret: otherSecret}, "other CA": {TLS: otherTLS, Secret: secret},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var served atomic.Int64
			server := tc.server
			addr, l, refused := guarded(t, &server, &served)
			good := tc.good
			p := NewPeer(addr, &good)
			defer p.Close()
			body, err := p.Call(context.Background(), OpApply, nil, 5*time.Second)
			if err != nil || string(body) != "applied" {
				t.Fatalf("authenticated call = %q, %v", body, err)
			}
			raftConn, err := l.Dial(raft.ServerAddress(addr), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			raftConn.Close()
			// The listener dials with its own guard, the server's.
			if got, err := acceptWithin(l, 5*time.Second); err != nil {
				t.Fatalf("raft connection of an authenticated peer: %v", err)
			} else {
				got.Close()
			}

			for name, g := range tc.strangers {
				before := refused.Load()
				q := NewPeer(addr, g)
				_, err := q.Call(context.Background(), OpApply, nil, 5*time.Second)
				q.Close()
				// A TLS dialler cannot read the acceptor's refusal in plain text: it
				// sees the connection closed, which says nothing about its rights.
				if !errors.Is(err, wire.ErrUnauthorized) && (name != "tls instead" || err == nil) {
					t.Errorf("%s: call = %v, want an error wrapping %v", name, err, wire.ErrUnauthorized)
				}
				testenv.WaitForEvery(t, 5*time.Second, 5*time.Millisecond, name+": the refusal reported", func() bool { return refused.Load() > before })
			}
			if n := served.Load(); n != 1 {
				t.Fatalf("apply served %d times, want once (the authenticated call)", n)
			}
		})
	}
}

// acceptWithin returns the next Raft connection l accepts, or an error after d.
func acceptWithin(l *Listener, d time.Duration) (net.Conn, error) {
	ch := make(chan net.Conn, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			ch <- c
		}
	}()
	select {
	case c := <-ch:
		return c, nil
	case <-time.After(d):
		return nil, errors.New("no raft connection accepted")
	}
}

// TestClientCertificateNotMember: a certificate of the cluster CA with client usage
// only (floe certs --client, for the client port) is not a member of the cluster.
func TestClientCertificateNotMember(t *testing.T) {
	ca, dir := newCA(t, "cluster CA")
	nodeTLS, err := credfiles.LoadTLS(nodeFiles(dir))
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.Issue(certs.Request{CommonName: "app", ValidFor: time.Hour, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WritePair(dir, "app", cert, key); err != nil {
		t.Fatal(err)
	}
	appTLS, err := credfiles.LoadTLS(credfiles.Files{Cert: certs.CertPath(dir, "app"), Key: certs.KeyPath(dir, "app"), CA: filepath.Join(dir, "ca.crt")})
	if err != nil {
		t.Fatal(err)
	}
	var served atomic.Int64
	addr, _, _ := guarded(t, &Guard{TLS: nodeTLS}, &served)
	p := NewPeer(addr, &Guard{TLS: appTLS})
	defer p.Close()
	if _, err := p.Call(context.Background(), OpApply, nil, 5*time.Second); !errors.Is(err, wire.ErrUnauthorized) {
		t.Fatalf("apply with a client-only certificate: %v, want unauthorized", err)
	}
	if served.Load() != 0 {
		t.Fatal("the apply of a client-only certificate ran")
	}
}

// TestGuardProbeNotRefused: a connection closed before sending anything (a TCP
// health probe) is not counted as a refusal.
func TestGuardProbeNotRefused(t *testing.T) {
	var served atomic.Int64
	clusterTLS, _ := testCA(t, "cluster CA")
	addr, _, refused := guarded(t, &Guard{TLS: clusterTLS, Secret: writeSecret(t, "0123456789abcdef0123456789abcdef")}, &served)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	// A second, authenticated call is served after the probe: the port goes on.
	p := NewPeer(addr, &Guard{TLS: clusterTLS, Secret: writeSecret(t, "0123456789abcdef0123456789abcdef")})
	defer p.Close()
	if _, err := p.Call(context.Background(), OpApply, nil, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := refused.Load(); n != 0 {
		t.Fatalf("%d refusals counted for a probe", n)
	}
}

// TestGuardRotation: after the node's key pair is replaced by one of a new CA and
// reloaded, a connection made before keeps working, new connections present the new
// certificate, and a peer that still holds the old CA's is refused.
func TestGuardRotation(t *testing.T) {
	serverTLS, dir := testCA(t, "cluster CA 1")
	var served atomic.Int64
	addr, _, _ := guarded(t, &Guard{TLS: serverTLS}, &served)
	oldTLS, err := credfiles.LoadTLS(nodeFiles(dir))
	if err != nil {
		t.Fatal(err)
	}
	before := NewPeer(addr, &Guard{TLS: oldTLS})
	defer before.Close()
	if _, err := before.Call(context.Background(), OpApply, nil, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	ca2, err := certs.NewCA("cluster CA 2", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue(t, ca2, dir)
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca2.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if !serverTLS.Changed() {
		t.Fatal("Changed() = false after the files were replaced")
	}
	if err := serverTLS.Reload(); err != nil {
		t.Fatal(err)
	}
	if serverTLS.Changed() {
		t.Fatal("Changed() = true right after a reload")
	}
	if _, err := before.Call(context.Background(), OpApply, nil, 5*time.Second); err != nil {
		t.Fatalf("a connection made before the rotation: %v", err)
	}
	stale := NewPeer(addr, &Guard{TLS: oldTLS})
	defer stale.Close()
	if _, err := stale.Call(context.Background(), OpApply, nil, 5*time.Second); !errors.Is(err, wire.ErrUnauthorized) {
		t.Fatalf("a new connection with the old CA's certificate: %v, want unauthorized", err)
	}
	newTLS, err := credfiles.LoadTLS(nodeFiles(dir))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := (&Guard{TLS: newTLS}).Dial(addr, MuxRPC, 5*time.Second)
	if err != nil {
		t.Fatalf("a new connection with the new CA's certificate: %v", err)
	}
	defer conn.Close()
	got := conn.(*tls.Conn).ConnectionState().PeerCertificates[0]
	if got.Issuer.CommonName != "cluster CA 2" {
		t.Fatalf("the node presents a certificate of %q after the reload, want cluster CA 2", got.Issuer.CommonName)
	}

	// A reload of a broken file keeps the certificate in use.
	if err := os.WriteFile(certs.CertPath(dir, "node"), []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := serverTLS.Reload(); err == nil {
		t.Fatal("reloading a broken certificate succeeded")
	}
	q := NewPeer(addr, &Guard{TLS: newTLS})
	defer q.Close()
	if _, err := q.Call(context.Background(), OpApply, nil, 5*time.Second); err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}
}

// TestRawApplyRefused: a connection that sends an apply frame straight after the RPC
// mux byte, as a node without credentials would, is answered with an unauthorized
// error and the op never runs.
func TestRawApplyRefused(t *testing.T) {
	var served atomic.Int64
	addr, _, _ := guarded(t, &Guard{Secret: writeSecret(t, "0123456789abcdef0123456789abcdef")}, &served)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write(append([]byte{MuxRPC}, AppendFrame(nil, 1, byte(OpApply), []byte("anything"))...))
	_, status, body, err := ReadFrame(c)
	if err != nil || status != StatusErr {
		t.Fatalf("reply: status %d, %v", status, err)
	}
	if err := DecodeError(body); !errors.Is(err, wire.ErrUnauthorized) {
		t.Fatalf("reply = %v, want unauthorized", err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the connection stayed open after the refusal")
	}
	if served.Load() != 0 {
		t.Fatal("the unauthenticated apply ran")
	}
}

// TestRoutingBounded: connections from one host that never say who they are hold at
// most maxRoutingPerHost routing slots; one more is closed at once, and the port
// serves again once they go. (Loopback is one host, so the total bound, maxRouting,
// is not reached here.)
func TestRoutingBounded(t *testing.T) {
	var served atomic.Int64
	addr, _, _ := guarded(t, &Guard{Secret: writeSecret(t, "0123456789abcdef0123456789abcdef")}, &served)
	var silent []net.Conn
	defer func() {
		for _, c := range silent {
			c.Close()
		}
	}()
	for range maxRoutingPerHost {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, c)
	}
	// The accept loop takes them in order: once one more is closed at once, all the
	// slots are held.
	testenv.WaitForEvery(t, 10*time.Second, 10*time.Millisecond, "a connection over the bound closed at once", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(time.Second))
		_, err = c.Read(make([]byte, 1))
		return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
	})
	for _, c := range silent {
		c.Close()
	}
	silent = nil
	p := NewPeer(addr, &Guard{Secret: writeSecret(t, "0123456789abcdef0123456789abcdef")})
	defer p.Close()
	testenv.WaitForEvery(t, 10*time.Second, 20*time.Millisecond, "an authenticated call once the silent connections left", func() bool {
		_, err := p.Call(context.Background(), OpApply, nil, time.Second)
		return err == nil
	})
}
