package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// newCA makes a CA valid for a day, or fails the test.
func newCA(t *testing.T, cn string) *CA {
	t.Helper()
	ca, err := NewCA(cn, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue issues req from ca and returns the parsed certificate and the PEM pair.
func issue(t *testing.T, ca *CA, req Request) (cert *x509.Certificate, certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(req)
	if err != nil {
		t.Fatal(err)
	}
	b, rest := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("certificate PEM: want one CERTIFICATE block, got %q", certPEM)
	}
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("key PEM: want a PRIVATE KEY block, got %q", keyPEM)
	}
	cert, err = x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certPEM, keyPEM
}

func nodeRequest(cn string, hosts ...string) Request {
	return Request{CommonName: cn, Hosts: hosts, ValidFor: time.Hour, Client: true, Server: true}
}

// TestNewCA: the CA certificate may sign leaves only, is valid now, and has a
// positive serial of at most 128 bits.
func TestNewCA(t *testing.T) {
	ca := newCA(t, "floe test CA")
	c := ca.Certificate()
	if !c.BasicConstraintsValid || !c.IsCA || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("basic constraints: valid %v, IsCA %v, MaxPathLen %d, zero %v; want a CA of path length 0",
			c.BasicConstraintsValid, c.IsCA, c.MaxPathLen, c.MaxPathLenZero)
	}
	if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign; c.KeyUsage != want {
		t.Errorf("KeyUsage %#x, want %#x", c.KeyUsage, want)
	}
	if c.Subject.CommonName != "floe test CA" {
		t.Errorf("subject %q, want floe test CA", c.Subject.CommonName)
	}
	checkValidity(t, c, 24*time.Hour)
	if _, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || c.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("public key %T, want ECDSA", c.PublicKey)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("the CA certificate is not self-signed: %v", err)
	}
	for _, tc := range []struct {
		cn       string
		validFor time.Duration
	}{{"", time.Hour}, {"x", 0}, {"x", -time.Hour}} {
		if _, err := NewCA(tc.cn, tc.validFor); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("NewCA(%q, %v): %v, want ErrInvalidRequest", tc.cn, tc.validFor, err)
		}
	}
}

// checkValidity: c is valid from a few minutes ago (clock skew) for about validFor,
// and its serial is positive and at most 128 bits.
func checkValidity(t *testing.T, c *x509.Certificate, validFor time.Duration) {
	t.Helper()
	now := time.Now()
	if age := now.Sub(c.NotBefore); age < clockSkew-time.Minute || age > clockSkew+time.Minute {
		t.Errorf("NotBefore %v ago, want about %v", age, clockSkew)
	}
	if left := c.NotAfter.Sub(now); left < validFor-time.Minute || left > validFor {
		t.Errorf("NotAfter in %v, want about %v", left, validFor)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %v: want positive and at most 128 bits", c.SerialNumber)
	}
}

// TestIssueNode: a node certificate is a leaf with both usages and exactly the hosts
// asked for, IPs as IP SANs and names as DNS SANs; it verifies against the CA's pool
// for every listed host and either usage, and for no host it does not list.
func TestIssueNode(t *testing.T) {
	ca := newCA(t, "floe test CA")
	c, _, _ := issue(t, ca, nodeRequest("node1", "node1", "localhost", "127.0.0.1", "::1", "*.floe.internal"))

	if !c.BasicConstraintsValid || c.IsCA {
		t.Errorf("basic constraints: valid %v, IsCA %v; want a leaf", c.BasicConstraintsValid, c.IsCA)
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("KeyUsage %#x, want DigitalSignature only", c.KeyUsage)
	}
	if !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) || len(c.ExtKeyUsage) != 2 {
		t.Errorf("ExtKeyUsage %v, want ServerAuth and ClientAuth", c.ExtKeyUsage)
	}
	if want := []string{"node1", "localhost", "*.floe.internal"}; !slices.Equal(c.DNSNames, want) {
		t.Errorf("DNSNames %q, want %q", c.DNSNames, want)
	}
	if len(c.IPAddresses) != 2 || !c.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || !c.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("IPAddresses %v, want [127.0.0.1 ::1]", c.IPAddresses)
	}
	if c.Subject.CommonName != "node1" {
		t.Errorf("subject %q, want node1", c.Subject.CommonName)
	}
	if !bytes.Equal(c.AuthorityKeyId, ca.Certificate().SubjectKeyId) || len(c.AuthorityKeyId) == 0 {
		t.Errorf("AuthorityKeyId %x, want the CA's SubjectKeyId %x", c.AuthorityKeyId, ca.Certificate().SubjectKeyId)
	}
	checkValidity(t, c, time.Hour)

	for _, host := range []string{"node1", "localhost", "127.0.0.1", "::1", "a.floe.internal"} {
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: host, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("verify for host %s, usage %v: %v", host, usage, err)
			}
		}
	}
	for _, host := range []string{"node2", "127.0.0.2", "a.b.floe.internal", "floe.internal"} {
		var herr x509.HostnameError
		if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: host}); !errors.As(err, &herr) {
			t.Errorf("verify for unlisted host %s: %v, want a HostnameError", host, err)
		}
	}

	c2, _, _ := issue(t, ca, nodeRequest("node1", "node1"))
	if c2.SerialNumber.Cmp(c.SerialNumber) == 0 {
		t.Errorf("two certificates share serial %v", c.SerialNumber)
	}
}

