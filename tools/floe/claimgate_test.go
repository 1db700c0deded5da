package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"floe/archive"
	"floe/archive/open"
	"floe/tiering"
)

// openTestArchive opens the test cluster's archive prefix in a's bucket.
func openTestArchive(t *testing.T, a *minioArchive) archive.Bucket {
	t.Helper()
	b, err := open.Open(context.Background(), "s3://"+a.bucket+"/"+archivePrefix, archive.Options{Endpoint: a.srv.Endpoint, Region: a.srv.Region})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// testClaim is the archive's claim as the tests read it.
type testClaim struct {
	ClusterID string `json:"cluster_id"`
	TookOver  string `json:"took_over"`
}

func readTestClaim(b archive.Bucket) (testClaim, bool) {
	var c testClaim
	rc, err := b.Get(context.Background(), tiering.ClaimKey)
	if err != nil {
		return c, false
	}
	defer rc.Close()
	return c, json.NewDecoder(rc).Decode(&c) == nil && c.ClusterID != ""
}

// putForeignClaim writes the claim of another cluster (id) over the prefix, as a
// cluster started with --force-new-cluster does.
func putForeignClaim(t *testing.T, b archive.Bucket, id string) {
	t.Helper()
	now := time.Now().UnixMilli()
	body, _ := json.Marshal(map[string]any{"cluster_id": id, "created_unix_ms": now, "seen_unix_ms": now, "node": 1, "advertise": "10.0.0.9:6000"})
	if err := b.Put(context.Background(), tiering.ClaimKey, bytes.NewReader(body), int64(len(body)), archive.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// archiveKeys lists every key under the prefix but the claim.
func archiveKeys(t *testing.T, b archive.Bucket) []string {
	t.Helper()
	var keys []string
	err := b.List(context.Background(), "", func(o archive.ObjectInfo) error {
		if o.Key != tiering.ClaimKey {
			keys = append(keys, o.Key)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

// logCount counts the lines of node id's log that contain s.
func (c *cluster) logCount(id int, s string) int {
	b, _ := os.ReadFile(c.node(id).logPath)
	return strings.Count(string(b), s)
}

// TestLosingClusterStopsArchiving: a cluster whose archive claim another cluster took
// (--force-new-cluster while it had archived nothing yet, or the race between that
// cluster's bootstrap check and its claim) writes nothing more to the prefix: no
// segment object, no metadata snapshot. Every node reports the lost claim
// (floe_archive_claimed_by_other_cluster 1), the sealed segment stays local with the
// upload backlog and floe_rpo_seconds above 0, and everything resumes once the
// operator gives the prefix back (deletes the other cluster's claim: the Raft leader
// claims it again).
func TestLosingClusterStopsArchiving(t *testing.T) {
	const topic = "losing"
	a, o := startMinIOArchive(t)
	a.srv.SetEnv(t)
	c := startCluster(t, with(o, "--max-segment-entries", "5", "--claim-interval", "200ms",
		"--meta-snapshot-interval", "100ms", "--upload-max-backoff", "500ms"))
	b := openTestArchive(t, a)
	w := c.conn(1)
	mustOK(t, w.Register(topic), "REGISTER")
	c.waitTopic(topic)
	for i := 0; i < 5; i++ {
		mustOK(t, w.Put(topic, []byte(tierPayload(i))), "PUT %d", i)
	}
	c.waitTiers(1, topic, 1, "both", 30*time.Second)
	var ours testClaim
	c.waitFor(30*time.Second, "the archive's cluster claim", func() bool {
		var ok bool
		ours, ok = readTestClaim(b)
		return ok
	})

	claimedByOther := func(want float64) func() bool {
		return func() bool {
			for id := 1; id <= 3; id++ {
				m, err := c.scrape(id)
				if err != nil || m["floe_archive_claimed_by_other_cluster"] != want {
					return false
				}
			}
			return true
		}
	}
	putForeignClaim(t, b, "0123456789abcdef")
	c.waitFor(30*time.Second, "floe_archive_claimed_by_other_cluster 1 on every node", claimedByOther(1))
	before := archiveKeys(t, b)
	paused, refused := map[int]int{}, map[int]int{}
	for id := 1; id <= 3; id++ {
		paused[id] = c.logCount(id, "uploads paused")
		refused[id] = c.logCount(id, "no metadata snapshot written")
	}

	// Segment 2 seals: its leader does not upload it, the Raft leader writes no
	// snapshot of the changed metadata.
	for i := 5; i < 10; i++ {
		mustOK(t, w.Put(topic, []byte(tierPayload(i))), "PUT %d", i)
	}
	c.waitFor(30*time.Second, "segment 2 in an upload backlog, with floe_rpo_seconds above 0", func() bool {
		for id := 1; id <= 3; id++ {
			m, err := c.scrape(id)
			if err == nil && m["floe_archive_backlog_segments"] == 1 && m["floe_archive_backlog_bytes"] > 0 && m["floe_rpo_seconds"] > 0 {
				return true
			}
		}
		return false
	})
	c.waitFor(30*time.Second, "an uploader to pause and the Raft leader to refuse a metadata snapshot", func() bool {
		p, r := false, false
		for id := 1; id <= 3; id++ {
			p = p || c.logCount(id, "uploads paused") > paused[id]
			r = r || c.logCount(id, "no metadata snapshot written") > refused[id]
		}
		return p && r
	})
	if after := archiveKeys(t, b); !slices.Equal(after, before) {
		t.Fatalf("the cluster wrote to an archive claimed by another cluster: keys before %v, after %v", before, after)
	}
	tiers, _, err := c.sealedTiers(1, topic)
	mustOK(t, err, "STATE")
	if tiers[1] != "both" || tiers[2] != "local" {
		t.Fatalf("tiers %v, want segment 1 both and segment 2 local", tiers)
	}
	if claim, _ := readTestClaim(b); claim.ClusterID != "0123456789abcdef" {
		t.Fatalf("the losing cluster changed the other cluster's claim to %+v", claim)
	}
	var errorLine bool
	for id := 1; id <= 3; id++ {
		errorLine = errorLine || c.logCount(id, "level=ERROR msg=\"the archive belongs to another cluster: this node writes nothing to it") > 0
	}
	if !errorLine {
		t.Errorf("no node logged the ERROR that says why archiving stopped")
	}

	// The operator gives the prefix back: the other cluster's claim is deleted, the Raft
	// leader claims the prefix again, and archiving resumes.
	if err := b.Delete(context.Background(), tiering.ClaimKey); err != nil {
		t.Fatal(err)
	}
	c.waitFor(30*time.Second, "floe_archive_claimed_by_other_cluster 0 on every node", claimedByOther(0))
	c.waitTiers(1, topic, 2, "both", 30*time.Second)
	c.waitFor(30*time.Second, "the upload backlog to drain and a new metadata snapshot", func() bool {
		var backlog float64
		for id := 1; id <= 3; id++ {
			m, err := c.scrape(id)
			if err != nil {
				return false
			}
			backlog += m["floe_archive_backlog_segments"]
		}
		snaps, err := tiering.ListMetaSnapshots(context.Background(), b, nil)
		return backlog == 0 && err == nil && len(snaps) > 0 && !slices.Contains(before, snaps[len(snaps)-1].Key)
	})
	claim, _ := readTestClaim(b)
	if claim.ClusterID != ours.ClusterID || claim.TookOver != "unknown" {
		t.Fatalf("the claim after the prefix was given back: %+v, want cluster %s with took_over unknown", claim, ours.ClusterID)
	}
	checkEntries(t, "READ after archiving resumed", c.readAll(2, topic), tierPayload, 10)
}

// TestTakeoverHoldsEarlierObjects: a cluster started with --force-new-cluster over
// the claim of a cluster that had archived nothing yet records whose claim it took
// (took_over), and its sweeper deletes nothing last modified before its claim settled:
// the other cluster may still have uploaded then (it trusts a read of the claim for
// up to a minute, and its bootstrap check raced with the takeover), and may have
// dropped its local copies of those objects already.
func TestTakeoverHoldsEarlierObjects(t *testing.T) {
	a, o := startMinIOArchive(t)
	a.srv.SetEnv(t)
	b := openTestArchive(t, a)
	putForeignClaim(t, b, "0123456789abcdef")
	c := startCluster(t, with(o, "--force-new-cluster", "--orphan-grace", "1ms", "--sweep-interval", "-1s"))
	claim, ok := readTestClaim(b)
	if !ok || claim.ClusterID == "0123456789abcdef" || claim.TookOver != "0123456789abcdef" {
		t.Fatalf("claim after --force-new-cluster: %+v, want this cluster's with took_over 0123456789abcdef", claim)
	}
	// The other cluster's upload, late: no segment of this cluster names it.
	theirs := tiering.ObjectKey("theirs", 1, 5)
	if err := b.Put(context.Background(), theirs, bytes.NewReader([]byte("their segment")), 13, archive.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	var leader int
	c.waitFor(30*time.Second, "a raft leader", func() bool { leader = c.raftLeader(); return leader != 0 })
	out, err := runFloe(t, "cluster", "sweep", "--http", "127.0.0.1:"+strconv.Itoa(c.node(leader).httpPort))
	if err != nil {
		t.Fatalf("floe cluster sweep: %v\n%s", err, out)
	}
	if _, serr := b.Stat(context.Background(), theirs); serr != nil {
		t.Fatalf("the sweep deleted %s, uploaded by the cluster whose claim this one took (stat: %v):\n%s", theirs, serr, out)
	}
	if !strings.Contains(out, "may be another cluster's") {
		t.Fatalf("the sweep does not say why it kept %s:\n%s", theirs, out)
	}
}
