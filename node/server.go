package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"floe/auth"
	"floe/node/read"
	"floe/node/rpc"
	"floe/node/write"
	"floe/wire"
)

// ErrBadRequest is wire.ErrBadRequest, for every request the node refuses
// as malformed or not allowed, from clients, the HTTP API and other nodes:
// the reply names the reason and nothing changes.
var ErrBadRequest = wire.ErrBadRequest

// Bounds of one client connection.
const (
	// maxInflight bounds the pipelined requests of one client connection.
	maxInflight = 256
	// maxConnBytes bounds the bytes one client connection holds in flight: see
	// connBudget and replyBound.
	maxConnBytes = 64 << 20
	// defaultClientWriteTimeout: a client that takes no reply bytes for this long is
	// disconnected (its pending replies are dropped, not its requests' effects).
	defaultClientWriteTimeout = 30 * time.Second
	// maxRefusing bounds the refused connections being answered at once; past it a
	// refused connection is closed without its ERR frame, so a flood of connections
	// cannot hold descriptors through the refusals.
	maxRefusing = 64
	// refuseLinger is how long a refused connection is kept to deliver its ERR frame.
	refuseLinger = time.Second
	// defaultAuthWait: with a token file, a client connection that has not
	// authenticated this long after it opened (after its TLS handshake) is answered
	// ERR and closed; maxRefusedBeforeAuth is how many refused requests it may send
	// before that.
	defaultAuthWait      = 10 * time.Second
	maxRefusedBeforeAuth = 64
)

func (c Config) authWaitOrDefault() time.Duration {
	if c.authWait > 0 {
		return c.authWait
	}
	return defaultAuthWait
}

func (n *Node) acceptClients() {
	rpc.AcceptLoop(n.clientLn, n.ctx.Done(), n.log, "client", n.metrics.acceptErrors.WithLabelValues("client").Inc, func(conn net.Conn) {
		if limit := n.cfg.MaxConnections; limit > 0 && n.clients.Load() >= int64(limit) {
			n.refuse(conn)
			return
		}
		if !n.trackConn(conn, true) {
			conn.Close()
			return
		}
		n.clients.Add(1)
		n.goLoop(func() {
			defer n.clients.Add(-1)
			defer n.trackConn(conn, false)
			n.serveClient(conn)
		})
	})
}

// refuse answers a client connection over --max-connections with one ERR frame, which
// is the reply to its first request, and closes it. It does not wait: the connection
// is answered in the background for at most refuseLinger.
func (n *Node) refuse(conn net.Conn) {
	n.metrics.refusedConns.Inc()
	if n.refusing.Add(1) > maxRefusing || !n.trackConn(conn, true) {
		n.refusing.Add(-1)
		conn.Close()
		return
	}
	n.goLoop(func() {
		defer n.refusing.Add(-1)
		defer n.trackConn(conn, false)
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(refuseLinger))
		msg := fmt.Sprintf("ERR too many connections: node %d already serves --max-connections=%d clients; retry later or use another node",
			n.cfg.NodeID, n.cfg.MaxConnections)
		if err := wire.WriteFrame(conn, []byte(msg)); err != nil {
			return
		}
		// Half-close, then take what the client sends until it closes: closing with
		// its request unread would reset the connection, and the client could lose
		// the ERR frame with it.
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		io.Copy(io.Discard, io.LimitReader(conn, 4*wire.MaxRequest))
	})
}

// connBudget bounds what one client connection holds in flight: requests read and
// not yet answered, and their replies until written, in bytes and in number. The
// reader reserves each request's bound (its frame plus replyBound) before
// dispatching it and waits while the budget is spent, so a client that pipelines more
// stops being read (TCP pushes back) instead of growing the node's memory; the
// reservation is released once the reply is written. When nothing is reserved, one
// request is admitted whatever its bound, so every request can run. Safe for
// concurrent use.
type connBudget struct {
	mu      sync.Mutex
	cond    sync.Cond
	limit   int64 // bytes
	maxReqs int
	used    int64
	reqs    int
	waiters int // acquires waiting now
}

func newConnBudget(limit int64, maxReqs int) *connBudget {
	b := &connBudget{limit: limit, maxReqs: maxReqs}
	b.cond.L = &b.mu
	return b
}

// acquire reserves n bytes for one request, waiting until they fit and fewer than
// maxReqs requests are in flight (or nothing is reserved).
func (b *connBudget) acquire(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.reqs > 0 && (b.used+n > b.limit || b.reqs >= b.maxReqs) {
		b.waiters++
		b.cond.Wait()
		b.waiters--
	}
	b.used += n
	b.reqs++
}

// release returns the n bytes that reqs requests reserved.
func (b *connBudget) release(n int64, reqs int) {
	if reqs == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.reqs -= reqs
	wake := b.waiters > 0
	b.mu.Unlock()
	if wake {
		b.cond.Broadcast()
	}
}

