package credfiles

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of loading credentials; each is wrapped with the file it concerns.
var (
	// ErrNoCertificate: a PEM file that should hold certificates holds none.
	ErrNoCertificate = errors.New("credfiles: no certificate in file")
	// ErrEmptySecret: the secret file holds no secret.
	ErrEmptySecret = errors.New("credfiles: empty secret")
	// ErrWeakSecret: the secret is too short to resist guessing.
	ErrWeakSecret = errors.New("credfiles: secret shorter than 32 bytes")
)

// stamp identifies a version of a file: a replaced or rewritten file changes at least
// one of these.
type stamp struct {
	size  int64
	mtime time.Time
	ino   uint64
}

func stampOf(path string) stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{size: -1}
	}
	return stamp{size: fi.Size(), mtime: fi.ModTime(), ino: inode(fi)}
}

// Watch is the set of files one credential came from, with the stamps they had
// when last read. Safe for concurrent use.
type Watch struct {
	mu     sync.Mutex
	paths  []string
	stamps []stamp
}

// NewWatch watches paths (empty ones are skipped) from their present state.
func NewWatch(paths ...string) *Watch {
	w := &Watch{}
	for _, p := range paths {
		if p != "" {
			w.paths = append(w.paths, p)
		}
	}
	w.stamps = w.current()
	return w
}

func (w *Watch) current() []stamp {
	s := make([]stamp, len(w.paths))
	for i, p := range w.paths {
		s[i] = stampOf(p)
	}
	return s
}

// Changed reports whether a file differs from when it was last read.
func (w *Watch) Changed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !slices.Equal(w.stamps, w.current())
}

// Reload runs read, which reads the files again, and, if it succeeds, takes their
// state as read. A file that changes while read runs counts as changed after.
func (w *Watch) Reload(read func() error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	stamps := w.current()
	if err := read(); err != nil {
		return err
	}
	w.stamps = stamps
	return nil
}

// TLS is a certificate and key, and optionally a CA bundle, read from PEM files.
// Safe for concurrent use: connections read the current material while Reload
// replaces it.
type TLS struct {
	files Files
	w     *Watch
	cur   atomic.Pointer[material]
}

// Files names the PEM files of one TLS identity. CA may be empty where no peer is
// verified (a server without client certificates).
type Files struct {
	Cert, Key, CA string
}

type material struct {
	cert *tls.Certificate
	pool *x509.CertPool // nil without a CA file
}

// LoadTLS reads files; Cert and Key are required.
func LoadTLS(files Files) (*TLS, error) {
	if files.Cert == "" || files.Key == "" {
		return nil, errors.New("credfiles: a TLS certificate needs both its certificate and its key file")
	}
	t := &TLS{files: files, w: NewWatch(files.Cert, files.Key, files.CA)}
	m, err := readMaterial(files)
	if err != nil {
		return nil, err
	}
	t.cur.Store(m)
	return t, nil
}

func readMaterial(f Files) (*material, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("credfiles: cannot load the key pair %s, %s: %w", f.Cert, f.Key, err)
	}
	m := &material{cert: &cert}
	if f.CA != "" {
		if m.pool, err = LoadPool(f.CA); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// LoadPool reads a CA bundle: one or more PEM certificates.
func LoadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credfiles: cannot read the CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: %s", ErrNoCertificate, path)
	}
	return pool, nil
}

// Reload reads the files again. On error the material loaded before stays in use.
func (t *TLS) Reload() error {
	return t.w.Reload(func() error {
		m, err := readMaterial(t.files)
		if err == nil {
			t.cur.Store(m)
		}
		return err
	})
}

// Changed reports whether one of the files changed since it was last read.
func (t *TLS) Changed() bool { return t.w.Changed() }

