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
	"sync"
	"time"

	"floe/archive"
	"floe/tiering"
)

// The bucket names the cluster that archives into it (docs/ARCHITECTURE.md, "Bucket layout and the cluster claim"): a node that
// bootstraps a new cluster first claims the bucket, and refuses to start if another
// cluster has claimed it already. So a wiped node 1 restarted without --join cannot
// bootstrap a second cluster beside the first one and write into its bucket, and two
// clusters pointed at one bucket by mistake are caught at the first start.

// ErrBucketClaimed: the bucket belongs to another cluster. Like ErrArchiveInUse, its
// text reaches operators verbatim (a refused start, an HTTP error), so it carries no
// package prefix.
var ErrBucketClaimed = errors.New("the archive belongs to another cluster")

// clusterClaim is the claim object, at tiering.ClaimKey under the archive's prefix.
type clusterClaim struct {
	ClusterID     string `json:"cluster_id"`
	CreatedUnixMS int64  `json:"created_unix_ms"`
	// SeenUnixMS is when the cluster's Raft leader last refreshed the claim (every
	// minute while it runs): how an operator tells a live cluster from a dead one.
	SeenUnixMS int64  `json:"seen_unix_ms"`
	Node       uint64 `json:"node"`      // the node that wrote it last
	Advertise  string `json:"advertise"` // that node's cluster address
	// TookOver is set when the claim was not made on a prefix nobody had claimed: the
	// id of the cluster whose claim --force-new-cluster replaced, or tookOverUnknown
	// when a Raft leader wrote a claim that had gone missing (deleted to give the
	// prefix back to this cluster, or a cluster from before claims). Another cluster
	// may then have archived here until shortly after CreatedUnixMS, and the sweeper
	// deletes nothing older than that (claimSettle). Kept when the claim is refreshed.
	TookOver string `json:"took_over,omitempty"`
}

// tookOverUnknown is clusterClaim.TookOver of a claim a Raft leader wrote because it
// was missing.
const tookOverUnknown = "unknown"

func (n *Node) newClaim(id string, created int64, tookOver string) *clusterClaim {
	now := time.Now().UnixMilli()
	if created == 0 {
		created = now
	}
	return &clusterClaim{ClusterID: id, CreatedUnixMS: created, SeenUnixMS: now, Node: n.cfg.NodeID, Advertise: n.advertise, TookOver: tookOver}
}

func readClaim(ctx context.Context, b archive.Bucket) (*clusterClaim, error) {
	rc, err := b.Get(ctx, tiering.ClaimKey)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return nil, archive.Error("read", tiering.ClaimKey, "archive", err)
	}
	var c clusterClaim
	if err := json.Unmarshal(body, &c); err != nil || c.ClusterID == "" {
		return nil, fmt.Errorf("%w: %s in the archive is not a floe cluster claim (%v)", ErrBucketClaimed, tiering.ClaimKey, err)
	}
	return &c, nil
}

// readClaimETag is readClaim that also returns the ETag of the claim it read, for a
// conditional overwrite. It asks for the ETag first and the body second: if the claim
// is replaced between the two requests, the body read may be newer than the ETag, and
// an overwrite conditional on that ETag then fails, which is safe. The other order
// could pair the body of an old claim with the ETag of a newer one, and overwrite a
// claim nobody read.
func readClaimETag(ctx context.Context, b archive.Bucket) (*clusterClaim, string, error) {
	info, err := b.Stat(ctx, tiering.ClaimKey)
	if err != nil {
		return nil, "", err
	}
	c, err := readClaim(ctx, b)
	return c, info.ETag, err
}

// writeClaim writes c: with create only if no claim exists (If-None-Match), with
// ifMatch only over the claim of that ETag (If-Match), with neither over any claim.
func writeClaim(ctx context.Context, b archive.Bucket, c *clusterClaim, create bool, ifMatch string) error {
	body, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return b.Put(ctx, tiering.ClaimKey, bytes.NewReader(body), int64(len(body)),
		archive.PutOptions{IfNoneMatch: create, IfMatch: ifMatch, ContentType: "application/json"})
}

// claimDesc describes the cluster a claim names.
func claimDesc(c *clusterClaim) string {
	seen := time.Since(time.UnixMilli(c.SeenUnixMS)).Round(time.Second)
	return fmt.Sprintf("%s names cluster %s (created %s by node %d at %s, its raft leader last seen %v ago)",
		tiering.ClaimKey, c.ClusterID, time.UnixMilli(c.CreatedUnixMS).UTC().Format(time.RFC3339), c.Node, c.Advertise, seen)
}

