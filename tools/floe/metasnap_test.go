package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"floe/archive"
	"floe/tiering"
)

// TestMetaSnapshotInArchive (docs/ARCHITECTURE.md, "Bucket layout and the cluster claim"): the Raft leader copies changed metadata
// into the archive (meta/snapshots/<index>.json), keeps the newest ten, and
// floe archive meta reads the newest back from the bucket alone.
func TestMetaSnapshotInArchive(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, clusterOpts{args: []string{"--archive", "file://" + dir, "--meta-snapshot-interval", "50ms"}})
	snapDir := filepath.Join(dir, "meta", "snapshots")
	snapshots := func() []string {
		entries, _ := os.ReadDir(snapDir)
		var names []string
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".json") {
				names = append(names, e.Name())
			}
		}
		return names
	}
	w := c.conn(1)
	// Fifteen changes, each waited for in a snapshot of its own: the oldest go.
	for i := 0; i < 15; i++ {
		topic := fmt.Sprintf("snap-%02d", i)
		mustOK(t, w.Register(topic), "REGISTER %s", topic)
		c.waitFor(20*time.Second, "a snapshot with "+topic, func() bool {
			names := snapshots()
			if len(names) == 0 {
				return false
			}
			b, err := os.ReadFile(filepath.Join(snapDir, names[len(names)-1]))
			if err != nil {
				return false
			}
			var snap struct {
				Format    int    `json:"format"`
				ClusterID string `json:"cluster_id"`
				State     struct {
					Topics map[string]struct { // by key
						Name string `json:"name"`
					} `json:"topics"`
				} `json:"state"`
			}
			if json.Unmarshal(b, &snap) != nil || snap.Format != 1 || snap.ClusterID == "" {
				return false
			}
			for _, tp := range snap.State.Topics {
				if tp.Name == topic {
					return true
				}
			}
			return false
		})
	}
	// The leader prunes right after each Put: wait for the prune of the last one.
	c.waitFor(20*time.Second, "the newest 10 metadata snapshots at most in the archive", func() bool {
		return len(snapshots()) <= 10
	})
	mustOK(t, w.Put("snap-03", []byte("x")), "PUT")
	out, err := runFloe(t, "archive", "meta", "--archive", "file://"+dir)
	t.Logf("floe archive meta:\n%s", out)
	if err != nil || !strings.Contains(out, "snap-14") || !strings.Contains(out, "node 3") {
		t.Fatalf("floe archive meta: %v\n%s", err, out)
	}
}

// TestMetaSnapshotsOfAnotherCluster (issue 7, item 5), with real MinIO: metadata
// snapshots of another cluster in the archive prefix (older and newer than this
// cluster's) are never pruned in place of this cluster's own, nor shown for it: the
// leader keeps ten of its own, and floe archive meta refuses to guess between two
// clusters until --cluster-id names one.
func TestMetaSnapshotsOfAnotherCluster(t *testing.T) {
	a, o := startMinIOArchive(t)
	a.srv.SetEnv(t)
	c := startCluster(t, with(o, "--meta-snapshot-interval", "50ms"))
	ctx := context.Background()
	url := "s3://" + a.bucket + "/" + archivePrefix
	b := a.open(t, url)
	own := metricsField(t, c, 1, "cluster_id")
	foreign := []string{tiering.MetaSnapshotKey(1), tiering.MetaSnapshotKey(1 << 40)}
	for _, key := range foreign {
		body, _ := json.Marshal(tiering.MetaSnapshot{Format: tiering.MetaSnapshotFormat, ClusterID: "0ther", RaftIndex: 1,
			State: json.RawMessage(`{"topics":{"theirs":{"name":"theirs","segments":[{"id":1,"state":"active"}]}},"nodes":{}}`)})
		if err := b.Put(ctx, key, bytes.NewReader(body), int64(len(body)), archive.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w := c.conn(1)
	for i := 0; i < 13; i++ {
		topic := fmt.Sprintf("own-%02d", i)
		mustOK(t, w.Register(topic), "REGISTER %s", topic)
		c.waitFor(20*time.Second, "a snapshot with "+topic, func() bool {
			_, snap, err := tiering.NewestMetaSnapshot(ctx, b, own)
			return err == nil && strings.Contains(string(snap.State), `"`+topic+`"`)
		})
	}
	// The leader prunes right after each Put: wait for the prune of the last one.
	var snaps []tiering.MetaSnapshotInfo
	var mine int
	c.waitFor(20*time.Second, "the newest 10 snapshots of this cluster in the archive", func() bool {
		var err error
		snaps, err = tiering.ListMetaSnapshots(ctx, b, nil)
		if err != nil {
			return false
		}
		mine = 0
		for _, s := range snaps {
			if s.ClusterID == own {
				mine++
			}
		}
		return mine <= 10
	})
	for _, key := range foreign {
		if _, err := b.Stat(ctx, key); err != nil {
			t.Fatalf("the other cluster's snapshot %s: %v; the leader must never prune it", key, err)
		}
	}
	if mine != 10 {
		t.Fatalf("%d snapshots of this cluster in the archive, want the newest 10 (the other cluster's do not count): %+v", mine, snaps)
	}
	out, err := runFloe(t, "archive", "meta", "--archive", url, "--s3-endpoint", a.srv.Endpoint, "--s3-region", a.srv.Region)
	if err == nil || !strings.Contains(out, own) || !strings.Contains(out, "0ther") || !strings.Contains(out, "--cluster-id") {
		t.Fatalf("floe archive meta over two clusters' snapshots: %v; want a refusal naming both and --cluster-id:\n%s", err, out)
	}
	out, err = runFloe(t, "archive", "meta", "--cluster-id", own, "--archive", url, "--s3-endpoint", a.srv.Endpoint, "--s3-region", a.srv.Region)
	if err != nil || !strings.Contains(out, "cluster "+own) || !strings.Contains(out, "own-12") || strings.Contains(out, "theirs") {
		t.Fatalf("floe archive meta --cluster-id %s: %v\n%s", own, err, out)
	}
}
