package node

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"floe/internal/testenv"
	"floe/meta"
	"floe/node/read"
	"floe/node/rpc"
	"floe/node/segment"
	"floe/wire"
)

// startNode starts a one-node cluster in this process on free loopback ports and
// waits until it leads and may write. tweak (may be nil) edits the config first.
func startNode(t *testing.T, tweak func(*Config)) *Node {
	t.Helper()
	cfg := Config{
		NodeID: 1, DataDir: t.TempDir(), HTTPPort: -1,
		HeartbeatTimeout: 200 * time.Millisecond, LeaseTimeout: time.Second, RequestTimeout: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RaftLogLevel: "error",
	}
	if tweak != nil {
		tweak(&cfg)
	}
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	testenv.WaitFor(t, 20*time.Second, "the node to lead and hold its lease", func() bool {
		_, ok := n.fsm.Node(1)
		return n.raft.IsLeader() && n.hasLease() && ok
	})
	return n
}

// TestStatusAnswersWhileAppendQueueFull: a node whose appender is stuck with a full
// queue still answers status calls on the very RPC connection that carries the
// appends waiting for it (recover-segment and roll-overs take a node that does not
// answer for dead).
func TestStatusAnswersWhileAppendQueueFull(t *testing.T) {
	ffs := &segment.FaultFS{}
	n := startNode(t, func(c *Config) { c.segmentFS, c.appendQueue = ffs, 1 })
	ctx := context.Background()
	if err := n.Register(ctx, "stuck", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Append(ctx, "stuck", [][]byte{[]byte("open")}); err != nil {
		t.Fatal(err)
	}
	// The appender takes one request and is stuck in its fdatasync; its queue holds
	// one more.
	entered, release := ffs.HoldNextSync()

	p := rpc.NewPeer(n.RaftAddr(), nil)
	defer p.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer n.Close() // fails the appends still queued, before wg.Wait
	defer release()
	for i := 0; i < 4; i++ {
		a := rpc.Append{Topic: n.key("stuck"), ID: uint64(i + 1), Payloads: [][]byte{[]byte("x")}}
		ch, err := p.Send(rpc.OpAppend, a.Encode())
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); <-ch }()
	}
	<-entered
	stuck := n.writer.Existing(n.key("stuck"))
	testenv.WaitFor(t, 10*time.Second, "the appender's queue to fill", func() bool {
		queued, capacity := stuck.Queued()
		return queued == capacity
	})
	if _, err := p.Call(ctx, rpc.OpStatus, nil, 10*time.Second); err != nil {
		t.Fatalf("status call behind a full append queue: %v", err)
	}
}

