package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBootstrapInterrupted: the first node of a new cluster dies at each step of its
// bootstrap (after claiming the archive, after creating its Raft state, after
// bootstrapping Raft but before the metadata records the cluster id). Started again
// with the same flags, it finishes the same bootstrap: it becomes a working cluster
// whose metadata names the cluster the archive's claim names, and it archives (a
// cluster without an id, or with another one, would find its archive claimed by
// "another cluster" and pause it forever).
func TestBootstrapInterrupted(t *testing.T) {
	for _, point := range []string{"bootstrap-after-claim", "bootstrap-before-raft", "bootstrap-before-init"} {
		t.Run(point, func(t *testing.T) {
			archiveDir := t.TempDir()
			c := newCluster(t, clusterOpts{nodes: 1, args: []string{"--archive", "file://" + archiveDir, "--max-segment-entries", "3"}})
			p := c.node(1)

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, floeBin, c.agentArgs(1)...)
			cmd.Env = append(os.Environ(), "FLOE_FAILPOINT="+point)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 3 || !strings.Contains(string(out), "failpoint "+point) {
				t.Fatalf("node 1 with FLOE_FAILPOINT=%s: %v, want exit status 3 at the failpoint:\n%s", point, err, out)
			}

			c.start(1)
			c.waitMembers(1, 30*time.Second)
			c.waitReady(30 * time.Second)
			claimed := func() string {
				var claim struct {
					ClusterID string `json:"cluster_id"`
				}
				b, err := os.ReadFile(filepath.Join(archiveDir, "meta", "cluster.json"))
				if err != nil || json.Unmarshal(b, &claim) != nil {
					return ""
				}
				return claim.ClusterID
			}
			c.waitFor(30*time.Second, "the metadata to name the cluster the archive's claim names", func() bool {
				id := claimed()
				m := c.metrics(1)
				return id != "" && m != nil && strings.Contains(string(m.Raw), `"cluster_id":"`+id+`"`)
			})
			c.waitFor(20*time.Second, "the unfinished bootstrap's id file to go", func() bool {
				_, err := os.Stat(filepath.Join(p.dataDir, "bootstrap-cluster-id"))
				return os.IsNotExist(err)
			})

			w := c.conn(1)
			mustOK(t, w.Register("boot"), "REGISTER boot")
			for i := 0; i < 4; i++ {
				mustOK(t, w.Put("boot", []byte("x")), "PUT %d", i)
			}
			c.waitFor(30*time.Second, "segment 1 to be archived", func() bool {
				st, err := c.tryState(1, "boot")
				return err == nil && len(st.Segments) > 0 && st.Segments[0].State == "archived"
			})
		})
	}
}
