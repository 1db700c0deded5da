package rpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Timeouts of a Peer's connection.
const (
	// DialTimeout bounds opening a connection to a peer.
	DialTimeout = time.Second
	// handshakeTimeout bounds the status call that opens every connection.
	handshakeTimeout = 2 * time.Second
	// DownFor is how long a peer that failed a call counts as RecentlyDown.
	DownFor = 3 * time.Second
)

// sendTimeout bounds how long a write of requests may go without progress; tests
// shorten it (an atomic: connections of earlier tests may still read it).
var sendTimeout = newTimeout(5 * time.Second)

// Reply is the outcome of one call: the reply body, or the error (a *RemoteError if
// the peer answered with one).
type Reply struct {
	Body []byte
	Err  error
	// Boot is the boot id the peer announced on the connection that carried the
	// request (set for SendFunc's calls).
	Boot uint64
}

// Peer is this node's client connection to another node's cluster port. One TCP
// connection carries every concurrent call; it is opened on the first call (with a
// status handshake that learns the peer's boot id) and again after it fails. Sends are
// ordered by a lock, so two sends from one goroutine arrive in order. Safe for
// concurrent use.
type Peer struct {
	addr  string
	guard *Guard

	mu      sync.Mutex // guards everything below
	conn    net.Conn
	pending map[uint64]*call
	nextID  uint64
	// out holds the requests sent and not yet written; the connection's writer
	// (writeLoop) writes all of them at once when kicked, so the calls of many
	// goroutines (the forwarded appends of many clients) leave in few writes.
	out  []byte
	kick chan struct{} // capacity 1; closed when the connection is dropped

	downUntil time.Time // after a failed call: RecentlyDown until then
	boot      uint64    // the peer's boot id, learned when the connection opened

	// connected mirrors conn != nil, read without mu (which a dial holds).
	connected atomic.Bool
}

// NewPeer returns a Peer of the cluster address addr; it dials on the first call,
// authenticating as guard says (nil: not at all).
func NewPeer(addr string, guard *Guard) *Peer { return &Peer{addr: addr, guard: guard} }

// Addr is the peer's cluster address.
func (p *Peer) Addr() string { return p.addr }

// RecentlyDown reports whether a call to the peer failed (unreachable, lost
// connection, timeout: not an error it answered) less than DownFor ago. Optional calls
// (reads the archive can serve) skip such a peer.
func (p *Peer) RecentlyDown() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Now().Before(p.downUntil)
}

func (p *Peer) markDown() {
	p.mu.Lock()
	p.downUntil = time.Now().Add(DownFor)
	p.mu.Unlock()
}

// Connected reports whether the peer has an open connection now, without waiting
// for a dial in progress: a send to a peer that is not connected dials first.
func (p *Peer) Connected() bool { return p.connected.Load() }

// BootID returns the boot id of the peer's current connection (0 if none).
func (p *Peer) BootID() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.boot
}

// Send queues one request for the connection's writer, dialling first if there is
// no connection, and returns the channel its one Reply arrives on. Requests are
// written in the order they were sent, so two sends from one goroutine arrive in
// order. A failure to dial is an ErrUnavailable wrapping ErrNotSent: the request never
// left this node. Once Send has returned, a lost connection fails the call with an
// ErrUnavailable (it may have been delivered). The caller bounds its wait for the
// reply.
func (p *Peer) Send(op Op, body []byte) (<-chan Reply, error) {
	ch, _, err := p.SendBoot(op, body)
	return ch, err
}

// SendBoot is Send that also returns the boot id the peer announced on the connection
// the request was queued on (0 with an error), read under the same lock: a retry
// that names it is told apart from one to a process that restarted since, even if the
// connection is dropped and dialled again right after.
func (p *Peer) SendBoot(op Op, body []byte) (<-chan Reply, uint64, error) {
	ch := make(chan Reply, 1)
	boot, err := p.send(op, body, &call{ch: ch})
	if err != nil {
		return nil, 0, err
	}
	return ch, boot, nil
}

// SendFunc is SendBoot that hands the reply to fn instead of a channel: exactly
// once, on the connection's reader goroutine when the reply comes (so fn must not
// block, nor wait for another reply from this peer), or with an ErrUnavailable once
// timeout has passed without one or the connection is lost; either carries the
// boot id (Reply.Boot). No goroutine waits for
// the reply: a node forwarding many appends at once keeps none per append.
func (p *Peer) SendFunc(op Op, body []byte, timeout time.Duration, fn func(Reply)) (uint64, error) {
	return p.send(op, body, &call{fn: fn, timeout: timeout})
}

