package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"floe/archive"
	"floe/tiering"
)

// The Raft leader copies the metadata (topics and their configs, every segment's
// record, shared cursors, members) into the archive every --meta-snapshot-interval
// when it has changed, so that the bucket alone describes the cluster, under tiering.MetaSnapshotKey (tiering/layout.go). The newest
// tiering.KeepMetaSnapshots of this cluster stay; snapshots of any other cluster are
// never pruned, and a key another cluster wrote is an error, never taken for ours.

func (n *Node) metaSnapshotLoop() {
	var last uint64                 // index of the last snapshot this node wrote
	clusters := map[string]string{} // snapshot key -> cluster id, as read from the bucket
	n.leaderEvery(n.cfg.MetaSnapshotInterval, 5*time.Minute, func() {
		if n.fsm.ClusterID() == "" || n.fsm.AppliedIndex() == last {
			return
		}
		index, err := n.writeMetaSnapshot(n.ctx, clusters)
		if err != nil {
			n.log.Warn("cannot write the metadata snapshot to the archive", "err", err)
			return
		}
		last = index
	})
}

// writeMetaSnapshot uploads the current metadata and prunes this cluster's old
// snapshots. clusters caches the cluster id of each snapshot key seen.
func (n *Node) writeMetaSnapshot(ctx context.Context, clusters map[string]string) (uint64, error) {
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
	id := n.fsm.ClusterID()
	if err := n.archiveWritable(ctx); err != nil {
		return 0, fmt.Errorf("no metadata snapshot written: %w", err)
	}
	err = n.bucket.Put(ctx, key, bytes.NewReader(body), int64(len(body)), archive.PutOptions{IfNoneMatch: true, ContentType: "application/json"})
	if archive.IsExists(err) { // another leader of this cluster wrote this index already, or another cluster did
		owner, cerr := tiering.MetaSnapshotCluster(ctx, n.bucket, key)
		switch {
		case cerr != nil:
			return 0, cerr
		case owner != id:
			return 0, fmt.Errorf("%w: %s holds cluster %s's snapshot, this is cluster %s (two clusters share the archive prefix)",
				tiering.ErrForeignSnapshot, key, owner, id)
		}
		err = nil
	}
	if err != nil {
		return 0, err
	}
	n.metrics.metaSnapshot.SetToCurrentTime()
	clusters[key] = id
	all, err := tiering.ListMetaSnapshots(ctx, n.bucket, clusters)
	if err != nil {
		return index, nil // pruning waits for the next snapshot
	}
	// Only this cluster's own snapshots count and are pruned: another cluster's are
	// never deleted (nor preferred by readers, who filter by cluster id too).
	own := slices.DeleteFunc(all, func(s tiering.MetaSnapshotInfo) bool { return s.ClusterID != id })
	for len(own) > tiering.KeepMetaSnapshots { // oldest first
		if err := n.bucket.Delete(ctx, own[0].Key); err != nil {
			break
		}
		delete(clusters, own[0].Key)
		own = own[1:]
	}
	return index, nil
}
