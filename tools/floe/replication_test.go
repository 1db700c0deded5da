package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"floe/client"
)

// segmentFile is the WAL file of segment id of topic in node's data dir.
func (c *cluster) segmentFile(node int, topic string, id uint64) string {
	c.t.Helper()
	return filepath.Join(c.segmentDir(node, topic), fmt.Sprintf("%020d.wal", id))
}

// TestReplicatedTopic (README "Replication"): a topic created with floe topic create
// --replicas 3 has every segment on three nodes, leader first, with an epoch; each
// sealed segment's copies on the followers are byte for byte the leader's file. With
// one follower killed, writes go on (a majority of two holds them); the follower
// returns, catches up from the leader, and its copies of later sealed segments are
// the leader's again; floe_under_replicated_segments rises while it is down and
// falls to 0 once it has caught up. Every acknowledged entry is read back once, in
// order, through every node.
func TestReplicatedTopic(t *testing.T) {
	c := startCluster(t, clusterOpts{args: []string{"--segment-failover-timeout", "3s"}})
	httpOf := func(id int) string { return "127.0.0.1:" + strconv.Itoa(c.node(id).httpPort) }
	const topic = "repl"
	out, err := runFloe(t, "topic", "create", topic, "--replicas", "3", "--max-segment-entries", "40", "--http", httpOf(1))
	if err != nil {
		t.Fatalf("floe topic create --replicas 3: %v\n%s", err, out)
	}
	var created client.TopicState
	if err := json.Unmarshal([]byte(out), &created.TopicState); err != nil || len(created.Segments) != 1 {
		t.Fatalf("floe topic create printed %q (%v), want the topic's state", out, err)
	}
	if !bytes.Contains([]byte(out), []byte(`"replication_factor":3`)) {
		t.Errorf("the created topic's config does not say replication_factor 3: %s", out)
	}
	s1 := created.Segments[0]
	if len(s1.Replicas) != 3 || s1.Replicas[0] != s1.Leader || s1.Epoch == 0 {
		t.Fatalf("segment 1: replicas %v (leader %d), epoch %d; want three nodes, the leader first, and an epoch", s1.Replicas, s1.Leader, s1.Epoch)
	}
	// A replication factor above the cluster's size is refused, and creates nothing.
	if out, err := runFloe(t, "topic", "create", "toomany", "--replicas", "4", "--http", httpOf(1)); err == nil {
		t.Errorf("floe topic create --replicas 4 on 3 nodes succeeded:\n%s", out)
	}

	payload := func(i int) string { return fmt.Sprintf("entry-%04d", i) }
	put := func(via, from, to int) {
		t.Helper()
		w := c.conn(via)
		for i := from; i < to; i++ {
			off, err := w.PutOffset(topic, []byte(payload(i)))
			if err != nil || off != uint64(i) {
				t.Fatalf("PUT %s through node %d: offset %d, %v; want %d", payload(i), via, off, err, i)
			}
		}
	}
	put(1, 0, 100) // segments 1 and 2 sealed (40 each), 20 entries in segment 3

	// Every sealed segment: its followers' copies end up byte for byte its leader's.
	sameCopies := func(what string, upTo uint64) {
		t.Helper()
		st := c.state(1, topic)
		for _, s := range st.Segments {
			if s.ID > upTo {
				break
			}
			if s.State == "active" || len(s.Replicas) != 3 {
				t.Fatalf("%s: segment %d is %s with replicas %v", what, s.ID, s.State, s.Replicas)
			}
			want, err := os.ReadFile(c.segmentFile(int(s.Leader), topic, s.ID))
			if err != nil {
				t.Fatalf("%s: the leader's file of segment %d: %v", what, s.ID, err)
			}
			for _, id := range s.Replicas[1:] {
				path := c.segmentFile(int(id), topic, s.ID)
				c.waitFor(30*time.Second, fmt.Sprintf("%s: node %d's copy of segment %d to be the leader's", what, id, s.ID), func() bool {
					got, err := os.ReadFile(path)
					return err == nil && bytes.Equal(got, want)
				})
			}
		}
	}
	sameCopies("after 100 PUTs", 2)

	// Kill a follower of the active segment that does not lead Raft: writes go on.
	st := c.state(1, topic)
	act := st.Segments[len(st.Segments)-1]
	victim := 0
	for _, id := range act.Replicas[1:] {
		if int(id) != c.raftLeader() {
			victim = int(id)
			break
		}
	}
	via := int(act.Leader)
	c.kill(victim)
	put(via, 100, 180) // two more roll-overs while node victim is down
	// The under-replication gauge counts the active segment whose follower is down.
	c.waitFor(30*time.Second, "floe_under_replicated_segments to count the segment short of a copy", func() bool {
		m, err := c.scrape(via)
		return err == nil && m["floe_under_replicated_segments"] >= 1
	})
	if out, err := runFloe(t, "cluster", "status", "--http", httpOf(via)); err != nil || strings.Contains(out, "under-replicated segments: 0\n") || !strings.Contains(out, "under-replicated segments: ") {
		t.Errorf("floe cluster status with node %d down: %v\n%s\nwant it to count under-replicated segments", victim, err, out)
	}

	c.start(victim)
	c.waitMembers(3, 30*time.Second)
	put(via, 180, 200)
	st = c.state(via, topic)
	// The segments sealed once the follower was back hold its full copies again;
	// segments it missed entirely are on their other two replicas.
	last := st.Segments[len(st.Segments)-2].ID
	for _, s := range st.Segments[:len(st.Segments)-1] {
		if s.State == "active" {
			t.Fatalf("segment %d is still active: %s", s.ID, st.Raw)
		}
	}
	sameCopies("after the follower returned", last)
	c.waitFor(30*time.Second, "floe_under_replicated_segments to fall to 0 on every node", func() bool {
		for id := 1; id <= 3; id++ {
			if m, err := c.scrape(id); err != nil || m["floe_under_replicated_segments"] != 0 {
				return false
			}
		}
		return true
	})
	if out, err := runFloe(t, "cluster", "status", "--http", httpOf(via)); err != nil || !strings.Contains(out, "under-replicated segments: 0\n") {
		t.Errorf("floe cluster status with every node up: %v\n%s\nwant 0 under-replicated segments", err, out)
	}

	for id := 1; id <= 3; id++ {
		checkEntries(t, fmt.Sprintf("READ through node %d", id), c.readAll(id, topic), func(i int) string { return payload(i) }, 200)
	}

	// floe bench --replicas creates its topic with that factor.
	if out, err := runFloe(t, "bench", "--replicas", "3", "--http", httpOf(1), "--addr", c.node(1).clientAddr(), "--topic", "benchrepl",
		"--connections", "2", "--pipeline", "2", "--duration", "500ms", "--warmup", "100ms", "--json"); err != nil {
		t.Fatalf("floe bench --replicas 3: %v\n%s", err, out)
	}
	if st := c.state(1, "benchrepl"); !bytes.Contains(st.Raw, []byte(`"replication_factor":3`)) || len(st.Segments[0].Replicas) != 3 {
		t.Fatalf("the topic floe bench --replicas 3 created: %s", st.Raw)
	}
}