// call is one request waiting for its reply: on ch, or handed to fn.
type call struct {
	id      uint64
	ch      chan Reply
	fn      func(Reply)
	boot    uint64        // of the connection the request was queued on
	timeout time.Duration // SendFunc's
	timer   *time.Timer   // fails the call after timeout (SendFunc)
}

// deliver hands r to the call; p.mu is not held.
func (c *call) deliver(r Reply) {
	r.Boot = c.boot
	if c.fn != nil {
		c.timer.Stop()
		c.fn(r)
		return
	}
	c.ch <- r
}

// expire fails c if it is still waiting for its reply.
func (p *Peer) expire(c *call, timeout time.Duration) {
	p.mu.Lock()
	if p.pending[c.id] != c {
		p.mu.Unlock()
		return
	}
	delete(p.pending, c.id)
	p.mu.Unlock()
	c.fn(Reply{Err: Unavailable(fmt.Sprintf("%s did not answer within %v", p.addr, timeout), nil), Boot: c.boot})
}

// send queues one request for the connection's writer, dialling first if needed,
// registers c for its reply and returns the peer's boot id.
func (p *Peer) send(op Op, body []byte, c *call) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		if err := p.dialLocked(); err != nil {
			return 0, notSent(p.addr, err)
		}
	}
	p.nextID++
	id := p.nextID
	c.id, c.boot = id, p.boot
	p.pending[id] = c
	if c.fn != nil {
		// Set under p.mu, before any reply can find the call: deliver stops it.
		c.timer = time.AfterFunc(c.timeout, func() { p.expire(c, c.timeout) })
	}
	var hdr [frameHeader]byte
	putHeader(&hdr, id, byte(op), len(body))
	p.out = append(append(p.out, hdr[:]...), body...)
	select {
	case p.kick <- struct{}{}:
	default: // the writer has been told already
	}
	return p.boot, nil
}

// maxSpareOut is the largest send buffer a connection's writer keeps between writes.
const maxSpareOut = 1 << 20

// writeLoop writes the requests sent on conn (p.out), all that are waiting at once,
// until the connection is dropped. A write that fails, or makes no progress for
// sendTimeout, drops the connection, failing every call waiting on it.
func (p *Peer) writeLoop(conn net.Conn, kick <-chan struct{}) {
	var spare []byte
	for range kick {
		// Let the goroutines that are ready to run (readers of client requests
		// that will be forwarded, say) queue theirs first, so that they leave in
		// this write: sixteen request/response clients forwarded through this
		// node otherwise cost sixteen writes, and sixteen reads and wake-ups on
		// the peer, per group commit (forwarded 16 x 1: 12% more entries/s, a
		// fifth less CPU per write on the segment leader).
		runtime.Gosched()
		p.mu.Lock()
		buf := p.out
		if p.conn != conn || len(buf) == 0 {
			p.mu.Unlock()
			continue
		}
		p.out, spare = spare, nil // never two owners of one array
		p.mu.Unlock()
		if err := WriteAll(conn, buf, sendTimeout.get()); err != nil {
			p.mu.Lock()
			if p.conn == conn {
				p.resetLocked(err)
			}
			p.mu.Unlock()
			return
		}
		if cap(buf) <= maxSpareOut {
			spare = buf[:0]
		}
	}
}

// dialLocked opens the connection and learns the peer's boot id.
func (p *Peer) dialLocked() error {
	conn, err := p.guard.Dial(p.addr, MuxRPC, DialTimeout)
	if err != nil {
		return err
	}
	st, err := handshake(conn)
	if err != nil {
		conn.Close()
		return err
	}
	p.conn, p.boot = conn, st.Boot
	p.connected.Store(true)
	p.pending = map[uint64]*call{}
	p.kick = make(chan struct{}, 1)
	go p.readLoop(conn, p.pending)
	go p.writeLoop(conn, p.kick)
	return nil
}

// handshake asks a freshly dialled peer for its status (request id 0).
func handshake(conn net.Conn) (Status, error) {
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	defer conn.SetDeadline(time.Time{})
	if _, err := conn.Write(AppendFrame(nil, 0, byte(OpStatus), nil)); err != nil {
		return Status{}, err
	}
	_, status, body, err := ReadFrame(conn)
	if err != nil {
		return Status{}, err
	}
	if status != StatusOK {
		return Status{}, DecodeError(body)
	}
	return DecodeStatus(body)
}

