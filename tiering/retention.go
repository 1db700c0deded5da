package tiering

import (
	"context"
	"log/slog"
	"sort"
	"time"

	"floe/meta"
)

// RetentionConfig configures local retention.
type RetentionConfig struct {
	NodeID uint64
	// LimitBytes is the most bytes of local segment files this node keeps; archived
	// segments beyond it are evicted, oldest first. Negative: keep everything.
	LimitBytes int64
	FSM        *meta.FSM
	Local      Local
	Propose    Proposer
	Logger     *slog.Logger
	// Period between checks besides metadata changes (default 5s).
	Period time.Duration
}

// Retention evicts the local copies of archived segments this node led, oldest first,
// while its local segment bytes exceed the limit. A segment's copy is dropped only
// after EvictLocal has committed, so every reader is sent to the archive first; files
// of segments already marked evicted (a crash between the two steps) are removed too.
// Active and unarchived segments are never evicted: their local copy is the only one.
type Retention struct {
	cfg RetentionConfig
	log *slog.Logger
}

// NewRetention returns a retention loop; Run starts it.
func NewRetention(cfg RetentionConfig) *Retention {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Period == 0 {
		cfg.Period = 5 * time.Second
	}
	return &Retention{cfg: cfg, log: cfg.Logger.With("component", "retention")}
}

// Run enforces the limit until ctx ends.
func (r *Retention) Run(ctx context.Context) {
	tick := time.NewTicker(r.cfg.Period)
	defer tick.Stop()
	for {
		changed := r.cfg.FSM.Changed()
		r.Enforce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
	}
}

// Enforce runs one pass.
func (r *Retention) Enforce(ctx context.Context) {
	type local struct {
		topic string
		seg   meta.Segment
	}
	var candidates []local
	var total int64
	for _, name := range r.cfg.FSM.TopicNames() {
		t, ok := r.cfg.FSM.Topic(name)
		if !ok {
			continue
		}
		for _, s := range t.Segments {
			if s.Leader != r.cfg.NodeID || !r.cfg.Local.HasLocal(name, s.ID) {
				continue
			}
			if s.LocalEvicted {
				if err := r.cfg.Local.RemoveLocal(name, s.ID); err != nil {
					r.log.Warn("cannot remove evicted segment file", "topic", name, "segment", s.ID, "err", err)
				}
				continue
			}
			total += s.Bytes
			if s.ArchiveKey != "" {
				candidates = append(candidates, local{name, *s})
			}
		}
	}
	if r.cfg.LimitBytes < 0 || total <= r.cfg.LimitBytes {
		return
	}
	sort.Slice(candidates, func(i, j int) bool { return candidates[i].seg.SealedUnixMS < candidates[j].seg.SealedUnixMS })
	for _, c := range candidates {
		if total <= r.cfg.LimitBytes || ctx.Err() != nil {
			return
		}
		err := r.cfg.Propose(ctx, &meta.Command{Op: meta.OpEvictLocal, Topic: c.topic, Segment: c.seg.ID})
		if err != nil {
			r.log.Warn("cannot commit local eviction", "topic", c.topic, "segment", c.seg.ID, "err", err)
			return
		}
		if err := r.cfg.Local.RemoveLocal(c.topic, c.seg.ID); err != nil {
			r.log.Warn("cannot remove evicted segment file", "topic", c.topic, "segment", c.seg.ID, "err", err)
			continue
		}
		total -= c.seg.Bytes
		r.log.Info("local copy evicted", "topic", c.topic, "segment", c.seg.ID, "bytes", c.seg.Bytes, "key", c.seg.ArchiveKey)
	}
}
