package main

import (
	"testing"
	"time"
)

// A segment that its leader has sealed locally, while the Seal command has not
// committed yet, is "sealing" in STATE (README, "Protocol"); once the command commits it
// is "sealed". The commit is held back by freezing the two other nodes while the
// segment's leader, a follower with a long lease, rolls its segment over by age.
func TestStateReportsSealing(t *testing.T) {
	c := startCluster(t, clusterOpts{args: []string{"--lease-timeout", "30s", "--max-segment-age", "2s", "--request-timeout", "2s"}})
	r := c.raftLeader()
	f := r%3 + 1
	topic := c.topicLedBy(r, "sealing", f)
	var others []int
	for id := 1; id <= 3; id++ {
		if id != f {
			others = append(others, id)
		}
	}
	w := c.conn(f)
	stateOf := func(seg uint64) string {
		st, err := c.tryState(f, topic)
		if err != nil {
			return ""
		}
		for _, v := range st.Segments {
			if v.ID == seg {
				return v.State
			}
		}
		return ""
	}
	// The freeze must come before the age roll-over commits; if it came too late (the
	// segment is sealed already), the next segment gets another try.
	for attempt := 1; ; attempt++ {
		if attempt > 5 {
			t.Fatal("5 segments sealed before the other nodes could be frozen")
		}
		mustOK(t, w.Put(topic, []byte("x")), "PUT %s through node %d", topic, f)
		seg := c.state(f, topic).CurrentSegment
		for _, id := range others {
			c.pause(id)
		}
		var st string
		c.waitFor(20*time.Second, "the segment sealing or sealed", func() bool {
			st = stateOf(seg)
			return st == "sealing" || st == "sealed"
		})
		for _, id := range others {
			c.resume(id)
		}
		if st == "sealed" {
			continue
		}
		t.Logf("segment %d of %s is sealing while nodes %v are frozen", seg, topic, others)
		c.waitFor(30*time.Second, "the seal to commit once the nodes are thawed", func() bool {
			st = stateOf(seg)
			return st == "sealed" || st == "archived"
		})
		return
	}
}
