package node

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"floe/node/rpc"
	"floe/wire"
)

// replyQueue writes one client connection's replies, in request order, without a
// goroutine of its own. The reader adds a place for each request (add); whoever
// completes the reply at the head of the queue (done) writes it and every reply ready
// behind it in one write when nothing else is pending: for a request/response client's
// PUT that is the appender answering its group commit, so the reply costs no goroutine
// wake-up. When later replies are still pending (a pipelining client), a goroutine is
// started to write, so that the replies the appender completes meanwhile leave in the
// same write. The inline write is non-blocking: what the socket does not
// take at once is finished by a goroutine started for it, with the client write
// timeout, so a slow client never holds up the goroutine that completed its reply
// (an appender answering a whole batch). A connection that is not a socket (a
// net.Pipe in tests) always writes on such a goroutine.
//
// A write that fails or times out closes the connection; replies completed after
// that are dropped (the requests' effects stand). Safe for concurrent use.
type replyQueue struct {
	conn    net.Conn
	raw     syscall.RawConn // nil: not a socket, no non-blocking writes
	timeout time.Duration
	budget  *connBudget

	mu      sync.Mutex
	idle    sync.Cond // broadcast when writing stops
	q       []*reply  // pending replies in request order; q[0] is the next to write
	writing bool      // a goroutine is writing; it writes whatever becomes ready
	failed  bool      // a write failed: the connection is closed
	nb      nbWrite   // the writing goroutine's non-blocking write
}

// reply is one request's place in the reply order.
type reply struct {
	b        []byte
	ready    bool
	reserved int64 // bytes of the connection's budget, released once written
}

func newReplyQueue(conn net.Conn, timeout time.Duration, budget *connBudget) *replyQueue {
	q := &replyQueue{conn: conn, timeout: timeout, budget: budget}
	q.idle.L = &q.mu
	q.nb.fn = q.nb.write
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			q.raw = raw
		}
	}
	return q
}

// add returns the place of the next request's reply, which holds reserved bytes of
// the budget until it is written. Called by the reader, in request order.
func (q *replyQueue) add(reserved int64) *reply {
	r := &reply{reserved: reserved}
	q.mu.Lock()
	q.q = append(q.q, r)
	q.mu.Unlock()
	return r
}

// done completes r with the reply b and writes what is ready, unless another
// goroutine is writing (it takes r too). Exactly once per add, on any goroutine.
func (q *replyQueue) done(r *reply, b []byte) {
	q.mu.Lock()
	r.b, r.ready = b, true
	if q.writing || !q.q[0].ready {
		q.mu.Unlock()
		return
	}
	q.writing = true
	if q.raw == nil || !q.q[len(q.q)-1].ready {
		// Not a socket, or more replies of the connection are on their way (a
		// pipelining client): a goroutine writes, so that those the completer
		// (an appender answering a batch) completes meanwhile leave in the same
		// write, not one write each.
		q.mu.Unlock()
		go func() {
			q.mu.Lock()
			q.write(q.raw == nil)
		}()
		return
	}
	q.write(false)
}

// write writes the ready replies at the head of the queue until none is, then stops
// writing. q.mu is held and q.writing set; write returns with q.mu released. Without
// blocking, it hands the rest of a write the socket did not take to a goroutine that
// goes on blocking.
func (q *replyQueue) write(blocking bool) {
	bp := getReplyBuf()
	buf := *bp
	for {
		b, large, reserved, n := q.takeReady(buf[:0])
		buf = b[:0]
		if len(b) == 0 {
			q.writing = false
			q.idle.Broadcast()
			q.mu.Unlock()
			putReplyBuf(bp, buf)
			return
		}
		q.mu.Unlock()
		var err error
		switch {
		case blocking:
			err = q.writeBlocking(b, large)
		case large != nil:
			go q.finish(bp, buf, b, large, reserved, n) // b is large's frame header
			return
		default:
			written, werr := q.writeNow(b)
			if werr == nil && written < len(b) {
				// The socket is full: a goroutine of its own finishes this write and
				// goes on with the replies after it.
				go q.finish(bp, buf, b[written:], nil, reserved, n)
				return
			}
			err = werr
		}
		q.budget.release(reserved, n)
		q.mu.Lock()
		q.check(err)
	}
}

// finish writes rest (the end of a write the socket did not take, in buf, which it
// gives back to the pool with bp) and
// large (a large reply's body, after its header in rest; nil if none), releases the
// budget of the n replies they hold, and goes on writing what became ready
// meanwhile, blocking.
func (q *replyQueue) finish(bp *[]byte, buf, rest, large []byte, reserved int64, n int) {
	err := q.writeBlocking(rest, large)
	putReplyBuf(bp, buf)
	q.budget.release(reserved, n)
	q.mu.Lock()
	q.check(err)
	q.write(true)
}