// ack is one acknowledged PUT of a failover test's writer.
type ack struct {
	offset  uint64
	payload string
}

// failoverWriters run writers PUTs to topic through the nodes of via, each with one
// in flight, each attempt with a payload of its own (prefix, writer, attempt), until stop is closed; they return
// what was acknowledged, per writer, in order. A failed PUT (its node down, the
// segment failing over) is tried again with a new payload after a pause.
func failoverWriters(t *testing.T, c *cluster, topic, prefix string, via []int, writers int, stop chan struct{}, acked *atomic.Int64) [][]ack {
	t.Helper()
	out := make([][]ack, writers)
	var wg sync.WaitGroup
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			select {
			case <-stop:
			default:
				close(stop) // the test failed before it stopped them
			}
		})
		wg.Wait()
	})
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conn *client.Conn
			for attempt := 0; ; attempt++ {
				select {
				case <-stop:
					if conn != nil {
						conn.Close()
					}
					return
				default:
				}
				if conn == nil {
					var err error
					if conn, err = c.dial(via[w%len(via)], 2*time.Second); err != nil {
						time.Sleep(50 * time.Millisecond) // pacing of retries, not synchronisation
						continue
					}
					conn.Timeout = 20 * time.Second
				}
				p := fmt.Sprintf("%s%d-%d", prefix, w, attempt)
				off, err := conn.PutOffset(topic, []byte(p))
				if err != nil {
					conn.Close()
					conn = nil
					time.Sleep(20 * time.Millisecond) // pacing of retries
					continue
				}
				out[w] = append(out[w], ack{off, p})
				acked.Add(1)
			}
		}()
	}
	return out
}