// Certificate is the current certificate's leaf, for logs and expiry checks.
func (t *TLS) Certificate() *x509.Certificate {
	m := t.cur.Load()
	if m.cert.Leaf != nil {
		return m.cert.Leaf
	}
	leaf, err := x509.ParseCertificate(m.cert.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}

// Server is the configuration of a client-facing TLS listener: this certificate,
// and, when a CA bundle was given, client certificates required and verified
// against it.
func (t *TLS) Server() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := t.cur.Load()
			c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*m.cert}}
			if m.pool != nil {
				c.ClientAuth = tls.RequireAndVerifyClientCert
				c.ClientCAs = m.pool
			}
			return c, nil
		},
		// GetCertificate is not called (GetConfigForClient answers first); it marks
		// the configuration as having a certificate for net/http's ServeTLS.
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return t.cur.Load().cert, nil
		},
	}
}

// ClusterServer is the accepting side of the cluster port's mutual TLS: the peer must
// present a certificate that chains to the CA bundle for client authentication, and
// for server authentication too, as a node's certificate does (a node both dials and
// accepts): a client-only certificate of the same CA (floe certs --client, for the
// client port) is not a member.
func (t *TLS) ClusterServer() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := t.cur.Load()
			if m.pool == nil {
				return nil, errors.New("credfiles: no cluster CA to verify peers with")
			}
			return &tls.Config{
				MinVersion:   tls.VersionTLS13,
				Certificates: []tls.Certificate{*m.cert},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    m.pool,
				VerifyConnection: func(cs tls.ConnectionState) error {
					return verifyChain(cs.PeerCertificates, m.pool, x509.ExtKeyUsageServerAuth)
				},
			}, nil
		},
	}
}

// ClusterClient is the dialling side of the cluster port's mutual TLS: it presents
// this certificate and accepts a peer whose certificate, for server authentication,
// chains to the CA bundle. Host names are not checked (see the package doc).
func (t *TLS) ClusterClient() *tls.Config {
	m := t.cur.Load()
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{*m.cert},
		// The chain is verified below against the cluster CA; skipping the default
		// verification only skips the host name, which the cluster does not use.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyChain(cs.PeerCertificates, m.pool, x509.ExtKeyUsageServerAuth)
		},
	}
}

// verifyChain checks that certs (leaf first) chain to roots for usage.
func verifyChain(certs []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage) error {
	if len(certs) == 0 {
		return errors.New("credfiles: the peer presented no certificate")
	}
	if roots == nil {
		return errors.New("credfiles: no cluster CA to verify the peer with")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		return fmt.Errorf("credfiles: the peer's certificate is not from the cluster CA: %w", err)
	}
	return nil
}

// Secret is the cluster's shared secret, read from a file holding it on one line
// (surrounding white space, and a final newline, are not part of it). Safe for
// concurrent use.
type Secret struct {
	path string
	w    *Watch
	cur  atomic.Pointer[[]byte]
}

// MinSecretLen is the shortest secret accepted, in bytes. Anyone who reaches the
// cluster port can test guesses of the secret offline (the acceptor's proof of one
// handshake is enough), so it must be random, not a passphrase: floe auth token
// makes one of 43 bytes.
const MinSecretLen = 32

// LoadSecret reads the secret file path.
func LoadSecret(path string) (*Secret, error) {
	s := &Secret{path: path, w: NewWatch(path)}
	b, err := readSecret(path)
	if err != nil {
		return nil, err
	}
	s.cur.Store(&b)
	return s, nil
}

func readSecret(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credfiles: cannot read the cluster secret file: %w", err)
	}
	b := bytes.TrimSpace(raw)
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return nil, fmt.Errorf("credfiles: the cluster secret file %s holds more than one line", path)
	}
	switch {
	case len(b) == 0:
		return nil, fmt.Errorf("%w: %s", ErrEmptySecret, path)
	case len(b) < MinSecretLen:
		return nil, fmt.Errorf("%w: %s (use floe auth token to make one)", ErrWeakSecret, path)
	}
	return b, nil
}

// Reload reads the file again. On error the secret loaded before stays in use.
func (s *Secret) Reload() error {
	return s.w.Reload(func() error {
		b, err := readSecret(s.path)
		if err == nil {
			s.cur.Store(&b)
		}
		return err
	})
}

// Changed reports whether the file changed since it was last read.
func (s *Secret) Changed() bool { return s.w.Changed() }

// Bytes is the current secret. The caller must not modify it.
func (s *Secret) Bytes() []byte { return *s.cur.Load() }
