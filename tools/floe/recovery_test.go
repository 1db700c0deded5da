package main

import (
	"fmt"
	"io"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"floe/client"
)

// TestRecovery: entries over several topics (with roll-overs) and a shared GET cursor
// moved part-way survive kill -9 of every node at once: after a restart every entry
// reads back, STATE shows the same segments, the next GET returns exactly the entry
// after the last one handed out, and writes continue at the next offset.
func TestRecovery(t *testing.T) {
	const (
		topics   = 3
		perTopic = 130
		segSize  = 40
	)
	c := startCluster(t, clusterOpts{args: []string{"--max-segment-entries", strconv.Itoa(segSize)}})
	conns := []*client.Conn{c.conn(1), c.conn(2), c.conn(3)}
	name := func(k int) string { return fmt.Sprintf("recover-%d", k) }
	payload := func(k, i int) string { return fmt.Sprintf("%s/%04d", name(k), i) }
	for k := 0; k < topics; k++ {
		mustOK(t, conns[k].Register(name(k)), "REGISTER %s", name(k))
		c.waitTopic(name(k))
	}
	for i := 0; i < perTopic; i++ {
		for k := 0; k < topics; k++ {
			mustOK(t, conns[(i+k)%3].Put(name(k), []byte(payload(k, i))), "PUT %s #%d", name(k), i)
		}
	}
	// Move each topic's cursor a different distance, through rotating nodes; topic 0's
	// cursor crosses a segment boundary.
	taken := []int{segSize + 7, 3, 0}
	for k := 0; k < topics; k++ {
		for i := 0; i < taken[k]; i++ {
			p, ok, err := conns[i%3].Get(name(k))
			mustOK(t, err, "GET %s #%d", name(k), i)
			if !ok || string(p) != payload(k, i) {
				t.Fatalf("GET %s #%d = %q (ok %v), want %q", name(k), i, p, ok, payload(k, i))
			}
		}
	}
	before := make([]*client.TopicState, topics)
	for k := range before {
		before[k] = c.state(1, name(k))
	}

	for id := 1; id <= 3; id++ {
		c.kill(id)
	}
	for id := 1; id <= 3; id++ {
		c.start(id)
	}
	c.waitMembers(3, 30*time.Second)
	// Each node serves once it has replayed the metadata from its Raft log; that it
	// should not answer "no such topic" before is TestRestartedNodeServesAtOnce's case.
	for k := 0; k < topics; k++ {
		c.waitTopic(name(k))
	}

	conns = []*client.Conn{c.conn(1), c.conn(2), c.conn(3)}
	for k := 0; k < topics; k++ {
		after := c.state(k%3+1, name(k))
		if len(after.Segments) != len(before[k].Segments) || after.Cursor != before[k].Cursor {
			t.Errorf("STATE %s after restart: %d segments, cursor %d; before: %d segments, cursor %d",
				name(k), len(after.Segments), after.Cursor, len(before[k].Segments), before[k].Cursor)
		}
		for i, s := range after.Segments {
			if i < len(before[k].Segments) && !reflect.DeepEqual(s, before[k].Segments[i]) {
				t.Errorf("STATE %s after restart: segment %+v, before %+v", name(k), s, before[k].Segments[i])
			}
		}
		for id := 1; id <= 3; id++ {
			entries := c.readAll(id, name(k))
			if len(entries) != perTopic {
				t.Fatalf("READ %s through node %d after restart: %d entries, want %d", name(k), id, len(entries), perTopic)
			}
			for i, e := range entries {
				if e.Offset != uint64(i) || string(e.Payload) != payload(k, i) {
					t.Fatalf("READ %s through node %d after restart: entry %d = offset %d %q, want offset %d %q",
						name(k), id, i, e.Offset, e.Payload, i, payload(k, i))
				}
			}
		}
	}

	// The cursor continues exactly where it was: the next GET (through a node other than
	// the one that handed out the last entry) returns the next entry.
	for k := 0; k < topics; k++ {
		via := (taken[k] + 1) % 3
		p, ok, err := conns[via].Get(name(k))
		mustOK(t, err, "GET %s after restart", name(k))
		if want := payload(k, taken[k]); !ok || string(p) != want {
			t.Errorf("first GET %s through node %d after restart = %q (ok %v), want %q (cursor was %d)", name(k), via+1, p, ok, want, taken[k])
		}
	}

	// Writes continue at the next offset, through every node.
	for k := 0; k < topics; k++ {
		for j := 0; j < 3; j++ {
			off, err := conns[j].PutOffset(name(k), []byte(payload(k, perTopic+j)))
			mustOK(t, err, "PUTOFF %s through node %d after restart", name(k), j+1)
			if off != uint64(perTopic+j) {
				t.Errorf("PUTOFF %s through node %d after restart = offset %d, want %d", name(k), j+1, off, perTopic+j)
			}
		}
		entries := c.readAll(k%3+1, name(k))
		if len(entries) != perTopic+3 || string(entries[perTopic+2].Payload) != payload(k, perTopic+2) {
			t.Errorf("READ %s after the new writes: %d entries, last %v; want %d ending %q", name(k), len(entries), lastEntry(entries), perTopic+3, payload(k, perTopic+2))
		}
	}
}

