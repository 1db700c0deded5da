package node

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
)

// TestRecentLogKeepsTheLastWarnings: the ring keeps the last recentLogSize warnings and
// errors, newest first, with their attributes, and none of the info lines.
func TestRecentLogKeepsTheLastWarnings(t *testing.T) {
	var l recentLog
	log := slog.New(&recentHandler{next: slog.DiscardHandler, log: &l}).With("node", 7)
	log.Info("not kept")
	for i := range recentLogSize + 5 {
		log.Warn(fmt.Sprintf("warning %d", i), "i", i)
	}
	log.Error("last", "err", "boom")
	got := l.records()
	if len(got) != recentLogSize {
		t.Fatalf("%d records kept, want %d", len(got), recentLogSize)
	}
	if got[0].Message != "last" || got[0].Level != "ERROR" || got[0].Attrs["err"] != "boom" || got[0].Attrs["node"] != "7" {
		t.Fatalf("newest record = %+v", got[0])
	}
	if want := fmt.Sprintf("warning %d", recentLogSize+4); got[1].Message != want {
		t.Fatalf("second newest = %q, want %q", got[1].Message, want)
	}
	if oldest := got[len(got)-1].Message; oldest != "warning 6" {
		t.Fatalf("oldest kept = %q, want warning 6", oldest)
	}
}

// TestReportsMarkDownMember: GET /v1/nodes' reports hold every member, each answering
// for itself over the cluster port, and a member that is gone as down with the error.
func TestReportsMarkDownMember(t *testing.T) {
	nodes := startTestCluster(t, 3, nil)
	reports := nodes[0].Reports(context.Background())
	if len(reports) != 3 {
		t.Fatalf("%d reports, want 3", len(reports))
	}
	for _, r := range reports {
		if !r.Up || r.State == "" || r.UptimeSeconds <= 0 {
			t.Fatalf("report of node %d: %+v; want it up with its role and uptime", r.ID, r)
		}
	}
	nodes[2].Close()
	for _, r := range nodes[0].Reports(context.Background()) {
		if r.ID == 3 && (r.Up || r.Error == "") {
			t.Fatalf("report of the closed node 3: %+v; want it down with the error", r)
		}
		if r.ID != 3 && !r.Up {
			t.Fatalf("report of node %d: %+v; want it up", r.ID, r)
		}
	}
}
