package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"floe/archive"
	"floe/archive/open"
	"floe/tiering"
)

// A cluster never sweeps an archive prefix whose claim names another cluster. The
// bootstrap check refuses a prefix that holds objects or snapshots, but a second
// cluster started with --force-new-cluster while the first one had written nothing yet
// passes it and takes the claim: from then on each cluster's objects are unreferenced
// in the other's metadata, and a sweep would delete them (acknowledged data whose
// local copy may be gone already). The sweeper refuses to delete while the claim
// names another cluster, and says why.
func TestSweeperLeavesAnotherClustersArchiveAlone(t *testing.T) {
	a, o := startMinIOArchive(t)
	a.srv.SetEnv(t)
	c := startCluster(t, with(o, "--orphan-grace", "1ms", "--sweep-interval", "-1s"))
	ctx := context.Background()
	b, err := open.Open(ctx, "s3://"+a.bucket+"/"+archivePrefix, archive.Options{Endpoint: a.srv.Endpoint, Region: a.srv.Region})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c.waitFor(30*time.Second, "the archive's cluster claim", func() bool {
		_, err := b.Stat(ctx, tiering.ClaimKey)
		return err == nil
	})
	// Another cluster bootstraps on the prefix with --force-new-cluster and archives a
	// segment.
	claim, _ := json.Marshal(map[string]any{"cluster_id": "0123456789abcdef", "created_unix_ms": time.Now().UnixMilli(),
		"seen_unix_ms": time.Now().UnixMilli(), "node": 1, "advertise": "10.0.0.9:6000"})
	if err := b.Put(ctx, tiering.ClaimKey, bytes.NewReader(claim), int64(len(claim)), archive.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	theirs := tiering.ObjectKey("theirs", 1, 5)
	if err := b.Put(ctx, theirs, bytes.NewReader([]byte("their segment")), 13, archive.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	httpOf := func(id int) string { return "127.0.0.1:" + strconv.Itoa(c.node(id).httpPort) }
	var leader int
	c.waitFor(30*time.Second, "a raft leader", func() bool { leader = c.raftLeader(); return leader != 0 })
	out, err := runFloe(t, "cluster", "sweep", "--http", httpOf(leader))
	if _, serr := b.Stat(ctx, theirs); serr != nil {
		t.Fatalf("the sweep deleted another cluster's object %s (stat: %v); sweep: %v\n%s", theirs, serr, err, out)
	}
	if err == nil {
		t.Fatalf("a sweep of a prefix claimed by another cluster succeeded:\n%s", out)
	}
	t.Logf("sweep refused: %v\n%s", err, out)
}