// TestIssueClient: a client certificate verifies for client authentication and not
// for server authentication; it needs no hosts.
func TestIssueClient(t *testing.T) {
	ca := newCA(t, "floe test CA")
	c, _, _ := issue(t, ca, Request{CommonName: "admin", ValidFor: time.Hour, Client: true})
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("ExtKeyUsage %v, want ClientAuth only", c.ExtKeyUsage)
	}
	if len(c.DNSNames)+len(c.IPAddresses) != 0 {
		t.Errorf("SANs %v %v, want none", c.DNSNames, c.IPAddresses)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("verify for client auth: %v", err)
	}
	var ierr x509.CertificateInvalidError
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); !errors.As(err, &ierr) || ierr.Reason != x509.IncompatibleUsage {
		t.Errorf("verify for server auth: %v, want IncompatibleUsage", err)
	}
}

// TestForeignCA: a certificate issued by another CA, even one of the same name, does
// not verify against this CA's pool.
func TestForeignCA(t *testing.T) {
	ca, other := newCA(t, "floe cluster CA"), newCA(t, "floe cluster CA")
	c, _, _ := issue(t, other, nodeRequest("node1", "127.0.0.1"))
	var uerr x509.UnknownAuthorityError
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "127.0.0.1"}); !errors.As(err, &uerr) {
		t.Errorf("verify against another CA: %v, want UnknownAuthorityError", err)
	}
}

// TestIssueLimits: a leaf never outlives its CA; an expired CA issues nothing.
func TestIssueLimits(t *testing.T) {
	ca, err := NewCA("short-lived CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, _, _ := issue(t, ca, Request{CommonName: "node1", Hosts: []string{"node1"}, ValidFor: 24 * time.Hour, Server: true})
	if !c.NotAfter.Equal(ca.Certificate().NotAfter) {
		t.Errorf("NotAfter %v, want the CA's %v", c.NotAfter, ca.Certificate().NotAfter)
	}

	expired := *ca.Certificate()
	expired.NotAfter = time.Now().Add(-time.Second)
	old := &CA{cert: &expired, key: ca.key}
	if _, _, err := old.Issue(nodeRequest("node1", "node1")); !errors.Is(err, ErrCAExpired) {
		t.Errorf("Issue from an expired CA: %v, want ErrCAExpired", err)
	}
}

// TestIssueRefuses: requests that cannot make a usable certificate fail with the
// sentinel that says why.
func TestIssueRefuses(t *testing.T) {
	ca := newCA(t, "floe test CA")
	for _, tc := range []struct {
		name string
		req  Request
		want error
	}{
		{"no common name", Request{Hosts: []string{"a"}, ValidFor: time.Hour, Server: true}, ErrInvalidRequest},
		{"no validity", Request{CommonName: "a", Hosts: []string{"a"}, Server: true}, ErrInvalidRequest},
		{"no usage", Request{CommonName: "a", Hosts: []string{"a"}, ValidFor: time.Hour}, ErrInvalidRequest},
		{"server without hosts", Request{CommonName: "a", ValidFor: time.Hour, Server: true}, ErrInvalidRequest},
		{"empty host", nodeRequest("a", "a", ""), ErrInvalidHost},
		{"space", nodeRequest("a", "node 1"), ErrInvalidHost},
		{"comma", nodeRequest("a", "a,b"), ErrInvalidHost},
		{"url", nodeRequest("a", "https://node1"), ErrInvalidHost},
		{"host:port", nodeRequest("a", "node1:9000"), ErrInvalidHost},
		{"leading dash", nodeRequest("a", "-node1"), ErrInvalidHost},
		{"empty label", nodeRequest("a", "node1..floe"), ErrInvalidHost},
		{"trailing dot", nodeRequest("a", "node1."), ErrInvalidHost},
		{"wildcard inside", nodeRequest("a", "node.*.floe"), ErrInvalidHost},
		{"mistyped IP", nodeRequest("a", "127.0.0"), ErrInvalidHost},
		{"IPv6 zone", nodeRequest("a", "fe80::1%eth0"), ErrInvalidHost},
		{"long label", nodeRequest("a", strings.Repeat("x", 64)), ErrInvalidHost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := ca.Issue(tc.req); !errors.Is(err, tc.want) {
				t.Errorf("Issue: %v, want %v", err, tc.want)
			}
		})
	}
}

