package main

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"floe/client"
)

// Lease fencing (README "Guarantees"; docs/ARCHITECTURE.md, "Write lease and fencing"): a node writes to
// a segment only while it has heard from a Raft quorum within --lease-timeout, so a
// node cut off from the quorum stops acknowledging writes within that time. On
// loopback, without privileges, a node is cut off by freezing the two others with
// SIGSTOP: their sockets stay open but nothing answers, as in a partition.
//
// The one timing assertion of the suite is here, because it is the specification:
// no PUT may be acknowledged later than --lease-timeout (plus a margin for scheduling)
// after the node was cut off.
const (
	fenceLease   = time.Second // fastArgs' --lease-timeout
	fenceMargin  = 500 * time.Millisecond
	fenceRequest = 2 * time.Second // --request-timeout of this test: how long a refused PUT retries
)

// TestLeaseFencing runs the minority-partition case twice on one cluster: first the
// cut-off node is a follower that leads a topic's active segment (the Raft leader is
// among the frozen), then it is the Raft leader itself. Each time the frozen nodes are
// thawed and the cluster must recover: the topic takes writes again and holds every
// acknowledged entry exactly once.
func TestLeaseFencing(t *testing.T) {
	c := startCluster(t, clusterOpts{args: []string{"--request-timeout", fenceRequest.String()}})
	leader := c.raftLeader()
	follower := leader%3 + 1
	fenceCase(t, c, "follower cut off", follower, c.topicLedBy(leader, "fence-follower", follower))

	leader = c.raftLeader()
	fenceCase(t, c, "raft leader cut off", leader, c.topicLedBy(leader, "fence-leader", leader))
}

// fenceCase freezes every node but x, which leads topic's active segment, and checks
// that x stops acknowledging PUTs within the lease, then thaws them and checks recovery.
func fenceCase(t *testing.T, c *cluster, label string, x int, topic string) {
	t.Helper()
	w := c.conn(x)
	w.Timeout = fenceRequest + 10*time.Second
	acked := map[string]bool{}
	seq := 0
	put := func() error {
		p := fmt.Sprintf("%s/%d", label, seq)
		seq++
		err := w.Put(topic, []byte(p))
		if err == nil {
			acked[p] = true
		}
		return err
	}
	for i := 0; i < 5; i++ {
		mustOK(t, put(), "%s: PUT %s through node %d before the partition", label, topic, x)
	}

	var frozen []int
	for id := 1; id <= 3; id++ {
		if id != x {
			frozen = append(frozen, id)
		}
	}
	cut := time.Now() // the node cannot be cut off before the first SIGSTOP
	for _, id := range frozen {
		c.pause(id)
	}
	deadline := cut.Add(fenceLease + fenceMargin)

	// Write until a PUT sent after the deadline has been refused.
	var lastOK time.Time
	refusedAfter := 0
	for refusedAfter == 0 {
		if time.Since(cut) > 3*fenceRequest+fenceLease {
			t.Fatalf("%s: node %d still acknowledges writes %v after it was cut off (lease %v)", label, x, time.Since(cut), fenceLease)
		}
		sent := time.Now()
		err := put()
		done := time.Now()
		var se *client.ServerError
		switch {
		case err == nil:
			lastOK = done
			if done.After(deadline) {
				t.Errorf("%s: node %d acknowledged a PUT %v after it was cut off from the quorum; want none later than the lease %v + %v",
					label, x, done.Sub(cut).Round(time.Millisecond), fenceLease, fenceMargin)
			}
		case errors.As(err, &se):
			if sent.After(deadline) {
				refusedAfter++
			}
		default:
			t.Fatalf("%s: PUT through node %d: %v (want OK or ERR, the connection must stay up)", label, x, err)
		}
	}
	if !lastOK.IsZero() {
		t.Logf("%s: last PUT acknowledged %v after the cut", label, lastOK.Sub(cut).Round(time.Millisecond))
	}

	for _, id := range frozen {
		c.resume(id)
	}
	c.waitMembers(3, 30*time.Second)
	c.waitFor(20*time.Second, fmt.Sprintf("%s: node %d takes writes for %s again", label, x, topic), func() bool {
		return put() == nil
	})
	for i := 0; i < 5; i++ {
		mustOK(t, put(), "%s: PUT %s through node %d after recovery", label, topic, x)
	}

	// Every acknowledged entry is there exactly once; refused ones may or may not be
	// (their outcome is unknown to the client) but never twice.
	for id := 1; id <= 3; id++ {
		count := map[string]int{}
		for _, e := range c.readAll(id, topic) {
			count[string(e.Payload)]++
		}
		for p, n := range count {
			if n > 1 {
				t.Errorf("%s: READ %s through node %d: %q appears %d times", label, topic, id, p, n)
			}
		}
		for p := range acked {
			if count[p] != 1 {
				t.Errorf("%s: READ %s through node %d: acknowledged %q appears %d times, want 1", label, topic, id, p, count[p])
			}
		}
	}
}

// TestNoDuplicateAfterForwardTimeout: a PUT through node X is forwarded to the segment
// leader L, which stalls (SIGSTOP: a GC pause, a stuck disk, an overloaded VM) for longer
// than X's request timeout but shorter than its own lease. X's first forward times out
// while it still sits in L's socket buffer; X may report an error or try again, but when
// L wakes up and appends the queued request, the entry must not end up in the log
// twice (README, "Guarantees": no acknowledged entry is ever lost or duplicated).
//
// The stall has to outlast a timeout of the node under test, which is only observable
// as elapsed time, so this test waits for time to pass (bounded on both sides by the
// configured timeouts, with margins of 400 ms).
func TestNoDuplicateAfterForwardTimeout(t *testing.T) {
	const request = time.Second
	// A long lease keeps L's write lease valid through the stall; the stall is
	// between one and two request timeouts.
	c := startCluster(t, clusterOpts{args: []string{"--lease-timeout", "6s", "--request-timeout", request.String()}})
	leader := c.raftLeader()
	l := leader%3 + 1 // a follower
	x := l%3 + 1
	topic := c.topicLedBy(leader, "dup", l)
	w := c.conn(x)
	mustOK(t, w.Put(topic, []byte("warm-up")), "PUT through node %d", x)

	c.pause(l)
	sent := time.Now()
	result := make(chan error, 1)
	go func() { result <- w.Put(topic, []byte("the-one")) }()
	c.waitFor(5*time.Second, "the forwarder's request timeout to run out", func() bool {
		return time.Since(sent) > request+400*time.Millisecond
	})
	c.resume(l)
	err := <-result
	t.Logf("PUT through node %d with node %d stalled %v: err %v", x, l, time.Since(sent).Round(time.Millisecond), err)

	c.waitFor(20*time.Second, fmt.Sprintf("node %d takes writes again", l), func() bool {
		conn, derr := c.dial(l, 5*time.Second)
		if derr != nil {
			return false
		}
		defer conn.Close()
		return conn.Put(topic, []byte("after")) == nil
	})
	n := 0
	for _, e := range c.readAll(x, topic) {
		if string(e.Payload) == "the-one" {
			n++
		}
	}
	switch {
	case n > 1:
		t.Errorf("the stalled PUT (reply: %v) is in the log %d times, want at most once", err, n)
	case err == nil && n != 1:
		t.Errorf("the stalled PUT was acknowledged but is in the log %d times, want once", n)
	}
}
