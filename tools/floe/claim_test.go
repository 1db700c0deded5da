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

	"floe/archive"
	"floe/archive/open"
	"floe/internal/testenv"
	"floe/tiering"
)

// TestBootstrapRefusesClaimedArchive (README "Operations": the archive belongs to another cluster): the node that bootstraps a
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
	ports := testenv.FreePorts(t, 3)
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

// TestForceNewClusterRefusesUsedArchive (issue 7, item 5), with real MinIO: a new
// cluster must never start on an archive prefix that holds another cluster's segment
// objects or metadata snapshots (its keys would collide with theirs, its sweeper would
// delete their objects, its snapshots would be pruned before theirs).
// --force-new-cluster does not override that, nor does a missing claim; the error
// names the operator's choices. The refused node leaves its data dir without Raft
// state and the claim as it was.
func TestForceNewClusterRefusesUsedArchive(t *testing.T) {
	const topic = "used"
	a, o := startMinIOArchive(t)
	a.srv.SetEnv(t)
	c := startCluster(t, with(o, "--max-segment-entries", "5", "--meta-snapshot-interval", "100ms"))
	ctx := context.Background()
	b, err := open.Open(ctx, "s3://"+a.bucket+"/"+archivePrefix, archive.Options{Endpoint: a.srv.Endpoint, Region: a.srv.Region})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	w := c.conn(1)
	mustOK(t, w.Register(topic), "REGISTER")
	for i := 0; i < 10; i++ {
		mustOK(t, w.Put(topic, []byte("x")), "PUT %d", i)
	}
	c.waitTiers(1, topic, 2, "both", 30*time.Second)
	c.waitFor(30*time.Second, "a metadata snapshot in the archive", func() bool {
		snaps, err := tiering.ListMetaSnapshots(ctx, b, nil)
		return err == nil && len(snaps) > 0
	})
	claim := func() string {
		rc, err := b.Get(ctx, tiering.ClaimKey)
		if err != nil {
			return ""
		}
		defer rc.Close()
		var cl struct {
			ClusterID string `json:"cluster_id"`
		}
		json.NewDecoder(rc).Decode(&cl)
		return cl.ClusterID
	}
	first := claim()
	if first == "" {
		t.Fatal("no cluster claim in the archive")
	}
	for id := 1; id <= 3; id++ {
		c.kill(id)
	}
	c.wipe(1)

	p := c.node(1)
	bootstrap := func(extra ...string) (string, error) {
		args := append([]string{"agent", "--node-id", "1", "--data-dir", p.dataDir,
			"--raft-port", strconv.Itoa(p.raftPort), "--client-port", strconv.Itoa(p.clientPort),
			"--http-port", strconv.Itoa(p.httpPort)}, c.args...)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, floeBin, append(args, extra...)...)
		cmd.Env = append(os.Environ(), c.env...)
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("node 1 with %v did not exit: it bootstrapped a new cluster on a used archive prefix:\n%s", extra, out)
		}
		return string(out), err
	}
	refused := func(what string, out string, err error) {
		t.Helper()
		for _, want := range []string{"holds another cluster's data", "segment objects", "metadata snapshots of cluster " + first,
			"fresh archive prefix", "floe restore --cluster"} {
			if err == nil || !strings.Contains(out, want) {
				t.Fatalf("%s: exit %v, output lacks %q:\n%s", what, err, want, out)
			}
		}
		if got := claim(); got != first {
			t.Fatalf("%s: the claim names %q, want %q (unchanged)", what, got, first)
		}
		if _, err := os.Stat(filepath.Join(p.dataDir, "raft")); err == nil {
			entries, _ := os.ReadDir(filepath.Join(p.dataDir, "raft"))
			if len(entries) > 0 {
				t.Fatalf("%s: the refused node left Raft state in its data dir", what)
			}
		}
	}
	out, err := bootstrap("--force-new-cluster")
	refused("--force-new-cluster over a used archive", out, err)

	// A prefix whose claim is gone (a cluster from before claims, or a deleted claim)
	// is refused all the same.
	if err := b.Delete(ctx, tiering.ClaimKey); err != nil {
		t.Fatal(err)
	}
	first = ""
	out, err = bootstrap()
	refused("a bootstrap over a used archive without a claim", out, err)
}
