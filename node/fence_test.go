package node

import (
	"errors"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"floe/internal/testenv"
	"floe/meta"
	"floe/node/rpc"
)

// TestFenceSurvivesRestart: a follower fenced by a failover keeps refusing the
// deposed leader's appends after it restarts before the failover commits (the
// fence is in fencesFile, not only in memory); a lifted fence stays lifted across a
// restart; and a fences file that does not parse stops the start with an error that
// names it, changing nothing.
func TestFenceSurvivesRestart(t *testing.T) {
	nodes, act := startReplicated(t, "f", "e0", "e1")
	fi := followerIndex(t, nodes, act)
	restart := func() {
		t.Helper()
		cfg := nodes[fi].cfg
		_, port, _ := net.SplitHostPort(nodes[fi].RaftAddr())
		cfg.RaftPort, _ = strconv.Atoi(port) // the address its peers know
		nodes[fi].Close()
		n, err := Start(cfg)
		if err != nil {
			t.Fatalf("restart node %d: %v", cfg.NodeID, err)
		}
		nodes[fi] = n
		testenv.WaitFor(t, 30*time.Second, "the restarted node to know the segment", func() bool {
			_, ok := n.fsm.SegmentOf(n.key("f"), act.ID)
			return ok
		})
	}
	appendCopy := func() error {
		n := nodes[fi]
		testenv.WaitFor(t, 30*time.Second, "the copy to hold the leader's 2 entries", func() bool {
			return n.HasLocal(n.key("f"), act.ID)
		})
		_, err := n.appendReplica(&rpc.Replicate{Topic: n.key("f"), Segment: act.ID, Epoch: act.Epoch(), Leader: act.Leader,
			Start: 0, Payloads: [][]byte{[]byte("e0"), []byte("e1"), []byte("x")}})
		return err
	}
	if _, _, _, err := nodes[fi].fenceReplica(nodes[fi].key("f"), act.ID, act.Epoch()); err != nil {
		t.Fatal(err)
	}
	restart()
	if err := appendCopy(); !errors.Is(err, meta.ErrStaleSegment) {
		t.Fatalf("append from the deposed leader to a fenced copy after a restart: %v, want ErrStaleSegment", err)
	}
	if err := nodes[fi].unfence(nodes[fi].key("f"), act.ID); err != nil {
		t.Fatal(err)
	}
	restart()
	if err := appendCopy(); err != nil {
		t.Fatalf("append after the fence was lifted and the node restarted: %v", err)
	}

	cfg := nodes[fi].cfg
	nodes[fi].Close()
	path := filepath.Join(cfg.DataDir, fencesFile)
	if err := os.WriteFile(path, []byte("[{\"topic\":"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := Start(cfg); err == nil {
		n.Close()
		t.Fatal("a node started with a fences file that does not parse")
	} else if !strings.Contains(err.Error(), fencesFile) {
		t.Fatalf("start with a bad fences file: %v; want an error naming %s", err, fencesFile)
	}
	if b, _ := os.ReadFile(path); string(b) != "[{\"topic\":" {
		t.Fatalf("the bad fences file was changed: %q", b)
	}
}

// FuzzParseFences: any content of the fences file is refused or parsed, never a
// panic, and what parses encodes to content that parses to the same fences.
func FuzzParseFences(f *testing.F) {
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"topic":"t","segment":3},{"topic":"a","segment":1}]`))
	f.Add([]byte(`[{"topic":"","segment":3}]`))
	f.Add([]byte(`{"topic":"t"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fenced, err := parseFences(b)
		if err != nil {
			return
		}
		enc, err := encodeFences(fenced)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseFences(enc)
		if err != nil || !maps.Equal(again, fenced) {
			t.Fatalf("%q parsed to %v, encoded as %q, parsed again to %v, %v", b, fenced, enc, again, err)
		}
	})
}