// claimedError describes the cluster that holds the bucket, to a node that bootstraps.
func claimedError(c *clusterClaim) error {
	return fmt.Errorf("%w: %s. "+
		"A node that lost its data dir must rejoin with --join <host:raftport of a member>; "+
		"if that cluster is gone, restore it from the archive with floe restore --cluster, or start a new cluster on a fresh archive prefix; "+
		"--force-new-cluster replaces the claim only while the prefix holds none of its segment objects or metadata snapshots",
		ErrBucketClaimed, claimDesc(c))
}

// ErrArchiveInUse: the archive prefix holds another cluster's segment objects or
// metadata snapshots, so a new cluster may not start on it.
var ErrArchiveInUse = errors.New("the archive prefix holds another cluster's data")

var errStopListing = errors.New("stop listing")

// checkArchiveUnused refuses a prefix that holds any segment object or metadata
// snapshot: they belong to another cluster (the new one has written nothing yet). A
// new cluster beside them would collide with their keys, and its sweeper would delete
// their objects as unreferenced. A store that cannot be listed is an error too.
func checkArchiveUnused(ctx context.Context, b archive.Bucket) error {
	var object string
	err := b.List(ctx, tiering.TopicsPrefix, func(o archive.ObjectInfo) error {
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
	case err == nil && c.ClusterID == id:
		// This node's own claim, from a start that died before its Raft state was
		// made: the bootstrap goes on, over a prefix that must still be unused.
		return checkArchiveUnused(ctx, n.bucket)
	case err == nil && !n.cfg.ForceNewCluster:
		return claimedError(c)
	case err != nil && !archive.IsNotFound(err) && !(n.cfg.ForceNewCluster && errors.Is(err, ErrBucketClaimed)):
		return err // unreadable, or (without --force-new-cluster) not a claim
	}
	if err := checkArchiveUnused(ctx, n.bucket); err != nil {
		return err
	}
	tookOver := ""
	switch {
	case c != nil:
		tookOver = c.ClusterID
	case err != nil && !archive.IsNotFound(err): // a claim that is not a floe claim
		tookOver = tookOverUnknown
	}
	err = writeClaim(ctx, n.bucket, n.newClaim(id, 0, tookOver), !n.cfg.ForceNewCluster, "")
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

// The claim gates every write this cluster makes to the archive (uploads, put-backs
// of vanished objects, metadata snapshots, deletes of expired objects, sweeps): a
// cluster writes only while the claim names its own cluster id. A cluster started
// with --force-new-cluster while this one had archived nothing yet takes the claim;
// from then on this cluster must neither add objects the other's metadata does not
// know (its sweeper would delete them as orphans) nor delete any. Each node keeps its
// own view of the claim: claimLoop re-reads it every ClaimInterval on every node (the
// Raft leader rewrites it too), and a write asks archiveWritable, which answers from
// that view while it is younger than ClaimInterval and reads the claim again (one
// GET) otherwise. So no write follows a read that showed another cluster's claim, and
// a node goes on writing for at most ClaimInterval after another cluster took the
// claim; once it sees the claim, it also confirms no archived object, so local
// retention keeps every local copy (see claimSettle for the other cluster's side).

// MaxClaimInterval bounds --claim-interval: another cluster's sweeper counts on no
// node trusting a read of the claim for longer (claimSettle).
const MaxClaimInterval = time.Minute

// claimSettle is how long after a claim's created time the sweeper of the cluster it
// names deletes nothing last modified earlier. A cluster that lost the claim goes on
// writing for at most MaxClaimInterval after it was taken (its view of the claim is
// that old at most), and drops a local copy only after confirming its object under a
// view that showed its own claim: so every object of the losing cluster whose local
// copy it may have dropped was last modified before the claim's created time plus
// MaxClaimInterval. The other minute covers clock skew between the nodes and the
// store, and the requests in flight.
const claimSettle = MaxClaimInterval + time.Minute

// claimRecheck is how often a node that found another cluster's claim reads it again
// on demand (claimLoop reads it every ClaimInterval regardless).
const claimRecheck = time.Second

// claimView is a node's latest read of the archive's claim.
type claimView struct {
	mu     sync.Mutex
	readAt time.Time // when the read that found it was sent (monotonic); zero: never
	// foreign is an ErrBucketClaimed error while the claim names another cluster (or is not
	// a floe claim); nil while it names this cluster or is missing.
	foreign error
	// created is the claim's created time when it names this cluster (zero if
	// missing); tookOver its TookOver.
	created  time.Time
	tookOver string
	// logged is when the ERROR about another cluster's claim was last logged.
	logged time.Time

	read sync.Mutex // one read of the claim at a time
}

// archiveWritable returns nil if this node may write to the archive now: its view of
// the claim, at most ClaimInterval old, names this cluster (or no claim exists: the
// Raft leader writes one). Otherwise an error wrapping ErrBucketClaimed, or the
// error that kept it from reading the claim. It costs no request while the view is
// fresh; safe for concurrent use.
func (n *Node) archiveWritable(ctx context.Context) error {
	v := &n.claim
	fresh := func() (bool, error) {
		v.mu.Lock()
		defer v.mu.Unlock()
		age := time.Since(v.readAt)
		switch {
		case v.readAt.IsZero():
			return false, nil
		case v.foreign == nil && age < n.claimInterval():
			return true, nil
		case v.foreign != nil && age < claimRecheck:
			return true, v.foreign
		}
		return false, nil
	}
	if ok, err := fresh(); ok {
		return err
	}
	v.read.Lock()
	defer v.read.Unlock()
	if ok, err := fresh(); ok { // another caller read it meanwhile
		return err
	}
	_, err := n.observeClaim(ctx)
	return err
}

// observeClaim reads the claim now and records what it found in the node's view:
// it returns the claim (nil if missing) and nil if it names this cluster or is
// missing, an error wrapping ErrBucketClaimed if it names another cluster or is not a
// floe claim, and the read's error otherwise (the view then stays as it was).
func (n *Node) observeClaim(ctx context.Context) (*clusterClaim, error) {
	c, _, err := n.observe(ctx, false)
	return c, err
}

// observe is observeClaim that, with withETag, also returns the ETag of the claim it
// read (readClaimETag: one more request), for the Raft leader's conditional refresh.
func (n *Node) observe(ctx context.Context, withETag bool) (*clusterClaim, string, error) {
	id := n.fsm.ClusterID()
	if id == "" {
		return nil, "", errors.New("this node does not know its cluster id yet (its metadata has not caught up): it writes nothing to the archive")
	}
	at := time.Now()
	var c *clusterClaim
	var etag string
	var err error
	if withETag {
		c, etag, err = readClaimETag(ctx, n.bucket)
	} else {
		c, err = readClaim(ctx, n.bucket)
	}
	switch {
	case archive.IsNotFound(err):
		n.setClaimView(nil, nil, at)
		return nil, "", nil
	case errors.Is(err, ErrBucketClaimed): // not a floe claim
		n.setClaimView(nil, err, at)
		return nil, "", err
	case err != nil:
		return nil, "", fmt.Errorf("cannot read the archive's cluster claim, so this node writes nothing to the archive for now: %w", err)
	case c.ClusterID != id:
		err = fmt.Errorf("%w: %s, this is cluster %s", ErrBucketClaimed, claimDesc(c), id)
		n.setClaimView(c, err, at)
		return c, "", err
	}
	n.setClaimView(c, nil, at)
	return c, etag, nil
}

// setClaimView records a read of the claim sent at time at (c nil: missing or not a
// floe claim; foreign non-nil: another cluster's), sets floe_archive_claimed_by_other_cluster, and logs:
// an ERROR that says what stopped and what to do when the claim turns out to be
// another cluster's (again every minute while it is), an INFO when this cluster has
// it back.
func (n *Node) setClaimView(c *clusterClaim, foreign error, at time.Time) {
	v := &n.claim
	v.mu.Lock()
	was := v.foreign
	first := v.readAt.IsZero()
	v.readAt, v.foreign, v.created, v.tookOver = at, foreign, time.Time{}, ""
	if c != nil && foreign == nil {
		v.created, v.tookOver = time.UnixMilli(c.CreatedUnixMS), c.TookOver
	}
	logErr := foreign != nil && time.Since(v.logged) >= time.Minute
	if logErr {
		v.logged = time.Now()
	} else if foreign == nil {
		v.logged = time.Time{}
	}
	v.mu.Unlock()
	if foreign != nil {
		n.metrics.claimedByOther.Set(1)
	} else {
		n.metrics.claimedByOther.Set(0)
	}
	switch {
	case logErr:
		n.log.Error("the archive belongs to another cluster: this node writes nothing to it until the claim names this cluster again. "+
			"Uploads, put-backs of vanished objects, metadata snapshots, deletes of expired objects and orphan sweeps are paused; "+
			"sealed segments stay local (local retention evicts nothing) and the upload backlog and floe_rpo_seconds grow. "+
			"Decide which cluster keeps this archive prefix (README: \"the archive belongs to another cluster\"): "+
			"to keep it for this one, stop the other cluster and delete "+tiering.ClaimKey+" under the prefix; this cluster's Raft leader then claims it again",
			"cluster", n.fsm.ClusterID(), "err", foreign)
	case foreign == nil && was != nil && !first:
		n.log.Info("the archive's claim names this cluster again: archive writes resume", "cluster", n.fsm.ClusterID())
	}
}

func (n *Node) claimInterval() time.Duration {
	if n.cfg.ClaimInterval > 0 {
		return n.cfg.ClaimInterval
	}
	return MaxClaimInterval
}

// checkOwnClaim reads the claim now (not from the node's view) and returns nil
// unless it names another cluster (or is not a floe claim, or cannot be read): a
// sweep deletes many objects, and asks the store first. A missing claim (a cluster
// from before claims; claimLoop writes it) is no objection.
func (n *Node) checkOwnClaim(ctx context.Context) error {
	_, err := n.observeClaim(ctx)
	return err
}

// claimLoop reads the claim every ClaimInterval on every node, so that each node's
// view (and floe_archive_claimed_by_other_cluster) follows it; on the Raft leader it
// also keeps the claim fresh, and writes it if it is missing (a cluster that predates
// claims, or a claim deleted by an operator to give the prefix back to this cluster).
// A claim naming another cluster is reported, never overwritten.
func (n *Node) claimLoop() {
	t := time.NewTicker(n.claimInterval())
	defer t.Stop()
	for {
		if n.fsm.ClusterID() != "" {
			if n.raft.IsLeader() {
				n.refreshClaim()
			} else {
				ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
				if _, err := n.observeClaim(ctx); err != nil && !errors.Is(err, ErrBucketClaimed) {
					n.log.Warn("cannot read the archive's cluster claim", "err", err)
				}
				cancel()
			}
		}
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refreshClaim rewrites this cluster's claim with a new seen_unix_ms (and the same
// created time), or writes it if missing with If-None-Match (a new created time:
// whoever recreates a deleted claim takes the prefix from then on), and records what
// it found in the node's view. The rewrite is conditional on the ETag of the claim it
// read (If-Match): another cluster that takes the claim (--force-new-cluster) between
// this read and this write must not have its claim overwritten, or this cluster would
// go on archiving and the other would stop. A refused write (the claim changed or is
// gone) leaves the claim as it is and expires the view, so the next write reads it.
func (n *Node) refreshClaim() {
	ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
	defer cancel()
	id := n.fsm.ClusterID()
	c, etag, err := n.observe(ctx, true)
	switch {
	case errors.Is(err, ErrBucketClaimed):
		return // observe logged it
	case err != nil:
		n.log.Warn("cannot refresh the archive's cluster claim", "err", err)
		return
	case c == nil:
		at := time.Now()
		c = n.newClaim(id, 0, tookOverUnknown)
		if err = writeClaim(ctx, n.bucket, c, true, ""); err == nil {
			n.setClaimView(c, nil, at) // the view now knows the created time
		}
	default:
		err = writeClaim(ctx, n.bucket, n.newClaim(id, c.CreatedUnixMS, c.TookOver), false, etag)
	}
	switch {
	case err == nil:
		return
	case archive.IsPreconditionFailed(err):
		n.log.Warn("the archive's cluster claim changed while this node refreshed it (another cluster may have taken it); "+
			"left it as it is, and reads it again before the next archive write", "cluster", id)
	case !archive.IsExists(err):
		n.log.Warn("cannot refresh the archive's cluster claim", "err", err)
	}
	n.expireClaimView() // read it again before the next write
}

// expireClaimView makes the next archiveWritable read the claim again.
func (n *Node) expireClaimView() {
	n.claim.mu.Lock()
	defer n.claim.mu.Unlock()
	n.claim.readAt = time.Time{}
}

// sweepHoldBefore is the sweeper's HoldBefore. When this cluster took the claim over
// (TookOver), nothing last modified before the claim's created time plus claimSettle
// is deleted: the objects of the cluster that archived here before, whose local copies
// it may have dropped, are older than that. Without a view of this cluster's claim
// (missing: the Raft leader writes it), nothing at all is deleted.
func (n *Node) sweepHoldBefore() time.Time {
	n.claim.mu.Lock()
	created, tookOver := n.claim.created, n.claim.tookOver
	n.claim.mu.Unlock()
	switch {
	case created.IsZero():
		return time.Now().Add(claimSettle)
	case tookOver != "":
		return created.Add(claimSettle)
	}
	return time.Time{}
}