// Call sends a request and waits for its reply, for timeout, or for ctx to end. A
// timeout or a failure to reach the peer marks it RecentlyDown and is an
// ErrUnavailable; so is ctx ending, which marks nothing (the peer was not proven
// slow). An error the peer answered with is a *RemoteError.
func (p *Peer) Call(ctx context.Context, op Op, body []byte, timeout time.Duration) ([]byte, error) {
	ch, err := p.Send(op, body)
	if err != nil {
		p.markDown()
		return nil, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.Err != nil && !IsRemote(r.Err) {
			p.markDown()
		}
		return r.Body, r.Err
	case <-t.C:
		p.markDown()
		return nil, Unavailable(fmt.Sprintf("%s did not answer within %v", p.addr, timeout), nil)
	case <-ctx.Done():
		return nil, Unavailable("call to "+p.addr, ctx.Err())
	}
}

// Answers reports whether the peer answers a status call within window, sending at
// least probes of them. With probes <= 1 it is one call that waits the whole window (a
// quick check, which a refused connection fails at once). With more, it sends calls
// window/4 apart, each waiting up to window/2 (at least 250ms), until one is answered
// (true), or window has passed since the first and probes went unanswered (false), so
// that a live peer slow to answer the first is not taken for dead. ctx ending also
// answers true: nothing was proven dead.
func (p *Peer) Answers(ctx context.Context, window time.Duration, probes int) bool {
	if probes <= 1 {
		_, err := p.Call(ctx, OpStatus, nil, window)
		return err == nil || ctx.Err() != nil
	}
	wait := max(window/2, 250*time.Millisecond)
	every := window / 4
	start := time.Now()
	for sent := 1; ; sent++ {
		at := time.Now()
		if _, err := p.Call(ctx, OpStatus, nil, wait); err == nil || ctx.Err() != nil {
			return true
		}
		if sent >= probes && time.Since(start) >= window {
			return false
		}
		t := time.NewTimer(time.Until(at.Add(every)))
		select {
		case <-ctx.Done():
			t.Stop()
			return true
		case <-t.C:
		}
	}
}

func (p *Peer) readLoop(conn net.Conn, pending map[uint64]*call) {
	r := bufio.NewReaderSize(conn, 64<<10)
	for {
		id, status, body, err := ReadFrame(r)
		if err != nil {
			p.mu.Lock()
			if p.conn == conn {
				p.resetLocked(err)
			}
			p.mu.Unlock()
			return
		}
		p.mu.Lock()
		c, ok := pending[id]
		delete(pending, id)
		p.mu.Unlock()
		if !ok {
			continue
		}
		if status == StatusOK {
			c.deliver(Reply{Body: body})
		} else {
			c.deliver(Reply{Err: DecodeError(body)})
		}
	}
}

// resetLocked drops the connection and fails every call waiting on it.
func (p *Peer) resetLocked(cause error) {
	if p.conn == nil {
		return
	}
	p.connected.Store(false)
	p.conn.Close()
	for id, c := range p.pending {
		r := Reply{Err: Unavailable(fmt.Sprintf("connection to %s lost", p.addr), cause)}
		if c.fn != nil {
			go c.deliver(r) // not under p.mu: fn may send again
		} else {
			c.ch <- r
		}
		delete(p.pending, id)
	}
	close(p.kick)
	p.conn, p.pending, p.out, p.kick = nil, nil, nil, nil
}

// Close drops the connection, failing the calls waiting on it. A later call dials
// again.
func (p *Peer) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resetLocked(errors.New("closed"))
}

// Peers is a set of Peers by cluster address, one per address. Safe for concurrent
// use.
type Peers struct {
	// Guard authenticates the Peers' connections; set it before the first Get.
	Guard *Guard

	mu    sync.Mutex
	peers map[string]*Peer
}

// Get returns the Peer of addr, made on first use.
func (s *Peers) Get(addr string) *Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.peers[addr]
	if !ok {
		if s.peers == nil {
			s.peers = map[string]*Peer{}
		}
		p = NewPeer(addr, s.Guard)
		s.peers[addr] = p
	}
	return p
}

// Close closes every Peer and forgets them (a later Get makes a new one).
func (s *Peers) Close() {
	s.mu.Lock()
	peers := s.peers
	s.peers = nil
	s.mu.Unlock()
	for _, p := range peers {
		p.Close()
	}
}
