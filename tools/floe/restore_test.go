package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	mc "github.com/minio/minio-go/v7"

	"floe/archive"
	"floe/archive/miniotest"
	"floe/tiering"
)

// TestRestoreClusterFromArchive (README "Operations": every disk is lost), with real MinIO:
// every node's disk is wiped; floe restore --cluster rebuilds the metadata from the
// newest metadata snapshot in the bucket and the segment objects archived after it;
// the rebuilt cluster serves every archived entry at its offset, keeps the shared
// cursor and the cluster id, and takes new writes where the archived data ends.
//
// The bucket encrypts: the nodes and the restore run with --s3-sse AES256 (SSE-S3,
// MinIO with a KMS), and every object in the bucket, the segments, the metadata
// snapshots and the cluster claim, is checked to be stored encrypted. (SSE changes no
// read, so TestRestoreClusterAfterRetention covers the restore of a plain bucket.)
func TestRestoreClusterFromArchive(t *testing.T) {
	const topic = "r"
	a, o := minioArchiveOn(t, miniotest.StartSSE(t))
	o = with(o, "--s3-sse", archive.SSES3)
	a.srv.SetEnv(t) // for this process's bucket access and the floe commands it runs
	url := "s3://" + a.bucket + "/" + archivePrefix
	c := startCluster(t, with(o, "--max-segment-entries", "20", "--meta-snapshot-interval", "100ms"))
	ctx := context.Background()
	b := a.open(t, url)
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

	a.wantEncrypted(t, "AES256")
	p := c.node(1)
	args := []string{"restore", "--cluster", "--archive", url, "--s3-endpoint", a.srv.Endpoint, "--s3-region", a.srv.Region,
		"--s3-sse", archive.SSES3, "--node-id", "1", "--data-dir", p.dataDir, "--raft-port", strconv.Itoa(p.raftPort)}
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
	a.wantEncrypted(t, "AES256")
}

