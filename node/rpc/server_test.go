package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"floe/wire"
)

// serve starts a cluster port with s behind it and returns its address.
func serve(t *testing.T, s *Server) (addr string, l *Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err = NewListener(ln, ln.Addr().String(), nil, s.ServeConn, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return ln.Addr().String(), l
}

func statusHandler(boot uint64) Handler {
	return func(r *Request) { r.Reply(Status{State: "Follower", Boot: boot}.Encode(), nil) }
}

// TestPeerCalls: a call gets its reply, an error reply keeps its sentinel and message
// across the wire, an op without a handler is a bad request, and the handshake learns
// the peer's boot id.
func TestPeerCalls(t *testing.T) {
	s := &Server{}
	s.Handle(OpStatus, statusHandler(7))
	s.Handle(OpRead, func(r *Request) { r.Reply(append([]byte("echo "), r.Body...), nil) })
	s.Handle(OpCount, func(r *Request) {
		r.Reply(nil, fmt.Errorf("%w: segment 3 of %q", ErrSegmentNotFound, "t"))
	})
	addr, _ := serve(t, s)
	p := NewPeer(addr, nil)
	defer p.Close()
	ctx := context.Background()

	body, err := p.Call(ctx, OpRead, []byte("x"), 5*time.Second)
	if err != nil || string(body) != "echo x" {
		t.Fatalf("read = %q, %v", body, err)
	}
	if p.BootID() != 7 {
		t.Fatalf("BootID = %d, want 7", p.BootID())
	}
	if ch, boot, err := p.SendBoot(OpRead, []byte("y")); err != nil || boot != 7 || string((<-ch).Body) != "echo y" {
		t.Fatalf("SendBoot: boot %d, %v; want the connection's boot id, 7", boot, err)
	}
	_, err = p.Call(ctx, OpCount, nil, 5*time.Second)
	if !errors.Is(err, ErrSegmentNotFound) || !IsRemote(err) || err.Error() != `segment not on this node: segment 3 of "t"` {
		t.Fatalf("count = %v (remote %v), want the peer's ErrSegmentNotFound", err, IsRemote(err))
	}
	if _, err = p.Call(ctx, OpJoin, nil, 5*time.Second); !errors.Is(err, wire.ErrBadRequest) || !IsRemote(err) {
		t.Fatalf("op without a handler: %v, want a remote ErrBadRequest", err)
	}
	if p.RecentlyDown() {
		t.Fatal("errors the peer answered marked it down")
	}
}

// TestCallFailures: a call that is not answered in time, and one to a port nobody
// listens on, are ErrUnavailable and mark the peer down; the second never left this
// node (ErrNotSent). A call whose ctx ends is ErrUnavailable and marks nothing.
func TestCallFailures(t *testing.T) {
	s := &Server{}
	s.Handle(OpStatus, statusHandler(1))
	s.Handle(OpSync, func(r *Request) {}) // never answers
	addr, _ := serve(t, s)
	ctx := context.Background()

	p := NewPeer(addr, nil)
	defer p.Close()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Call(cctx, OpSync, nil, time.Minute); !errors.Is(err, ErrUnavailable) || p.RecentlyDown() {
		t.Fatalf("cancelled call: %v, down %v; want ErrUnavailable, not down", err, p.RecentlyDown())
	}
	_, err := p.Call(ctx, OpSync, nil, 50*time.Millisecond)
	if !errors.Is(err, ErrUnavailable) || IsRemote(err) || errors.Is(err, ErrNotSent) || !p.RecentlyDown() {
		t.Fatalf("unanswered call: %v, down %v; want a sent ErrUnavailable, down", err, p.RecentlyDown())
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	q := NewPeer(dead, nil)
	if _, err := q.Call(ctx, OpStatus, nil, time.Second); !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrNotSent) || !q.RecentlyDown() {
		t.Fatalf("call to a closed port: %v, down %v; want ErrUnavailable and ErrNotSent, down", err, q.RecentlyDown())
	}
}

// TestOrderedHandler: requests sent in order from one goroutine reach an ordered
// handler's queued work in that order, while other calls on the same connection are
// answered although that work is stuck.
func TestOrderedHandler(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var order []uint64
	s := &Server{}
	s.Handle(OpStatus, statusHandler(1))
	s.HandleOrdered(OpAppend, func(r *Request) {
		seq := NewDecoder(r.Body).U64()
		err := r.Conn.Queue(8, func() {
			<-release
			mu.Lock()
			order = append(order, seq)
			mu.Unlock()
			r.Reply(nil, nil)
		})
		if err != nil {
			r.Reply(nil, err)
		}
	})
	addr, _ := serve(t, s)
	p := NewPeer(addr, nil)
	defer p.Close()
	const n = 100
	var replies []<-chan Reply
	for i := uint64(0); i < n; i++ {
		var e Encoder
		e.U64(i)
		ch, err := p.Send(OpAppend, e.B)
		if err != nil {
			t.Fatal(err)
		}
		replies = append(replies, ch)
	}
	if _, err := p.Call(context.Background(), OpStatus, nil, 10*time.Second); err != nil {
		t.Fatalf("status behind stuck ordered work: %v", err)
	}
	close(release)
	for i, ch := range replies {
		if r := <-ch; r.Err != nil {
			t.Fatalf("append %d: %v", i, r.Err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i, seq := range order {
		if seq != uint64(i) {
			t.Fatalf("queued work ran in order %v", order)
		}
	}
}

// TestQueueBounds: a connection's queue refuses, as unavailable (the sender retries),
// what would take it past its count or byte bound, and admits an oversized run when it
// is empty.
func TestQueueBounds(t *testing.T) {
	c := newConn(nil)
	run := func() {}
	if err := c.Queue(QueueBytes+1, run); err != nil {
		t.Fatalf("an oversized run alone: %v, want admitted", err)
	}
	if err := c.Queue(1, run); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("past the byte bound: %v, want ErrUnavailable", err)
	}
	<-c.queue
	c.queueBytes.Add(-(QueueBytes + 1)) // as runQueue does
	var refused []error
	for i := 0; i < QueueLen+1; i++ {
		if err := c.Queue(1, run); err != nil {
			refused = append(refused, err)
		}
	}
	if len(refused) != 1 || !errors.Is(refused[0], ErrUnavailable) || c.queueBytes.Load() != QueueLen {
		t.Fatalf("after %d runs: refused %v, %d bytes queued; want one ErrUnavailable, %d bytes", QueueLen+1, refused, c.queueBytes.Load(), QueueLen)
	}
}

// TestPeerAnswers: a peer that answers is alive at once; one that never answers fails
// a quick check, and is taken for dead by a probing one only after the window and the
// probes asked for; a cancelled ctx proves nothing dead.
func TestPeerAnswers(t *testing.T) {
	s := &Server{}
	s.Handle(OpStatus, statusHandler(1))
	addr, _ := serve(t, s)
	ctx := context.Background()
	if !NewPeer(addr, nil).Answers(ctx, time.Second, 3) {
		t.Fatal("a live peer was taken for dead")
	}
	silent := &Server{}
	var mu sync.Mutex
	probes := 0
	silent.Handle(OpStatus, func(r *Request) {
		if r.ID == 0 { // the handshake
			r.Reply(Status{}.Encode(), nil)
			return
		}
		mu.Lock()
		probes++
		mu.Unlock()
	})
	saddr, _ := serve(t, silent)
	start := time.Now()
	if NewPeer(saddr, nil).Answers(ctx, 100*time.Millisecond, 1) {
		t.Fatal("a silent peer answered a quick check")
	}
	mu.Lock()
	probes = 0
	mu.Unlock()
	if NewPeer(saddr, nil).Answers(ctx, 200*time.Millisecond, 3) {
		t.Fatal("a silent peer was taken for alive")
	}
	mu.Lock()
	if probes < 3 || time.Since(start) < 200*time.Millisecond {
		t.Errorf("dead after %d probes and %v; want at least 3 and the whole window", probes, time.Since(start))
	}
	mu.Unlock()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if !NewPeer(saddr, nil).Answers(cctx, time.Minute, 3) {
		t.Fatal("a cancelled probe took the peer for dead")
	}
}

// TestListenerRoutes: a connection that starts with MuxRaft goes to Accept, one with
// MuxRPC to the RPC server, one with any other byte is closed.
func TestListenerRoutes(t *testing.T) {
	s := &Server{}
	s.Handle(OpStatus, statusHandler(3))
	addr, l := serve(t, s)
	raftConn, err := (*Guard)(nil).Dial(addr, MuxRaft, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raftConn.Close()
	got, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	got.Close()
	other, err := (*Guard)(nil).Dial(addr, 'X', time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := other.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection with an unknown mux byte was served")
	}
	if _, err := NewPeer(addr, nil).Call(context.Background(), OpStatus, nil, 5*time.Second); err != nil {
		t.Fatalf("rpc over the mux: %v", err)
	}
	if l.Addr().String() != addr {
		t.Fatalf("Addr = %v, want %s", l.Addr(), addr)
	}
}

// TestManyConcurrentCalls: 64 goroutines each make 200 calls on one Peer, answered
// by handlers that reply from many goroutines at once and at random moments (some
// at once, some after a pause), so replies are written while others are queued and
// several leave in one write. Every call gets its own reply, whole.
func TestManyConcurrentCalls(t *testing.T) {
	s := &Server{}
	s.Handle(OpStatus, statusHandler(1))
	s.Handle(OpRead, func(r *Request) {
		if len(r.Body)%3 == 0 {
			time.Sleep(time.Duration(len(r.Body)%7) * 100 * time.Microsecond)
		}
		r.Reply(append([]byte("echo "), r.Body...), nil)
	})
	addr, _ := serve(t, s)
	p := NewPeer(addr, nil)
	defer p.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				req := fmt.Sprintf("g%d-i%d-%s", g, i, make([]byte, (g*i)%300))
				body, err := p.Call(ctx, OpRead, []byte(req), 10*time.Second)
				if err != nil || string(body) != "echo "+req {
					errs <- fmt.Errorf("call %q: %d bytes %q..., %v", req[:min(len(req), 12)], len(body), body[:min(len(body), 16)], err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// slowConn reads at most chunk bytes per Read, after a pause: a slow link or a slow
// reader (about 2 MiB/s with 128 KiB every 64 ms).
type slowConn struct {
	net.Conn
	chunk int
	every time.Duration
}

func (c *slowConn) Read(b []byte) (int, error) {
	time.Sleep(c.every)
	if len(b) > c.chunk {
		b = b[:c.chunk]
	}
	return c.Conn.Read(b)
}

// shortWriteTimeouts sets the per-write deadlines of requests and replies to d for
// the test.
func shortWriteTimeouts(t *testing.T, d time.Duration) {
	send, reply := sendTimeout.get(), replyTimeout.get()
	sendTimeout.set(d)
	replyTimeout.set(d)
	t.Cleanup(func() { sendTimeout.set(send); replyTimeout.set(reply) })
}

// TestSendDeadlineBoundsProgress: many large calls queued at once on a Peer whose
// server reads slowly (about 2 MiB/s): writing the whole batch takes longer than the
// write deadline, but bytes keep moving, and every call succeeds. (With one deadline
// for the whole batch the connection was dropped and every call failed.)
func TestSendDeadlineBoundsProgress(t *testing.T) {
	shortWriteTimeouts(t, 4*time.Second)
	s := &Server{}
	s.Handle(OpStatus, statusHandler(1))
	s.Handle(OpRead, func(r *Request) { r.Reply(nil, nil) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewListener(ln, ln.Addr().String(), nil, func(c net.Conn) {
		c.(*net.TCPConn).SetReadBuffer(64 << 10)
		s.ServeConn(&slowConn{Conn: c, chunk: 128 << 10, every: 64 * time.Millisecond})
	}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := NewPeer(ln.Addr().String(), nil)
	defer p.Close()
	if _, err := p.Call(context.Background(), OpStatus, nil, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 1<<20)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 { // 16 MiB: about 8 s at the server's pace, most of it past the buffers
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.Call(context.Background(), OpRead, body, 60*time.Second); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestReplyDeadlineBoundsProgress: large replies pending at once to a client that
// reads slowly all arrive, though writing them all takes longer than the write
// deadline.
func TestReplyDeadlineBoundsProgress(t *testing.T) {
	shortWriteTimeouts(t, 4*time.Second)
	s := &Server{}
	s.Handle(OpRead, func(r *Request) { r.Reply(make([]byte, 1<<20), nil) })
	addr, _ := serve(t, s)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(64 << 10)
	reqs := []byte{MuxRPC}
	for i := range 16 { // 16 MiB of replies: about 8 s at the client's pace
		reqs = AppendFrame(reqs, uint64(i+1), byte(OpRead), nil)
	}
	if _, err := conn.Write(reqs); err != nil {
		t.Fatal(err)
	}
	r := &slowConn{Conn: conn, chunk: 128 << 10, every: 64 * time.Millisecond}
	for i := range 16 {
		if _, _, body, err := ReadFrame(r); err != nil || len(body) != 1<<20 {
			t.Fatalf("reply %d of 16: %d bytes, %v", i+1, len(body), err)
		}
	}
}

// TestRepliesWrittenBeforeClose: a reply made on the reader goroutine (an op with no
// handler) reaches a client that half-closed right after its request: the
// connection's writer writes what is pending before the connection closes.
func TestRepliesWrittenBeforeClose(t *testing.T) {
	addr, _ := serve(t, &Server{})
	lost := 0
	for range 100 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write(AppendFrame([]byte{MuxRPC}, 1, 200, nil))
		conn.(*net.TCPConn).CloseWrite()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, _, err := ReadFrame(conn); err != nil {
			lost++
		}
		conn.Close()
	}
	if lost > 0 {
		t.Fatalf("%d of 100 replies lost", lost)
	}
}

// TestSendFunc: SendFunc hands the reply to fn exactly once: the reply when it
// comes; an ErrUnavailable (not remote, not ErrNotSent) when the timeout passes
// first, a late reply then being dropped; the same when the connection is lost;
// and fn is never called when the request could not be sent.
func TestSendFunc(t *testing.T) {
	release, release2 := make(chan struct{}), make(chan struct{})
	defer close(release2)
	s := &Server{}
	s.Handle(OpStatus, statusHandler(9))
	s.Handle(OpUnsealed, func(r *Request) { <-release2 }) // never answered
	s.Handle(OpRead, func(r *Request) { r.Reply(append([]byte("echo "), r.Body...), nil) })
	s.Handle(OpSync, func(r *Request) { <-release; r.Reply([]byte("late"), nil) })
	addr, l := serve(t, s)
	p := NewPeer(addr, nil)
	defer p.Close()

	type got struct {
		n int
		r Reply
	}
	var mu sync.Mutex
	calls := map[string]*got{}
	fn := func(name string) func(Reply) {
		mu.Lock()
		calls[name] = &got{}
		mu.Unlock()
		return func(r Reply) {
			mu.Lock()
			defer mu.Unlock()
			calls[name].n++
			calls[name].r = r
		}
	}
	result := func(name string) got {
		mu.Lock()
		defer mu.Unlock()
		return *calls[name]
	}
	answered := func(name string) func() bool { return func() bool { return result(name).n > 0 } }

	if boot, err := p.SendFunc(OpRead, []byte("x"), time.Minute, fn("reply")); err != nil || boot != 9 {
		t.Fatalf("SendFunc: boot %d, %v", boot, err)
	}
	waitFor(t, answered("reply"))
	if g := result("reply"); g.r.Err != nil || string(g.r.Body) != "echo x" || g.r.Boot != 9 {
		t.Fatalf("reply: %+v", g.r)
	}

	if _, err := p.SendFunc(OpSync, nil, 50*time.Millisecond, fn("timeout")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, answered("timeout"))
	if g := result("timeout"); !errors.Is(g.r.Err, ErrUnavailable) || IsRemote(g.r.Err) || errors.Is(g.r.Err, ErrNotSent) || g.r.Boot != 9 {
		t.Fatalf("unanswered: %v (boot %d), want a sent ErrUnavailable with the connection's boot id", g.r.Err, g.r.Boot)
	}
	close(release) // the late reply comes and is dropped
	if _, err := p.SendFunc(OpRead, []byte("after"), time.Minute, fn("after")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, answered("after")) // replies come in order: the late one came first

	if _, err := p.SendFunc(OpUnsealed, nil, time.Minute, fn("lost")); err != nil {
		t.Fatal(err)
	}
	l.Close()
	p.Close()
	waitFor(t, answered("lost"))
	if err := result("lost").r.Err; !errors.Is(err, ErrUnavailable) || IsRemote(err) {
		t.Fatalf("connection lost: %v, want ErrUnavailable", err)
	}

	dead := NewPeer(addr, nil) // the listener is closed
	if _, err := dead.SendFunc(OpRead, nil, time.Minute, fn("unsent")); !errors.Is(err, ErrNotSent) {
		t.Fatalf("SendFunc to a closed port: %v, want ErrNotSent", err)
	}
	mu.Lock()
	names := make([]string, 0, len(calls))
	for name := range calls {
		names = append(names, name)
	}
	mu.Unlock()
	for _, name := range names {
		if g := result(name); g.n > 1 || (name == "unsent") != (g.n == 0) {
			t.Errorf("%s: fn called %d times", name, g.n)
		}
	}
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