// replyBound is the most a reply to req can hold: a READ or TAIL stops adding entries
// at read.MaxBytes of payload but may pass it by one entry, and frames each entry with
// 12 bytes; a GET is one entry, or with a max as a READ of max; STATE and METRICS are JSON documents (a bound for
// accounting, not a limit: a larger one is still sent); the rest is a status line.
// Entries are at most maxEntryBytes (the HTTP API's limit; the Walrus protocol's
// frames hold less).
func replyBound(req wire.Request) int64 {
	switch req.Cmd {
	case "READ", "TAIL":
		return entriesBound(req.Max)
	case "GET":
		if req.Max > 0 {
			return entriesBound(req.Max)
		}
		return 16 + maxEntryBytes
	case "STATE", "METRICS":
		return 1 << 20
	}
	return 64
}

const (
	// replyBufferSize is a connection's reply buffer: big enough for the replies of
	// a group commit to leave in one write; a larger reply writes through.
	replyBufferSize = 64 << 10
	// requestBufferSize is a connection's read buffer, lent while it has bytes to
	// read (connReader): it holds several pipelined requests; each frame is copied
	// out of it, so it bounds nothing.
	requestBufferSize = 16 << 10
)

// entriesBound is the most a reply of up to max entries in READ's format can hold.
func entriesBound(max int) int64 {
	return 32 + 12*int64(max) + min(int64(max)*maxEntryBytes, read.MaxBytes+maxEntryBytes)
}

// serveClient runs one client connection. Requests are parsed and dispatched in order
// (appends are routed before the next request is read, so pipelined PUTs keep their
// order); replies are written in request order (replyQueue). At most
// maxInflight requests and maxConnBytes of requests and replies (connBudget) are in
// flight; every write has the client write timeout (defaultClientWriteTimeout).
func (n *Node) serveClient(conn net.Conn) {
	writeTimeout := n.cfg.clientWriteTimeout
	if writeTimeout == 0 {
		writeTimeout = defaultClientWriteTimeout
	}
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true) // a TLS connection's is set by its listener's (net.Listen's default)
	}
	if n.clientHandshake(conn) != nil {
		return
	}
	budget := newConnBudget(maxConnBytes, maxInflight)
	replies := newReplyQueue(conn, writeTimeout, budget)
	defer replies.wait()
	r := newConnReader(conn)
	defer r.release()
	seqs := map[string]*write.Sequence{} // per topic: keeps this connection's appends in order
	cc := &clientConn{conn: conn, remote: conn.RemoteAddr().String(), replies: replies, seqs: seqs}
	if n.creds.tokens != nil {
		// A connection that does not authenticate soon is closed: it would hold one
		// of --max-connections without a right to use it.
		cc.authDeadline = true
		conn.SetReadDeadline(time.Now().Add(n.cfg.authWaitOrDefault()))
	}
	for {
		frame, err := r.next(wire.MaxRequest)
		switch {
		case errors.Is(err, wire.ErrEmptyFrame), errors.Is(err, wire.ErrFrameTooLarge):
			budget.acquire(64)
			replies.done(replies.add(64), errReply(err))
			continue
		case err != nil:
			if cc.authDeadline && errors.Is(err, os.ErrDeadlineExceeded) {
				err = fmt.Errorf("%w: no AUTH within %v", wire.ErrUnauthorized, n.cfg.authWaitOrDefault())
				n.unauthorized("client", cc.remote, err)
				budget.acquire(64)
				replies.done(replies.add(64), errReply(err))
				cc.hangUp()
				return
			}
			if !errors.Is(err, io.EOF) && n.ctx.Err() == nil {
				n.log.Debug("client connection ended", "remote", conn.RemoteAddr().String(), "err", err)
			}
			return
		}
		req, perr := wire.ParseRequest(frame)
		cost := int64(len(frame)) + replyBound(req)
		if cc.authDeadline && req.Cmd != "AUTH" {
			cost = int64(len(frame)) + 64 // it will be refused: its reply is one ERR line
		}
		budget.acquire(cost)
		n.request(cc, req, perr, replies.add(cost))
		if cc.refused >= maxRefusedBeforeAuth {
			// A client that keeps sending without a token gets no more reading.
			cc.hangUp()
			return
		}
	}
}

// hangUp closes the connection refuseLinger from now, so that the replies already
// queued have that long to leave, however slowly the client reads.
func (cc *clientConn) hangUp() {
	conn := cc.conn
	time.AfterFunc(refuseLinger, func() { conn.Close() })
}

// clientConn is what a client connection's requests share.
type clientConn struct {
	conn    net.Conn
	remote  string
	replies *replyQueue
	seqs    map[string]*write.Sequence // per topic: keeps the connection's appends in order
	cred    auth.Credential            // from its last AUTH (zero: none)
	// authDeadline: the connection's reads have the deadline of its AUTH.
	authDeadline bool
	// refused counts the requests refused while authDeadline held.
	refused int
}

// errReply renders an error as the protocol's "ERR <reason>": the error's text
// verbatim. The errors a client can meet carry no package prefix and say each thing
// once (rpc.Unavailable), so nothing is rewritten here.
func errReply(err error) []byte { return wire.ErrorReply(err.Error()) }

