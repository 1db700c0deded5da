package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/spf13/pflag"

	"floe/client"
	"floe/internal/credfiles"
)

// clientSec is how a command authenticates to nodes as their client: the TLS flags
// every command that talks to a node takes (the agent's own --tls-cert and --tls-key
// are its server certificate, not these).
type clientSec struct {
	ca, cert, key, serverName string
	token                     string
}

// flags registers --tls-ca, --tls-cert, --tls-key and --tls-server-name, with their
// FLOE_TLS_* environment defaults.
func (s *clientSec) flags(fs *pflag.FlagSet) {
	fs.StringVar(&s.ca, "tls-ca", os.Getenv("FLOE_TLS_CA"), "connect over TLS, trusting the nodes' certificates from this CA bundle (PEM; env FLOE_TLS_CA)")
	fs.StringVar(&s.cert, "tls-cert", os.Getenv("FLOE_TLS_CERT"), "client certificate (PEM) for nodes that require one (--tls-client-ca); with --tls-key (env FLOE_TLS_CERT)")
	fs.StringVar(&s.key, "tls-key", os.Getenv("FLOE_TLS_KEY"), "key of --tls-cert (PEM; env FLOE_TLS_KEY)")
	fs.StringVar(&s.token, "token", os.Getenv("FLOE_TOKEN"), "token for nodes with an --auth-file (env FLOE_TOKEN, which keeps it out of the process list)")
	fs.Lookup("token").DefValue = "" // --help must not print the token FLOE_TOKEN holds
	fs.StringVar(&s.serverName, "tls-server-name", os.Getenv("FLOE_TLS_SERVER_NAME"), "name the nodes' certificates must carry (default: the host dialled; env FLOE_TLS_SERVER_NAME)")
}

// tlsConfig is the TLS configuration the flags ask for, or nil for plain TCP. TLS is
// on when any of the flags is set; without --tls-ca the system's roots are trusted.
func (s *clientSec) tlsConfig() (*tls.Config, error) {
	if s.ca == "" && s.cert == "" && s.key == "" && s.serverName == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.serverName}
	if s.ca != "" {
		pool, err := credfiles.LoadPool(s.ca)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		cfg.RootCAs = pool
	}
	if (s.cert == "") != (s.key == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if s.cert != "" {
		pair, err := tls.LoadX509KeyPair(s.cert, s.key)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// dialer is the client.Dialer the flags ask for.
func (s *clientSec) dialer() (client.Dialer, error) {
	cfg, err := s.tlsConfig()
	return client.Dialer{TLS: cfg, Token: s.token}, err
}

// dial connects to the first node of addrs (comma-separated) that answers.
func (s *clientSec) dial(addrs string) (*client.Conn, error) {
	d, err := s.dialer()
	if err != nil {
		return nil, err
	}
	return d.Dial(addrs)
}

// httpClient is an HTTP client for the nodes' HTTP API (it sends the token as a
// Bearer token), and the scheme of its URLs.
func (s *clientSec) httpClient() (*http.Client, string, error) {
	cfg, err := s.tlsConfig()
	if err != nil {
		return nil, "", err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	scheme := "http"
	if cfg != nil {
		tr.TLSClientConfig = cfg
		scheme = "https"
	}
	return &http.Client{Transport: bearer{token: s.token, next: tr}}, scheme, nil
}

// benchNodes is how the benchmarks reach the nodes: the client protocol and the
// HTTP API with the credentials of the --tls-* and --token flags.
type benchNodes struct {
	dialer client.Dialer
	http   *http.Client
	scheme string
}

func (s *clientSec) benchNodes() (*benchNodes, error) {
	d, err := s.dialer()
	if err != nil {
		return nil, err
	}
	hc, scheme, err := s.httpClient()
	if err != nil {
		return nil, err
	}
	return &benchNodes{dialer: d, http: hc, scheme: scheme}, nil
}

// dial connects to the node at addr.
func (b *benchNodes) dial(addr string) (*client.Conn, error) { return b.dialer.Dial(addr) }

// plain reports whether the nodes are reached without TLS and token, so that raw
// protocol connections (floe bench --idle-connections) work.
func (b *benchNodes) plain() bool { return b.dialer.TLS == nil && b.dialer.Token == "" }

// bearer adds "Authorization: Bearer <token>" to requests when there is a token.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.token == "" {
		return b.next.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}
