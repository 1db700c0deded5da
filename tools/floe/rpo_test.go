package main

// Cluster tests of the live RPO bound (issue 7, item 7): a non-empty active segment rolls
// over by age even when its leader restarts, again and again, before the age has passed
// and no write ever comes again; and the RPO gauges report the exposure meanwhile, with
// or without an archive.

import (
	"fmt"
	"testing"
	"time"
)

// TestAgeRollOverSurvivesCrashLoop, without --archive: the leader of a quiet topic's
// non-empty active segment is killed right after the write and then crash-loops, each
// life shorter than --max-segment-age. The segment still rolls over (its age comes from
// the replicated metadata, not from the process's clock, and a restarted leader checks
// the segments it leads without waiting for a write), and the entry stays readable.
// Between the crashes the gauges report the exposure: floe_rpo_seconds on the leader,
// and floe_cluster_rpo_seconds on the other nodes, also while the leader is down.
func TestAgeRollOverSurvivesCrashLoop(t *testing.T) {
	runCrashLoop(t, clusterOpts{}, nil)
}

// TestAgeRollOverSurvivesCrashLoopArchived is TestAgeRollOverSurvivesCrashLoop with a
// MinIO archive: the segment is also archived once sealed, and only then do the
// gauges (which with an archive count sealed segments not uploaded yet) read 0.
func TestAgeRollOverSurvivesCrashLoopArchived(t *testing.T) {
	_, o := startMinIOArchive(t)
	runCrashLoop(t, with(o, "--upload-max-backoff", "500ms"), func(c *cluster, topic string, seg uint64) {
		c.waitTiers(c.anyRunning(), topic, 1, "both", 60*time.Second)
	})
}

