package tiering

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"floe/archive"
)

// Metadata snapshots in the bucket: the Raft leader writes the whole metadata state
// under MetaSnapshotPrefix (package node; the keys are built in layout.go) so that the
// bucket alone describes the cluster; RebuildState reads the newest back. Every
// snapshot names its cluster: readers and the pruning leader pick a cluster's own
// snapshots, never another's.

const (
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

// ErrForeignSnapshot: a metadata snapshot in the bucket belongs to another cluster.
// Its text reaches operators verbatim (floe restore, a refused start), so it carries
// no package prefix.
var ErrForeignSnapshot = errors.New("metadata snapshot of another cluster")

// MetaSnapshotCluster returns the cluster id of the snapshot at key. It decodes only
// the snapshot's leading fields (the state, which follows them, is not read).
func MetaSnapshotCluster(ctx context.Context, b archive.Bucket, key string) (string, error) {
	rc, err := b.Get(ctx, key)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	d := json.NewDecoder(rc)
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return "", fmt.Errorf("tiering: %s is not a floe metadata snapshot: %v", key, err)
	}
	for d.More() {
		name, err := d.Token()
		if err != nil {
			return "", fmt.Errorf("tiering: %s is not a floe metadata snapshot: %w", key, err)
		}
		if name == "cluster_id" {
			var id string
			if err := d.Decode(&id); err != nil {
				return "", fmt.Errorf("tiering: %s: cluster_id: %w", key, err)
			}
			return id, nil
		}
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			return "", fmt.Errorf("tiering: %s is not a floe metadata snapshot: %w", key, err)
		}
	}
	return "", fmt.Errorf("tiering: %s is not a floe metadata snapshot: no cluster_id", key)
}

// MetaSnapshotInfo names one metadata snapshot in the bucket.
type MetaSnapshotInfo struct {
	Key       string
	Index     uint64
	ClusterID string
}

// ListMetaSnapshots returns the metadata snapshots in the bucket, oldest first, with
// the cluster each belongs to. clusters caches key -> cluster id across calls (keys
// are never rewritten); it may be nil.
func ListMetaSnapshots(ctx context.Context, b archive.Bucket, clusters map[string]string) ([]MetaSnapshotInfo, error) {
	var out []MetaSnapshotInfo
	if err := b.List(ctx, MetaSnapshotPrefix, func(o archive.ObjectInfo) error {
		if i, ok := ParseMetaSnapshotKey(o.Key); ok {
			out = append(out, MetaSnapshotInfo{Key: o.Key, Index: i})
		}
		return nil
	}); err != nil {
		return nil, err
	}
	for i := range out {
		id, ok := clusters[out[i].Key]
		if !ok {
			var err error
			if id, err = MetaSnapshotCluster(ctx, b, out[i].Key); archive.IsNotFound(err) {
				continue // pruned meanwhile
			} else if err != nil {
				return nil, err
			}
			if clusters != nil {
				clusters[out[i].Key] = id
			}
		}
		out[i].ClusterID = id
	}
	return slices.DeleteFunc(out, func(s MetaSnapshotInfo) bool { return s.ClusterID == "" }), nil
}

// NewestMetaSnapshot reads the newest metadata snapshot of clusterID in the bucket. With
// clusterID empty, the bucket must hold snapshots of one cluster only: a bucket prefix
// that two clusters wrote into is refused, naming them, so that a restore or a listing
// never shows one cluster for another.
func NewestMetaSnapshot(ctx context.Context, b archive.Bucket, clusterID string) (string, *MetaSnapshot, error) {
	all, err := ListMetaSnapshots(ctx, b, nil)
	if err != nil {
		return "", nil, err
	}
	var ids []string
	for _, s := range all {
		if !slices.Contains(ids, s.ClusterID) {
			ids = append(ids, s.ClusterID)
		}
	}
	if clusterID == "" && len(ids) > 1 {
		return "", nil, fmt.Errorf("%w: the bucket holds metadata snapshots (%s*) of clusters %s: name the one to use with --cluster-id",
			ErrForeignSnapshot, MetaSnapshotPrefix, strings.Join(ids, ", "))
	}
	var key string
	for _, s := range all {
		if clusterID == "" || s.ClusterID == clusterID {
			key = s.Key // oldest first: the last is the newest
		}
	}
	if key == "" {
		if clusterID != "" {
			return "", nil, fmt.Errorf("tiering: no metadata snapshot of cluster %s in the archive (%s*; clusters there: %v)", clusterID, MetaSnapshotPrefix, ids)
		}
		return "", nil, fmt.Errorf("tiering: no metadata snapshot in the archive (%s*): nothing to restore the cluster from", MetaSnapshotPrefix)
	}
	rc, err := b.Get(ctx, key)
	if err != nil {
		return "", nil, err
	}
	defer rc.Close()
	var snap MetaSnapshot
	if err := json.NewDecoder(rc).Decode(&snap); err != nil || snap.Format != MetaSnapshotFormat {
		return "", nil, fmt.Errorf("tiering: %s is not a floe metadata snapshot of format %d: %v", key, MetaSnapshotFormat, err)
	}
	return key, &snap, nil
}
