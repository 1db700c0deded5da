package tiering

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Metadata snapshots in the bucket: the Raft leader writes the whole metadata state
// under MetaSnapshotPrefix (package node) so that the bucket alone describes the
// cluster; RebuildState reads the newest back.

const (
	// MetaSnapshotPrefix is where the snapshots are: <prefix><raft index, 20 digits>.json.
	MetaSnapshotPrefix = "meta/snapshots/"
	// KeepMetaSnapshots is how many of the newest snapshots the leader keeps.
	KeepMetaSnapshots = 10
	// MetaSnapshotFormat is the version of the snapshot object's layout.
	MetaSnapshotFormat = 1
)

// MetaSnapshot is the content of a metadata snapshot object.
type MetaSnapshot struct {
	Format        int             `json:"format"`
	ClusterID     string          `json:"cluster_id"`
	RaftIndex     uint64          `json:"raft_index"`
	CreatedUnixMS int64           `json:"created_unix_ms"`
	Node          uint64          `json:"node"` // the leader that wrote it
	State         json.RawMessage `json:"state"`
}

// MetaSnapshotKey is the object key of the snapshot at a Raft index.
func MetaSnapshotKey(index uint64) string {
	return fmt.Sprintf("%s%020d.json", MetaSnapshotPrefix, index)
}

// ParseMetaSnapshotKey returns the Raft index of a snapshot key.
func ParseMetaSnapshotKey(key string) (uint64, bool) {
	name, ok := strings.CutPrefix(key, MetaSnapshotPrefix)
	if !ok || len(name) != 25 || !strings.HasSuffix(name, ".json") {
		return 0, false
	}
	i, err := strconv.ParseUint(name[:20], 10, 64)
	return i, err == nil
}
