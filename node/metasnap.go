package node

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"floe/archive"
	"floe/tiering"
)

// The Raft leader copies the metadata (topics and their configs, every segment's
// record, shared cursors, members) into the archive every --meta-snapshot-interval
// when it has changed, so that the bucket alone describes the cluster (DESIGN
// section 6): <prefix>/meta/snapshots/<raft index, 20 digits>.json. The newest
// tiering.KeepMetaSnapshots stay.

func (n *Node) metaSnapshotLoop() {
	var last uint64 // index of the last snapshot this node wrote
	n.leaderEvery(n.cfg.MetaSnapshotInterval, 5*time.Minute, func() {
		if n.fsm.ClusterID() == "" || n.fsm.AppliedIndex() == last {
			return
		}
		index, err := n.writeMetaSnapshot(n.ctx)
		if err != nil {
			n.log.Warn("cannot write the metadata snapshot to the archive", "err", err)
			return
		}
		last = index
	})
}

// writeMetaSnapshot uploads the current metadata and prunes old snapshots.
func (n *Node) writeMetaSnapshot(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	index, state, err := n.fsm.Export()
	if err != nil {
		return 0, err
	}
	body, err := json.Marshal(tiering.MetaSnapshot{
		Format: tiering.MetaSnapshotFormat, ClusterID: n.fsm.ClusterID(), RaftIndex: index,
		CreatedUnixMS: time.Now().UnixMilli(), Node: n.cfg.NodeID, State: state,
	})
	if err != nil {
		return 0, err
	}
	key := tiering.MetaSnapshotKey(index)
	err = n.bucket.Put(ctx, key, bytes.NewReader(body), int64(len(body)), archive.PutOptions{IfNoneMatch: true, ContentType: "application/json"})
	if err != nil && !archive.IsExists(err) { // exists: another leader wrote this index already
		return 0, err
	}
	n.metrics.metaSnapshot.SetToCurrentTime()
	var keys []string
	if err := n.bucket.List(ctx, tiering.MetaSnapshotPrefix, func(o archive.ObjectInfo) error {
		if _, ok := tiering.ParseMetaSnapshotKey(o.Key); ok {
			keys = append(keys, o.Key)
		}
		return nil
	}); err != nil {
		return index, nil // pruning waits for the next snapshot
	}
	for len(keys) > tiering.KeepMetaSnapshots { // listed in key order: oldest first
		if err := n.bucket.Delete(ctx, keys[0]); err != nil {
			break
		}
		keys = keys[1:]
	}
	return index, nil
}
