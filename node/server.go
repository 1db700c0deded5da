package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

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
)

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
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		io.Copy(io.Discard, io.LimitReader(conn, 4*wire.MaxRequest))
	})
}

// connBudget bounds the bytes one client connection holds in flight: requests read
// and not yet answered, and their replies until written. The reader reserves each
// request's bound (its frame plus replyBound) before dispatching it and waits while
// the budget is spent, so a client that pipelines more stops being read (TCP pushes
// back) instead of growing the node's memory; the writer releases the reservation
// once the reply is written. When nothing is reserved, one request is admitted
// whatever its bound, so every request can run. Safe for concurrent use.
type connBudget struct {
	mu      sync.Mutex
	cond    sync.Cond
	limit   int64
	used    int64
	waiters int // acquires waiting now
}

func newConnBudget(limit int64) *connBudget {
	b := &connBudget{limit: limit}
	b.cond.L = &b.mu
	return b
}

// acquire reserves n bytes, waiting until they fit (or nothing is reserved).
func (b *connBudget) acquire(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.used > 0 && b.used+n > b.limit {
		b.waiters++
		b.cond.Wait()
		b.waiters--
	}
	b.used += n
}

// release returns n bytes reserved by acquire.
func (b *connBudget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
	b.cond.Broadcast()
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

// replyBuffers are the connections' reply buffers, lent while replies are pending.
var replyBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, replyBufferSize) }}

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

// pendingReply is one request's place in the connection's reply order.
type pendingReply struct {
	slot     chan []byte
	reserved int64 // bytes of the connection's budget, released once written
}

// serveClient runs one client connection. Requests are parsed and dispatched in order
// (appends are routed before the next request is read, so pipelined PUTs keep their
// order); replies are written in request order by a second goroutine. At most
// maxInflight requests and maxConnBytes of requests and replies (connBudget) are in
// flight; every write has the client write timeout (defaultClientWriteTimeout).
func (n *Node) serveClient(conn net.Conn) {
	writeTimeout := n.cfg.clientWriteTimeout
	if writeTimeout == 0 {
		writeTimeout = defaultClientWriteTimeout
	}
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	budget := newConnBudget(maxConnBytes)
	replies := make(chan pendingReply, maxInflight)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		// The reply buffer is borrowed while replies are pending and given back
		// once they are written, so that idle connections hold none.
		var w *bufio.Writer
		failed := false
		// Replies that are ready one after the other are written together: the
		// buffer is flushed only when the next reply in order is not ready yet (or
		// none is pending), so the replies one group commit completes leave in one
		// write, and none waits in the buffer for a later one.
		flush := func() {
			if failed || w == nil || w.Buffered() == 0 {
				return
			}
			conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := w.Flush(); err != nil {
				failed = true
				conn.Close()
			}
		}
		giveBack := func() {
			if w != nil {
				w.Reset(nil)
				replyBuffers.Put(w)
				w = nil
			}
		}
		defer giveBack()
		for p := range replies {
			var b []byte
			select {
			case b = <-p.slot:
			default:
				flush()
				b = <-p.slot
			}
			if !failed {
				if w == nil {
					w = replyBuffers.Get().(*bufio.Writer)
					w.Reset(conn)
				}
				if len(b)+4 > w.Available() { // the buffer writes through: bound the write
					conn.SetWriteDeadline(time.Now().Add(writeTimeout))
				}
				if err := wire.WriteFrame(w, b); err != nil {
					failed = true
					conn.Close()
				}
			}
			budget.release(p.reserved)
			if len(replies) == 0 {
				flush()
				giveBack()
			}
		}
		flush()
	}()
	defer func() {
		close(replies)
		<-writerDone
	}()
	r := newConnReader(conn)
	defer r.release()
	seqs := map[string]*write.Sequence{} // per topic: keeps this connection's appends in order
	for {
		frame, err := r.next(wire.MaxRequest)
		slot := make(chan []byte, 1)
		switch {
		case errors.Is(err, wire.ErrEmptyFrame), errors.Is(err, wire.ErrFrameTooLarge):
			budget.acquire(64)
			slot <- errReply(err)
			replies <- pendingReply{slot: slot, reserved: 64}
			continue
		case err != nil:
			if !errors.Is(err, io.EOF) && n.ctx.Err() == nil {
				n.log.Debug("client connection ended", "remote", conn.RemoteAddr().String(), "err", err)
			}
			return
		}
		req, perr := wire.ParseRequest(frame)
		cost := int64(len(frame)) + replyBound(req)
		budget.acquire(cost)
		replies <- pendingReply{slot: slot, reserved: cost}
		n.request(req, perr, slot, seqs)
	}
}

// errReply renders an error as the protocol's "ERR <reason>": the error's text
// verbatim. The errors a client can meet carry no package prefix and say each thing
// once (rpc.Unavailable), so nothing is rewritten here.
func errReply(err error) []byte { return wire.ErrorReply(err.Error()) }

// request handles one request (err: it did not parse); the reply goes to slot,
// possibly later.
func (n *Node) request(req wire.Request, err error, slot chan<- []byte, seqs map[string]*write.Sequence) {
	if err != nil {
		n.metrics.badRequests.Inc()
		slot <- errReply(err)
		return
	}
	n.metrics.request(req.Cmd)
	switch req.Cmd {
	case "PUT", "PUTOFF", "PUTBATCH":
		seq, ok := seqs[req.Topic]
		if !ok {
			seq = n.writer.NewSequence(req.Topic)
			seqs[req.Topic] = seq
		}
		cmd := req.Cmd
		seq.Submit(&write.Job{Payloads: req.Payloads, Reply: func(r write.Result) {
			if r.Err != nil {
				slot <- errReply(r.Err)
				return
			}
			slot <- putReply(cmd, r.First)
		}})
	default:
		go func() { slot <- n.handle(n.ctx, req) }()
	}
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

// putReply is the reply to an acknowledged PUT, PUTOFF or PUTBATCH.
func putReply(cmd string, first uint64) []byte {
	if cmd == "PUT" {
		return []byte("OK")
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
		entries, next, err := n.reader.Read(ctx, req.Topic, req.Offset, req.Max)
		if err != nil {
			return errReply(err)
		}
		return wire.EncodeEntries(entries, next)
	case "TAIL":
		entries, next, err := n.reader.Tail(ctx, req.Topic, req.Offset, req.Max, time.Duration(req.WaitMS)*time.Millisecond)
		if err != nil {
			return errReply(err)
		}
		return wire.EncodeEntries(entries, next)
	}
	return errReply(errors.New("unknown command " + req.Cmd))
}
