package logstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"floe/internal/testenv"
)

// listFSM is a trivial FSM: the list of commands applied, in order.
type listFSM struct {
	mu       sync.Mutex
	cmds     []string
	restores int
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, string(l.Data))
	return len(f.cmds)
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return listSnapshot(slices.Clone(f.cmds)), nil
}

func (f *listFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var cmds []string
	if err := json.NewDecoder(rc).Decode(&cmds); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = cmds
	f.restores++
	return nil
}

func (f *listFSM) state() ([]string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cmds), f.restores
}

type listSnapshot []string

func (s listSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode([]string(s)); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (listSnapshot) Release() {}

// node is one single-voter raft over a Store in dir.
type node struct {
	r     *raft.Raft
	store *Store
	fsm   *listFSM
	trans *raft.InmemTransport
}

const testNodeID = raft.ServerID("n1")

func startNode(t *testing.T, dir string, bootstrap bool) *node {
	t.Helper()
	store, err := Open(filepath.Join(dir, "log"), Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	addr, trans := raft.NewInmemTransport("")
	conf := raft.DefaultConfig()
	conf.LocalID = testNodeID
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.SnapshotInterval = time.Hour // snapshots only when the test asks
	conf.SnapshotThreshold = 1 << 40
	conf.TrailingLogs = 20 // a snapshot compacts the log, through DeleteRange
	conf.LogOutput = io.Discard
	conf.LogLevel = "ERROR"

	has, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		t.Fatalf("HasExistingState: %v", err)
	}
	if has == bootstrap {
		t.Fatalf("HasExistingState = %t on a node that should bootstrap=%t", has, bootstrap)
	}
	boot := raft.Configuration{Servers: []raft.Server{{ID: testNodeID, Address: addr}}}
	err = raft.BootstrapCluster(conf, store, store, snaps, trans, boot)
	switch {
	case bootstrap && err != nil:
		t.Fatalf("BootstrapCluster: %v", err)
	case !bootstrap && !errors.Is(err, raft.ErrCantBootstrap):
		t.Fatalf("BootstrapCluster on a node with state = %v, want ErrCantBootstrap", err)
	}

	fsm := &listFSM{}
	r, err := raft.NewRaft(conf, fsm, store, store, snaps, trans)
	if err != nil {
		t.Fatalf("NewRaft: %v", err)
	}
	n := &node{r: r, store: store, fsm: fsm, trans: trans}
	testenv.WaitFor(t, 10*time.Second, "leadership", func() bool { return r.State() == raft.Leader })
	return n
}

func (n *node) stop(t *testing.T) {
	t.Helper()
	if err := n.r.Shutdown().Error(); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := n.trans.Close(); err != nil {
		t.Errorf("transport Close: %v", err)
	}
	if err := n.store.Close(); err != nil {
		t.Errorf("store Close: %v", err)
	}
}

func (n *node) apply(t *testing.T, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		f := n.r.Apply(fmt.Appendf(nil, "cmd-%d", i), 5*time.Second)
		if err := f.Error(); err != nil {
			t.Fatalf("Apply(cmd-%d): %v", i, err)
		}
		if got := f.Response(); got != i {
			t.Fatalf("Apply(cmd-%d) response = %v, want %d", i, got, i)
		}
	}
}

func wantCmds(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("cmd-%d", i+1)
	}
	return out
}

// TestRaftEndToEnd runs a real single-node hashicorp/raft on the Store for both log
// and stable state: bootstrap, apply, snapshot (which compacts the log), apply more,
// restart from the same directory, and check the FSM comes back whole, from the
// snapshot plus the log entries after it.
func TestRaftEndToEnd(t *testing.T) {
	dir := t.TempDir()
	const beforeSnap, afterSnap = 300, 50

	n := startNode(t, dir, true)
	n.apply(t, 1, beforeSnap)
	if err := n.r.Snapshot().Error(); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	first, err := n.store.FirstIndex()
	if err != nil || first <= 1 {
		t.Fatalf("after a snapshot, FirstIndex = %d, %v; want the log compacted past 1", first, err)
	}
	n.apply(t, beforeSnap+1, beforeSnap+afterSnap)
	lastBefore := n.r.LastIndex()
	term, err := n.store.GetUint64([]byte("CurrentTerm"))
	if err != nil || term == 0 {
		t.Fatalf("GetUint64(CurrentTerm) = %d, %v; want a term", term, err)
	}
	n.stop(t)

	n = startNode(t, dir, false)
	defer n.stop(t)
	want := wantCmds(beforeSnap + afterSnap)
	testenv.WaitFor(t, 10*time.Second, "the FSM to catch up after restart", func() bool {
		cmds, _ := n.fsm.state()
		return len(cmds) >= len(want)
	})
	cmds, restores := n.fsm.state()
	if !slices.Equal(cmds, want) {
		t.Errorf("after restart the FSM holds %d commands, want %d in order (first diff near %v)",
			len(cmds), len(want), firstDiff(cmds, want))
	}
	if restores == 0 {
		t.Errorf("the FSM was not restored from the snapshot on restart")
	}
	if got := n.r.LastIndex(); got <= lastBefore {
		t.Errorf("after restart LastIndex = %d, want above %d (a new leader's no-op)", got, lastBefore)
	}
	if got, err := n.store.GetUint64([]byte("CurrentTerm")); err != nil || got <= term {
		t.Errorf("after restart CurrentTerm = %d, %v; want above %d", got, err, term)
	}

	// The restarted node keeps working on the same store.
	n.apply(t, len(want)+1, len(want)+10)
	if cmds, _ := n.fsm.state(); !slices.Equal(cmds, wantCmds(len(want)+10)) {
		t.Errorf("after more applies the FSM holds %d commands, want %d", len(cmds), len(want)+10)
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
