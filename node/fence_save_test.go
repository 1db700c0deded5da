package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"floe/meta"
)

// TestFenceSaveFailureLifted (found by review): a follower that cannot record a fence
// (its fences file cannot be written) answers the failover unavailable and is not
// fenced: the failover, short of answers, lifts the fences of the followers that
// answered only, so a fence left in memory would refuse the live leader's appends
// until the segment is sealed.
func TestFenceSaveFailureLifted(t *testing.T) {
	nodes, act := startReplicated(t, "f", "e0")
	ctx := context.Background()
	bad := nodes[followerIndex(t, nodes, act)] // a follower whose fences file cannot be written
	// The rename over fences.json fails (it is a directory): saveFences errors.
	if err := os.Mkdir(filepath.Join(bad.cfg.DataDir, fencesFile), 0o755); err != nil {
		t.Fatal(err)
	}
	// A failover that proposes nothing: the other follower answers, this one does not.
	if _, err := nodes[0].failoverSegment(ctx, nodes[0].key("f"), act.ID, 0); err == nil || !strings.Contains(err.Error(), errFenceShort.Error()) {
		t.Fatalf("failover: %v, want errFenceShort (one follower cannot record the fence)", err)
	}
	if s, _ := nodes[0].fsm.SegmentOf(nodes[0].key("f"), act.ID); s.State != meta.Active {
		t.Fatalf("segment %d is %s, want still active", act.ID, s.State)
	}
	bad.replicas.mu.Lock()
	fenced := bad.replicas.fenced[segKey{bad.key("f"), act.ID}]
	bad.replicas.mu.Unlock()
	if fenced {
		t.Fatalf("node %d answered the fence unavailable and nothing was proposed, yet its copy stays fenced (refusing leader %d's appends until the segment is sealed)",
			bad.cfg.NodeID, act.Leader)
	}
}
