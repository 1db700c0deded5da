package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"floe/archive"
	"floe/tiering"
)

// The bucket names the cluster that archives into it (DESIGN section 9): a node that
// bootstraps a new cluster first claims the bucket, and refuses to start if another
// cluster has claimed it already. So a wiped node 1 restarted without --join cannot
// bootstrap a second cluster beside the first one and write into its bucket, and two
// clusters pointed at one bucket by mistake are caught at the first start.

// claimKey is the claim's object, under the archive's prefix.
const claimKey = "meta/cluster.json"

// claimInterval is how often the Raft leader refreshes the claim's seen_unix_ms.
const claimInterval = time.Minute

// ErrBucketClaimed: the bucket belongs to another cluster.
var ErrBucketClaimed = errors.New("node: the archive belongs to another cluster")

// clusterClaim is the claim object.
type clusterClaim struct {
	ClusterID     string `json:"cluster_id"`
	CreatedUnixMS int64  `json:"created_unix_ms"`
	// SeenUnixMS is when the cluster's Raft leader last refreshed the claim (every
	// minute while it runs): how an operator tells a live cluster from a dead one.
	SeenUnixMS int64  `json:"seen_unix_ms"`
	Node       uint64 `json:"node"`      // the node that wrote it last
	Advertise  string `json:"advertise"` // that node's cluster address
}

func (n *Node) newClaim(id string, created int64) *clusterClaim {
	now := time.Now().UnixMilli()
	if created == 0 {
		created = now
	}
	return &clusterClaim{ClusterID: id, CreatedUnixMS: created, SeenUnixMS: now, Node: n.cfg.NodeID, Advertise: n.advertise}
}

func readClaim(ctx context.Context, b archive.Bucket) (*clusterClaim, error) {
	rc, err := b.Get(ctx, claimKey)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return nil, archive.Error("read", claimKey, "archive", err)
	}
	var c clusterClaim
	if err := json.Unmarshal(body, &c); err != nil || c.ClusterID == "" {
		return nil, fmt.Errorf("%w: %s in the archive is not a floe cluster claim (%v)", ErrBucketClaimed, claimKey, err)
	}
	return &c, nil
}

func writeClaim(ctx context.Context, b archive.Bucket, c *clusterClaim, create bool) error {
	body, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return b.Put(ctx, claimKey, bytes.NewReader(body), int64(len(body)), archive.PutOptions{IfNoneMatch: create, ContentType: "application/json"})
}

// claimedError describes the cluster that holds the bucket.
func claimedError(c *clusterClaim) error {
	seen := time.Since(time.UnixMilli(c.SeenUnixMS)).Round(time.Second)
	return fmt.Errorf("%w: %s names cluster %s (created %s by node %d at %s, its raft leader last seen %v ago). "+
		"A node that lost its data dir must rejoin with --join <host:raftport of a member>; "+
		"if that cluster is gone, restore it from the archive with floe restore --cluster, or start a new cluster on a fresh archive prefix; "+
		"--force-new-cluster replaces the claim only while the prefix holds none of its segment objects or metadata snapshots",
		ErrBucketClaimed, claimKey, c.ClusterID, time.UnixMilli(c.CreatedUnixMS).UTC().Format(time.RFC3339), c.Node, c.Advertise, seen)
}

// ErrArchiveInUse: the archive prefix holds another cluster's segment objects or
// metadata snapshots, so a new cluster may not start on it.
var ErrArchiveInUse = errors.New("node: the archive prefix holds another cluster's data")

var errStopListing = errors.New("stop listing")

