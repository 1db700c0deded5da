package rpc

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"floe/internal/credfiles"
	"floe/wire"
)

// The first bytes a dialler may send on the cluster port, besides MuxRaft and MuxRPC:
// a TLS ClientHello record, or the start of the secret handshake.
const (
	tlsHandshakeRecord byte = 0x16
	MuxSecret          byte = 'S'
	secretVersion      byte = 1
	// tlsAccepted is the acceptor's first byte inside TLS: the dialler's
	// certificate was accepted.
	tlsAccepted byte = 1
)

// Sizes of the secret handshake's fields.
const (
	nonceLen = 32
	macLen   = sha256.Size
)

// Labels of the two proofs of the secret handshake: each side proves it knows the
// secret over both nonces with its own label, so one side's proof can never be
// replayed as the other's.
var (
	labelServer = []byte("floe cluster server v1")
	labelClient = []byte("floe cluster client v1")
)

// Guard authenticates the connections of the cluster port, in both directions: with
// mutual TLS (TLS, the cluster CA's certificates), with a challenge-response over a
// shared secret (Secret), with both (the handshake then runs inside TLS), or with
// neither (a nil *Guard, or one with both nil: every connection is taken, as before).
//
// A dialler authenticates before it says which protocol it speaks (MuxRaft or
// MuxRPC), so neither Raft nor any RPC op ever reads a byte from an unauthenticated
// peer. A refused dialler that speaks the RPC protocol is answered with an error frame
// (code CodeUnauthorized) saying what the port requires, so a joining node without
// the right credentials reports why; then the connection is closed.
//
// Inside TLS the acceptor first sends one byte (tlsAccepted), so that the dialler
// learns whether its certificate was taken before it sends anything (with TLS 1.3
// its handshake ends before the acceptor checks it).
//
// The secret handshake (one round trip and a half):
//
//	dialler  -> 'S' 1 nonceD[32]
//	acceptor -> RPC frame, id 0, StatusOK, body nonceA[32] macA[32]  (or StatusErr: refused)
//	dialler  -> macD[32]
//
// with macA = HMAC-SHA256(secret, labelServer|nonceD|nonceA) and macD the same with
// labelClient. The dialler checks macA before it proves anything; the acceptor checks
// macD. The secret never crosses the wire. It authenticates the connection when it
// opens; it does not encrypt nor protect what follows (TLS does).
type Guard struct {
	TLS    *credfiles.TLS    // nil: no TLS
	Secret *credfiles.Secret // nil: no secret handshake
	// Refused, when set, is told of every connection the acceptor refused (a
	// connection closed before it sent a byte, a TCP probe, is not one).
	Refused func(remote string, err error)
}

// on reports whether g authenticates anything.
func (g *Guard) on() bool { return g != nil && (g.TLS != nil || g.Secret != nil) }

// requires says what the acceptor requires, for refusals.
func (g *Guard) requires() string {
	switch {
	case g.TLS != nil && g.Secret != nil:
		return "mutual TLS with the cluster CA and the cluster secret (--cluster-tls-cert/--cluster-tls-key/--cluster-tls-ca and --cluster-secret-file)"
	case g.TLS != nil:
		return "mutual TLS with the cluster CA (--cluster-tls-cert/--cluster-tls-key/--cluster-tls-ca)"
	default:
		return "the cluster secret (--cluster-secret-file)"
	}
}