// fakePeer is a cluster port that answers the connection handshake (status id 0) and
// then leaves the first drop status calls unanswered, as a live node too busy to answer
// at once (drop < 0: it never answers them).
func fakePeer(t *testing.T, drop int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	calls := 0
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				r := bufio.NewReader(conn)
				if b, err := r.ReadByte(); err != nil || b != rpc.MuxRPC {
					return
				}
				for {
					id, op, _, err := rpc.ReadFrame(r)
					if err != nil {
						return
					}
					if op != byte(rpc.OpStatus) {
						continue
					}
					mu.Lock()
					answer := id == 0
					if !answer {
						calls++
						answer = drop >= 0 && calls > drop
					}
					mu.Unlock()
					if answer {
						st := rpc.Status{Applied: 1, LastIndex: 1, State: "Follower", Boot: 7}
						conn.Write(rpc.AppendFrame(nil, id, rpc.StatusOK, st.Encode()))
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestRecoverLivenessProbes: recover-segment takes the segment leader for dead only if
// it leaves status calls unanswered through a whole --lease-timeout; a live node that
// is slow to answer the first probes is found alive.
func TestRecoverLivenessProbes(t *testing.T) {
	n := startNode(t, nil)
	ctx := context.Background()
	register := func(id uint64, addr string) {
		t.Helper()
		if _, err := n.propose(ctx, &meta.Command{Op: meta.OpRegisterNode, Node: &meta.NodeInfo{ID: id, RaftAddr: addr}}); err != nil {
			t.Fatal(err)
		}
	}
	register(2, fakePeer(t, 2))
	register(3, fakePeer(t, -1))
	if !n.peerAnswers(ctx, 2, n.cfg.LeaseTimeout, recoverProbes) {
		t.Fatal("a node that answers the third status call was taken for dead")
	}
	if n.peerAnswers(ctx, 3, n.cfg.LeaseTimeout, recoverProbes) {
		t.Fatal("a node that answers no status call was taken for alive")
	}
}

// TestConnBudget: a client connection's requests wait while the bytes in flight would
// pass the budget, resume as replies are written, and one request always runs when
// nothing else is in flight, however large its bound.
func TestConnBudget(t *testing.T) {
	b := newConnBudget(100, 3)
	b.acquire(60)
	b.acquire(40) // exactly full
	acquired := make(chan struct{})
	go func() {
		b.acquire(30)
		close(acquired)
	}()
	testenv.WaitFor(t, 5*time.Second, "the third acquire to wait", func() bool {
		_, waiters := b.state()
		return waiters == 1
	})
	b.release(40, 1) // 60 + 30 fit
	<-acquired
	if used, waiters := b.state(); used != 90 || waiters != 0 {
		t.Fatalf("after the release: %d bytes reserved, %d waiting; want 90, 0", used, waiters)
	}
	b.release(90, 2)

	b.acquire(500) // over the budget, alone
	if used, _ := b.state(); used != 500 {
		t.Fatalf("an oversized request alone reserved %d, want 500", used)
	}
	b.release(500, 1)

	// At most three requests, however small.
	for i := 0; i < 3; i++ {
		b.acquire(1)
	}
	fourth := make(chan struct{})
	go func() {
		b.acquire(1)
		close(fourth)
	}()
	testenv.WaitFor(t, 5*time.Second, "the fourth request to wait", func() bool {
		_, waiters := b.state()
		return waiters == 1
	})
	b.release(2, 2)
	<-fourth
	if used, _ := b.state(); used != 2 {
		t.Fatalf("after the fourth: %d bytes reserved, want 2", used)
	}
}

// TestReplyBound: the budget a request reserves covers its largest possible reply,
// and pipelining the largest READs cannot hold more than the connection's budget.
func TestReplyBound(t *testing.T) {
	big := make([]byte, maxEntryBytes)
	// The largest READ reply: just under read.MaxBytes of payload (a READ then goes on
	// into the next segment), passed by one entry of the largest size.
	entries := []wire.Entry{{Offset: 1, Payload: big[:read.MaxBytes-1]}, {Offset: 2, Payload: big}}
	if got, bound := len(wire.EncodeEntries(entries, 3)), replyBound(wire.Request{Cmd: "READ", Max: 2}); int64(got) > bound {
		t.Fatalf("READ reply of %d bytes, bound %d", got, bound)
	}
	if got, bound := len("OK ")+maxEntryBytes, replyBound(wire.Request{Cmd: "GET"}); int64(got) > bound {
		t.Fatalf("GET reply of %d bytes, bound %d", got, bound)
	}
	if bound := replyBound(wire.Request{Cmd: "READ", Max: wire.MaxReadMax}); bound > maxConnBytes {
		t.Fatalf("one READ's bound %d is over the connection's budget %d", bound, maxConnBytes)
	}
}

// TestHTTPTimeouts: the HTTP API drops a client that stalls in its request body or
// idles on a kept-alive connection, while a long-poll read longer than the write
// timeout still gets its reply.
func TestHTTPTimeouts(t *testing.T) {
	short := httpTimeouts{readHeader: 300 * time.Millisecond, read: 300 * time.Millisecond, write: 300 * time.Millisecond, idle: 300 * time.Millisecond}
	n := startNode(t, func(c *Config) { c.httpDeadlines = short })
	if err := n.Register(context.Background(), "polled", nil); err != nil {
		t.Fatal(err)
	}
	// raw sends req on a new connection and returns everything the server sends
	// until it closes the connection; the test's own deadline is far longer than
	// the server's timeouts.
	raw := func(req string) string {
		t.Helper()
		conn, err := net.Dial("tcp", n.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(conn)
		if err != nil {
			t.Fatalf("the server kept the connection of %q: %v (read %q)", strings.SplitN(req, "\r\n", 2)[0], err, b)
		}
		return string(b)
	}

	// A body that stops short of its Content-Length: cut at the read timeout.
	raw("POST /v1/topics/polled/records HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
	// A kept-alive connection that idles after its reply: closed at the idle timeout.
	if got := raw("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); !strings.Contains(got, "200 OK") {
		t.Fatalf("GET /healthz: %q", got)
	}
	// A long poll that waits past the write timeout still answers.
	resp, err := http.Get("http://" + n.HTTPAddr() + "/v1/topics/polled/records?offset=0&wait_ms=1000")
	if err != nil {
		t.Fatalf("long poll: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"records":[]`) {
		t.Fatalf("long poll: %d %q %v", resp.StatusCode, body, err)
	}
}

// TestClientWriteTimeout: a client that pipelines reads and takes none of the replies
// is disconnected once a write has waited the write timeout, instead of holding its
// replies (and a goroutine) on the node for good.
func TestClientWriteTimeout(t *testing.T) {
	n := startNode(t, func(c *Config) { c.clientWriteTimeout = 300 * time.Millisecond })
	ctx := context.Background()
	if err := n.Register(ctx, "big", nil); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 60<<10)
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = payload
	}
	for i := 0; i < 2; i++ { // 7.5 MiB
		if _, err := n.Append(ctx, "big", batch); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := net.Dial("tcp", n.ClientAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	var reqs bytes.Buffer
	for i := 0; i < 16; i++ { // 120 MiB of replies, never read
		wire.WriteFrame(&reqs, []byte("READ big 0 10000"))
	}
	if _, err := conn.Write(reqs.Bytes()); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the node to serve the client", func() bool { return n.clients.Load() == 1 })
	testenv.WaitFor(t, 20*time.Second, "the node to drop the client that reads nothing", func() bool { return n.clients.Load() == 0 })
}

// state returns the bytes reserved and the acquires waiting now.
func (b *connBudget) state() (used int64, waiters int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.waiters
}

// TestReadyReplyNotHeldBehindPendingOne: a reply that is ready reaches the client
// even while the next reply on the connection waits for its group commit; the node
// does not keep it in its write buffer until a later one is ready too.
func TestReadyReplyNotHeldBehindPendingOne(t *testing.T) {
	ffs := &segment.FaultFS{}
	n := startNode(t, func(c *Config) { c.segmentFS = ffs })
	ctx := context.Background()
	if err := n.Register(ctx, "t", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Append(ctx, "t", [][]byte{[]byte("open")}); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", n.ClientAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	put := func(p string) {
		t.Helper()
		if err := wire.WriteFrame(conn, []byte("PUT t "+p)); err != nil {
			t.Fatal(err)
		}
	}
	entered1, release1 := ffs.HoldNextSync()
	defer release1()
	put("first")
	<-entered1 // the first PUT's group commit is in its fdatasync
	put("second")
	testenv.WaitFor(t, 10*time.Second, "the second PUT to wait behind the first", func() bool {
		q, _ := n.writer.Appender(n.key("t")).Queued()
		return q == 1
	})
	entered2, release2 := ffs.HoldNextSync() // the second PUT's fdatasync
	defer release2()
	release1()
	<-entered2
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	reply, err := wire.ReadFrame(bufio.NewReader(conn), wire.MaxReply)
	if err != nil || string(reply) != "OK" {
		t.Fatalf("reply to the first PUT while the second waits for its fdatasync: %q, %v", reply, err)
	}
}

// TestNextLeaderSkipsDeadRaftLeader: in the seconds after the Raft leader dies, before
// a follower's heartbeat timeout elects another, the follower still takes it for its
// leader; a roll-over there must not name it as the next segment's leader (nor a
// replica), since it answers nothing: the topic would wait for recover-segment.
func TestNextLeaderSkipsDeadRaftLeader(t *testing.T) {
	nodes := startTestCluster(t, 3, func(c *Config) { c.HeartbeatTimeout = 3 * time.Second })
	leader, _ := nodes[0].raft.Leader()
	var dead, follower *Node
	for _, n := range nodes {
		if n.cfg.NodeID == leader {
			dead = n
		} else if follower == nil {
			follower = n
		}
	}
	if dead == nil || follower == nil {
		t.Fatalf("raft leader %d is not among the nodes", leader)
	}
	dead.Close()
	// The voter before the dead leader in id order: the dead one comes next.
	before := (leader+1)%3 + 1
	if id, _ := follower.raft.Leader(); id != leader {
		t.Fatalf("node %d already knows another leader (%d): the test needs the window before it does", follower.cfg.NodeID, id)
	}
	next := follower.nextLeader(before)
	set := follower.replicaSet(before, 2)
	if id, _ := follower.raft.Leader(); id != leader {
		t.Fatalf("node %d elected another leader (%d) during the test: its window passed", follower.cfg.NodeID, id)
	}
	if next == leader {
		t.Errorf("nextLeader(%d) on node %d = %d, the Raft leader that just died", before, follower.cfg.NodeID, next)
	}
	if len(set) != 2 || set[1] == leader {
		t.Errorf("replicaSet(%d, 2) on node %d = %v: a follower that just died comes before a live one", before, follower.cfg.NodeID, set)
	}
}