// handshake runs a TLS handshake between a server and a client over a loopback TCP
// connection (not net.Pipe: its writes block until read, and both sides write at
// once when one refuses the other), exchanges a byte each way so that a client whose
// certificate the server refuses after the client's side completed (TLS 1.3) sees
// it, and returns each side's error.
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(10 * time.Second)
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		conn.SetDeadline(deadline)
		s := tls.Server(conn, server)
		if err = s.Handshake(); err == nil {
			var b [1]byte
			if _, err = io.ReadFull(s, b[:]); err == nil {
				_, err = s.Write(b[:])
			}
		}
		done <- err
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	c := tls.Client(conn, client)
	if clientErr = c.Handshake(); clientErr == nil {
		var b [1]byte
		if _, clientErr = c.Write([]byte{7}); clientErr == nil {
			_, clientErr = io.ReadFull(c, b[:])
		}
	}
	conn.Close()
	return <-done, clientErr
}

// TestMutualTLS: issued certificates complete a mutual TLS handshake as a node
// accepting a peer (cluster port) and as a server accepting a client certificate;
// a certificate from a foreign CA, or one without the usage its side needs, is
// refused by the side that verifies it.
func TestMutualTLS(t *testing.T) {
	ca, foreign := newCA(t, "floe cluster CA"), newCA(t, "floe cluster CA")
	pair := func(ca *CA, req Request) tls.Certificate {
		_, certPEM, keyPEM := issue(t, ca, req)
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	node1 := pair(ca, nodeRequest("node1", "127.0.0.1"))
	node2 := pair(ca, nodeRequest("node2", "127.0.0.1"))
	client := pair(ca, Request{CommonName: "admin", ValidFor: time.Hour, Client: true})
	foreignNode := pair(foreign, nodeRequest("node2", "127.0.0.1"))
	clientAsServer := pair(ca, Request{CommonName: "admin", Hosts: []string{"127.0.0.1"}, ValidFor: time.Hour, Client: true})
	serverOnly := pair(ca, Request{CommonName: "web", Hosts: []string{"127.0.0.1"}, ValidFor: time.Hour, Server: true})

	serverConf := func(cert tls.Certificate) *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	}
	clientConf := func(cert tls.Certificate, serverName string) *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.Pool(), ServerName: serverName, MinVersion: tls.VersionTLS12}
	}
	for _, tc := range []struct {
		name                     string
		server, client           tls.Certificate
		serverName               string
		serverFails, clientFails bool
	}{
		{"node to node", node1, node2, "127.0.0.1", false, false},
		{"client to node", node1, client, "127.0.0.1", false, false},
		{"peer of a foreign CA", node1, foreignNode, "127.0.0.1", true, false},
		{"server of a foreign CA", foreignNode, node1, "127.0.0.1", false, true},
		{"server name not in the certificate", node1, node2, "127.0.0.2", false, true},
		{"client certificate as server", clientAsServer, node2, "127.0.0.1", false, true},
		{"server certificate as client", node1, serverOnly, "127.0.0.1", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serr, cerr := handshake(t, serverConf(tc.server), clientConf(tc.client, tc.serverName))
			if tc.serverFails || tc.clientFails {
				// The side that verifies the bad certificate fails with a
				// certificate error; the other then sees an alert or a closed
				// connection: no byte gets through.
				if serr == nil || cerr == nil {
					t.Errorf("server %v, client %v: want both to fail", serr, cerr)
				}
				verr := cerr
				if tc.serverFails {
					verr = serr
				}
				var certErr *tls.CertificateVerificationError
				if !errors.As(verr, &certErr) {
					t.Errorf("server %v, client %v: want a certificate verification error on the %s", serr, cerr, map[bool]string{true: "server", false: "client"}[tc.serverFails])
				}
				return
			}
			if serr != nil || cerr != nil {
				t.Errorf("server %v, client %v: want both to succeed", serr, cerr)
			}
		})
	}

	// Without a client certificate a server that requires one refuses.
	serr, _ := handshake(t, serverConf(node1), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	if serr == nil {
		t.Error("server accepted a client without a certificate")
	}
}

