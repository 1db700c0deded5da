package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"floe/archive"
)

// The Raft leader copies the metadata (topics and their configs, every segment's
// record, shared cursors, members) into the archive every --meta-snapshot-interval
// when it has changed, so that the bucket alone describes the cluster (DESIGN
// section 6): <prefix>/meta/snapshots/<raft index, 20 digits>.json. The newest
// keepMetaSnapshots stay.

const (
	metaSnapshotPrefix = "meta/snapshots/"
	keepMetaSnapshots  = 10
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
	return fmt.Sprintf("%s%020d.json", metaSnapshotPrefix, index)
}

// ParseMetaSnapshotKey returns the Raft index of a snapshot key.
func ParseMetaSnapshotKey(key string) (uint64, bool) {
	name, ok := strings.CutPrefix(key, metaSnapshotPrefix)
	if !ok || len(name) != 25 || !strings.HasSuffix(name, ".json") {
		return 0, false
	}
	i, err := strconv.ParseUint(name[:20], 10, 64)
	return i, err == nil
}

func (n *Node) metaSnapshotLoop() {
	every := n.cfg.MetaSnapshotInterval
	if every == 0 {
		every = 5 * time.Minute
	}
	if every < 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var last uint64 // index of the last snapshot this node wrote
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if !n.raft.IsLeader() || n.fsm.ClusterID() == "" || n.fsm.AppliedIndex() == last {
			continue
		}
		index, err := n.writeMetaSnapshot(n.ctx)
		if err != nil {
			n.log.Warn("cannot write the metadata snapshot to the archive", "err", err)
			continue
		}
		last = index
	}
}

// writeMetaSnapshot uploads the current metadata and prunes old snapshots.
func (n *Node) writeMetaSnapshot(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	index, state, err := n.fsm.Export()
	if err != nil {
		return 0, err
	}
	body, err := json.Marshal(MetaSnapshot{
		Format: MetaSnapshotFormat, ClusterID: n.fsm.ClusterID(), RaftIndex: index,
		CreatedUnixMS: time.Now().UnixMilli(), Node: n.cfg.NodeID, State: state,
	})
	if err != nil {
		return 0, err
	}
	key := MetaSnapshotKey(index)
	err = n.bucket.Put(ctx, key, bytes.NewReader(body), int64(len(body)), archive.PutOptions{IfNoneMatch: true, ContentType: "application/json"})
	if err != nil && !archive.IsExists(err) { // exists: another leader wrote this index already
		return 0, err
	}
	n.metrics.metaSnapshot.SetToCurrentTime()
	var keys []string
	if err := n.bucket.List(ctx, metaSnapshotPrefix, func(o archive.ObjectInfo) error {
		if _, ok := ParseMetaSnapshotKey(o.Key); ok {
			keys = append(keys, o.Key)
		}
		return nil
	}); err != nil {
		return index, nil // pruning waits for the next snapshot
	}
	for len(keys) > keepMetaSnapshots { // listed in key order: oldest first
		if err := n.bucket.Delete(ctx, keys[0]); err != nil {
			break
		}
		keys = keys[1:]
	}
	return index, nil
}
