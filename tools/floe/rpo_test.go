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

	// active reports whether seg is still the active segment in node via's metadata.
	active := func(via int) (bool, error) {
		st, err := c.tryState(via, topic)
		if err != nil {
			return false, err
		}
		for _, s := range st.Segments {
			if s.ID == seg {
				return s.State == "active", nil
			}
		}
		return false, fmt.Errorf("STATE of %s through node %d has no segment %d: %s", topic, via, seg, st.Raw)
	}

	c.kill(f)
	sealed := false
	for life := 1; !sealed; life++ {
		if life > 10 {
			t.Fatalf("segment %d of %s still active after node %d restarted %d times (--max-segment-age %v)", seg, topic, f, life-1, age)
		}
		// While its leader is down, the segment can change state only by its leader's
		// hand: the cluster gauge must count it.
		if act, err := active(r); err == nil && act {
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
			act, err := active(f)
			if err == nil && act && m["floe_rpo_seconds"] <= 0 {
				t.Errorf("life %d of node %d: floe_rpo_seconds = %v with non-empty segment %d active, want > 0", life, f, m["floe_rpo_seconds"], seg)
			}
			sealed = err == nil && !act
			time.Sleep(50 * time.Millisecond) // poll interval of a condition wait
		}
		if !sealed {
			c.kill(f)
		}
		t.Logf("life %d of node %d: segment %d sealed: %v", life, f, seg, sealed)
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
	// settled: it is what --max-segment-age bounds): every gauge is back to 0.
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
