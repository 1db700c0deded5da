package node

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"floe/meta"
	"floe/topicname"
)

// Node-to-node RPC, on the cluster port after the muxRPC byte. Each message is a frame
//
//	request:  [u32 length LE][u64 id][u8 op][body]
//	response: [u32 length LE][u64 id][u8 status][body]
//
// Requests on one connection are dispatched in arrival order (appends are enqueued in
// that order); responses may come back in any order and are matched by id.
const (
	opAppend byte = 1 // topic, segment (0 = active), n, payloads -> first offset, segment
	opRead   byte = 2 // topic, segment, offset, max, maxBytes -> entries
	opApply  byte = 3 // command -> result (at the Raft leader)
	opJoin   byte = 4 // id, raft address -> ok (at the Raft leader)
	opStatus byte = 5 // -> applied index, state
	opCount  byte = 6 // topic, segment -> durable count of a local segment
	opSync   byte = 7 // (at the Raft leader) barrier -> applied index
	// opUnsealed -> Unix ms of the oldest entry in an active segment the node leads
	// (0: none), for floe_cluster_rpo_seconds.
	opUnsealed byte = 8

	statusOK  byte = 0
	statusErr byte = 1

	maxRPCFrame = 80 << 20
)

// Error codes carried by RPC error replies, so the caller gets back the sentinel.
const (
	codeOther byte = iota
	codeNotLeader
	codeUnavailable
	codeNoTopic
	codeBadRequest
	codeCorrupt
	codeCursorMoved
	codeStaleSegment
	codeBadTopic
	codeRaftNotLeader
	codeNotFound
	codeOutcomeUnknown
)

var codeErrs = map[byte]error{
	codeNotLeader:      ErrNotLeader,
	codeUnavailable:    ErrUnavailable,
	codeNoTopic:        meta.ErrNoTopic,
	codeBadRequest:     ErrBadRequest,
	codeCorrupt:        ErrCorrupt,
	codeCursorMoved:    meta.ErrCursorMoved,
	codeStaleSegment:   meta.ErrStaleSegment,
	codeBadTopic:       topicname.ErrInvalid,
	codeRaftNotLeader:  meta.ErrNotLeader,
	codeNotFound:       ErrSegmentNotFound,
	codeOutcomeUnknown: ErrOutcomeUnknown,
}

func errCode(err error) byte {
	for code, e := range codeErrs {
		if errors.Is(err, e) {
			return code
		}
	}
	return codeOther
}

