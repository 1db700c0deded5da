package meta

import (
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// A member that joins a cluster seeded by floe restore --cluster gets the seed snapshot
// from the leader (InstallSnapshot: the leader has no log below it) and restores it
// through FSM.Restore, which does not know the Raft index. The seed must name its
// applied index itself, or that member's AppliedIndex and Export read 0 until the next
// command.
func TestSeedSnapshotNamesItsAppliedIndex(t *testing.T) {
	dir := t.TempDir()
	state := []byte(`{"topics":{},"nodes":{},"cluster_id":"abc"}`)
	if err := Seed(dir, 1, "127.0.0.1:6000", state, 91); err != nil {
		t.Fatal(err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	list, err := snaps.List()
	if err != nil || len(list) != 1 {
		t.Fatalf("snapshots: %v %v", list, err)
	}
	_, rc, err := snaps.Open(list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	f := NewFSM()
	if err := f.Restore(rc); err != nil {
		t.Fatal(err)
	}
	index, _, err := f.Export()
	if err != nil {
		t.Fatal(err)
	}
	if f.ClusterID() != "abc" || f.AppliedIndex() != 91 || index != 91 {
		t.Fatalf("restored seed: cluster %q, AppliedIndex %d, Export index %d; want abc, 91, 91", f.ClusterID(), f.AppliedIndex(), index)
	}
}
