package node

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"floe/internal/testenv"
	"floe/wire"
)

// TestReplyQueueOrder: replies completed in random order on many goroutines reach
// the client in request order, whole (large ones written from where they are), also when the client does not read for a
// while and the socket fills (the non-blocking write hands the rest to a
// goroutine of its own); every reservation of the budget is released, and wait
// returns once all are written.
func TestReplyQueueOrder(t *testing.T) {
	for _, conn := range []string{"tcp", "pipe"} {
		t.Run(conn, func(t *testing.T) {
			var server, client net.Conn
			if conn == "tcp" {
				client, server = tcpPair(t)
				client.(*net.TCPConn).SetReadBuffer(32 << 10)
				server.(*net.TCPConn).SetWriteBuffer(32 << 10)
			} else {
				server, client = net.Pipe()
				defer server.Close()
				defer client.Close()
			}
			const n = 400
			budget := newConnBudget(1<<30, n)
			q := newReplyQueue(server, 10*time.Second, budget)
			body := func(i int) []byte {
				if i%50 == 7 { // now and then one too large to copy (largeReply)
					return bytes.Repeat([]byte(fmt.Sprintf("large %d;", i)), largeReply/8)
				}
				return bytes.Repeat([]byte(fmt.Sprintf("reply %d;", i)), 1+i%300) // up to ~3 KiB
			}
			places := make([]*reply, n)
			for i := range places {
				budget.acquire(100)
				places[i] = q.add(100)
			}
			var wg sync.WaitGroup
			for _, i := range rand.Perm(n) {
				wg.Go(func() { q.done(places[i], body(i)) })
			}
			// The client reads nothing until every reply is complete: the socket
			// fills and writes are left to finish later.
			wg.Wait()
			r := bufio.NewReader(client)
			client.SetReadDeadline(time.Now().Add(20 * time.Second))
			for i := 0; i < n; i++ {
				got, err := wire.ReadFrame(r, 1<<20)
				if err != nil {
					t.Fatalf("reply %d: %v", i, err)
				}
				if !bytes.Equal(got, body(i)) {
					t.Fatalf("reply %d out of order or damaged: %.40q", i, got)
				}
			}
			q.wait()
			testenv.WaitFor(t, 5*time.Second, "the budget to be released", func() bool {
				used, _ := budget.state()
				return used == 0
			})
		})
	}
}

// TestReplyQueueFailedWrite: once a write fails (the client went away), the
// connection is closed, later replies are dropped with their budget released,
// and wait returns.
func TestReplyQueueFailedWrite(t *testing.T) {
	client, server := tcpPair(t)
	budget := newConnBudget(1<<30, 16)
	q := newReplyQueue(server, time.Second, budget)
	client.Close()
	// Writes to a peer that closed fail once it has answered with a reset; keep
	// completing replies until one does.
	testenv.WaitFor(t, 10*time.Second, "a write to the closed client to fail", func() bool {
		budget.acquire(10)
		q.done(q.add(10), bytes.Repeat([]byte("x"), 64<<10))
		q.wait()
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.failed
	})
	budget.acquire(10)
	pending := q.add(10)
	budget.acquire(10)
	q.done(q.add(10), []byte("dropped"))
	q.done(pending, []byte("dropped too"))
	q.wait()
	if used, _ := budget.state(); used != 0 {
		t.Fatalf("%d bytes of the budget still reserved after the failure", used)
	}
}

// TestReplyAfterIdleDeadline: after a reply too large for the socket was finished
// by a blocking write, a connection idle for longer than the write timeout still
// gets its next reply (the blocking write's deadline does not outlive it and fail
// the next non-blocking write). Found by review.
func TestReplyAfterIdleDeadline(t *testing.T) {
	client, server := tcpPair(t)
	server.(*net.TCPConn).SetWriteBuffer(32 << 10)
	const timeout = 300 * time.Millisecond
	budget := newConnBudget(1<<30, 16)
	q := newReplyQueue(server, time.Second, budget)
	q.timeout = timeout
	r := bufio.NewReader(client)
	big := bytes.Repeat([]byte("x"), 4<<20) // more than the socket takes at once
	budget.acquire(10)
	q.done(q.add(10), big)
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, err := wire.ReadFrame(r, 8<<20); err != nil || len(got) != len(big) {
		t.Fatalf("big reply: %d bytes, %v", len(got), err)
	}
	q.wait()
	time.Sleep(3 * timeout) // the time a deadline set by the write would need to pass
	budget.acquire(10)
	q.done(q.add(10), []byte("small"))
	q.wait()
	got, err := wire.ReadFrame(r, 1<<20)
	if err != nil || string(got) != "small" {
		t.Fatalf("reply after an idle spell: %q, %v", got, err)
	}
}

// TestSlowButSteadyClient: a client that reads a large batch of replies slowly but
// steadily is not cut off although the batch takes longer than the write timeout:
// the timeout bounds a write with no progress. Found by review.
func TestSlowButSteadyClient(t *testing.T) {
	client, server := tcpPair(t)
	client.(*net.TCPConn).SetReadBuffer(16 << 10)
	server.(*net.TCPConn).SetWriteBuffer(16 << 10)
	const n = 32
	budget := newConnBudget(1<<30, n)
	q := newReplyQueue(server, 200*time.Millisecond, budget)
	places := make([]*reply, n)
	for i := range places {
		budget.acquire(10)
		places[i] = q.add(10)
	}
	body := bytes.Repeat([]byte("y"), 16<<10)
	for i := n - 1; i >= 0; i-- {
		q.done(places[i], body)
	}
	// 16 KiB every 50 ms: 512 KiB take well over the 200 ms timeout.
	r := bufio.NewReaderSize(readFunc(func(b []byte) (int, error) {
		time.Sleep(50 * time.Millisecond)
		return client.Read(b[:min(len(b), 16<<10)])
	}), 16<<10)
	client.SetReadDeadline(time.Now().Add(30 * time.Second))
	for i := 0; i < n; i++ {
		if got, err := wire.ReadFrame(r, 1<<20); err != nil || len(got) != len(body) {
			t.Fatalf("reply %d of a steadily read batch: %d bytes, %v", i, len(got), err)
		}
	}
	q.wait()
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(b []byte) (int, error) { return f(b) }