// remoteError is an error reported by another node, keeping its sentinel for errors.Is.
type remoteError struct {
	sentinel error
	msg      string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// isRemote reports whether err is an answer from the peer (as opposed to a failure to
// reach it).
func isRemote(err error) bool {
	var re *remoteError
	return errors.As(err, &re)
}

func decodeErr(body []byte) error {
	d := decoder{b: body}
	code := d.u8()
	msg := d.str()
	if d.err != nil {
		return fmt.Errorf("%w: undecodable error reply", ErrUnavailable)
	}
	return &remoteError{sentinel: codeErrs[code], msg: msg}
}

func encodeErr(err error) []byte {
	var e encoder
	e.u8(errCode(err))
	e.str(err.Error())
	return e.b
}

// encoder and decoder are the RPC body codec: fixed-width little-endian integers and
// length-prefixed byte strings. A decoder records the first error and returns zeros after.
type encoder struct{ b []byte }

func (e *encoder) u8(v byte)    { e.b = append(e.b, v) }
func (e *encoder) u64(v uint64) { e.b = binary.LittleEndian.AppendUint64(e.b, v) }
func (e *encoder) bool(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}
func (e *encoder) bytes(p []byte) {
	e.b = binary.LittleEndian.AppendUint32(e.b, uint32(len(p)))
	e.b = append(e.b, p...)
}
func (e *encoder) str(s string) {
	e.b = binary.LittleEndian.AppendUint32(e.b, uint32(len(s)))
	e.b = append(e.b, s...)
}

type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("node: rpc body truncated")

// errNotSent marks a call that never left this node (the peer could not be dialled).
var errNotSent = errors.New("not sent")

func (d *decoder) u8() byte {
	if d.err != nil || len(d.b) < 1 {
		d.err = errShort
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bool() bool {
	switch d.u8() {
	case 0:
		return false
	case 1:
		return true
	}
	if d.err == nil {
		d.err = errors.New("node: rpc bool is neither 0 nor 1")
	}
	return false
}

func (d *decoder) u64() uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.err = errShort
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) bytes() []byte {
	if d.err != nil || len(d.b) < 4 {
		d.err = errShort
		return nil
	}
	n := binary.LittleEndian.Uint32(d.b)
	if uint64(n) > uint64(len(d.b)-4) {
		d.err = errShort
		return nil
	}
	v := d.b[4 : 4+n : 4+n]
	d.b = d.b[4+n:]
	return v
}

func (d *decoder) str() string { return string(d.bytes()) }

func readMsg(r io.Reader) (id uint64, kind byte, body []byte, err error) {
	var hdr [4]byte
	if _, err = io.ReadFull(r, hdr[:]); err != nil {
		return
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n < 9 || n > maxRPCFrame {
		return 0, 0, nil, fmt.Errorf("node: rpc frame of %d bytes", n)
	}
	buf := make([]byte, n)
	if _, err = io.ReadFull(r, buf); err != nil {
		return
	}
	return binary.LittleEndian.Uint64(buf), buf[8], buf[9:], nil
}

func appendMsg(dst []byte, id uint64, kind byte, body []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(9+len(body)))
	dst = binary.LittleEndian.AppendUint64(dst, id)
	dst = append(dst, kind)
	return append(dst, body...)
}

// rpcReply is the outcome of one call.
type rpcReply struct {
	body []byte
	err  error
}

// peer is this node's client connection to another node's cluster port. One TCP
// connection carries every concurrent call; sends are ordered by the send lock.
type peer struct {
	addr string

	mu      sync.Mutex // guards conn, w, pending, nextID
	conn    net.Conn
	w       *bufio.Writer
	pending map[uint64]chan rpcReply
	nextID  uint64

	downUntil time.Time // after a failed call: skip optional calls until then
	boot      uint64    // the peer's boot id, learned when the connection opened
}

// peerDownFor is how long a peer that failed a call is skipped by optional calls
// (reads that the archive can serve).
const peerDownFor = 3 * time.Second

func (p *peer) recentlyDown() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Now().Before(p.downUntil)
}

func (p *peer) markDown() {
	p.mu.Lock()
	p.downUntil = time.Now().Add(peerDownFor)
	p.mu.Unlock()
}

func newPeer(addr string) *peer { return &peer{addr: addr} }

const dialTimeout = time.Second

// send writes one request and returns the channel its reply arrives on. It is
// synchronous up to the write, so two sends from one goroutine arrive in order.
func (p *peer) send(op byte, body []byte) (<-chan rpcReply, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		conn, err := dialMux(p.addr, muxRPC, dialTimeout)
		if err != nil {
			return nil, fmt.Errorf("%w: cannot reach %s: %w", ErrUnavailable, p.addr, errors.Join(errNotSent, err))
		}
		boot, err := handshake(conn)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("%w: cannot reach %s: %w", ErrUnavailable, p.addr, errors.Join(errNotSent, err))
		}
		p.conn, p.boot = conn, boot
		p.w = bufio.NewWriterSize(conn, 64<<10)
		p.pending = map[uint64]chan rpcReply{}
		go p.readLoop(conn, p.pending)
	}
	p.nextID++
	id := p.nextID
	ch := make(chan rpcReply, 1)
	p.pending[id] = ch
	var hdr [13]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(9+len(body)))
	binary.LittleEndian.PutUint64(hdr[4:], id)
	hdr[12] = op
	p.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := p.w.Write(hdr[:])
	if err == nil {
		_, err = p.w.Write(body)
	}
	if err == nil {
		err = p.w.Flush()
	}
	if err != nil {
		delete(p.pending, id)
		p.resetLocked(err)
		return nil, fmt.Errorf("%w: cannot send to %s: %v", ErrUnavailable, p.addr, err)
	}
	return ch, nil
}

// handshake asks a freshly dialled peer for its status, to learn its boot id.
func handshake(conn net.Conn) (uint64, error) {
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	defer conn.SetDeadline(time.Time{})
	if _, err := conn.Write(appendMsg(nil, 0, opStatus, nil)); err != nil {
		return 0, err
	}
	_, status, body, err := readMsg(conn)
	if err != nil {
		return 0, err
	}
	if status != statusOK {
		return 0, decodeErr(body)
	}
	d := decoder{b: body}
	d.u64()
	d.u64()
	d.str()
	boot := d.u64()
	if d.err != nil {
		return 0, fmt.Errorf("node: bad status reply in handshake")
	}
	return boot, nil
}

// bootID returns the boot id of the peer's current connection (0 if none).
func (p *peer) bootID() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.boot
}

// call sends a request and waits for its reply or the timeout.
func (p *peer) call(op byte, body []byte, timeout time.Duration) ([]byte, error) {
	ch, err := p.send(op, body)
	if err != nil {
		p.markDown()
		return nil, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.err != nil && !isRemote(r.err) {
			p.markDown()
		}
		return r.body, r.err
	case <-t.C:
		p.markDown()
		return nil, fmt.Errorf("%w: %s did not answer within %v", ErrUnavailable, p.addr, timeout)
	}
}

func (p *peer) readLoop(conn net.Conn, pending map[uint64]chan rpcReply) {
	r := bufio.NewReaderSize(conn, 64<<10)
	for {
		id, status, body, err := readMsg(r)
		if err != nil {
			p.mu.Lock()
			if p.conn == conn {
				p.resetLocked(err)
			}
			p.mu.Unlock()
			return
		}
		p.mu.Lock()
		ch, ok := pending[id]
		delete(pending, id)
		p.mu.Unlock()
		if !ok {
			continue
		}
		if status == statusOK {
			ch <- rpcReply{body: body}
		} else {
			ch <- rpcReply{err: decodeErr(body)}
		}
	}
}