// check closes the connection after a failed write; q.mu is held.
func (q *replyQueue) check(err error) {
	if err != nil && !q.failed {
		q.failed = true
		q.conn.Close()
	}
}

// takeReady removes the ready replies at the head of the queue and appends their
// frames to b; it returns b, the budget bytes they held and their number. A reply
// larger than largeReply is not copied: it is taken alone, b then holds its frame
// header and large its body. q.mu is held. Once the connection failed, the replies
// are dropped (b stays empty) and their budget is released here.
func (q *replyQueue) takeReady(b []byte) (_ []byte, large []byte, _ int64, _ int) {
	var reserved int64
	i := 0
	for ; i < len(q.q) && q.q[i].ready; i++ {
		r := q.q[i]
		if !q.failed && len(r.b) > largeReply {
			if i > 0 {
				break // the replies before it go first
			}
			b = binary.LittleEndian.AppendUint32(b, uint32(len(r.b)))
			large = r.b
			reserved += r.reserved
			q.q[i] = nil
			i++
			break
		}
		if !q.failed {
			b = wire.AppendFrame(b, r.b)
		}
		reserved += r.reserved
		q.q[i] = nil
	}
	if i == 0 {
		return b, nil, 0, 0
	}
	q.q = q.q[i:]
	if len(q.q) == 0 {
		q.q = q.q[:0]
		if cap(q.q) > 64 {
			q.q = nil // after a burst of pipelined requests, let the array go
		}
	}
	if q.failed {
		q.budget.release(reserved, i)
		return b, nil, 0, 0
	}
	return b, large, reserved, i
}

// largeReply is the largest reply copied into the write buffer; a larger one (a
// READ of many entries) is written from where it is.
const largeReply = replyBufferSize

// writeNow writes b without waiting for the socket: it returns how much the socket
// took (maybe none).
func (q *replyQueue) writeNow(b []byte) (int, error) {
	q.nb.b = b
	err := q.raw.Write(q.nb.fn)
	n, werr := q.nb.n, q.nb.err
	q.nb = nbWrite{fn: q.nb.fn}
	if n < 0 {
		n = 0
	}
	if errors.Is(werr, syscall.EAGAIN) {
		werr = nil
	}
	if err == nil {
		err = werr
	}
	return n, err
}

// nbWrite is a non-blocking write's arguments and results, kept in the queue (only
// the writing goroutine uses it) so that a write allocates nothing; fn is its
// write method, made once.
type nbWrite struct {
	fn  func(fd uintptr) bool
	b   []byte
	n   int
	err error
}

func (w *nbWrite) write(fd uintptr) bool {
	for {
		w.n, w.err = syscall.Write(int(fd), w.b)
		if w.err != syscall.EINTR {
			return true // done, whatever it took: never wait for the socket
		}
	}
}

// writeBlocking writes b, then large if not nil, failing once the client write
// timeout passes with no byte taken (a slow but steady reader of a large batch of
// replies is not cut off), and clears the deadline again: a non-blocking write later
// would fail at once on a deadline passed meanwhile.
func (q *replyQueue) writeBlocking(b, large []byte) error {
	bufs := net.Buffers{b}
	if large != nil {
		bufs = append(bufs, large) // header and body in one writev
	}
	err := rpc.WriteBuffers(q.conn, &bufs, q.timeout)
	if err == nil {
		q.conn.SetWriteDeadline(time.Time{})
	}
	return err
}

// wait returns once every reply added has been written (or dropped after a failed
// write): the connection may then be closed.
func (q *replyQueue) wait() {
	q.mu.Lock()
	for q.writing || len(q.q) > 0 {
		q.idle.Wait()
	}
	q.mu.Unlock()
}

// replyBufs are the buffers replies are framed into for one write; one is lent for
// the length of a write, so an idle connection holds none. One grown past
// maxPooledReplyBuf by a large reply is not kept.
var replyBufs = sync.Pool{New: func() any { b := make([]byte, 0, replyBufferSize); return &b }}

const maxPooledReplyBuf = 4 * replyBufferSize

func getReplyBuf() *[]byte { return replyBufs.Get().(*[]byte) }

// putReplyBuf gives back bp, now holding the array of b.
func putReplyBuf(bp *[]byte, b []byte) {
	if cap(b) <= maxPooledReplyBuf {
		*bp = b[:0]
		replyBufs.Put(bp)
	}
}
