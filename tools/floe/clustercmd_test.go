package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runFloe runs the floe binary with args and returns its combined output.
func runFloe(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, floeBin, args...).CombinedOutput()
	return string(out), err
}

// TestClusterCommand drives floe cluster status, transfer-leadership and remove-node
// through a follower's HTTP port: changes reach the Raft leader wherever they are sent.
func TestClusterCommand(t *testing.T) {
	c := startCluster(t, clusterOpts{})
	httpOf := func(id int) string { return "127.0.0.1:" + strconv.Itoa(c.node(id).httpPort) }
	leader := c.raftLeader()
	follower := leader%3 + 1
	other := 6 - leader - follower

	// Every member registers its addresses shortly after it joins.
	var out string
	c.waitFor(20*time.Second, "floe cluster status to list 3 members with addresses", func() bool {
		var err error
		out, err = runFloe(t, "cluster", "status", "--http", httpOf(follower))
		return err == nil && strings.Count(out, "127.0.0.1:") == 9
	})
	if !strings.Contains(out, fmt.Sprintf("leader %d ", leader)) {
		t.Fatalf("status through node %d does not name leader %d:\n%s", follower, leader, out)
	}
	row := regexp.MustCompile(`(?m)^(\d+)\s+(leader|follower)\s+\S+\s+\S+\s+\S+\s+(\d+)$`)
	if rows := row.FindAllStringSubmatch(out, -1); len(rows) != 3 {
		t.Fatalf("status: want 3 member rows with role and log index, got %d:\n%s", len(rows), out)
	}

	out, err := runFloe(t, "cluster", "remove-node", strconv.Itoa(leader), "--http", httpOf(follower))
	if err == nil || !strings.Contains(out, "transfer-leadership") {
		t.Fatalf("remove-node of the leader: %v\n%s", err, out)
	}

	out, err = runFloe(t, "cluster", "transfer-leadership", "--http", httpOf(follower))
	if err != nil || !strings.Contains(out, fmt.Sprintf("(was node %d)", leader)) {
		t.Fatalf("transfer-leadership: %v\n%s", err, out)
	}
	c.waitFor(20*time.Second, "a new raft leader", func() bool {
		l := c.raftLeader()
		return l != 0 && l != leader
	})

	// Remove one follower through the other: the request reaches the leader.
	newLeader := c.raftLeader()
	var followers []int
	for _, id := range []int{leader, follower, other} {
		if id != newLeader {
			followers = append(followers, id)
		}
	}
	victim, via := followers[0], followers[1]
	out, err = runFloe(t, "cluster", "remove-node", strconv.Itoa(victim), "--http", httpOf(via))
	if err != nil || !strings.Contains(out, fmt.Sprintf("node %d removed", victim)) {
		t.Fatalf("remove-node %d through node %d: %v\n%s", victim, via, err, out)
	}
	c.waitFor(20*time.Second, "2 voters", func() bool {
		out, err = runFloe(t, "cluster", "status", "--http", httpOf(newLeader))
		return err == nil && len(row.FindAllStringSubmatch(out, -1)) == 2
	})
}
