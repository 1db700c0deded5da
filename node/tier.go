package node

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"floe/archive"
	"floe/archive/open"
	"floe/meta"
	"floe/tiering"
)

// DefaultCacheBytes bounds the remote-read frame cache.
const DefaultCacheBytes = 256 << 20

// openArchive opens the --archive bucket, if any.
func (n *Node) openArchive() error {
	if n.cfg.Archive == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
	defer cancel()
	b, err := open.Open(ctx, n.cfg.Archive, archive.Options{
		Endpoint: n.cfg.S3Endpoint, Region: n.cfg.S3Region, CreateBucket: n.cfg.S3CreateBucket, Logger: n.log,
		SSE: n.cfg.S3SSE, SSEKMSKeyID: n.cfg.S3SSEKMSKeyID,
	})
	if err != nil {
		return err
	}
	if n.cfg.wrapArchive != nil {
		b = n.cfg.wrapArchive(b)
	}
	n.bucket = archive.WithMetrics(b, n.metrics.reg, nil)
	return nil
}

// startTiering starts the uploader, local retention and the archive's cluster claim.
// Without --archive the node keeps sealed segments local only, as Distributed Walrus
// does.
func (n *Node) startTiering() error {
	if n.bucket == nil {
		return nil
	}
	n.goLoop(func() { n.claimLoop() })
	grace := n.cfg.OrphanGrace
	if grace <= 0 {
		grace = time.Hour
	}
	n.sweeper = tiering.NewSweeper(tiering.SweeperConfig{Bucket: n.bucket, FSM: n.fsm, Grace: grace, Logger: n.log, Registerer: n.metrics.reg,
		HoldBefore: n.sweepHoldBefore})
	n.goLoop(func() { n.sweepLoop() })
	n.goLoop(func() { n.metaSnapshotLoop() })
	cacheBytes := n.cfg.CacheBytes
	if cacheBytes <= 0 {
		cacheBytes = DefaultCacheBytes
	}
	cache, err := tiering.NewFrameCache(filepath.Join(n.cfg.DataDir, "cache"), cacheBytes)
	if err != nil {
		return err
	}
	n.remote = tiering.NewRemote(n.bucket, cache, n.log)
	propose := func(ctx context.Context, c *meta.Command) error {
		_, err := n.propose(ctx, c)
		return err
	}
	n.uploader = tiering.NewUploader(tiering.UploaderConfig{
		NodeID: n.cfg.NodeID, Bucket: n.bucket, FSM: n.fsm, Local: n, Propose: propose,
		TempDir: filepath.Join(n.cfg.DataDir, "upload"), Logger: n.log, Registerer: n.metrics.reg,
		MaxBackoff: n.cfg.UploadMaxBackoff, Gate: n.archiveWritable,
	})
	limit := n.cfg.LocalRetentionBytes
	if limit <= 0 {
		limit = -1 // keep everything
	}
	retention := tiering.NewRetention(tiering.RetentionConfig{
		NodeID: n.cfg.NodeID, LimitBytes: limit, FSM: n.fsm, Local: n,
		Propose: propose, Confirm: n.uploader, Logger: n.log,
	})
	n.goLoop(func() { n.uploader.Run(n.ctx) })
	n.goLoop(func() { retention.Run(n.ctx) })
	n.metrics.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "floe_cache_bytes", Help: "Bytes in the remote-read frame cache.",
		}, func() float64 { return float64(cache.Stats().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "floe_cache_limit_bytes", Help: "Bound of the remote-read frame cache (--cache-bytes).",
		}, func() float64 { return float64(cacheBytes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "floe_cache_hits_total", Help: "Remote reads served from the frame cache.",
		}, func() float64 { return float64(cache.Stats().Hits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "floe_cache_misses_total", Help: "Remote reads that fetched a frame from the archive.",
		}, func() float64 { return float64(cache.Stats().Misses) }),
	)
	n.log.Info("tiered storage on", "archive", n.cfg.Archive, "cache_bytes", cacheBytes,
		"local_retention_bytes", n.cfg.LocalRetentionBytes)
	return nil
}

// rpoGauges are the live RPO gauges, with or without --archive. They read the
// uploader, so they are registered once startTiering has returned.
func (n *Node) rpoGauges() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "floe_rpo_seconds",
			Help: "Live RPO of this node: age of the oldest entry it holds on its disk only, in an active segment it leads " +
				"or (with --archive) a sealed segment it has not uploaded yet; 0 if none.",
		}, func() float64 { return ageSeconds(n.oldestLocalOnly()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "floe_cluster_rpo_seconds",
			Help: "Live RPO of the cluster: age of the oldest entry on one disk only, on any node: in any active segment " +
				"(counted from its creation if its leader does not answer) or (with --archive) any sealed segment not archived yet; 0 if none.",
		}, func() float64 { return ageSeconds(n.clusterOldestLocalOnly()) }),
	}
}

// ScanSegment implements tiering.Local: it calls fn with every record of a local
// segment, in order.
func (n *Node) ScanSegment(topic string, id uint64, fn func([]byte) error) error {
	t, ok := n.fsm.Topic(topic)
	if !ok {
		return fmt.Errorf("%w: %q", meta.ErrNoTopic, topic)
	}
	s := t.Segment(id)
	if s == nil {
		return fmt.Errorf("%w: segment %d of %q", ErrSegmentNotFound, id, topic)
	}
	seg, err := n.localSegment(topic, s)
	if err != nil {
		return err
	}
	defer n.store.Release(seg)
	for idx := uint64(0); idx < s.Count; {
		recs, err := seg.Read(idx, 4096, 4<<20)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := fn(r); err != nil {
				return err
			}
		}
		idx += uint64(len(recs))
	}
	return nil
}

// RemoveLocal implements tiering.Local.
func (n *Node) RemoveLocal(topic string, id uint64) error { return n.store.Remove(topic, id) }

// HasLocal implements tiering.Local: whether the segment's file exists. It opens
// nothing.
func (n *Node) HasLocal(topic string, id uint64) bool {
	ok, err := n.store.Exists(topic, id)
	return err == nil && ok
}

func ageSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return time.Since(t).Seconds()
}
