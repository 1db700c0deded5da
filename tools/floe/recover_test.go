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

// TestRecoverSegment (README "Operations": the leader of a topic's active segment dies): floe
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
		aside := salvageFiles(filepath.Join(c.node(x).dataDir, "abandoned", c.key(topic)))
		left, _ := os.ReadDir(c.segmentDir(x, topic))
		return len(aside) == 1 && len(left) == 0
	})
	// The log line names what the file held, though the restarted node never opened it.
	// It is written once the file is set aside: wait for it.
	c.waitFor(10*time.Second, "node "+strconv.Itoa(x)+"'s log to say that the file it set aside held 10 entries", func() bool {
		log, _ := os.ReadFile(c.node(x).logPath)
		return strings.Contains(string(log), "file kept for salvage") && strings.Contains(string(log), "entries=10 ")
	})
	checkEntries(t, "READ through the returned node", c.readAll(x, topic), func(i int) string { return fmt.Sprintf("new-%d", i) }, 5)
}

// TestRecoverSegmentHealedLeader: node X, leader of a topic's active segment, is cut
// off (frozen) while the rest of the cluster commits a long backlog of metadata and
// recovers the segment; PUTs sent to X meanwhile wait in its socket.
//   - When X thaws, Raft contact comes back before its metadata has caught up (the
//     backlog reaches it in batches): X must not acknowledge those PUTs into the
//     abandoned segment. Every PUT it acknowledges is in the topic.
//   - X sets its file of the abandoned segment aside with the entries it held. After
//     a restart, replaying its Raft log, X leads that segment again for a moment: it
//     must neither create the file anew nor touch the salvage copy.
//
// It runs with X a Raft follower, and with X the Raft leader (which thaws still
// believing it leads).
func TestRecoverSegmentHealedLeader(t *testing.T) {
	t.Run("follower", func(t *testing.T) { healedLeaderCase(t, false) })
	t.Run("raft leader", func(t *testing.T) { healedLeaderCase(t, true) })
}

func healedLeaderCase(t *testing.T, raftLeader bool) {
	c := startCluster(t, clusterOpts{})
	httpOf := func(id int) string { return "127.0.0.1:" + strconv.Itoa(c.node(id).httpPort) }
	r := c.raftLeader()
	x, y := r%3+1, 6-r-(r%3+1) // a follower leads the topic's active segment
	if raftLeader {
		x, y = r, r%3+1
	}
	topic := c.topicLedBy(y, "heal", x)
	wx := c.conn(x)
	for i := 0; i < 3; i++ {
		mustOK(t, wx.Put(topic, []byte(fmt.Sprintf("old-%d", i))), "PUT old-%d through node %d", i, x)
	}

	c.pause(x)
	bulkRegister(t, c, y, "zbacklog", 1000)
	out, err := runFloe(t, "cluster", "recover-segment", topic, "--http", httpOf(y))
	if err != nil || !strings.Contains(out, "from offset 0") {
		t.Fatalf("recover-segment with node %d frozen: %v\n%s", x, err, out)
	}
	q, err := c.dial(x, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	const queued = 20
	for i := 0; i < queued; i++ {
		mustOK(t, q.Send([]byte(fmt.Sprintf("PUT %s healed-%d", topic, i))), "queue PUT %d at node %d", i, x)
	}
	mustOK(t, q.Flush(), "queue PUTs at node %d", x)
	c.resume(x)
	acked := map[string]bool{}
	for i := 0; i < queued; i++ {
		reply, err := q.Recv()
		if err != nil {
			t.Fatalf("reply %d of node %d to a queued PUT: %v", i, x, err)
		}
		if string(reply) == "OK" {
			acked[fmt.Sprintf("healed-%d", i)] = true
		}
	}
	t.Logf("node %d acknowledged %d of the %d PUTs queued while it was frozen", x, len(acked), queued)
	c.waitMembers(3, 30*time.Second)
	c.waitReady(30 * time.Second)
	got := map[string]int{}
	for _, e := range c.readAll(y, topic) {
		got[string(e.Payload)]++
	}
	for p := range acked {
		if got[p] != 1 {
			t.Errorf("PUT %q acknowledged by node %d after it thawed is in the topic %d times, want 1", p, x, got[p])
		}
	}

	aside := filepath.Join(c.node(x).dataDir, "abandoned", c.key(topic))
	segs := c.segmentDir(x, topic)
	var kept os.DirEntry
	var keptSize int64
	c.waitFor(30*time.Second, fmt.Sprintf("node %d to set the abandoned segment's file aside", x), func() bool {
		files := salvageFiles(aside)
		if len(files) != 1 {
			return false
		}
		if _, err := os.Stat(filepath.Join(segs, files[0].Name())); err == nil {
			return false
		}
		kept = files[0]
		info, err := kept.Info()
		keptSize = info.Size()
		return err == nil
	})
	if out, err := runFloe(t, "wal", "dump", filepath.Join(aside, kept.Name())); err != nil || strings.Count(out, "\tok\n") != 3 {
		t.Errorf("the salvage copy of the abandoned segment does not hold the 3 old entries: %v\n%s", err, out)
	}

	c.kill(x)
	c.start(x)
	c.waitMembers(3, 30*time.Second)
	c.waitReady(30 * time.Second)
	c.waitFor(20*time.Second, fmt.Sprintf("node %d to keep the salvage copy alone after a restart", x), func() bool {
		files := salvageFiles(aside)
		if len(files) != 1 || files[0].Name() != kept.Name() {
			return false
		}
		info, err := files[0].Info()
		if err != nil || info.Size() != keptSize {
			return false
		}
		_, err = os.Stat(filepath.Join(segs, kept.Name()))
		return os.IsNotExist(err)
	})
	if out, err := runFloe(t, "wal", "dump", filepath.Join(aside, kept.Name())); err != nil || strings.Count(out, "\tok\n") != 3 {
		t.Fatalf("after a restart, the salvage copy of the abandoned segment does not hold the 3 old entries: %v\n%s", err, out)
	}
}

// salvageFiles lists the salvage copies in dir, without the temporary files of a copy
// being made (".salvage-*").
func salvageFiles(dir string) []os.DirEntry {
	entries, _ := os.ReadDir(dir)
	var out []os.DirEntry
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e)
		}
	}
	return out
}

// bulkRegister registers n topics prefix-0 .. prefix-(n-1) through node via, over a
// few pipelined connections: a backlog of metadata commands.
func bulkRegister(t *testing.T, c *cluster, via int, prefix string, n int) {
	t.Helper()
	const conns = 4
	errs := make(chan error, conns)
	for k := 0; k < conns; k++ {
		go func() {
			conn, err := c.dial(via, time.Minute)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			sent := 0
			for i := k; i < n; i += conns {
				if err := conn.Send([]byte(fmt.Sprintf("REGISTER %s-%d", prefix, i))); err != nil {
					errs <- err
					return
				}
				sent++
			}
			if err := conn.Flush(); err != nil {
				errs <- err
				return
			}
			for ; sent > 0; sent-- {
				reply, err := conn.Recv()
				if err == nil && string(reply) != "OK" {
					err = fmt.Errorf("REGISTER through node %d: %s", via, reply)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for k := 0; k < conns; k++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