// TestReplicatedFailover (README "Replication"): writers keep writing a topic of
// replication factor 3 while one follower is down (killed: the leader and the other
// follower acknowledge without it, so its copy falls behind) and then the segment
// leader is killed (and, in the second case, its data dir deleted before anything was
// sealed) and the follower that was behind restarted: the failover needs its answer
// (two of the three replicas), and must not take its copy's count. The Raft leader fails the segment over on its own
// once the leader has not answered for --segment-failover-timeout, at the copy that
// holds the most entries (the one behind must not decide), writes resume, and every
// acknowledged entry is read back exactly once, at its offset, in each writer's order,
// through both live nodes.
func TestReplicatedFailover(t *testing.T) {
	for _, wipe := range []bool{false, true} {
		t.Run(fmt.Sprintf("wipe=%v", wipe), func(t *testing.T) {
			c := startCluster(t, clusterOpts{args: []string{"--segment-failover-timeout", "2s"}})
			const topic = "fo"
			httpOf := func(id int) string { return "127.0.0.1:" + strconv.Itoa(c.node(id).httpPort) }
			if out, err := runFloe(t, "topic", "create", topic, "--replicas", "3", "--max-segment-entries", "100000", "--http", httpOf(1)); err != nil {
				t.Fatalf("floe topic create: %v\n%s", err, out)
			}
			st := c.state(1, topic)
			victim := int(st.Segments[0].Leader)
			lagging, writer := int(st.Segments[0].Replicas[1]), int(st.Segments[0].Replicas[2])
			stop := make(chan struct{})
			var acked atomic.Int64
			acks := failoverWriters(t, c, topic, "w", []int{writer}, 4, stop, &acked)
			c.waitFor(30*time.Second, "100 acknowledged PUTs", func() bool { return acked.Load() >= 100 })
			c.kill(lagging)
			before := acked.Load()
			c.waitFor(30*time.Second, "100 PUTs acknowledged without the follower", func() bool { return acked.Load() >= before+100 })
			c.kill(victim)
			if wipe {
				c.wipe(victim)
			}
			c.start(lagging)
			before = acked.Load()
			c.waitFor(60*time.Second, "writes to resume after the segment leader died", func() bool { return acked.Load() >= before+200 })
			close(stop)
			c.waitFor(30*time.Second, "the writers to stop", func() bool {
				n := acked.Load()
				time.Sleep(50 * time.Millisecond) // let a PUT in flight land; the condition then re-checks
				return acked.Load() == n
			})
			st = c.state(writer, topic)
			if s := st.Segments[0]; len(st.Segments) < 2 || s.State == "active" || int(s.Holder) != writer || int(st.Segments[1].Leader) == victim {
				t.Fatalf("STATE after the failover: %s; want segment 1 sealed from node %d's copy (the other follower was behind) and segment 2 led by a live node", st.Raw, writer)
			}
			for _, id := range []int{writer, lagging} {
				checkAcked(t, fmt.Sprintf("READ through node %d", id), c.readAll(id, topic), acks)
			}
		})
	}
}