// wantEncrypted fails t unless every object in the bucket is stored with server-side
// encryption sse, and the bucket holds segments, metadata snapshots and the claim.
func (a *minioArchive) wantEncrypted(t *testing.T, sse string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mcl := a.srv.Client(t)
	kinds := map[string]int{}
	for o := range mcl.ListObjects(ctx, a.bucket, mc.ListObjectsOptions{Prefix: archivePrefix + "/", Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("list bucket %s: %v", a.bucket, o.Err)
		}
		info, err := mcl.StatObject(ctx, a.bucket, o.Key, mc.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Metadata.Get("X-Amz-Server-Side-Encryption"); got != sse {
			t.Errorf("%s: stored with SSE %q; want %q", o.Key, got, sse)
		}
		switch key := strings.TrimPrefix(o.Key, archivePrefix+"/"); {
		case key == tiering.ClaimKey:
			kinds["claim"]++
		case strings.HasPrefix(key, tiering.MetaSnapshotPrefix):
			kinds["snapshot"]++
		case strings.HasPrefix(key, tiering.TopicsPrefix):
			kinds["segment"]++
		default:
			kinds["other"]++
		}
	}
	t.Logf("objects checked: %v", kinds)
	for _, k := range []string{"claim", "snapshot", "segment"} {
		if kinds[k] == 0 {
			t.Errorf("no %s object was checked (checked %v)", k, kinds)
		}
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
	type topicJSON struct {
		Name     string `json:"name"`
		Segments []struct {
			ID         uint64 `json:"id"`
			State      string `json:"state"`
			ArchiveKey string `json:"archive_key"`
		} `json:"segments"`
		Cursor uint64 `json:"cursor"`
	}
	var st struct {
		Topics map[string]topicJSON `json:"topics"` // by key: a name with its incarnation
	}
	if json.Unmarshal(snap.State, &st) != nil {
		return false
	}
	var tp topicJSON
	ok := false
	for _, t := range st.Topics {
		if t.Name == topic {
			tp, ok = t, true
		}
	}
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

// TestRestoreClusterAfterRetention (issue 7, item 1), with real MinIO: segments 1-4
// are archived and in the metadata snapshot the restore starts from; then retention
// expires segment 1 and deletes its object, and segment 5 is archived. floe restore
// --cluster must treat segment 1 as expired (the start offset moves past it, and so
// does the cursor), not as a hole: segments 2-5 come back at their offsets, and the
// restore reports segment 1 with its reason. In a second topic the object of segment
// 2 of 3 is gone: segments 1 and 3 are kept at their offsets, 2 is lost (READ says so
// and names the next offset kept, GET moves past it).
func TestRestoreClusterAfterRetention(t *testing.T) {
	const (
		topic   = "rr"
		hole    = "rh"
		perSeg  = 10
		segSize = perSeg * (8 + 8) // 8-byte payloads, 8-byte record headers
	)
	a, o := startMinIOArchive(t)
	a.srv.SetEnv(t)
	url := "s3://" + a.bucket + "/" + archivePrefix
	c := startCluster(t, with(o, "--max-segment-entries", strconv.Itoa(perSeg), "--meta-snapshot-interval", "100ms"))
	ctx := context.Background()
	b := a.open(t, url)
	payload := func(i int) string { return fmt.Sprintf("rr-%05d", i) }
	httpOf := func(id int) string { return "127.0.0.1:" + strconv.Itoa(c.node(id).httpPort) }
	req, _ := http.NewRequest("PUT", "http://"+httpOf(1)+"/v1/topics/"+topic, strings.NewReader(fmt.Sprintf(`{"retention_bytes": %d}`, 4*segSize)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT topic with retention: %v %v", resp, err)
	}
	resp.Body.Close()
	c.waitTopic(topic)
	w := c.conn(1)
	for i := 0; i < 4*perSeg; i++ { // segments 1-4 sealed, 5 active and empty
		mustOK(t, w.Put(topic, []byte(payload(i))), "PUT %d", i)
	}
	for i := 0; i < 5; i++ {
		if p, ok, err := c.conn(2).Get(topic); err != nil || !ok || string(p) != payload(i) {
			t.Fatalf("GET %d = %q %v %v", i, p, ok, err)
		}
	}
	mustOK(t, w.Register(hole), "REGISTER")
	for i := 0; i < 3*perSeg; i++ { // segments 1-3 sealed
		mustOK(t, w.Put(hole, []byte(payload(i))), "PUT %d", i)
	}
	c.waitTiers(1, topic, 4, "both", 30*time.Second)
	c.waitTiers(1, hole, 3, "both", 30*time.Second)
	var keep string
	c.waitFor(30*time.Second, "a metadata snapshot with segments 1-4 archived and cursor 5", func() bool {
		keep = ""
		b.List(ctx, tiering.MetaSnapshotPrefix, func(oi archive.ObjectInfo) error {
			if snapHas(ctx, b, oi.Key, topic, 5, 5) && snapHas(ctx, b, oi.Key, hole, 4, 0) {
				keep = oi.Key
			}
			return nil
		})
		return keep != ""
	})
	// Segment 5 fills: retention expires segment 1 and deletes its object; 5 is
	// archived after the snapshot. Three more entries stay on a disk only.
	for i := 4 * perSeg; i < 5*perSeg+3; i++ {
		mustOK(t, w.Put(topic, []byte(payload(i))), "PUT %d", i)
	}
	c.waitFor(60*time.Second, "segment 1 expired (its object deleted) and segment 5 archived", func() bool {
		st, err := c.tryState(1, topic)
		if err != nil || len(st.Segments) != 6 || st.Segments[0].State != "expired" || st.Segments[4].State != "archived" {
			return false
		}
		objs := a.objects(t, topic)
		_, one := objs[1]
		return !one && len(objs) == 4
	})

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
	holeObjs := a.objects(t, hole)
	if err := b.Delete(ctx, strings.TrimPrefix(holeObjs[2].Key, archivePrefix+"/")); err != nil {
		t.Fatal(err)
	}
	p := c.node(1)
	args := []string{"restore", "--cluster", "--archive", url, "--s3-endpoint", a.srv.Endpoint, "--s3-region", a.srv.Region,
		"--node-id", "1", "--data-dir", p.dataDir, "--raft-port", strconv.Itoa(p.raftPort)}
	out, err := runFloe(t, args...)
	t.Logf("floe restore --cluster:\n%s", out)
	if err != nil || !strings.Contains(out, "[10, 50)") || !strings.Contains(out, tiering.SkipExpired) ||
		!strings.Contains(out, "[0, 30)") || !strings.Contains(out, tiering.SkipLost) {
		t.Fatalf("floe restore --cluster: %v; want offsets [10, 50) of %s kept and segment 1 reported expired, [0, 30) of %s with segment 2 lost", err, topic, hole)
	}
	for id := 1; id <= 3; id++ {
		c.start(id)
	}
	c.waitMembers(3, 30*time.Second)

	got, next, err := c.conn(2).Read(topic, 10, 1000)
	if err != nil || next != 5*perSeg || len(got) != 4*perSeg {
		t.Fatalf("READ from 10 after the restore: %d entries, next %d, %v; want 40 entries, next 50", len(got), next, err)
	}
	for i, e := range got {
		if e.Offset != uint64(10+i) || string(e.Payload) != payload(10+i) {
			t.Fatalf("READ after the restore: entry %d is offset %d %q, want %d %q", i, e.Offset, e.Payload, 10+i, payload(10+i))
		}
	}
	if _, _, err := c.conn(3).Read(topic, 5, 10); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("READ of an expired offset after the restore: %v, want expired", err)
	}
	if got, ok, err := c.conn(3).Get(topic); err != nil || !ok || string(got) != payload(10) {
		t.Fatalf("GET after the restore = %q %v %v, want %s (the cursor moved past segment 1)", got, ok, err, payload(10))
	}
	if off, err := c.conn(1).PutOffset(topic, []byte("after")); err != nil || off != 5*perSeg {
		t.Fatalf("PUT after the restore: offset %d, %v; want %d", off, err, 5*perSeg)
	}
	if objs := a.objects(t, topic); len(objs) < 4 {
		t.Fatalf("objects of %s after the restore: %v; want segments 2-5 kept", topic, objs)
	}

	if got, next, err := c.conn(1).Read(hole, 0, 1000); err != nil || len(got) != perSeg || next != perSeg {
		t.Fatalf("READ %s from 0 after the restore: %d entries, next %d, %v; want segment 1's 10", hole, len(got), next, err)
	}
	if _, _, err := c.conn(1).Read(hole, 15, 10); err == nil || !strings.Contains(err.Error(), "lost") || !strings.Contains(err.Error(), "next offset kept is 20") {
		t.Fatalf("READ of a lost offset: %v, want an error saying it was lost and naming offset 20", err)
	}
	if got, _, err := c.conn(2).Read(hole, 20, 1000); err != nil || len(got) != perSeg || string(got[0].Payload) != payload(20) {
		t.Fatalf("READ %s from 20 after the restore: %d entries, %v", hole, len(got), err)
	}
	for _, want := range []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 20, 21} {
		if got, ok, err := c.conn(3).Get(hole); err != nil || !ok || string(got) != payload(want) {
			t.Fatalf("GET %s after the restore = %q %v %v, want %s (the lost segment skipped)", hole, got, ok, err, payload(want))
		}
	}
}