func lastEntry(entries []client.Entry) any {
	if len(entries) == 0 {
		return "none"
	}
	e := entries[len(entries)-1]
	return fmt.Sprintf("%d %q", e.Offset, e.Payload)
}

// TestRestartedNodeServesAtOnce: a node that restarts with existing state answers from
// the cluster's metadata as soon as it accepts clients. Right after a follower is back
// (kill -9, restart), a PUT, STATE, READ and GET through it, and a PUT through the
// Raft leader forwarded to it (it leads the topic's active segment), must not fail
// with "no such topic" because it has not replayed its Raft log into its state machine
// yet; a node that is not ready must retry or wait, not deny that the topic exists.
func TestRestartedNodeServesAtOnce(t *testing.T) {
	c := startCluster(t, clusterOpts{})
	leader := c.raftLeader()
	restarted := leader%3 + 1 // a follower
	topic := c.topicLedBy(leader, "restart", restarted)
	reg := c.conn(leader)
	for i := 0; i < 10; i++ {
		mustOK(t, reg.Put(topic, []byte(fmt.Sprintf("before-%d", i))), "PUT %d", i)
	}

	failed := func() int {
		return strings.Count(readFile(t, c.node(leader).logPath), fmt.Sprintf(`failed to appendEntries to: peer="{Voter %d `, restarted))
	}
	before := failed()
	c.kill(restarted)
	// Metadata changes while it is down: it has to catch up when it comes back.
	for k := 0; k < 50; k++ {
		mustOK(t, reg.Register(fmt.Sprintf("filler-%03d", k)), "REGISTER filler-%03d", k)
	}
	// The leader's retries towards the dead node back off (hashicorp/raft doubles the
	// wait from 10 ms on each failure); after 9 failures the next try is over a second
	// away, so the restarted node has a while with its state machine not yet replayed.
	c.waitFor(20*time.Second, fmt.Sprintf("9 failed replications from leader %d to node %d", leader, restarted), func() bool {
		return failed() >= before+9
	})
	c.start(restarted)
	// No wait: the node accepts clients, so it must answer correctly.
	direct := c.conn(restarted)
	fwd := c.conn(leader)
	t0 := time.Now()
	defer func() { t.Logf("requests took %v", time.Since(t0)) }()
	if err := direct.Put(topic, []byte("after-direct")); err != nil {
		t.Errorf("PUT %s through node %d right after its restart: %v", topic, restarted, err)
	}
	if err := fwd.Put(topic, []byte("after-forwarded")); err != nil {
		t.Errorf("PUT %s through node %d, forwarded to node %d right after its restart: %v", topic, leader, restarted, err)
	}
	if _, err := direct.State(topic); err != nil {
		t.Errorf("STATE %s through node %d right after its restart: %v", topic, restarted, err)
	}
	if _, _, err := direct.Read(topic, 0, 10); err != nil {
		t.Errorf("READ %s through node %d right after its restart: %v", topic, restarted, err)
	}
	if p, ok, err := direct.Get(topic); err != nil || !ok || string(p) != "before-0" {
		t.Errorf("GET %s through node %d right after its restart = %q, ok %v, err %v; want \"before-0\"", topic, restarted, p, ok, err)
	}
}

// TestRestartUnderPeerRPC: other nodes call a node's cluster port at any time (status
// checks when they pick the next segment leader, forwarded appends and reads). A node
// that restarts while such calls arrive must answer them or make them wait, never
// crash: the cluster listener is up before Raft has opened. Here the test process plays
// the peer, sending status requests (opStatus, the call of node/append.go alive) in a
// tight loop while node 2 restarts.
func TestRestartUnderPeerRPC(t *testing.T) {
	c := startCluster(t, clusterOpts{})
	const id = 2
	addr := c.node(id).raftAddr()
	stop := make(chan struct{})
	done := make(chan struct{})
	var answered atomic.Int64
	go func() {
		defer close(done)
		// [u32 length = 9][u64 request id][u8 op = 5, status], after the mux byte 'N'.
		req := []byte{'N', 9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5}
		for {
			select {
			case <-stop:
				return
			default:
			}
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				continue // not listening yet: dial again at once, to hit the start-up window
			}
			conn.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := conn.Write(req); err == nil {
				var hdr [13]byte
				if _, err := io.ReadFull(conn, hdr[:]); err == nil {
					answered.Add(1)
				}
			}
			conn.Close()
		}
	}()
	defer func() { close(stop); <-done }()

	for round := 0; round < 5; round++ {
		before := answered.Load()
		c.kill(id)
		c.start(id) // fails the test if the node exits while starting
		c.waitMembers(3, 30*time.Second)
		c.waitFor(10*time.Second, "status answers from the restarted node", func() bool { return answered.Load() > before })
		if !c.node(id).running() {
			t.Fatalf("round %d: node %d died after its restart:\n%s", round, id, tail(c.node(id).logPath, 30))
		}
	}
}