// checkArchiveUnused refuses a prefix that holds any segment object or metadata
// snapshot: they belong to another cluster (the new one has written nothing yet). A
// new cluster beside them would collide with their keys, and its sweeper would delete
// their objects as unreferenced. A store that cannot be listed is an error too.
func checkArchiveUnused(ctx context.Context, b archive.Bucket) error {
	var object string
	err := b.List(ctx, "topics/", func(o archive.ObjectInfo) error {
		if _, _, _, ok := tiering.ParseObjectKey(o.Key); ok {
			object = o.Key
			return errStopListing
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopListing) {
		return err
	}
	snaps, err := tiering.ListMetaSnapshots(ctx, b, nil)
	if err != nil {
		return err
	}
	if object == "" && len(snaps) == 0 {
		return nil
	}
	var found []string
	if object != "" {
		found = append(found, "segment objects (e.g. "+object+")")
	}
	if len(snaps) > 0 {
		var ids []string
		for _, s := range snaps {
			if !slices.Contains(ids, s.ClusterID) {
				ids = append(ids, s.ClusterID)
			}
		}
		found = append(found, fmt.Sprintf("%d metadata snapshots of cluster %s (newest %s)", len(snaps), strings.Join(ids, ", "), snaps[len(snaps)-1].Key))
	}
	return fmt.Errorf("%w: it holds %s. A new cluster must not start beside them: its object keys would collide with theirs "+
		"and its orphan sweeper would delete them. Choose one: "+
		"(1) start the new cluster on a fresh archive prefix (--archive <scheme>://<bucket>/<new prefix>); "+
		"(2) adopt the old data: floe restore --cluster --archive <this archive> --node-id <id> --data-dir <empty dir>, then start the node on that data dir. "+
		"--force-new-cluster does not override this; to discard the old data, delete everything under the prefix first (that loses it for good)",
		ErrArchiveInUse, strings.Join(found, " and "))
}

// claimBucket claims the archive for the new cluster id before this node bootstraps
// it: it refuses an archive whose claim names another cluster (unless
// --force-new-cluster), and any archive prefix that holds segment objects or metadata
// snapshots (whatever the flags). It retries while the store fails, for up to a
// minute: a compose stack may start the nodes before the store is up.
func (n *Node) claimBucket(id string) error {
	ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
	defer cancel()
	for attempt := 0; ; attempt++ {
		err := n.tryClaim(ctx, id)
		if err == nil || errors.Is(err, ErrBucketClaimed) || errors.Is(err, ErrArchiveInUse) {
			return err
		}
		n.log.Warn("cannot claim the archive for the new cluster yet", "attempt", attempt+1, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("node: cannot claim the archive for the new cluster (is the object store up?): %w", err)
		case <-time.After(time.Duration(min(attempt+1, 5)) * time.Second):
		}
	}
}

func (n *Node) tryClaim(ctx context.Context, id string) error {
	c, err := readClaim(ctx, n.bucket)
	switch {
	case err == nil && !n.cfg.ForceNewCluster:
		return claimedError(c)
	case err != nil && !archive.IsNotFound(err) && !(n.cfg.ForceNewCluster && errors.Is(err, ErrBucketClaimed)):
		return err // unreadable, or (without --force-new-cluster) not a claim
	}
	if err := checkArchiveUnused(ctx, n.bucket); err != nil {
		return err
	}
	err = writeClaim(ctx, n.bucket, n.newClaim(id, 0), !n.cfg.ForceNewCluster)
	if archive.IsExists(err) { // another node bootstraps on this archive right now
		c, err := readClaim(ctx, n.bucket)
		if err != nil {
			return err
		}
		return claimedError(c)
	}
	if err == nil && n.cfg.ForceNewCluster {
		n.log.Warn("claimed the archive for a new cluster, replacing any earlier claim (--force-new-cluster); the prefix held no segment objects or metadata snapshots", "cluster", id)
	}
	return err
}

// checkOwnClaim returns nil unless the archive's claim names another cluster (or is
// not a floe claim, or cannot be read). The bootstrap check keeps a new cluster off a
// prefix that holds data, but one started with --force-new-cluster while this cluster
// had written nothing yet takes the claim: from then on this cluster's metadata knows
// nothing of that cluster's objects, and must not delete them as orphans. A missing
// claim (a cluster from before claims; claimLoop writes it) is no objection.
func (n *Node) checkOwnClaim(ctx context.Context) error {
	c, err := readClaim(ctx, n.bucket)
	switch {
	case archive.IsNotFound(err):
		return nil
	case err != nil:
		return err
	case c.ClusterID != n.fsm.ClusterID():
		n.metrics.claimedByOther.Set(1)
		return claimedError(c)
	}
	return nil
}

// claimLoop keeps the claim fresh while this node is the Raft leader, and writes it
// if it is missing (a cluster that predates claims, or an emptied bucket). A claim
// naming another cluster is reported, never overwritten.
func (n *Node) claimLoop() {
	t := time.NewTicker(claimInterval)
	defer t.Stop()
	for {
		if n.raft.IsLeader() && n.fsm.ClusterID() != "" {
			n.refreshClaim()
		}
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *Node) refreshClaim() {
	ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
	defer cancel()
	id := n.fsm.ClusterID()
	c, err := readClaim(ctx, n.bucket)
	switch {
	case archive.IsNotFound(err):
		err = writeClaim(ctx, n.bucket, n.newClaim(id, 0), true)
	case err == nil && c.ClusterID == id:
		err = writeClaim(ctx, n.bucket, n.newClaim(id, c.CreatedUnixMS), false)
	case err == nil:
		err = claimedError(c)
	}
	n.metrics.claimedByOther.Set(0)
	if errors.Is(err, ErrBucketClaimed) {
		n.metrics.claimedByOther.Set(1)
		n.log.Error("the archive belongs to another cluster; this cluster's uploads may collide with its objects", "cluster", id, "err", err)
		return
	}
	if err != nil && !archive.IsExists(err) {
		n.log.Warn("cannot refresh the archive's cluster claim", "err", err)
	}
}
