package tiering

import (
	"context"
	"log/slog"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"floe/archive"
	"floe/meta"
)

// SweeperConfig configures the orphan sweeper.
type SweeperConfig struct {
	Bucket archive.Bucket
	FSM    *meta.FSM
	// Grace is how old an object that no segment references must be before it is
	// deleted: long enough for any upload to commit its Archived command (an object
	// is written before the command that references it). Objects of expired segments
	// need no grace.
	Grace  time.Duration
	Logger *slog.Logger
	// Registerer gets the sweeper's metrics (nil: none).
	Registerer prometheus.Registerer
}

// Sweeper deletes the segment objects that no metadata references: objects of expired
// segments whose delete failed, and uploads that never committed (a crash between the
// Put and Archived, or a deposed leader's late upload). It only ever considers keys in
// the segment-object layout (topics/<topic>/<id>-<term>.seg); anything else in the
// bucket is left alone.
type Sweeper struct {
	cfg SweeperConfig
	log *slog.Logger

	orphans, orphanBytes prometheus.Gauge
	deleted              prometheus.Counter
}

// Orphan is one unreferenced segment object.
type Orphan struct {
	Key          string    `json:"key"`
	Size         int64     `json:"size"`
	LastModified time.Time `json:"last_modified"`
	// Reason: "expired" (its segment expired), "unreferenced" (no segment names it).
	Reason string `json:"reason"`
	// Deletable: expired, or unreferenced for longer than the grace period.
	Deletable bool   `json:"deletable"`
	Deleted   bool   `json:"deleted,omitempty"`
	Error     string `json:"error,omitempty"`
}

// SweepReport is what one pass found and did.
type SweepReport struct {
	DryRun  bool     `json:"dry_run"`
	Grace   string   `json:"grace"`
	Scanned int      `json:"scanned"`
	Orphans []Orphan `json:"orphans"`
	// OrphanBytes sums the orphans' sizes (deleted or not).
	OrphanBytes int64 `json:"orphan_bytes"`
	Deleted     int   `json:"deleted"`
}

// NewSweeper returns a sweeper; call Sweep to run a pass.
func NewSweeper(cfg SweeperConfig) *Sweeper {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Sweeper{
		cfg: cfg, log: cfg.Logger.With("component", "sweeper"),
		orphans: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "floe_archive_orphaned_objects", Help: "Segment objects no metadata references, at the last sweep (Raft leader).",
		}),
		orphanBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "floe_archive_orphaned_bytes", Help: "Bytes of segment objects no metadata references, at the last sweep (Raft leader).",
		}),
		deleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "floe_archive_orphans_deleted_total", Help: "Orphaned segment objects the sweeper deleted.",
		}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(s.orphans, s.orphanBytes, s.deleted)
	}
	return s
}

// Sweep lists the segment objects, finds the orphans and, unless dryRun, deletes the
// deletable ones. Run it on one node at a time (the Raft leader): it reads the
// metadata as this node has applied it, which on the leader is never behind a
// committed Archived.
func (s *Sweeper) Sweep(ctx context.Context, dryRun bool) (*SweepReport, error) {
	// The references are read before the listing: an object uploaded and committed
	// meanwhile is listed as unreferenced, but it is younger than the grace period.
	referenced := map[string]bool{}
	expired := map[string]bool{}
	for _, name := range s.cfg.FSM.TopicNames() {
		t, ok := s.cfg.FSM.Topic(name)
		if !ok {
			continue
		}
		for _, seg := range t.Segments {
			if seg.ArchiveKey == "" {
				continue
			}
			if seg.State == meta.Expired {
				expired[seg.ArchiveKey] = true
			} else {
				referenced[seg.ArchiveKey] = true
			}
		}
	}
	rep := &SweepReport{DryRun: dryRun, Grace: s.cfg.Grace.String(), Orphans: []Orphan{}}
	now := time.Now()
	err := s.cfg.Bucket.List(ctx, "topics/", func(o archive.ObjectInfo) error {
		if _, _, _, ok := ParseObjectKey(o.Key); !ok {
			return nil // not ours
		}
		rep.Scanned++
		if referenced[o.Key] {
			return nil
		}
		or := Orphan{Key: o.Key, Size: o.Size, LastModified: o.LastModified, Reason: "unreferenced"}
		if expired[o.Key] {
			or.Reason, or.Deletable = "expired", true
		} else {
			or.Deletable = now.Sub(o.LastModified) > s.cfg.Grace
		}
		rep.Orphans = append(rep.Orphans, or)
		rep.OrphanBytes += o.Size
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(rep.Orphans, func(i, j int) bool { return rep.Orphans[i].Key < rep.Orphans[j].Key })
	s.orphans.Set(float64(len(rep.Orphans)))
	s.orphanBytes.Set(float64(rep.OrphanBytes))
	if dryRun {
		return rep, nil
	}
	for i := range rep.Orphans {
		or := &rep.Orphans[i]
		if !or.Deletable || ctx.Err() != nil {
			continue
		}
		if err := s.cfg.Bucket.Delete(ctx, or.Key); err != nil {
			or.Error = err.Error()
			s.log.Warn("cannot delete orphaned object", "key", or.Key, "err", err)
			continue
		}
		or.Deleted = true
		rep.Deleted++
		s.deleted.Inc()
		s.log.Info("orphaned object deleted", "key", or.Key, "bytes", or.Size, "reason", or.Reason)
	}
	return rep, nil
}