// accept authenticates a connection the cluster port accepted and returns it (wrapped
// in TLS when TLS is on) and the protocol byte the dialler sent next. The caller set
// the deadline of the first byte; rest bounds the reads after it (the caller's write
// deadline bounds the writes).
func (g *Guard) accept(conn net.Conn, rest time.Time) (net.Conn, byte, error) {
	kind, err := readByte(conn)
	conn.SetReadDeadline(rest)
	if err != nil || !g.on() {
		return conn, kind, err
	}
	if g.TLS != nil {
		if kind != tlsHandshakeRecord {
			return conn, 0, g.refuse(conn, kind, "it did not start TLS")
		}
		tc := tls.Server(&prefixed{Conn: conn, first: kind, unread: true}, g.TLS.ClusterServer())
		if err := tc.Handshake(); err != nil {
			return conn, 0, g.refused(conn, fmt.Errorf("%w: TLS handshake: %v", wire.ErrUnauthorized, err))
		}
		conn = tc
		// With TLS 1.3 the dialler's handshake ends before its certificate is
		// checked here: this byte tells it that it was accepted.
		if _, err := conn.Write([]byte{tlsAccepted}); err != nil {
			return conn, 0, err
		}
		if kind, err = readByte(conn); err != nil {
			return conn, 0, err
		}
	}
	if g.Secret != nil {
		if kind != MuxSecret {
			return conn, 0, g.refuse(conn, kind, "it did not start the secret handshake")
		}
		if err := g.acceptSecret(conn); err != nil {
			return conn, 0, g.refused(conn, err)
		}
		if kind, err = readByte(conn); err != nil {
			return conn, 0, err
		}
	}
	return conn, kind, nil
}

// refuse answers a dialler that skipped a step (it sent kind instead) with an error
// frame when it speaks the RPC protocol, and returns the error.
func (g *Guard) refuse(conn net.Conn, kind byte, why string) error {
	err := fmt.Errorf("%w: this node's cluster port requires %s; %s", wire.ErrUnauthorized, g.requires(), why)
	if kind == MuxRPC || kind == MuxSecret {
		conn.Write(AppendFrame(nil, 0, StatusErr, EncodeError(err)))
	}
	return g.refused(conn, err)
}

func (g *Guard) refused(conn net.Conn, err error) error {
	if g.Refused != nil {
		g.Refused(conn.RemoteAddr().String(), err)
	}
	return err
}

func (g *Guard) acceptSecret(conn net.Conn) error {
	var hello [1 + nonceLen]byte
	if _, err := io.ReadFull(conn, hello[:]); err != nil {
		return fmt.Errorf("%w: secret handshake cut short: %v", wire.ErrUnauthorized, err)
	}
	if hello[0] != secretVersion {
		err := fmt.Errorf("%w: secret handshake version %d (this node speaks %d)", wire.ErrUnauthorized, hello[0], secretVersion)
		conn.Write(AppendFrame(nil, 0, StatusErr, EncodeError(err)))
		return err
	}
	nonceD := hello[1:]
	var nonceA [nonceLen]byte
	rand.Read(nonceA[:])
	secret := g.Secret.Bytes()
	body := append(nonceA[:], proof(secret, labelServer, nonceD, nonceA[:])...)
	if _, err := conn.Write(AppendFrame(nil, 0, StatusOK, body)); err != nil {
		return err
	}
	var macD [macLen]byte
	if _, err := io.ReadFull(conn, macD[:]); err != nil {
		// The dialler hangs up here when our proof did not match its secret.
		return fmt.Errorf("%w: the peer left the secret handshake (does it hold another cluster secret?): %v", wire.ErrUnauthorized, err)
	}
	if !hmac.Equal(macD[:], proof(secret, labelClient, nonceD, nonceA[:])) {
		return fmt.Errorf("%w: the peer does not hold this cluster's secret", wire.ErrUnauthorized)
	}
	return nil
}

