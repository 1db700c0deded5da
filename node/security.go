package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"floe/auth"
	"floe/internal/credfiles"
	"floe/node/rpc"
	"floe/wire"
)

// defaultCredentialCheckInterval is how often a node looks for changed credential
// files (Config.CredentialCheckInterval).
const defaultCredentialCheckInterval = 10 * time.Second

// tlsHandshakeTimeout bounds a client's TLS handshake on the client port.
const tlsHandshakeTimeout = 10 * time.Second

// credentials are what a node authenticates with, each re-read by Reload.
type credentials struct {
	clientTLS  *credfiles.TLS    // the client and HTTP listeners; nil: plain TCP
	clusterTLS *credfiles.TLS    // the cluster port's mutual TLS; nil: off
	secret     *credfiles.Secret // the cluster port's shared secret; nil: off
	// tokens are the clients' tokens and roles; nil: clients are not checked.
	tokens      *auth.Source
	tokensWatch *credfiles.Watch

	// refusals rate-limits the log lines of refused connections.
	refusals logLimiter
}

// loadCredentials reads the configured credential files and builds the cluster
// port's guard, before anything listens or dials.
func (n *Node) loadCredentials() error {
	c := &n.creds
	cfg := n.cfg
	var err error
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		if c.clientTLS, err = credfiles.LoadTLS(credfiles.Files{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSClientCA}); err != nil {
			return fmt.Errorf("node: --tls-cert/--tls-key/--tls-client-ca: %w", err)
		}
	} else if cfg.TLSClientCA != "" {
		return errors.New("node: --tls-client-ca needs --tls-cert and --tls-key: client certificates are checked over TLS")
	}
	if cfg.ClusterTLSCert != "" || cfg.ClusterTLSKey != "" || cfg.ClusterTLSCA != "" {
		if cfg.ClusterTLSCA == "" {
			return errors.New("node: --cluster-tls-ca is required with --cluster-tls-cert: it is the CA every member's certificate must come from")
		}
		if c.clusterTLS, err = credfiles.LoadTLS(credfiles.Files{Cert: cfg.ClusterTLSCert, Key: cfg.ClusterTLSKey, CA: cfg.ClusterTLSCA}); err != nil {
			return fmt.Errorf("node: --cluster-tls-cert/--cluster-tls-key/--cluster-tls-ca: %w", err)
		}
	}
	if cfg.ClusterSecretFile != "" {
		if c.secret, err = credfiles.LoadSecret(cfg.ClusterSecretFile); err != nil {
			return fmt.Errorf("node: --cluster-secret-file: %w", err)
		}
	}
	if cfg.AuthFile != "" {
		if c.tokens, err = auth.Load(cfg.AuthFile); err != nil {
			return fmt.Errorf("node: --auth-file: %w", err)
		}
		c.tokensWatch = credfiles.NewWatch(cfg.AuthFile)
		if c.tokens.Current().Len() == 0 {
			n.log.Warn("the --auth-file lists no token: every client request but the health checks is refused", "file", cfg.AuthFile)
		}
	}
	n.checkModes()
	guard := &rpc.Guard{TLS: c.clusterTLS, Secret: c.secret, Refused: func(remote string, err error) {
		n.unauthorized("cluster", remote, err)
	}}
	n.peers.Guard = guard
	return nil
}

// warnExposed warns, once at start, about each listener bound beyond loopback that
// takes anyone: the client and HTTP ports without TLS or tokens, the cluster port
// without TLS or the secret.
func (n *Node) warnExposed() {
	c := &n.creds
	exposed := func(addr net.Addr) bool {
		a, ok := addr.(*net.TCPAddr)
		return ok && !a.IP.IsLoopback()
	}
	if c.clientTLS == nil && c.tokens == nil {
		for _, ln := range []net.Listener{n.clientLn, n.httpLn} {
			if ln != nil && exposed(ln.Addr()) {
				n.log.Warn("this port is reachable beyond loopback with neither TLS nor tokens: anyone who reaches it can write, read and administer; see the README's Security section (--tls-cert, --auth-file)",
					"addr", ln.Addr().String())
			}
		}
	}
	if c.tokens != nil && c.clusterTLS == nil && c.secret == nil {
		n.log.Warn("--auth-file without --cluster-tls-* or --cluster-secret-file: whoever reaches the cluster port can skip the tokens by speaking the node-to-node protocol",
			"addr", n.cluster.BoundAddr().String())
	}
	if c.tokens != nil && c.clientTLS == nil && (exposed(n.clientLn.Addr()) || (n.httpLn != nil && exposed(n.httpLn.Addr()))) {
		n.log.Warn("--auth-file without --tls-cert: tokens cross the network in clear text")
	}
	if c.clusterTLS == nil && c.secret == nil && exposed(n.cluster.BoundAddr()) {
		n.log.Warn("the cluster port is reachable beyond loopback without authentication: anyone who reaches it can join the cluster and change its metadata; see the README's Security section (--cluster-tls-*, --cluster-secret-file)",
			"addr", n.cluster.BoundAddr().String())
	}
}

// checkModes warns about each key, secret or token file that users other than its
// owner may read (at start and at every reload).
func (n *Node) checkModes() {
	cfg := n.cfg
	for _, f := range []struct{ flag, path string }{
		{"--tls-key", cfg.TLSKey}, {"--cluster-tls-key", cfg.ClusterTLSKey},
		{"--cluster-secret-file", cfg.ClusterSecretFile}, {"--auth-file", cfg.AuthFile},
	} {
		if fi, err := os.Stat(f.path); f.path != "" && err == nil && fi.Mode().Perm()&0o077 != 0 {
			n.log.Warn("a credential file is readable by other users than its owner; chmod 600 it", "flag", f.flag, "file", f.path, "mode", fi.Mode().Perm().String())
		}
	}
}

