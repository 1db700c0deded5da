package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"floe/archive"
	"floe/archive/open"
	"floe/tiering"
)

// TestRestoreClusterFromArchive (DESIGN section 7, all disks lost), with real MinIO:
// every node's disk is wiped; floe restore --cluster rebuilds the metadata from the
// newest metadata snapshot in the bucket and the segment objects archived after it;
// the rebuilt cluster serves every archived entry at its offset, keeps the shared
// cursor and the cluster id, and takes new writes where the archived data ends.
func TestRestoreClusterFromArchive(t *testing.T) {
	const topic = "r"
	a, o := startMinIOArchive(t)
	a.srv.SetEnv(t) // for this process's bucket access and the floe commands it runs
	url := "s3://" + a.bucket + "/" + archivePrefix
	c := startCluster(t, with(o, "--max-segment-entries", "20", "--meta-snapshot-interval", "100ms"))
	ctx := context.Background()
	b, err := open.Open(ctx, url, archive.Options{Endpoint: a.srv.Endpoint, Region: a.srv.Region})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	payload := func(i int) string { return fmt.Sprintf("r-%04d", i) }

	w := c.conn(1)
	mustOK(t, w.Register(topic), "REGISTER")
	c.waitTopic(topic)
	for i := 0; i < 130; i++ { // segments 1-6 sealed, 7 active with 10
		mustOK(t, w.Put(topic, []byte(payload(i))), "PUT %d", i)
	}
	for i := 0; i < 5; i++ {
		if p, ok, err := c.conn(2).Get(topic); err != nil || !ok || string(p) != payload(i) {
			t.Fatalf("GET %d = %q %v %v", i, p, ok, err)
		}
	}
	c.waitTiers(1, topic, 6, "both", 30*time.Second)
	clusterID := metricsField(t, c, 1, "cluster_id")

	// The snapshot the restore will start from: segments 1-6 archived, 7 active, cursor 5.
	var keep string
	c.waitFor(30*time.Second, "a metadata snapshot with segments 1-6 archived and cursor 5", func() bool {
		keep = ""
		b.List(ctx, tiering.MetaSnapshotPrefix, func(oi archive.ObjectInfo) error {
			if snapHas(ctx, b, oi.Key, topic, 7, 5) {
				keep = oi.Key
			}
			return nil
		})
		return keep != ""
	})
	// More writes: segment 7 seals and is archived after that snapshot; 8 stays active,
	// on its leader's disk only.
	for i := 130; i < 155; i++ {
		mustOK(t, w.Put(topic, []byte(payload(i))), "PUT %d", i)
	}
	c.waitTiers(1, topic, 7, "both", 30*time.Second)

	// Every disk is lost, and the snapshots newer than the chosen one with them (as if
	// the cluster died right after writing it).
	for id := 1; id <= 3; id++ {
		c.kill(id)
		c.wipe(id)
	}
	b.List(ctx, tiering.MetaSnapshotPrefix, func(oi archive.ObjectInfo) error {
		if oi.Key > keep {
			return b.Delete(ctx, oi.Key)
		}
		return nil
	})

	p := c.node(1)
	args := []string{"restore", "--cluster", "--archive", url, "--s3-endpoint", a.srv.Endpoint, "--s3-region", a.srv.Region,
		"--node-id", "1", "--data-dir", p.dataDir, "--raft-port", strconv.Itoa(p.raftPort)}
	out, err := runFloe(t, append(args, "--dry-run")...)
	if err != nil || !strings.Contains(out, "[0, 140)") || !strings.Contains(out, "dry run") {
		t.Fatalf("floe restore --dry-run: %v\n%s", err, out)
	}
	if out, err = runFloe(t, args...); err != nil || !strings.Contains(out, "seeded") {
		t.Fatalf("floe restore --cluster: %v\n%s", err, out)
	}
	t.Logf("floe restore --cluster:\n%s", out)
	for id := 1; id <= 3; id++ {
		c.start(id) // node 1 restarts on the seeded state; 2 and 3 join it
	}
	c.waitMembers(3, 30*time.Second)

	// Segments 1-7 come back from the archive (7 from its object alone); the entries
	// of the lost active segment 8 are gone, and new writes take their offsets.
	checkEntries(t, "READ after the restore", c.readAll(2, topic), func(i int) string { return payload(i) }, 140)
	if got, ok, err := c.conn(3).Get(topic); err != nil || !ok || string(got) != payload(5) {
		t.Fatalf("GET after the restore = %q %v %v, want %s (the shared cursor kept)", got, ok, err, payload(5))
	}
	if off, err := c.conn(1).PutOffset(topic, []byte("after")); err != nil || off != 140 {
		t.Fatalf("PUT after the restore: offset %d, %v; want 140", off, err)
	}
	if id := metricsField(t, c, 2, "cluster_id"); id != clusterID {
		t.Fatalf("cluster id after the restore %q, want %q (the archive's claim names it)", id, clusterID)
	}
}

// snapHas reports whether the snapshot object key holds topic with active segment
// active and cursor cursor.
func snapHas(ctx context.Context, b archive.Bucket, key, topic string, active, cursor uint64) bool {
	rc, err := b.Get(ctx, key)
	if err != nil {
		return false
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	var snap tiering.MetaSnapshot
	if err != nil || json.Unmarshal(body, &snap) != nil {
		return false
	}
	var st struct {
		Topics map[string]struct {
			Segments []struct {
				ID         uint64 `json:"id"`
				State      string `json:"state"`
				ArchiveKey string `json:"archive_key"`
			} `json:"segments"`
			Cursor uint64 `json:"cursor"`
		} `json:"topics"`
	}
	if json.Unmarshal(snap.State, &st) != nil {
		return false
	}
	tp, ok := st.Topics[topic]
	if !ok || tp.Cursor != cursor || len(tp.Segments) != int(active) {
		return false
	}
	for _, s := range tp.Segments[:active-1] {
		if s.ArchiveKey == "" {
			return false
		}
	}
	return tp.Segments[active-1].State == "active"
}

// metricsField returns a string field of node id's METRICS.
func metricsField(t *testing.T, c *cluster, id int, field string) string {
	t.Helper()
	m := c.metrics(id)
	if m == nil {
		t.Fatalf("no METRICS from node %d", id)
	}
	var v map[string]any
	if err := json.Unmarshal(m.Raw, &v); err != nil {
		t.Fatal(err)
	}
	s, _ := v[field].(string)
	return s
}
