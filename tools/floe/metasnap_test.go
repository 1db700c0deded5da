package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMetaSnapshotInArchive (DESIGN section 6): the Raft leader copies changed metadata
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
					Topics map[string]json.RawMessage `json:"topics"`
				} `json:"state"`
			}
			if json.Unmarshal(b, &snap) != nil || snap.Format != 1 || snap.ClusterID == "" {
				return false
			}
			_, ok := snap.State.Topics[topic]
			return ok
		})
	}
	if n := len(snapshots()); n > 10 {
		t.Fatalf("%d metadata snapshots in the archive, want the newest 10 at most: %v", n, snapshots())
	}
	mustOK(t, w.Put("snap-03", []byte("x")), "PUT")
	out, err := runFloe(t, "archive", "meta", "--archive", "file://"+dir)
	t.Logf("floe archive meta:\n%s", out)
	if err != nil || !strings.Contains(out, "snap-14") || !strings.Contains(out, "node 3") {
		t.Fatalf("floe archive meta: %v\n%s", err, out)
	}
}
