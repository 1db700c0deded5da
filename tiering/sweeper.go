package tiering

import (
	"context"
	"log/slog"
	"sort"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"floe/archive"
	"floe/meta"
)

// SweeperConfig configures the orphan sweeper.
type SweeperConfig struct {
	Bucket archive.Bucket
	FSM    *meta.FSM
	// Grace is how old an object that no segment references, nor can still record,
	// must be before it is deleted (time for an operator to see it first). The object
	// of a segment whose upload may still commit is never deleted, whatever its age.
	// Objects of expired segments need no grace.
	Grace  time.Duration
	Logger *slog.Logger
	// Now is the sweeper's clock (nil: time.Now); tests move it past the grace period.
	Now func() time.Time
	// Registerer gets the sweeper's metrics (nil: none).
	Registerer prometheus.Registerer
	// HoldBefore, if set, is asked once per pass: no object last modified before the
	// time it returns is deleted, whatever the metadata says (another cluster may have
	// written it; see node/claim.go claimSettle). Such orphans are reported with Held.
	HoldBefore func() time.Time
}

// Sweeper deletes the segment objects that no metadata references nor can still
// record: objects of expired segments whose delete failed, uploads whose segment
// expired before their Archived committed, and keys no segment's upload uses (another
// leader term). An upload that has not committed yet, or a crash between its Put and
// its Archived, leaves an object the retry commits: that object is kept. It only ever
// considers keys in the segment-object layout (topics/<topic key>/<id>-<term>.seg);
// anything else in the bucket is left alone.
type Sweeper struct {
	cfg SweeperConfig
	log *slog.Logger

	orphans, orphanBytes prometheus.Gauge
	deleted              prometheus.Counter
	last                 atomic.Pointer[SweepSummary]
}

// SweepSummary is what the last sweep found.
type SweepSummary struct {
	Orphans     int       `json:"orphans"`
	OrphanBytes int64     `json:"orphan_bytes"`
	At          time.Time `json:"at"`
}

// Last returns what the last sweep of this process found (nil: none yet).
func (s *Sweeper) Last() *SweepSummary { return s.last.Load() }

// Orphan is one unreferenced segment object.
type Orphan struct {
	Key          string    `json:"key"`
	Size         int64     `json:"size"`
	LastModified time.Time `json:"last_modified"`
	// Reason: "expired" (its segment expired), "unreferenced" (no segment names it).
	Reason string `json:"reason"`
	// Deletable: expired, or unreferenced for longer than the grace period.
	Deletable bool `json:"deletable"`
	// Held: last modified before SweeperConfig.HoldBefore, so kept (not Deletable).
	Held    bool   `json:"held,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
	Error   string `json:"error,omitempty"`
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
	if cfg.Now == nil {
		cfg.Now = time.Now
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
// deletable ones. Run it on one node at a time (the Raft leader).
//
// An object is an orphan only if no segment records it or can still record it (see
// claimOf): the object of a sealed segment whose Archived has not committed yet is
// never one, however old, since its upload (or a retry that finds it) may commit it
// at any time. That judgement is final once made, so a metadata view that lags the
// leader's only errs towards keeping; each key is judged again, on the metadata as
// applied then, just before it is deleted.
func (s *Sweeper) Sweep(ctx context.Context, dryRun bool) (*SweepReport, error) {
	rep := &SweepReport{DryRun: dryRun, Grace: s.cfg.Grace.String(), Orphans: []Orphan{}}
	now := s.cfg.Now()
	var hold time.Time
	if s.cfg.HoldBefore != nil {
		hold = s.cfg.HoldBefore()
	}
	err := s.cfg.Bucket.List(ctx, TopicsPrefix, func(o archive.ObjectInfo) error {
		topic, id, term, ok := ParseObjectKey(o.Key)
		if !ok {
			return nil // not ours
		}
		rep.Scanned++
		or := Orphan{Key: o.Key, Size: o.Size, LastModified: o.LastModified}
		switch s.claimOf(o.Key, topic, id, term) {
		case claimReferenced, claimPending:
			return nil
		case claimExpired:
			or.Reason, or.Deletable = "expired", true
		default:
			or.Reason, or.Deletable = "unreferenced", now.Sub(o.LastModified) > s.cfg.Grace
		}
		if o.LastModified.Before(hold) {
			or.Deletable, or.Held = false, true
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
	s.last.Store(&SweepSummary{Orphans: len(rep.Orphans), OrphanBytes: rep.OrphanBytes, At: now})
	if dryRun {
		return rep, nil
	}
	for i := range rep.Orphans {
		or := &rep.Orphans[i]
		if !or.Deletable || ctx.Err() != nil {
			continue
		}
		topic, id, term, _ := ParseObjectKey(or.Key)
		if c := s.claimOf(or.Key, topic, id, term); c == claimReferenced || c == claimPending {
			// Cannot happen while claimOf's rules hold; kept as the last word before a delete.
			or.Deletable = false
			s.log.Warn("object claimed since the listing; kept", "key", or.Key)
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

// keyClaim is what the metadata says of a segment object's key.
type keyClaim int

const (
	// claimNone: no segment records the key, and none ever can.
	claimNone keyClaim = iota
	// claimExpired: the key's segment recorded it, then expired.
	claimExpired
	// claimReferenced: a segment records the key.
	claimReferenced
	// claimPending: a segment may still record the key (its Archived is not committed).
	claimPending
)

// claimOf judges key (topic, segment id, leader term) on the metadata as this node
// has applied it now. claimNone and claimExpired are final, whatever commits later,
// because:
//
//   - the FSM commits Archived{key} only for a segment that is neither expired nor
//     archived under another key, and both states are for good;
//   - the uploader only ever proposes ObjectKey(topic, id, LeaderIndex) for a segment,
//     and a segment's LeaderIndex never changes;
//   - a segment created after applied index X gets a LeaderIndex above X, so the key of
//     a segment the metadata does not know yet is claimed if its term is above X.
func (s *Sweeper) claimOf(key, topic string, id, term uint64) keyClaim {
	applied := s.cfg.FSM.AppliedIndex() // before the segment: the view read is at least this new
	seg, ok := s.cfg.FSM.SegmentOf(topic, id)
	switch {
	case !ok && term > applied:
		return claimPending
	case !ok:
		return claimNone
	case seg.ArchiveKey == key && seg.State == meta.Expired:
		return claimExpired
	case seg.ArchiveKey == key:
		return claimReferenced
	case seg.State == meta.Expired || seg.ArchiveKey != "":
		return claimNone
	case term == seg.LeaderIndex:
		return claimPending
	default:
		return claimNone
	}
}