// checkAcked checks that every acknowledged PUT of acks is in got, at its offset,
// exactly once, and that each writer's offsets grow.
func checkAcked(t *testing.T, what string, got []client.Entry, acks [][]ack) {
	t.Helper()
	at := map[uint64]string{}
	seen := map[string]int{}
	for _, e := range got {
		at[e.Offset] = string(e.Payload)
		seen[string(e.Payload)]++
	}
	for p, k := range seen {
		if k > 1 {
			t.Fatalf("%s: %q is in the topic %d times", what, p, k)
		}
	}
	for w, list := range acks {
		for i, a := range list {
			if at[a.offset] != a.payload {
				t.Fatalf("%s: writer %d's PUT %q was acknowledged at offset %d; the topic has %q there", what, w, a.payload, a.offset, at[a.offset])
			}
			if i > 0 && a.offset <= list[i-1].offset {
				t.Fatalf("writer %d: offset %d acknowledged after %d", w, a.offset, list[i-1].offset)
			}
		}
	}
}

// TestDamagedFollowerCopy (found by review): a follower's copy damaged on its disk
// while it was down (a flipped bit before intact records, which recovery keeps as
// damaged) is started afresh instead of being retried for ever, and once the segment
// is sealed the follower holds a copy equal to its leader's file again.
func TestDamagedFollowerCopy(t *testing.T) {
	c := startCluster(t, clusterOpts{args: []string{"--segment-failover-timeout", "3s"}})
	httpOf := func(id int) string { return "127.0.0.1:" + strconv.Itoa(c.node(id).httpPort) }
	const topic = "dmg"
	if out, err := runFloe(t, "topic", "create", topic, "--replicas", "3", "--max-segment-entries", "20", "--http", httpOf(1)); err != nil {
		t.Fatalf("floe topic create: %v\n%s", err, out)
	}
	payload := func(i int) string { return fmt.Sprintf("entry-%04d", i) }
	act := c.state(1, topic).Segments[0]
	via, victim := int(act.Leader), 0
	for _, id := range act.Replicas[1:] {
		if int(id) != c.raftLeader() {
			victim = int(id)
			break
		}
	}
	w := c.conn(via)
	put := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if off, err := w.PutOffset(topic, []byte(payload(i))); err != nil || off != uint64(i) {
				t.Fatalf("PUT %d: offset %d, %v", i, off, err)
			}
		}
	}
	put(0, 10)
	path := c.segmentFile(victim, topic, 1)
	c.waitFor(10*time.Second, "the follower's copy to hold 10 entries", func() bool {
		b, err := os.ReadFile(path)
		return err == nil && bytes.Contains(b, []byte(payload(9)))
	})
	c.kill(victim)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(payload(3)))
	b[i+len(payload(3))-1] ^= 1 // a flipped bit in entry 3; entries 4..9 intact
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	c.start(victim)
	c.waitMembers(3, 30*time.Second)
	put(10, 25) // segment 1 sealed at 20 entries
	want, err := os.ReadFile(c.segmentFile(via, topic, 1))
	if err != nil {
		t.Fatal(err)
	}
	c.waitFor(30*time.Second, "the damaged copy to be replaced by the leader's content", func() bool {
		got, err := os.ReadFile(path)
		return err == nil && bytes.Equal(got, want)
	})
	checkEntries(t, "READ through the follower", c.readAll(victim, topic), func(i int) string { return payload(i) }, 25)
}

