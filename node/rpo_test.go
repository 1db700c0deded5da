package node

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"floe/internal/testenv"
	"floe/meta"
)

// startSingle starts a one-node cluster on cfg (its data dir kept across restarts) and
// waits until it holds the write lease.
func startSingle(t *testing.T, cfg Config) *Node {
	t.Helper()
	n, err := Start(cfg)
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	testenv.WaitFor(t, 20*time.Second, "the write lease", n.hasLease)
	return n
}

// gauge returns the value of an unlabelled gauge of n's registry, and whether it exists.
func gauge(t *testing.T, n *Node, name string) (float64, bool) {
	t.Helper()
	mfs, err := n.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestAgeSurvivesRestart: a restarted leader (no --archive) adopts its non-empty
// active segment without a write: the segment's age, and so floe_rpo_seconds, counts
// from its replicated creation time, not from the restart; and once the age limit has
// passed, the segment rolls over with no write at all.
func TestAgeSurvivesRestart(t *testing.T) {
	cfg := Config{
		NodeID: 1, DataDir: t.TempDir(), RaftPort: testenv.FreePort(t), HTTPPort: 0,
		MaxSegmentAge: time.Hour, HeartbeatTimeout: 200 * time.Millisecond, LeaseTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RaftLogLevel: "error",
	}
	ctx := context.Background()
	const topic = "quiet"

	n := startSingle(t, cfg)
	for _, name := range []string{"floe_rpo_seconds", "floe_cluster_rpo_seconds"} {
		if v, ok := gauge(t, n, name); !ok || v != 0 {
			t.Errorf("%s = %v (present %v) with no entries, want 0", name, v, ok)
		}
	}
	if err := n.Register(ctx, topic, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Append(ctx, topic, [][]byte{[]byte("x")}); err != nil {
		t.Fatal(err)
	}
	act, _, _ := n.fsm.ActiveOf(n.key(topic))
	if ms := n.writer.OldestUnsealedMS(); ms < act.CreatedUnixMS {
		t.Errorf("oldest unsealed entry at %d ms, before its segment's creation at %d ms", ms, act.CreatedUnixMS)
	}
	if v, _ := gauge(t, n, "floe_rpo_seconds"); v < 0 {
		t.Errorf("floe_rpo_seconds = %v", v)
	}
	n.Close()

	n = startSingle(t, cfg)
	testenv.WaitFor(t, 10*time.Second, "the restarted node to adopt its non-empty segment", func() bool {
		return n.writer.OldestUnsealedMS() != 0
	})
	if got := n.writer.OldestUnsealedMS(); got != act.CreatedUnixMS {
		t.Errorf("after a restart the oldest unsealed entry is at %d ms, want the segment's creation %d ms", got, act.CreatedUnixMS)
	}
	if n.writer.Existing(n.key(topic)) == nil {
		t.Errorf("no appender for %q after a restart: its age limit is never checked", topic)
	}
	for _, name := range []string{"floe_rpo_seconds", "floe_cluster_rpo_seconds"} {
		if v, ok := gauge(t, n, name); !ok || v <= 0 {
			t.Errorf("after a restart %s = %v (present %v), want > 0", name, v, ok)
		}
	}
	n.Close()

	// A limit that has passed since the segment's creation: it rolls with no write.
	cfg.MaxSegmentAge = max(time.Duration(time.Now().UnixMilli()-act.CreatedUnixMS)*time.Millisecond/2, time.Millisecond)
	n = startSingle(t, cfg)
	testenv.WaitFor(t, 10*time.Second, "the quiet segment to roll over by age", func() bool {
		a, _, _ := n.fsm.ActiveOf(n.key(topic))
		return a.ID != act.ID
	})
	tp, _ := n.fsm.Topic(n.key(topic))
	if s := tp.Segment(act.ID); s == nil || s.State != meta.Sealed || s.Count != 1 {
		t.Fatalf("segment %d after the age roll-over: %+v, want sealed with 1 entry", act.ID, s)
	}
	testenv.WaitFor(t, 10*time.Second, "floe_rpo_seconds back to 0", func() bool {
		v, _ := gauge(t, n, "floe_rpo_seconds")
		return v == 0
	})
}
