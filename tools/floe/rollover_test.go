package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"floe/client"
)

// TestRollover: with --max-segment-entries 100, 450 entries make four sealed segments of
// 100 and an active one of 50, their leaders rotate round-robin over the nodes, READ
// through every node returns all entries in order across the segment boundaries, the
// shared GET cursor hands out every entry exactly once, and a sealed segment is served
// by the node that led it: with that node down, reading it fails with an error that
// names the node and the segment (docs/ARCHITECTURE.md, "The read path": only a segment that is
// both unarchived and on a node that is down is unreadable; tiering does not exist yet,
// so nothing is archived), and it is readable again once the node is back.
func TestRollover(t *testing.T) {
	const (
		perSegment = 100
		total      = 450
		topic      = "roll"
	)
	// A short request timeout bounds how long a READ retries the stopped node.
	c := startCluster(t, clusterOpts{args: []string{"--max-segment-entries", strconv.Itoa(perSegment), "--request-timeout", "3s"}})

	// Write through every node in turn, so writes are forwarded as well as local.
	mustOK(t, c.conn(1).Register(topic), "REGISTER")
	c.waitTopic(topic)
	conns := []*client.Conn{c.conn(1), c.conn(2), c.conn(3)}
	for i := 0; i < total; i++ {
		mustOK(t, conns[i%3].Put(topic, []byte(rollPayload(i))), "PUT %d through node %d", i, i%3+1)
	}

	// STATE, asked of every node, shows the same segments.
	wantSegs := (total + perSegment) / perSegment // 4 full + 1 active
	var leaders []uint64
	for id := 1; id <= 3; id++ {
		st := c.state(id, topic)
		if len(st.Segments) != wantSegs {
			t.Fatalf("node %d: STATE has %d segments, want %d: %s", id, len(st.Segments), wantSegs, st.Raw)
		}
		if st.CurrentSegment != uint64(wantSegs) {
			t.Errorf("node %d: current_segment = %d, want %d", id, st.CurrentSegment, wantSegs)
		}
		if want := uint64((wantSegs - 1) * perSegment); st.LastSealedEntryOffset != want {
			t.Errorf("node %d: last_sealed_entry_offset = %d, want %d", id, st.LastSealedEntryOffset, want)
		}
		if len(st.SealedSegments) != wantSegs-1 {
			t.Errorf("node %d: sealed_segments = %v, want %d entries", id, st.SealedSegments, wantSegs-1)
		}
		var got []uint64
		for i, s := range st.Segments {
			key := strconv.FormatUint(s.ID, 10)
			if s.ID != uint64(i+1) || s.Base != uint64(i*perSegment) {
				t.Errorf("node %d: segment %d has id %d base %d, want id %d base %d", id, i, s.ID, s.Base, i+1, i*perSegment)
			}
			if st.SegmentLeaders[key] != s.Leader {
				t.Errorf("node %d: segment_leaders[%s] = %d, segments says %d", id, key, st.SegmentLeaders[key], s.Leader)
			}
			got = append(got, s.Leader)
			if i < wantSegs-1 {
				if s.State != "sealed" || s.Count != perSegment || st.SealedSegments[key] != perSegment {
					t.Errorf("node %d: segment %d is %s with count %d (sealed_segments %d), want sealed with %d",
						id, s.ID, s.State, s.Count, st.SealedSegments[key], perSegment)
				}
				continue
			}
			if s.State != "active" || s.Count != total%perSegment {
				t.Errorf("node %d: last segment %d is %s with %d entries, want active with %d", id, s.ID, s.State, s.Count, total%perSegment)
			}
			if st.LeaderNode != s.Leader {
				t.Errorf("node %d: leader_node = %d, active segment's leader is %d", id, st.LeaderNode, s.Leader)
			}
		}
		if st.EndOffset == nil || *st.EndOffset != total {
			t.Errorf("node %d: end_offset = %v, want %d", id, st.EndOffset, total)
		}
		if leaders == nil {
			leaders = got
		} else if fmt.Sprint(got) != fmt.Sprint(leaders) {
			t.Errorf("node %d sees segment leaders %v, node 1 sees %v", id, got, leaders)
		}
	}
	// Round-robin over the voters in id order (every node is up, so none is skipped).
	for i := 1; i < len(leaders); i++ {
		if want := leaders[i-1]%3 + 1; leaders[i] != want {
			t.Errorf("segment %d is led by node %d after node %d, want node %d (round-robin); leaders %v",
				i+1, leaders[i], leaders[i-1], want, leaders)
		}
	}
	if distinct(leaders) < 3 {
		t.Errorf("segment leaders %v use %d of 3 nodes, want all three", leaders, distinct(leaders))
	}
	if t.Failed() {
		t.FailNow()
	}

	for id := 1; id <= 3; id++ {
		checkRollEntries(t, fmt.Sprintf("READ through node %d", id), c.readAll(id, topic), total)
	}

	// The shared cursor hands out every entry once, whichever node is asked.
	for i := 0; i < total; i++ {
		p, ok, err := conns[(i+1)%3].Get(topic)
		mustOK(t, err, "GET %d through node %d", i, (i+1)%3+1)
		if want := rollPayload(i); !ok || string(p) != want {
			t.Fatalf("GET %d through node %d = %q (ok %v), want %q", i, (i+1)%3+1, p, ok, want)
		}
	}
	for id := 1; id <= 3; id++ {
		if p, ok, err := conns[id-1].Get(topic); err != nil || ok {
			t.Fatalf("GET past the end through node %d = %q, ok %v, err %v; want EMPTY", id, p, ok, err)
		}
	}

	// Sealed segment 1 lives only on its leader (and so does segment 4, with the
	// round-robin over three nodes). Stop that node cleanly and read through another.
	owner := int(leaders[0])
	reader := owner%3 + 1
	c.stop(owner)
	c.waitFor(20*time.Second, "a raft leader among the two nodes left", func() bool {
		l := c.raftLeader()
		return l != 0 && l != owner
	})
	r := c.conn(reader)
	_, _, err := r.Read(topic, 0, 10)
	if err == nil {
		t.Fatalf("READ %s 0 through node %d with node %d (leader of sealed segment 1) down succeeded, want an error", topic, reader, owner)
	}
	msg := err.Error()
	t.Logf("READ with node %d down: %v", owner, err)
	if !strings.Contains(msg, "segment 1") || !strings.Contains(msg, fmt.Sprintf("node %d", owner)) {
		t.Errorf("READ error = %q, want it to name segment 1 and node %d", msg, owner)
	}
	// Segments led by the nodes still up stay readable.
	entries, _, err := r.Read(topic, perSegment, perSegment)
	mustOK(t, err, "READ segment 2 (node %d) with node %d down", leaders[1], owner)
	if len(entries) != perSegment || entries[0].Offset != perSegment || string(entries[0].Payload) != rollPayload(perSegment) {
		t.Errorf("READ at %d with node %d down returned %d entries starting %v, want %d from offset %d", perSegment, owner, len(entries), first(entries), perSegment, perSegment)
	}

	c.start(owner)
	c.waitMembers(3, 30*time.Second)
	c.waitFor(20*time.Second, "segment 1 readable again", func() bool {
		conn, err := c.dial(reader, 5*time.Second)
		if err != nil {
			return false
		}
		defer conn.Close()
		entries, _, err := conn.Read(topic, 0, 1)
		return err == nil && len(entries) == 1
	})
	for id := 1; id <= 3; id++ {
		checkRollEntries(t, fmt.Sprintf("READ through node %d after node %d restarted", id, owner), c.readAll(id, topic), total)
	}
}

func rollPayload(i int) string { return fmt.Sprintf("entry-%04d", i) }

// checkRollEntries checks entries are rollPayload(0..n-1) at offsets 0..n-1.
func checkRollEntries(t *testing.T, what string, entries []client.Entry, n int) {
	t.Helper()
	if len(entries) != n {
		t.Fatalf("%s: %d entries, want %d", what, len(entries), n)
	}
	for i, e := range entries {
		if e.Offset != uint64(i) || string(e.Payload) != rollPayload(i) {
			t.Fatalf("%s: entry %d = offset %d %q, want offset %d %q", what, i, e.Offset, e.Payload, i, rollPayload(i))
		}
	}
}

func distinct(ids []uint64) int {
	m := map[uint64]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return len(m)
}

func first(entries []client.Entry) any {
	if len(entries) == 0 {
		return "nothing"
	}
	return fmt.Sprintf("%d %q", entries[0].Offset, entries[0].Payload)
}