// TestReplicatedLeaderCutOff: the segment leader of a topic of replication factor 3
// is frozen (SIGSTOP) while writers keep sending to it and through another node. The
// segment is failed over without it; when it thaws it acknowledges nothing that is
// not in the topic (its followers are fenced, then the segment is sealed), its copy
// of the old segment is cut to exactly the sealed content, and it serves the topic as
// the cluster has it. Every acknowledged entry is read back once, at its offset.
func TestReplicatedLeaderCutOff(t *testing.T) {
	c := startCluster(t, clusterOpts{args: []string{"--segment-failover-timeout", "2s", "--default-replication-factor", "3"}})
	leader := c.raftLeader()%3 + 1 // not the Raft leader: the rest keep their quorum without an election
	topic := c.topicLedBy(1, "cut", leader)
	other := leader%3 + 1
	stop := make(chan struct{})
	var acked atomic.Int64
	direct := failoverWriters(t, c, topic, "direct", []int{leader}, 2, stop, &acked)
	forwarded := failoverWriters(t, c, topic, "fwd", []int{other}, 2, stop, &acked)
	c.waitFor(30*time.Second, "100 acknowledged PUTs", func() bool { return acked.Load() >= 100 })
	c.pause(leader)
	c.waitFor(30*time.Second, "the segment to be failed over", func() bool {
		st, err := c.tryState(other, topic)
		return err == nil && len(st.Segments) >= 2 && st.Segments[0].Holder != 0
	})
	before := acked.Load()
	c.waitFor(30*time.Second, "writes through another node to resume", func() bool { return acked.Load() >= before+50 })
	c.resume(leader)
	before = acked.Load()
	c.waitFor(30*time.Second, "writes to go on after the old leader thawed", func() bool { return acked.Load() >= before+50 })
	close(stop)
	c.waitFor(30*time.Second, "the writers to stop", func() bool {
		n := acked.Load()
		time.Sleep(50 * time.Millisecond) // let a PUT in flight land; the condition then re-checks
		return acked.Load() == n
	})
	st := c.state(other, topic)
	s1 := st.Segments[0]
	want, err := os.ReadFile(c.segmentFile(int(s1.Holder), topic, 1))
	if err != nil {
		t.Fatal(err)
	}
	c.waitFor(30*time.Second, "the old leader's copy of segment 1 to be cut to the sealed content", func() bool {
		got, err := os.ReadFile(c.segmentFile(leader, topic, 1))
		return err == nil && bytes.Equal(got, want)
	})
	acks := append(direct, forwarded...)
	for id := 1; id <= 3; id++ {
		checkAcked(t, fmt.Sprintf("READ through node %d", id), c.readAll(id, topic), acks)
	}
}

// TestRemoveNodeReReplicates (README "Replication"): floe cluster remove-node of a
// dead follower of a topic of replication factor 3 puts the spare voter in its place
// among the replicas of every segment not archived yet, and the spare fetches copies
// equal to their owners' files; remove-node of the active segment's dead leader fails
// the segment over at once (the failover timeout here is far longer than the test).
// Every entry is read back through every live node.
func TestRemoveNodeReReplicates(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 4, args: []string{"--segment-failover-timeout", "5m"}})
	httpOf := func(id int) string { return "127.0.0.1:" + strconv.Itoa(c.node(id).httpPort) }
	const topic = "rr"
	raftLeader := c.raftLeader()
	if out, err := runFloe(t, "topic", "create", topic, "--replicas", "3", "--max-segment-entries", "30", "--http", httpOf(raftLeader)); err != nil {
		t.Fatalf("floe topic create: %v\n%s", err, out)
	}
	payload := func(i int) string { return fmt.Sprintf("entry-%04d", i) }
	put := func(from, to int) {
		t.Helper()
		w := c.conn(raftLeader)
		for i := from; i < to; i++ {
			if off, err := w.PutOffset(topic, []byte(payload(i))); err != nil || off != uint64(i) {
				t.Fatalf("PUT %d: offset %d, %v", i, off, err)
			}
		}
	}
	put(0, 50)
	act := c.state(raftLeader, topic).Segments[1]
	victim := 0
	for _, id := range act.Replicas[1:] {
		if int(id) != raftLeader {
			victim = int(id)
			break
		}
	}
	if victim == 0 {
		t.Skipf("every follower of segment %d leads Raft", act.ID) // cannot happen: one node leads Raft
	}
	c.kill(victim)
	if out, err := runFloe(t, "cluster", "remove-node", strconv.Itoa(victim), "--http", httpOf(raftLeader)); err != nil {
		t.Fatalf("floe cluster remove-node %d: %v\n%s", victim, err, out)
	}
	noReplica := func(gone int) func() bool {
		return func() bool {
			st, err := c.tryState(raftLeader, topic)
			if err != nil {
				return false
			}
			for _, s := range st.Segments {
				if slices.Contains(s.Replicas, uint64(gone)) {
					return false
				}
			}
			return true
		}
	}
	c.waitFor(30*time.Second, fmt.Sprintf("node %d to be out of every segment's replicas", victim), noReplica(victim))
	put(50, 100)
	st := c.state(raftLeader, topic)
	for _, s := range st.Segments {
		if s.State == "active" {
			continue
		}
		owner := s.Leader
		if s.Holder != 0 {
			owner = s.Holder
		}
		want, err := os.ReadFile(c.segmentFile(int(owner), topic, s.ID))
		if err != nil {
			t.Fatalf("segment %d's owner %d: %v", s.ID, owner, err)
		}
		for _, id := range s.Replicas {
			path := c.segmentFile(int(id), topic, s.ID)
			c.waitFor(30*time.Second, fmt.Sprintf("node %d's copy of segment %d to be its owner's", id, s.ID), func() bool {
				got, err := os.ReadFile(path)
				return err == nil && bytes.Equal(got, want)
			})
		}
	}

	// The active segment's leader dies and is removed: the segment is failed over
	// at once, not after --segment-failover-timeout.
	act = st.Segments[len(st.Segments)-1]
	leader := int(act.Leader)
	if leader == raftLeader {
		if out, err := runFloe(t, "cluster", "transfer-leadership", "--http", httpOf(raftLeader)); err != nil {
			t.Fatalf("floe cluster transfer-leadership: %v\n%s", err, out)
		}
		c.waitFor(30*time.Second, "another node to lead Raft", func() bool {
			r := c.raftLeader()
			return r != leader && r != 0
		})
		raftLeader = c.raftLeader()
	}
	c.kill(leader)
	if out, err := runFloe(t, "cluster", "remove-node", strconv.Itoa(leader), "--http", httpOf(raftLeader)); err != nil {
		t.Fatalf("floe cluster remove-node %d: %v\n%s", leader, err, out)
	}
	c.waitFor(30*time.Second, fmt.Sprintf("segment %d, led by the removed node %d, to be failed over", act.ID, leader), func() bool {
		st, err := c.tryState(raftLeader, topic)
		return err == nil && len(st.Segments) > int(act.ID) && st.Segments[act.ID-1].Holder != 0
	})
	put(100, 110)
	n := 110
	for id := 1; id <= 4; id++ {
		if id == victim || id == leader {
			continue
		}
		checkEntries(t, fmt.Sprintf("READ through node %d", id), c.readAll(id, topic), func(i int) string { return payload(i) }, n)
	}
}

