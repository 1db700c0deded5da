package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBootstrapRefusesClaimedArchive (DESIGN section 9): the node that bootstraps a
// cluster claims the archive for it (meta/cluster.json). Node 1, wiped and restarted
// without --join as its unit file says, refuses to bootstrap a second cluster on that
// archive and says how to rejoin; --force-new-cluster overrides the claim.
func TestBootstrapRefusesClaimedArchive(t *testing.T) {
	archiveDir := t.TempDir()
	c := startCluster(t, clusterOpts{args: []string{"--archive", "file://" + archiveDir}})
	claimPath := filepath.Join(archiveDir, "meta", "cluster.json")
	claimed := func() string {
		var claim struct {
			ClusterID string `json:"cluster_id"`
		}
		b, err := os.ReadFile(claimPath)
		if err != nil || json.Unmarshal(b, &claim) != nil {
			return ""
		}
		return claim.ClusterID
	}
	var first string
	c.waitFor(20*time.Second, "the archive's cluster claim", func() bool {
		first = claimed()
		return first != ""
	})
	m := c.metrics(1)
	if m == nil || !strings.Contains(string(m.Raw), `"cluster_id":"`+first+`"`) {
		t.Fatalf("the claim names cluster %s; METRICS of node 1: %s", first, m.Raw)
	}

	c.kill(1)
	c.wipe(1)
	p := c.node(1)
	args := []string{"agent", "--node-id", "1", "--data-dir", p.dataDir,
		"--raft-port", strconv.Itoa(p.raftPort), "--client-port", strconv.Itoa(p.clientPort),
		"--http-port", strconv.Itoa(p.httpPort)}
	args = append(args, c.args...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, floeBin, args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("wiped node 1 did not exit: it bootstrapped a second cluster on a claimed archive:\n%s", out)
	}
	for _, want := range []string{"belongs to another cluster", first, "--join", "--force-new-cluster"} {
		if err == nil || !strings.Contains(string(out), want) {
			t.Fatalf("wiped node 1 restarted without --join: exit %v, output lacks %q:\n%s", err, want, out)
		}
	}
	if got := claimed(); got != first {
		t.Fatalf("the refused node changed the claim to %q", got)
	}
	// The cluster goes on without node 1.
	c.waitFor(30*time.Second, "a raft leader among nodes 2 and 3", func() bool {
		l := c.raftLeader()
		return l == 2 || l == 3
	})

	// --force-new-cluster: the refused node, on the same data dir (the refusal left no
	// Raft state in it, so it bootstraps) and on ports of its own (so that the survivors
	// do not mistake it for their node 1), bootstraps and takes the archive.
	ports := freePorts(t, 3)
	forced := exec.Command(floeBin, append([]string{"agent", "--node-id", "1", "--data-dir", p.dataDir,
		"--raft-port", strconv.Itoa(ports[0]), "--client-port", strconv.Itoa(ports[1]),
		"--http-port", strconv.Itoa(ports[2]), "--force-new-cluster"}, c.args...)...)
	var forcedOut strings.Builder
	forced.Stdout, forced.Stderr = &forcedOut, &forcedOut
	if err := forced.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { forced.Wait(); close(exited) }()
	defer func() { forced.Process.Kill(); <-exited }()
	c.waitFor(30*time.Second, "the forced node to claim the archive", func() bool {
		select {
		case <-exited:
			t.Fatalf("the node with --force-new-cluster exited:\n%s", forcedOut.String())
		default:
		}
		id := claimed()
		return id != "" && id != first
	})
}