// runCrashLoop is TestAgeRollOverSurvivesCrashLoop on a cluster started with o;
// afterSeal, if set, runs once the segment is sealed.
func runCrashLoop(t *testing.T, o clusterOpts, afterSeal func(c *cluster, topic string, seg uint64)) {
	const age = 6 * time.Second
	c := startCluster(t, with(o, "--max-segment-age", age.String()))
	r := c.raftLeader()
	f := r%3 + 1
	topic := c.topicLedBy(r, "quiet", f)

	// Empty active segments hold nothing: both gauges exist and read 0 everywhere.
	for id := 1; id <= 3; id++ {
		m := c.mustScrape(id)
		for _, name := range []string{"floe_rpo_seconds", "floe_cluster_rpo_seconds"} {
			if v, ok := m[name]; !ok || v != 0 {
				t.Errorf("node %d: %s = %v (present %v) with every active segment empty, want 0", id, name, v, ok)
			}
		}
	}

	mustOK(t, c.conn(f).Put(topic, []byte("only")), "PUT %s through node %d", topic, f)
	written := time.Now()
	seg := c.state(f, topic).CurrentSegment
	c.waitFor(10*time.Second, "floe_rpo_seconds > 0 on the segment's leader", func() bool {
		m, err := c.scrape(f)
		return err == nil && m["floe_rpo_seconds"] > 0
	})
	for id := 1; id <= 3; id++ {
		if v := c.mustScrape(id)["floe_cluster_rpo_seconds"]; v <= 0 {
			t.Errorf("node %d: floe_cluster_rpo_seconds = %v with a non-empty active segment on node %d, want > 0", id, v, f)
		}
	}

	// stateOf returns seg's state in STATE through node via: "active" or "sealing" while
	// its Seal is not committed, "sealed" or "archived" after.
	stateOf := func(via int) (string, error) {
		st, err := c.tryState(via, topic)
		if err != nil {
			return "", err
		}
		for _, s := range st.Segments {
			if s.ID == seg {
				return s.State, nil
			}
		}
		return "", fmt.Errorf("STATE of %s through node %d has no segment %d: %s", topic, via, seg, st.Raw)
	}
	committed := func(state string) bool { return state == "sealed" || state == "archived" }

	c.kill(f)
	sealed := false
	for life := 1; !sealed; life++ {
		if life > 10 {
			t.Fatalf("segment %d of %s still active after node %d restarted %d times (--max-segment-age %v)", seg, topic, f, life-1, age)
		}
		// While its leader is down, the segment can change state only by its leader's
		// hand: the cluster gauge must count it.
		if state, err := stateOf(r); err == nil && !committed(state) {
			if v := c.mustScrape(r)["floe_cluster_rpo_seconds"]; v <= 0 {
				t.Errorf("node %d: floe_cluster_rpo_seconds = %v while node %d, leader of non-empty segment %d, is down; want > 0", r, v, f, seg)
			}
		}
		c.start(f)
		c.waitFor(30*time.Second, fmt.Sprintf("node %d to hold the write lease", f), func() bool {
			m, err := c.scrape(f)
			return err == nil && m["floe_write_lease"] == 1
		})
		// Live for half the age, then crash: the process alone never sees the age pass.
		deadline := time.Now().Add(age / 2)
		for !sealed && time.Now().Before(deadline) {
			m, err := c.scrape(f)
			if err != nil {
				t.Fatalf("scrape node %d: %v", f, err)
			}
			// The gauge is read before the state, so the segment active after means active
			// when the gauge was computed.
			state, err := stateOf(f)
			if err == nil && !committed(state) && m["floe_rpo_seconds"] <= 0 {
				t.Errorf("life %d of node %d: floe_rpo_seconds = %v with non-empty segment %d %s, want > 0", life, f, m["floe_rpo_seconds"], seg, state)
			}
			sealed = err == nil && committed(state)
			time.Sleep(50 * time.Millisecond) // poll interval of a condition wait
		}
		if !sealed {
			c.kill(f)
		}
		t.Logf("life %d of node %d: segment %d sealed: %v", life, f, seg, sealed)
		if sealed {
			t.Logf("segment %d sealed after %v", seg, time.Since(written))
		}
	}

	st := c.state(r, topic)
	for _, s := range st.Segments {
		if s.ID == seg && (s.Count != 1 || s.State == "active") {
			t.Errorf("segment %d is %s with %d entries, want sealed with 1: %s", seg, s.State, s.Count, st.Raw)
		}
	}
	entries := c.readAll(r, topic)
	if len(entries) != 1 || string(entries[0].Payload) != "only" {
		t.Fatalf("READ %s through node %d = %v, want the one entry", topic, r, entries)
	}
	if afterSeal != nil {
		afterSeal(c, topic, seg)
	}
	// Nothing is single-copy any more (without an archive, a sealed segment counts as
	// settled: the unsealed entries are what --max-segment-age bounds): every gauge is
	// back to 0.
	c.waitFor(30*time.Second, "floe_rpo_seconds and floe_cluster_rpo_seconds 0 on every node", func() bool {
		for id := 1; id <= 3; id++ {
			m, err := c.scrape(id)
			if err != nil || m["floe_rpo_seconds"] != 0 || m["floe_cluster_rpo_seconds"] != 0 {
				return false
			}
		}
		return true
	})
}

// TestRestartedLeaderTakesWritesArchived: with --archive, a leader restarted with a
// non-empty active segment takes writes to it again. Local retention asks at start
// whether the node holds each segment it led; that question must not open the active
// segment's file read-only (as if sealed) before the node reopens it for appending,
// which left the segment "sealing" and every write to it failing.
func TestRestartedLeaderTakesWritesArchived(t *testing.T) {
	_, o := startMinIOArchive(t)
	c := startCluster(t, with(o, "--max-segment-age", "1h"))
	r := c.raftLeader()
	f := r%3 + 1
	topic := c.topicLedBy(r, "restarted", f)
	mustOK(t, c.conn(f).Put(topic, []byte("before")), "PUT %s through node %d", topic, f)
	for life := 1; life <= 3; life++ {
		c.kill(f)
		c.start(f)
		c.waitFor(30*time.Second, fmt.Sprintf("node %d to hold the write lease", f), func() bool {
			m, err := c.scrape(f)
			return err == nil && m["floe_write_lease"] == 1
		})
		mustOK(t, c.conn(f).Put(topic, []byte(fmt.Sprintf("after-%d", life))), "PUT %s through node %d after restart %d", topic, f, life)
	}
	st := c.state(r, topic)
	if len(st.Segments) != 1 || st.EndOffset == nil || *st.EndOffset != 4 {
		t.Fatalf("STATE of %s = %s, want one active segment of 4 entries", topic, st.Raw)
	}
}