// Dial opens a connection to the cluster port at addr for the protocol kind (MuxRaft
// or MuxRPC), authenticating as g says, all within timeout. A refusal by the peer
// wraps wire.ErrUnauthorized.
func (g *Guard) Dial(addr string, kind byte, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	conn.SetDeadline(time.Now().Add(timeout))
	conn, err = g.dialAuth(conn, addr)
	if err == nil {
		_, err = conn.Write([]byte{kind})
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

func (g *Guard) dialAuth(conn net.Conn, addr string) (net.Conn, error) {
	if !g.on() {
		return conn, nil
	}
	if g.TLS != nil {
		tc := tls.Client(conn, g.TLS.ClusterClient())
		if err := tc.Handshake(); err != nil {
			return conn, tlsDialError(addr, err)
		}
		conn = tc
		b, err := readByte(conn)
		var ne net.Error
		switch {
		case err == nil && b != tlsAccepted:
			return conn, fmt.Errorf("the node at %s answered TLS with %#x, not the confirmation this version expects (an older floe?)", addr, b)
		case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, syscall.ECONNRESET):
			return conn, fmt.Errorf("the node at %s did not confirm the TLS connection (busy, or an older floe?): %w", addr, err)
		case err != nil:
			return conn, fmt.Errorf("%w: the node at %s refused this node's certificate (is it a node certificate of that cluster's CA?): %v",
				wire.ErrUnauthorized, addr, err)
		}
	}
	if g.Secret != nil {
		if err := g.dialSecret(conn, addr); err != nil {
			return conn, err
		}
	}
	return conn, nil
}

// tlsDialError explains a failed TLS handshake with a peer: a refusal of our
// certificate, or a peer we do not trust, is unauthorized; a peer that does not speak
// TLS probably runs without cluster TLS.
func tlsDialError(addr string, err error) error {
	var rh tls.RecordHeaderError
	var ne net.Error
	switch {
	case errors.As(err, &rh), errors.Is(err, io.EOF):
		return fmt.Errorf("TLS handshake with the cluster port at %s failed (does that node run with --cluster-tls-*?): %w", addr, err)
	case errors.Is(err, syscall.ECONNRESET), errors.As(err, &ne) && ne.Timeout():
		// Not an answer about our certificate: the node is busy, unreachable, or
		// does not speak TLS on that port.
		return fmt.Errorf("TLS handshake with the cluster port at %s (busy, or not running with --cluster-tls-*?): %w", addr, err)
	}
	return fmt.Errorf("%w: TLS handshake with the cluster port at %s: %v", wire.ErrUnauthorized, addr, err)
}

func (g *Guard) dialSecret(conn net.Conn, addr string) error {
	var hello [2 + nonceLen]byte
	hello[0], hello[1] = MuxSecret, secretVersion
	nonceD := hello[2:]
	rand.Read(nonceD)
	if _, err := conn.Write(hello[:]); err != nil {
		return err
	}
	_, status, body, err := ReadFrame(conn)
	switch {
	case err != nil:
		return fmt.Errorf("the node at %s left the cluster secret handshake (does it run with --cluster-secret-file?): %w", addr, err)
	case status == StatusErr:
		return DecodeError(body)
	case len(body) != nonceLen+macLen:
		return fmt.Errorf("%w: the node at %s answered the secret handshake with %d bytes", wire.ErrUnauthorized, addr, len(body))
	}
	nonceA, macA := body[:nonceLen], body[nonceLen:]
	secret := g.Secret.Bytes()
	if !hmac.Equal(macA, proof(secret, labelServer, nonceD, nonceA)) {
		return fmt.Errorf("%w: the node at %s holds another cluster secret than this node (--cluster-secret-file)", wire.ErrUnauthorized, addr)
	}
	_, err = conn.Write(proof(secret, labelClient, nonceD, nonceA))
	return err
}

// proof is HMAC-SHA256(secret, label|nonceD|nonceA).
func proof(secret, label, nonceD, nonceA []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(label)
	m.Write(nonceD)
	m.Write(nonceA)
	return m.Sum(nil)
}

func readByte(r io.Reader) (byte, error) {
	var b [1]byte
	_, err := io.ReadFull(r, b[:])
	return b[0], err
}

// prefixed gives back, on its first Read, the byte the acceptor read to choose a
// protocol.
type prefixed struct {
	net.Conn
	first  byte
	unread bool
}

func (p *prefixed) Read(b []byte) (int, error) {
	if p.unread && len(b) > 0 {
		p.unread = false
		b[0] = p.first
		return 1, nil
	}
	return p.Conn.Read(b)
}