// unauthorized counts a refusal on listener and logs it, at most once per
// refusalLogEvery per listener with the number left out.
func (n *Node) unauthorized(listener, remote string, err error) {
	n.metrics.unauthorized.WithLabelValues(listener).Inc()
	if skipped, ok := n.creds.refusals.allow(listener); ok {
		n.log.Warn("refused a connection: not authenticated", "listener", listener, "remote", remote, "err", err,
			"refusals_not_logged", skipped)
	}
}

// Reload reads every credential file again (on SIGHUP). A file that fails to load
// keeps what was loaded before; the errors are returned joined. Connections
// authenticated before stay open.
func (n *Node) Reload() error {
	var errs []error
	reload := func(what string, f func() error) {
		if err := f(); err != nil {
			n.metrics.reloadErrors.Inc()
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	c := &n.creds
	if c.clientTLS != nil {
		reload("--tls-cert/--tls-key/--tls-client-ca", c.clientTLS.Reload)
	}
	if c.clusterTLS != nil {
		reload("--cluster-tls-*", c.clusterTLS.Reload)
	}
	if c.secret != nil {
		reload("--cluster-secret-file", c.secret.Reload)
	}
	if c.tokens != nil {
		reload("--auth-file", func() error { return c.tokensWatch.Reload(c.tokens.Reload) })
	}
	n.checkModes()
	err := errors.Join(errs...)
	if err != nil {
		n.log.Error("cannot reload credentials; the ones loaded before stay in use", "err", err)
	} else {
		n.log.Info("credentials reloaded")
	}
	return err
}

// credentialsChanged reports whether a credential file changed since it was read.
func (n *Node) credentialsChanged() bool {
	c := &n.creds
	return (c.clientTLS != nil && c.clientTLS.Changed()) || (c.clusterTLS != nil && c.clusterTLS.Changed()) ||
		(c.secret != nil && c.secret.Changed()) || (c.tokens != nil && c.tokensWatch.Changed())
}

// authorize checks a client's credential for op on topic against the token file in
// force; nil when there is none. A refusal is counted and logged (without the
// credential) for listener.
func (n *Node) authorize(listener, remote string, cred auth.Credential, op auth.Op, topic string) error {
	tokens := n.creds.tokens
	if tokens == nil {
		return nil
	}
	p, err := tokens.Current().Authorize(cred, op, topic)
	if err != nil {
		n.unauthorized(listener, remote, fmt.Errorf("%s (token %s): %w", op.Name, p, err))
	}
	return err
}

// authorizeHTTP wraps the handler of the HTTP route pattern with the check of its
// Bearer token, when the node has a token file: 401 without a known token, 403 when
// its role or prefix does not cover the route.
func (n *Node) authorizeHTTP(pattern string, h http.Handler) http.Handler {
	if n.creds.tokens == nil {
		return h
	}
	op := auth.ForRoute(pattern)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred := auth.FromBearer(r.Header.Get("Authorization"))
		if err := n.authorize("http", r.RemoteAddr, cred, op, r.PathValue("topic")); err != nil {
			status := http.StatusUnauthorized
			var rf *auth.Refusal
			if errors.As(err, &rf) {
				status = rf.Status
			}
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="floe"`)
			}
			http.Error(w, err.Error(), status)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// credentialsLoop reloads the credentials when a file changes. A file that changed
// but does not load (copied half-way) is tried again at every check.
func (n *Node) credentialsLoop() {
	n.every(n.cfg.CredentialCheckInterval, defaultCredentialCheckInterval, func() {
		if n.credentialsChanged() {
			n.Reload()
		}
	})
}

// secureClientListener wraps a client or HTTP listener in TLS when it is on.
func (n *Node) secureClientListener(ln net.Listener) net.Listener {
	if n.creds.clientTLS == nil {
		return ln
	}
	return tls.NewListener(ln, n.creds.clientTLS.Server())
}

// clientHandshake completes a client connection's TLS handshake, within
// tlsHandshakeTimeout, before its first request is read; a failed one is counted as
// unauthorized when the client's certificate was refused.
func (n *Node) clientHandshake(conn net.Conn) error {
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return nil
	}
	tc.SetDeadline(time.Now().Add(tlsHandshakeTimeout))
	err := tc.Handshake()
	tc.SetDeadline(time.Time{})
	var rh tls.RecordHeaderError
	switch {
	case err == nil, errors.Is(err, io.EOF):
		// A client that hung up before its hello (a TCP probe) was refused nothing.
	case errors.As(err, &rh) && rh.Conn != nil:
		// A plain Walrus client: tell it, in its protocol, what the port wants.
		rh.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		wire.WriteFrame(rh.Conn, wire.ErrorReply(wire.ErrUnauthorized.Error()+": this port takes TLS connections only (connect with TLS, e.g. floe's --tls-ca)"))
		n.unauthorized("client", conn.RemoteAddr().String(), errors.New("not a TLS connection"))
	default:
		n.unauthorized("client", conn.RemoteAddr().String(), fmt.Errorf("TLS handshake: %w", err))
	}
	return err
}

// logLimiter lets one log line per key through every refusalLogEvery, counting the
// ones held back.
type logLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

const refusalLogEvery = 10 * time.Second

// allow reports whether a line for key may be logged now, and how many were held
// back since the last one.
func (l *logLimiter) allow(key string) (held int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.held = map[string]time.Time{}, map[string]int{}
	}
	now := time.Now()
	if t, seen := l.last[key]; seen && now.Sub(t) < refusalLogEvery {
		l.held[key]++
		return 0, false
	}
	held = l.held[key]
	l.last[key], l.held[key] = now, 0
	return held, true
}
