package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRecoverSegment (DESIGN section 7, node down with its active segment): floe
// cluster recover-segment refuses while the segment's leader answers; once it is
// down, it moves the topic's writes to a live node from the segment's base (what the
// dead leader held is abandoned), and the returning node sets its file aside instead
// of serving it.
func TestRecoverSegment(t *testing.T) {
	c := startCluster(t, clusterOpts{args: []string{"--request-timeout", "3s"}})
	httpOf := func(id int) string { return "127.0.0.1:" + strconv.Itoa(c.node(id).httpPort) }
	r := c.raftLeader()
	x := r%3 + 1 // a follower leads the topic's active segment
	y := 6 - r - x
	topic := c.topicLedBy(r, "rec", x)
	w := c.conn(y)
	for i := 0; i < 10; i++ {
		mustOK(t, w.Put(topic, []byte(fmt.Sprintf("old-%d", i))), "PUT old-%d through node %d", i, y)
	}

	out, err := runFloe(t, "cluster", "recover-segment", topic, "--http", httpOf(y))
	if err == nil || !strings.Contains(out, "answers") {
		t.Fatalf("recover-segment while node %d answers: %v\n%s", x, err, out)
	}

	c.kill(x)
	// --to must name a voter: a segment led by a node that is not a member would
	// take no writes until an operator noticed.
	out, err = runFloe(t, "cluster", "recover-segment", topic, "--to", "9", "--http", httpOf(y))
	if err == nil || !strings.Contains(out, "node 9 is not a voter") {
		t.Fatalf("recover-segment --to 9 (not a member): %v\n%s, want an error naming node 9 as no voter", err, out)
	}
	if st := c.state(y, topic); len(st.Segments) != 1 || int(st.Segments[0].Leader) != x {
		t.Fatalf("STATE after a refused recover-segment: %s, want segment 1 still on node %d", st.Raw, x)
	}
	out, err = runFloe(t, "cluster", "recover-segment", topic, "--http", httpOf(y))
	if err != nil || !strings.Contains(out, "from offset 0") {
		t.Fatalf("recover-segment with node %d down: %v\n%s", x, err, out)
	}
	for i := 0; i < 5; i++ {
		off, err := w.PutOffset(topic, []byte(fmt.Sprintf("new-%d", i)))
		if err != nil || off != uint64(i) {
			t.Fatalf("PUT new-%d after the recovery: offset %d, %v; want %d", i, off, err, i)
		}
	}
	st := c.state(y, topic)
	if len(st.Segments) != 2 || st.Segments[0].Count != 0 || !strings.Contains(string(st.Raw), `"abandoned":true`) || int(st.Segments[1].Leader) == x {
		t.Fatalf("STATE after the recovery: %s", st.Raw)
	}
	if p, ok, err := c.conn(r).Get(topic); err != nil || !ok || string(p) != "new-0" {
		t.Fatalf("GET after the recovery = %q %v %v, want new-0", p, ok, err)
	}

	// The old leader returns: its file of the abandoned segment goes aside, and it
	// serves the topic as the cluster has it.
	c.start(x)
	c.waitMembers(3, 30*time.Second)
	c.waitFor(30*time.Second, "node "+strconv.Itoa(x)+" to set the abandoned segment's file aside", func() bool {
		aside, _ := os.ReadDir(filepath.Join(c.node(x).dataDir, "abandoned", topic))
		left, _ := os.ReadDir(filepath.Join(c.node(x).dataDir, "segments", topic))
		return len(aside) == 1 && len(left) == 0
	})
	checkEntries(t, "READ through the returned node", c.readAll(x, topic), func(i int) string { return fmt.Sprintf("new-%d", i) }, 5)
}