// resetLocked drops the connection and fails every call waiting on it.
func (p *peer) resetLocked(cause error) {
	if p.conn == nil {
		return
	}
	p.conn.Close()
	for id, ch := range p.pending {
		ch <- rpcReply{err: fmt.Errorf("%w: connection to %s lost: %v", ErrUnavailable, p.addr, cause)}
		delete(p.pending, id)
	}
	p.conn, p.w, p.pending = nil, nil, nil
}

func (p *peer) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resetLocked(errors.New("closed"))
}

// rpcConn serves one inbound RPC connection. Requests are handed to handle in arrival
// order; handle answers through reply, from any goroutine, exactly once.
//
// The connection's reader never waits for a request's work, so that a call is never
// stuck behind another kind (a status call behind appends to a stuck appender, say):
// appends go to the connection's append queue, which one goroutine hands to the
// topics' appenders in arrival order (waiting while an appender's queue is full);
// every other call is answered at once or by a goroutine of its own.
type rpcConn struct {
	conn net.Conn
	mu   sync.Mutex
	w    *bufio.Writer

	appends      chan queuedAppend
	appendsBytes atomic.Int64 // payload bytes in appends
}

// queuedAppend is an append waiting in a connection's append queue.
type queuedAppend struct {
	to *appender
	r  *appendReq
}

// Bounds of one inbound RPC connection's append queue.
const (
	rpcAppendQueue      = 4096
	rpcAppendQueueBytes = 64 << 20
)

func newRPCConn(conn net.Conn) *rpcConn {
	return &rpcConn{conn: conn, w: bufio.NewWriterSize(conn, 64<<10), appends: make(chan queuedAppend, rpcAppendQueue)}
}

// queueAppend puts r in the connection's append queue without waiting. A full queue
// (rpcAppendQueue requests or rpcAppendQueueBytes of payload) refuses it with
// ErrUnavailable, which the sender retries; the appender's stream order makes the
// appends queued behind a refused one fail too, so the retries keep their order.
func (c *rpcConn) queueAppend(to *appender, r *appendReq) {
	if queued := c.appendsBytes.Add(r.bytes); queued > rpcAppendQueueBytes && queued != r.bytes {
		c.appendsBytes.Add(-r.bytes)
		r.done(appendResult{err: fmt.Errorf("%w: node busy: %d bytes of appends queued on this connection", ErrUnavailable, rpcAppendQueueBytes)})
		return
	}
	select {
	case c.appends <- queuedAppend{to: to, r: r}:
	default:
		c.appendsBytes.Add(-r.bytes)
		r.done(appendResult{err: fmt.Errorf("%w: node busy: %d appends queued on this connection", ErrUnavailable, rpcAppendQueue)})
	}
}

// runAppends hands the queued appends to their appenders in order until the queue is
// closed and empty.
func (c *rpcConn) runAppends() {
	for q := range c.appends {
		q.to.enqueue(q.r)
		c.appendsBytes.Add(-q.r.bytes)
	}
}

func (c *rpcConn) reply(id uint64, body []byte, err error) {
	var msg []byte
	if err != nil {
		msg = appendMsg(nil, id, statusErr, encodeErr(err))
	} else {
		msg = appendMsg(nil, id, statusOK, body)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, werr := c.w.Write(msg); werr == nil {
		c.w.Flush()
	}
}

// encodeAppend is the body of an opAppend call.
func encodeAppend(topic string, segment uint64, tag appendTag, payloads [][]byte) []byte {
	var e encoder
	e.str(topic)
	e.u64(segment)
	e.u64(tag.id)
	e.u64(tag.stream)
	e.u64(tag.seq)
	e.u64(tag.boot)
	e.bool(tag.base)
	e.u64(uint64(len(payloads)))
	for _, pl := range payloads {
		e.bytes(pl)
	}
	return e.b
}

// decodeAppend decodes an opAppend body; anything malformed (short, trailing bytes,
// no payloads, a count the body cannot hold) is ErrBadRequest.
func decodeAppend(body []byte) (topic string, segment uint64, tag appendTag, payloads [][]byte, err error) {
	d := decoder{b: body}
	topic, segment = d.str(), d.u64()
	tag = appendTag{id: d.u64(), stream: d.u64(), seq: d.u64(), boot: d.u64(), base: d.bool()}
	count := d.u64()
	if d.err != nil || count == 0 || count > uint64(len(d.b)/4) {
		return "", 0, appendTag{}, nil, fmt.Errorf("%w: malformed append", ErrBadRequest)
	}
	payloads = make([][]byte, count)
	for i := range payloads {
		payloads[i] = d.bytes()
	}
	if d.err != nil || len(d.b) != 0 {
		return "", 0, appendTag{}, nil, fmt.Errorf("%w: malformed append", ErrBadRequest)
	}
	return topic, segment, tag, payloads, nil
}