// TestLoadCA: a CA written with WritePair and loaded back is the same CA, and what
// it issues verifies against the original.
func TestLoadCA(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "floe cluster CA")
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if err := WritePair(dir, "ca", ca.CertPEM(), keyPEM); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadCA(CertPath(dir, "ca"), KeyPath(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Certificate().Equal(ca.Certificate()) {
		t.Error("loaded certificate differs")
	}
	if !bytes.Equal(loaded.CertPEM(), ca.CertPEM()) {
		t.Error("loaded CertPEM differs")
	}
	if k, err := loaded.KeyPEM(); err != nil || !bytes.Equal(k, keyPEM) {
		t.Errorf("loaded KeyPEM differs (%v)", err)
	}
	c, _, _ := issue(t, loaded, nodeRequest("node4", "127.0.0.1"))
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "127.0.0.1"}); err != nil {
		t.Errorf("a certificate from the loaded CA does not verify against the original: %v", err)
	}
}

// TestLoadCAKeyFormats: LoadCA takes the key formats openssl writes, skipping an
// "EC PARAMETERS" block before the key.
func TestLoadCAKeyFormats(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "floe cluster CA")
	sec1, err := x509.MarshalECPrivateKey(ca.key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...)
	if err := WritePair(dir, "ca", ca.CertPEM(), keyPEM); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(CertPath(dir, "ca"), KeyPath(dir, "ca")); err != nil {
		t.Errorf("SEC 1 key after EC PARAMETERS: %v", err)
	}
}

// TestLoadCARefuses: LoadCA refuses a missing file, a file without PEM, a leaf
// certificate and a key that is not the certificate's.
func TestLoadCARefuses(t *testing.T) {
	dir := t.TempDir()
	ca, other := newCA(t, "floe cluster CA"), newCA(t, "floe cluster CA")
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, _ := ca.KeyPEM()
	otherKey, _ := other.KeyPEM()
	_, leafCert, leafKey := issue(t, ca, nodeRequest("node1", "node1"))
	caCrt, caKeyFile := write("ca.crt", ca.CertPEM()), write("ca.key", caKey)

	for _, tc := range []struct {
		name          string
		cert, key     string
		want          error
		wantNotExists bool
	}{
		{"missing certificate", filepath.Join(dir, "none.crt"), caKeyFile, nil, true},
		{"missing key", caCrt, filepath.Join(dir, "none.key"), nil, true},
		{"no PEM in the certificate", write("junk.crt", []byte("not PEM")), caKeyFile, ErrNoPEM, false},
		{"a key as the certificate", write("key.crt", caKey), caKeyFile, ErrNoPEM, false},
		{"a certificate as the key", caCrt, write("crt.key", ca.CertPEM()), ErrNoPEM, false},
		{"a leaf certificate", write("leaf.crt", leafCert), write("leaf.key", leafKey), ErrNotCA, false},
		{"another CA's key", caCrt, write("other.key", otherKey), ErrKeyMismatch, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadCA(tc.cert, tc.key)
			if tc.wantNotExists && !errors.Is(err, os.ErrNotExist) || !tc.wantNotExists && !errors.Is(err, tc.want) {
				t.Errorf("LoadCA: %v", err)
			}
		})
	}

	// A CA certificate that may not sign certificates (KeyUsage without CertSign).
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: ca.Certificate().SerialNumber, Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true, IsCA: true,
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	crt := write("nosign.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyFile := write("nosign.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if _, err := LoadCA(crt, keyFile); !errors.Is(err, ErrNotCA) {
		t.Errorf("LoadCA of a CA without CertSign: %v, want ErrNotCA", err)
	}
}

// TestWritePair: the key file is 0600 and the certificate 0644 whatever the umask and
// whatever the modes of the files replaced; nothing else is left in the directory.
func TestWritePair(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "floe cluster CA")
	_, certPEM, keyPEM := issue(t, ca, nodeRequest("node1", "node1"))
	// Files of the wrong modes already there: WritePair replaces them.
	for _, p := range []string{KeyPath(dir, "node1"), CertPath(dir, "node1")} {
		if err := os.WriteFile(p, []byte("old"), 0o666); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	if err := WritePair(dir, "node1", certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{KeyPath(dir, "node1"), keyPEM, 0o600}, {CertPath(dir, "node1"), certPEM, 0o644}} {
		st, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, got, f.mode)
		}
		if b, err := os.ReadFile(f.path); err != nil || !bytes.Equal(b, f.data) {
			t.Errorf("%s: read back %d bytes (%v), want what was written", f.path, len(b), err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("%d files in the directory, want 2", len(entries))
	}
	if _, err := tls.LoadX509KeyPair(CertPath(dir, "node1"), KeyPath(dir, "node1")); err != nil {
		t.Errorf("tls.LoadX509KeyPair of the files written: %v", err)
	}
	if err := WritePair(filepath.Join(dir, "missing"), "node1", certPEM, keyPEM); err == nil {
		t.Error("WritePair into a missing directory succeeded")
	}
}