// request handles one request (err: it did not parse); its reply completes r in
// replies, possibly later.
func (n *Node) request(cc *clientConn, req wire.Request, err error, r *reply) {
	replies, seqs := cc.replies, cc.seqs
	if err != nil {
		n.metrics.badRequests.Inc()
		replies.done(r, errReply(err))
		return
	}
	if req.Cmd == "AUTH" {
		replies.done(r, n.authenticate(cc, req.Token))
		return
	}
	if err := n.authorize("client", cc.remote, cc.cred, auth.ForCommand(req.Cmd), req.Topic); err != nil {
		if cc.authDeadline {
			cc.refused++
		}
		replies.done(r, errReply(err))
		return
	}
	n.metrics.request(req.Cmd)
	switch req.Cmd {
	case "PUT", "PUTOFF", "PUTBATCH":
		// The key of the topic live now: a PUT never lands in a topic created after
		// the one it was sent to was deleted (nor does the rest of this connection's
		// sequence to it).
		key, err := n.resolve(n.ctx, req.Topic)
		if err != nil {
			replies.done(r, errReply(err))
			return
		}
		seq, ok := seqs[key]
		if !ok {
			for k := range seqs {
				if n.fsm.Dead(k) {
					delete(seqs, k) // a deleted topic's: no request resolves to it again
				}
			}
			seq = n.writer.NewSequence(key)
			seqs[key] = seq
		}
		cmd := req.Cmd
		seq.Submit(&write.Job{Payloads: req.Payloads, Reply: func(res write.Result) {
			if res.Err != nil {
				replies.done(r, errReply(res.Err))
				return
			}
			replies.done(r, putReply(cmd, res.First))
		}})
	default:
		go func() { replies.done(r, n.handle(n.ctx, req)) }()
	}
}

// authenticate answers AUTH: the connection's requests are checked with token from
// now on. Without a token file every token is taken ("OK"): a client may always
// AUTH first.
func (n *Node) authenticate(cc *clientConn, token string) []byte {
	cred := auth.NewCredential(token)
	if tokens := n.creds.tokens; tokens != nil {
		if _, err := tokens.Current().Identify(cred); err != nil {
			n.unauthorized("client", cc.remote, err)
			cc.cred = auth.Credential{} // a failed AUTH leaves the connection with none
			if !cc.authDeadline {
				// and with a deadline again for its next AUTH
				cc.authDeadline = true
				cc.conn.SetReadDeadline(time.Now().Add(n.cfg.authWaitOrDefault()))
			}
			cc.refused++
			return errReply(err)
		}
	}
	cc.cred = cred
	if cc.authDeadline {
		cc.authDeadline = false
		cc.conn.SetReadDeadline(time.Time{})
	}
	return []byte("OK")
}

// getReply is the reply to a GET that took entries (none: "EMPTY"): Walrus's
// "OK <payload>" for the plain form, READ's format for floe's "GET <topic> <max>".
func getReply(req wire.Request, entries []wire.Entry, err error) []byte {
	switch {
	case err != nil:
		return errReply(err)
	case len(entries) == 0:
		return []byte("EMPTY")
	case req.Max == 0:
		return append([]byte("OK "), entries[0].Payload...)
	}
	return wire.EncodeEntries(entries, entries[len(entries)-1].Offset+1)
}

// okReply is the reply to a PUT, shared: replies are only read.
var okReply = []byte("OK")

// putReply is the reply to an acknowledged PUT, PUTOFF or PUTBATCH.
func putReply(cmd string, first uint64) []byte {
	if cmd == "PUT" {
		return okReply
	}
	return strconv.AppendUint([]byte("OK "), first, 10)
}

// handle serves every request but the appends.
func (n *Node) handle(ctx context.Context, req wire.Request) []byte {
	switch req.Cmd {
	case "REGISTER":
		if err := n.Register(ctx, req.Topic, nil); err != nil {
			return errReply(err)
		}
		return []byte("OK")
	case "GET":
		entries, err := n.Get(ctx, req.Topic, req.Max)
		return getReply(req, entries, err)
	case "STATE":
		b, err := n.StateJSON(ctx, req.Topic)
		if err != nil {
			return errReply(err)
		}
		return b
	case "METRICS":
		b, err := n.MetricsJSON()
		if err != nil {
			return errReply(err)
		}
		return b
	case "READ":
		key, err := n.resolve(ctx, req.Topic)
		if err != nil {
			return errReply(err)
		}
		entries, next, err := n.reader.Read(ctx, key, req.Offset, req.Max)
		if err != nil {
			return errReply(err)
		}
		return wire.EncodeEntries(entries, next)
	case "TAIL":
		key, err := n.resolve(ctx, req.Topic)
		if err != nil {
			return errReply(err)
		}
		entries, next, err := n.reader.Tail(ctx, key, req.Offset, req.Max, time.Duration(req.WaitMS)*time.Millisecond)
		if err != nil {
			return errReply(err)
		}
		return wire.EncodeEntries(entries, next)
	}
	return errReply(errors.New("unknown command " + req.Cmd))
}
