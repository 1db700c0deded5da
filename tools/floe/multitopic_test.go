package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"floe/client"
)

// TestMultiTopic: ten topics written interleaved through all three nodes each read back
// exactly their own entries, in order; STATE of each is consistent; and the topics'
// leaders are spread over the nodes (REGISTER picks them round-robin).
func TestMultiTopic(t *testing.T) {
	const (
		topics   = 10
		perTopic = 60
		segSize  = 25 // so every topic rolls over twice
	)
	c := startCluster(t, clusterOpts{args: []string{"--max-segment-entries", strconv.Itoa(segSize)}})
	conns := []*client.Conn{c.conn(1), c.conn(2), c.conn(3)}
	name := func(k int) string { return fmt.Sprintf("multi-%02d", k) }
	payload := func(k, i int) string { return fmt.Sprintf("%s/%03d", name(k), i) }
	for k := 0; k < topics; k++ {
		mustOK(t, conns[k%3].Register(name(k)), "REGISTER %s through node %d", name(k), k%3+1)
	}
	for k := 0; k < topics; k++ {
		c.waitTopic(name(k))
	}

	firstLeaders := map[uint64]int{}
	for k := 0; k < topics; k++ {
		st := c.state(1, name(k))
		firstLeaders[st.Segments[0].Leader]++
	}
	// REGISTER counts the topics in the metadata of the node it reaches, which may lag
	// behind the leader's, so the spread is not an exact round-robin.
	t.Logf("first-segment leaders (node -> topics): %v", firstLeaders)
	if len(firstLeaders) < 2 {
		t.Errorf("first-segment leaders of %d topics: %v (node -> topics), want more than one node", topics, firstLeaders)
	}

	for i := 0; i < perTopic; i++ {
		for k := 0; k < topics; k++ {
			via := (i + k) % 3
			mustOK(t, conns[via].Put(name(k), []byte(payload(k, i))), "PUT %s #%d through node %d", name(k), i, via+1)
		}
	}

	for k := 0; k < topics; k++ {
		for id := 1; id <= 3; id++ {
			entries := c.readAll(id, name(k))
			if len(entries) != perTopic {
				t.Fatalf("READ %s through node %d: %d entries, want %d", name(k), id, len(entries), perTopic)
			}
			for i, e := range entries {
				if e.Offset != uint64(i) || string(e.Payload) != payload(k, i) {
					t.Fatalf("READ %s through node %d: entry %d = offset %d %q, want offset %d %q", name(k), id, i, e.Offset, e.Payload, i, payload(k, i))
				}
			}
		}
		checkStateSane(t, c.state(k%3+1, name(k)), name(k), perTopic, segSize)
	}
}

// checkStateSane checks the invariants of a STATE reply for a topic holding n entries
// written with segments of segSize entries and no reader yet.
func checkStateSane(t *testing.T, st *client.TopicState, topic string, n, segSize int) {
	t.Helper()
	wantSegs := n/segSize + 1
	if len(st.Segments) != wantSegs {
		t.Errorf("STATE %s: %d segments, want %d: %s", topic, len(st.Segments), wantSegs, st.Raw)
		return
	}
	var base uint64
	for i, s := range st.Segments {
		key := strconv.FormatUint(s.ID, 10)
		if s.ID != uint64(i+1) || s.Base != base {
			t.Errorf("STATE %s: segment %d has id %d base %d, want id %d base %d", topic, i, s.ID, s.Base, i+1, base)
		}
		if s.Leader < 1 || s.Leader > 3 || st.SegmentLeaders[key] != s.Leader {
			t.Errorf("STATE %s: segment %d leader %d, segment_leaders says %d, want the same node in 1-3", topic, s.ID, s.Leader, st.SegmentLeaders[key])
		}
		if s.Tier != "local" {
			t.Errorf("STATE %s: segment %d tier %q, want local", topic, s.ID, s.Tier)
		}
		last := i == len(st.Segments)-1
		switch {
		case !last && (s.State != "sealed" || s.Count != uint64(segSize) || st.SealedSegments[key] != uint64(segSize)):
			t.Errorf("STATE %s: segment %d is %s with %d entries (sealed_segments %d), want sealed with %d", topic, s.ID, s.State, s.Count, st.SealedSegments[key], segSize)
		case last && s.State != "active":
			t.Errorf("STATE %s: last segment %d is %s, want active", topic, s.ID, s.State)
		case last:
			if _, ok := st.SealedSegments[key]; ok {
				t.Errorf("STATE %s: active segment %d is listed in sealed_segments %v", topic, s.ID, st.SealedSegments)
			}
			if st.CurrentSegment != s.ID || st.LeaderNode != s.Leader || st.LastSealedEntryOffset != s.Base {
				t.Errorf("STATE %s: current_segment %d leader_node %d last_sealed_entry_offset %d, want %d %d %d",
					topic, st.CurrentSegment, st.LeaderNode, st.LastSealedEntryOffset, s.ID, s.Leader, s.Base)
			}
		}
		base += s.Count
	}
	if base != uint64(n) || st.EndOffset == nil || *st.EndOffset != uint64(n) {
		t.Errorf("STATE %s: segments hold %d entries, end_offset %v, want %d", topic, base, st.EndOffset, n)
	}
	if len(st.SealedSegments) != wantSegs-1 {
		t.Errorf("STATE %s: sealed_segments %v, want %d entries", topic, st.SealedSegments, wantSegs-1)
	}
	if st.Cursor != 0 {
		t.Errorf("STATE %s: cursor %d, want 0 (no GET yet)", topic, st.Cursor)
	}
}

// TestRegisterVisibleEverywhere: once REGISTER is acknowledged, the topic exists for the
// client on every node: a PUT right after it, through the node that acknowledged it or
// any other, must not fail with "no such topic" because some node (the one the PUT goes
// through, or the new topic's segment leader it is forwarded to) has not applied the
// command yet (README, "Protocol": a healthy cluster never returns an error to a client
// because of its own routing).
func TestRegisterVisibleEverywhere(t *testing.T) {
	c := startCluster(t, clusterOpts{})
	conns := []*client.Conn{c.conn(1), c.conn(2), c.conn(3)}
	var failures []string
	for k := 0; k < 30; k++ {
		topic := fmt.Sprintf("visible-%02d", k)
		via := k % 3
		mustOK(t, conns[via].Register(topic), "REGISTER %s through node %d", topic, via+1)
		for j := 0; j < 3; j++ {
			to := (via + j) % 3 // the registering node first
			if err := conns[to].Put(topic, []byte("x")); err != nil {
				failures = append(failures, fmt.Sprintf("REGISTER %s through node %d, then PUT through node %d: %v", topic, via+1, to+1, err))
			}
		}
	}
	if len(failures) > 0 {
		t.Errorf("%d of 90 PUTs right after an acknowledged REGISTER failed, e.g.\n%s", len(failures), strings.Join(failures[:min(4, len(failures))], "\n"))
	}
}