// TestReplicatedReadsWithoutLeader (README "Replication"): while the leader of a
// replicated active segment is frozen (SIGSTOP) and not failed over (the failover
// timeout is longer than the test), the entries it acknowledged are read through
// both other nodes, by offset and through the shared cursor, from its followers'
// copies: each copy serves what the leader told it a majority holds. The PUT after
// the checked ones tells at least one follower (the one that acknowledged it) that
// they are committed; that PUT itself may or may not be readable, but only at its
// offset.
func TestReplicatedReadsWithoutLeader(t *testing.T) {
	c := startCluster(t, clusterOpts{args: []string{"--segment-failover-timeout", "5m", "--default-replication-factor", "3"}})
	leader := c.raftLeader()%3 + 1 // not the Raft leader: cursor advances need no election
	topic := c.topicLedBy(1, "rd", leader)
	others := []int{leader%3 + 1, (leader+1)%3 + 1}
	conn := c.conn(others[0])
	const n = 300
	acks := [][]ack{nil}
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("e%d", i)
		off, err := conn.PutOffset(topic, []byte(p))
		mustOK(t, err, "PUT %d", i)
		acks[0] = append(acks[0], ack{off, p})
	}
	tailOff, err := conn.PutOffset(topic, []byte("tail"))
	mustOK(t, err, "the last PUT")
	c.pause(leader)
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			c.resume(leader)
		}
	})
	for _, id := range others {
		var got []client.Entry
		c.waitFor(60*time.Second, fmt.Sprintf("the %d entries to be read through node %d without their leader", n, id), func() bool {
			got = got[:0]
			rc, err := c.dial(id, 2*time.Second)
			if err != nil {
				return false
			}
			defer rc.Close()
			rc.Timeout = 20 * time.Second
			for off := uint64(0); ; {
				entries, next, err := rc.Read(topic, off, 1000)
				if err != nil || len(entries) == 0 {
					return len(got) >= n
				}
				got = append(got, entries...)
				off = next
			}
		})
		checkAcked(t, fmt.Sprintf("READ through node %d", id), got, acks)
		if len(got) > n && (len(got) != n+1 || got[n].Offset != tailOff || string(got[n].Payload) != "tail") {
			t.Fatalf("READ through node %d: %d entries past the acknowledged ones, first %q at %d", id, len(got)-n, got[n].Payload, got[n].Offset)
		}
	}
	// The shared cursor through a follower hands them out in order, once each.
	gc, err := c.dial(others[1], 2*time.Second)
	mustOK(t, err, "dial node %d", others[1])
	defer gc.Close()
	gc.Timeout = 20 * time.Second
	var got []client.Entry
	c.waitFor(60*time.Second, fmt.Sprintf("GETs through node %d to take the %d entries", others[1], n), func() bool {
		entries, err := gc.GetBatch(topic, 100)
		if err == nil {
			got = append(got, entries...)
		}
		return len(got) >= n
	})
	for i, e := range got[:n] {
		if e.Offset != uint64(i) || string(e.Payload) != fmt.Sprintf("e%d", i) {
			t.Fatalf("GET %d: %q at %d, want e%d at %d", i, e.Payload, e.Offset, i, i)
		}
	}
	st := c.state(others[0], topic)
	if s := st.Segments[len(st.Segments)-1]; len(st.Segments) != 1 || s.State != "active" || int(s.Leader) != leader {
		t.Fatalf("STATE: %s; want the segment still active and led by the frozen node %d (not failed over: the copies served the reads)", st.Raw, leader)
	}
	c.resume(leader)
	resumed = true
	off, err := conn.PutOffset(topic, []byte("after"))
	mustOK(t, err, "PUT after the leader thawed")
	if off != tailOff+1 {
		t.Fatalf("PUT after the leader thawed at offset %d, want %d", off, tailOff+1)
	}
}

