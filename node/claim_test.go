package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"floe/archive"
	"floe/internal/testenv"
	"floe/tiering"
)

// takeoverBucket stands in for another cluster started with --force-new-cluster: once
// armed, it writes that cluster's claim just before the next Put of the claim goes
// through, that is between the Raft leader's read of the claim and its write.
type takeoverBucket struct {
	archive.Bucket
	armed atomic.Bool
	fired atomic.Int32
	mu    sync.Mutex
	err   error // of the takeover's own write
}

func (b *takeoverBucket) Put(ctx context.Context, key string, r io.Reader, size int64, opts archive.PutOptions) error {
	if key == tiering.ClaimKey && b.armed.CompareAndSwap(true, false) {
		other := &clusterClaim{ClusterID: "the-other-cluster", CreatedUnixMS: time.Now().UnixMilli(), SeenUnixMS: time.Now().UnixMilli(), Node: 9, TookOver: "this one"}
		err := writeClaim(ctx, b.Bucket, other, false, "")
		b.mu.Lock()
		b.err = err
		b.mu.Unlock()
		b.fired.Add(1)
	}
	return b.Bucket.Put(ctx, key, r, size, opts)
}

// TestRefreshClaimKeepsTakeover: another cluster that writes its claim between the
// Raft leader's read of the claim and its refresh keeps the claim; this node stops
// writing to the archive. Before the refresh was conditional (If-Match), the refresh
// overwrote the other cluster's claim and this cluster went on archiving.
func TestRefreshClaimKeepsTakeover(t *testing.T) {
	tb := &takeoverBucket{}
	n := startNode(t, func(c *Config) {
		// A fresh store on every -count; claimLoop stays out of the way after its first round.
		c.Archive = fmt.Sprintf("mem://%s-%d", t.Name(), time.Now().UnixNano())
		c.ClaimInterval = MaxClaimInterval
		c.wrapArchive = func(b archive.Bucket) archive.Bucket { tb.Bucket = b; return tb }
	})
	ctx := t.Context()
	id := n.fsm.ClusterID()
	before, etag, err := readClaimETag(ctx, tb.Bucket)
	if err != nil || before.ClusterID != id {
		t.Fatalf("claim after bootstrap = %+v, %v; want cluster %s", before, err, id)
	}

	// Undisturbed, a refresh rewrites this cluster's claim.
	n.refreshClaim()
	after, etag2, err := readClaimETag(ctx, tb.Bucket)
	if err != nil || after.ClusterID != id || after.CreatedUnixMS != before.CreatedUnixMS || etag2 == etag {
		t.Fatalf("claim after refresh = %+v (ETag %q, was %q), %v; want cluster %s rewritten, created %d",
			after, etag2, etag, err, id, before.CreatedUnixMS)
	}
	if err := n.archiveWritable(ctx); err != nil {
		t.Fatalf("archiveWritable with this cluster's claim: %v", err)
	}

	tb.armed.Store(true)
	n.refreshClaim()
	// claimLoop's first round may be the refresh that met the takeover.
	testenv.WaitFor(t, 10*time.Second, "the takeover", func() bool { return tb.fired.Load() == 1 })
	tb.mu.Lock()
	if tb.err != nil {
		t.Fatalf("the takeover's write: %v", tb.err)
	}
	tb.mu.Unlock()
	got, err := readClaim(ctx, tb.Bucket)
	if err != nil || got.ClusterID != "the-other-cluster" {
		t.Fatalf("claim after a refresh raced the takeover = %+v, %v; want the other cluster's (the refresh overwrote it)", got, err)
	}
	if err := n.archiveWritable(ctx); !errors.Is(err, ErrBucketClaimed) {
		t.Fatalf("archiveWritable after the takeover: %v; want ErrBucketClaimed", err)
	}
	// The next refresh sees the other cluster's claim and leaves it alone.
	n.refreshClaim()
	if got, err := readClaim(ctx, tb.Bucket); err != nil || got.ClusterID != "the-other-cluster" {
		t.Fatalf("claim after the next refresh = %+v, %v; want the other cluster's", got, err)
	}
}
