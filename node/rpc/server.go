package rpc

import (
	"bufio"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"floe/wire"
)

// Request is one inbound call. Its handler answers it with Reply, exactly once, from
// any goroutine.
type Request struct {
	ID   uint64
	Op   Op
	Body []byte
	Conn *Conn
}

// Reply sends the reply to r: body, or an error reply of err (not nil) carrying its
// Code and message.
func (r *Request) Reply(body []byte, err error) { r.Conn.reply(r.ID, body, err) }

// Handler serves one request; it answers through r.Reply.
type Handler func(r *Request)

// Server is the handler table of the RPC side of the cluster port. Fill it with
// Handle and HandleOrdered before the first ServeConn; it is read-only after.
type Server struct {
	handlers [256]Handler
	ordered  [256]bool
	// Go starts a goroutine that must end before the owner shuts down (default: go).
	Go func(func())
}

// Handle registers h for op. It runs on a goroutine of its own, so one call never
// waits behind another.
func (s *Server) Handle(op Op, h Handler) { s.handlers[op] = h }

// HandleOrdered registers h for op, to run on the connection's reader goroutine in
// arrival order. h must not block: it answers at once or queues the work (Conn.Queue).
func (s *Server) HandleOrdered(op Op, h Handler) {
	s.handlers[op] = h
	s.ordered[op] = true
}

// ServeConn serves one inbound connection (the mux byte already read) until it fails
// or closes, then closes it. Requests are dispatched in arrival order; an op without a
// handler is answered with a wire.ErrBadRequest.
func (s *Server) ServeConn(conn net.Conn) {
	defer conn.Close()
	c := newConn(conn)
	goFn := s.Go
	if goFn == nil {
		goFn = func(f func()) { go f() }
	}
	goFn(c.runQueue)
	defer close(c.queue)
	// The writer ends after the reader, with the replies already made written
	// (those of ops answered on the reader, say), before the connection closes.
	stopWriter, writerDone := make(chan struct{}), make(chan struct{})
	goFn(func() { defer close(writerDone); c.writeReplies(stopWriter) })
	defer func() { close(stopWriter); <-writerDone }()
	r := bufio.NewReaderSize(conn, 64<<10)
	for {
		id, op, body, err := ReadFrame(r)
		if err != nil {
			return
		}
		req := &Request{ID: id, Op: Op(op), Body: body, Conn: c}
		switch h := s.handlers[op]; {
		case h == nil:
			req.Reply(nil, fmt.Errorf("%w: unknown rpc op %d", wire.ErrBadRequest, op))
		case s.ordered[op]:
			h(req)
		default:
			go h(req)
		}
	}
}

// Conn is one inbound RPC connection. Its reader never waits for a request's work, so
// that a call is never stuck behind another kind (a status call behind appends to a
// stuck appender, say): ordered work goes to the connection's queue, which one
// goroutine runs in arrival order (waiting while the work waits); every other call is
// answered by a goroutine of its own.
type Conn struct {
	conn net.Conn
	// Replies are appended to pending (under mu) by whoever answers, and written by
	// the connection's writer goroutine (writeReplies), which takes all that is
	// pending at once: the replies of one group commit leave in one write, and an
	// answering goroutine (an appender) never waits for the socket.
	mu      sync.Mutex
	pending []byte
	kick    chan struct{} // capacity 1: replies are pending

	queue      chan queued
	queueBytes atomic.Int64 // bytes of the queued work
}

type queued struct {
	run   func()
	bytes int64
}

// Bounds of one connection's queue.
const (
	QueueLen   = 4096
	QueueBytes = 64 << 20
)

// replyTimeout bounds how long a write of replies may go without progress; tests
// shorten it.
var replyTimeout = newTimeout(10 * time.Second)

// timeout is a duration tests may change while connections read it.
type timeout struct{ ns atomic.Int64 }

func newTimeout(d time.Duration) *timeout {
	t := &timeout{}
	t.set(d)
	return t
}

func (t *timeout) get() time.Duration  { return time.Duration(t.ns.Load()) }
func (t *timeout) set(d time.Duration) { t.ns.Store(int64(d)) }

// WriteAll writes b to conn, failing only when timeout passes with no byte written:
// the deadline bounds progress, not the size of b, which grows with the load (a
// whole group commit's replies, or many forwarded appends). It leaves a write
// deadline set on conn.
func WriteAll(conn net.Conn, b []byte, timeout time.Duration) error {
	bufs := net.Buffers{b}
	return WriteBuffers(conn, &bufs, timeout)
}

// WriteBuffers is WriteAll of bufs, gathered into as few writes as conn allows
// (writev on a socket); it consumes bufs.
func WriteBuffers(conn net.Conn, bufs *net.Buffers, timeout time.Duration) error {
	for {
		conn.SetWriteDeadline(time.Now().Add(timeout))
		n, err := bufs.WriteTo(conn)
		if err == nil || len(*bufs) == 0 {
			return nil
		}
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() || n == 0 {
			return err
		}
	}
}

func newConn(conn net.Conn) *Conn {
	return &Conn{conn: conn, kick: make(chan struct{}, 1), queue: make(chan queued, QueueLen)}
}

// Queue puts run, which holds bytes of payload, in the connection's queue without
// waiting; the queue's goroutine calls it after everything queued before. A full queue
// (QueueLen runs or QueueBytes of payload; one run alone is always admitted) refuses
// it with an ErrUnavailable, which the sender retries.
func (c *Conn) Queue(bytes int64, run func()) error {
	if queued := c.queueBytes.Add(bytes); queued > QueueBytes && queued != bytes {
		c.queueBytes.Add(-bytes)
		return Unavailable(fmt.Sprintf("node busy: %d bytes of appends queued on this connection", QueueBytes), nil)
	}
	select {
	case c.queue <- queued{run: run, bytes: bytes}:
		return nil
	default:
		c.queueBytes.Add(-bytes)
		return Unavailable(fmt.Sprintf("node busy: %d appends queued on this connection", QueueLen), nil)
	}
}

// runQueue runs the queued work in order until the queue is closed and empty.
func (c *Conn) runQueue() {
	for q := range c.queue {
		q.run()
		c.queueBytes.Add(-q.bytes)
	}
}

func (c *Conn) reply(id uint64, body []byte, err error) {
	status := byte(StatusOK)
	if err != nil {
		status, body = StatusErr, EncodeError(err)
	}
	c.mu.Lock()
	c.pending = AppendFrame(c.pending, id, status, body)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default: // the writer has been told already
	}
}

// maxSpareReplies is the largest reply buffer the writer keeps between writes.
const maxSpareReplies = 1 << 20

// writeReplies writes the pending replies, all that are pending at once, until done
// is closed, and then what is pending by then. A write that fails, or makes no
// progress for replyTimeout, closes the connection, which ends ServeConn; the sender
// takes the calls waiting on it as possibly delivered.
func (c *Conn) writeReplies(done <-chan struct{}) {
	var spare []byte
	for stop := false; !stop; {
		select {
		case <-c.kick:
		case <-done:
			stop = true
		}
		c.mu.Lock()
		buf := c.pending
		if len(buf) == 0 { // kicked for replies an earlier write took
			c.mu.Unlock()
			continue
		}
		c.pending, spare = spare, nil // never two owners of one array
		c.mu.Unlock()
		if err := WriteAll(c.conn, buf, replyTimeout.get()); err != nil {
			c.conn.Close()
			return
		}
		if cap(buf) <= maxSpareReplies {
			spare = buf[:0]
		}
	}
}