// TestWipedLeaderRejoins: the leader of a replicated topic's active segment loses its
// disk and is started again under its old id, still a member (no remove-node), long
// before the failover timeout: it must not write the segment it finds itself leading
// with none of its entries (new entries would take the indexes its followers' copies
// hold). It registers its new data dir, recovers the segment from its followers (sealed
// at their copies: nothing acknowledged lost), and writes go on in the next segment.
// Every acknowledged entry is read back once, at its offset, through all three nodes.
func TestWipedLeaderRejoins(t *testing.T) {
	c := startCluster(t, clusterOpts{args: []string{"--segment-failover-timeout", "5m", "--default-replication-factor", "3"}})
	victim := 2
	if c.raftLeader() == 2 {
		victim = 3
	}
	topic := c.topicLedBy(1, "wiped", victim)
	stop := make(chan struct{})
	var acked atomic.Int64
	acks := failoverWriters(t, c, topic, "w", []int{1}, 2, stop, &acked)
	c.waitFor(30*time.Second, "100 acknowledged PUTs", func() bool { return acked.Load() >= 100 })
	c.kill(victim)
	c.wipe(victim)
	c.start(victim)
	before := acked.Load()
	c.waitFor(90*time.Second, "writes to resume (the failover timeout is 5m)", func() bool { return acked.Load() >= before+100 })
	close(stop)
	c.waitFor(30*time.Second, "the writers to stop", func() bool {
		n := acked.Load()
		time.Sleep(50 * time.Millisecond) // let a PUT in flight land; the condition then re-checks
		return acked.Load() == n
	})
	st := c.state(1, topic)
	if s := st.Segments[0]; len(st.Segments) < 2 || s.State == "active" || s.Holder == 0 || int(s.Holder) == victim {
		t.Fatalf("STATE: %s; want segment 1 sealed from a follower's copy, not the wiped node's", st.Raw)
	}
	for id := 1; id <= 3; id++ {
		checkAcked(t, fmt.Sprintf("READ through node %d", id), c.readAll(id, topic), acks)
	}
}
