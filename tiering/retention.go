package tiering

import (
	"context"
	"errors"
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
	// Confirm checks each archived object before its local copy goes (required: the
	// node's Uploader).
	Confirm Confirmer
	Logger  *slog.Logger
	// Period between checks besides metadata changes (default 5s).
	Period time.Duration
}

// Confirmer makes sure an archived segment's object is in the store (Uploader).
type Confirmer interface {
	// ConfirmArchived returns nil only if the object s.ArchiveKey is in the store now
	// with the recorded size, putting it back from the local copy if it vanished.
	ConfirmArchived(ctx context.Context, topic string, s *meta.Segment) error
}

// Retention evicts the local copies of archived segments this node led, oldest first,
// while its local segment bytes exceed the limit. A segment's copy is dropped only
// after EvictLocal has committed, so every reader is sent to the archive first; files
// of segments already marked evicted (a crash between the two steps) are removed too.
// Active and unarchived segments are never evicted: their local copy is the only one.
// Nor is a segment whose object Confirm has not found in the store (HEAD, recorded
// size) just before: before EvictLocal is proposed, and again before the file goes.
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
	if cfg.Confirm == nil {
		panic("tiering: RetentionConfig.Confirm is nil; a local copy must never go unchecked")
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

// Enforce runs one pass: first each topic's own limits (config local_retention_bytes
// and local_retention_ms), then the node's LimitBytes over every topic, each time
// evicting archived segments oldest first.
func (r *Retention) Enforce(ctx context.Context) {
	var all []candidate
	var total int64
	for _, name := range r.cfg.FSM.TopicKeys() {
		t, ok := r.cfg.FSM.Topic(name)
		if !ok {
			continue
		}
		var mine []candidate // this topic's archived local segments, oldest first
		var topicBytes int64
		for _, s := range t.Segments {
			if s.Owner() != r.cfg.NodeID || s.State == meta.Expired || !r.cfg.Local.HasLocal(name, s.ID) {
				continue // expired segments' files are the node's to delete
			}
			if s.LocalEvicted {
				r.remove(ctx, candidate{name, *s})
				continue
			}
			topicBytes += s.Bytes
			if s.ArchiveKey != "" {
				mine = append(mine, candidate{name, *s})
			}
		}
		sortOldestFirst(mine)
		limit, maxAge := t.Config.LocalRetentionBytes, time.Duration(t.Config.LocalRetentionMS)*time.Millisecond
		for len(mine) > 0 && ctx.Err() == nil {
			c := mine[0]
			tooMany := limit > 0 && topicBytes > limit
			tooOld := maxAge > 0 && time.Since(time.UnixMilli(c.seg.SealedUnixMS)) > maxAge
			if !tooMany && !tooOld {
				break
			}
			evicted, ok := r.evict(ctx, c)
			if !ok {
				return
			}
			mine = mine[1:] // not confirmed: not tried again in this pass
			if evicted {
				topicBytes -= c.seg.Bytes
			}
		}
		total += topicBytes
		all = append(all, mine...)
	}
	if r.cfg.LimitBytes < 0 || total <= r.cfg.LimitBytes {
		return
	}
	sortOldestFirst(all)
	for _, c := range all {
		if total <= r.cfg.LimitBytes || ctx.Err() != nil {
			return
		}
		evicted, ok := r.evict(ctx, c)
		if !ok {
			return
		}
		if evicted {
			total -= c.seg.Bytes
		}
	}
}

// candidate is an archived segment whose local copy may be evicted.
type candidate struct {
	topic string
	seg   meta.Segment
}

func sortOldestFirst(cs []candidate) {
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].seg.SealedUnixMS < cs[j].seg.SealedUnixMS })
}

// evict confirms a segment's object, commits EvictLocal, then removes its file. It
// reports evicted false if the object could not be confirmed (the copy stays; the pass
// goes on with the next candidate), and ok false if the command could not be
// committed (the pass stops; the next one retries).
func (r *Retention) evict(ctx context.Context, c candidate) (evicted, ok bool) {
	if err := r.cfg.Confirm.ConfirmArchived(ctx, c.topic, &c.seg); errors.Is(err, ErrPaused) {
		return false, false // nothing is evicted while archive writes are paused; the uploader says why
	} else if err != nil {
		r.log.Warn("archived object not confirmed; local copy kept", "topic", c.topic, "segment", c.seg.ID, "key", c.seg.ArchiveKey, "err", err)
		return false, true
	}
	err := r.cfg.Propose(ctx, &meta.Command{Op: meta.OpEvictLocal, Topic: c.topic, Segment: c.seg.ID})
	if err != nil {
		r.log.Warn("cannot commit local eviction", "topic", c.topic, "segment", c.seg.ID, "err", err)
		return false, false
	}
	// Committed: readers already go to the archive. If the file cannot go now, the next
	// pass removes it (after confirming the object again).
	r.remove(ctx, c)
	return true, true
}

// remove deletes the local file of a segment whose EvictLocal has committed, once its
// object is confirmed in the store right now; otherwise the file stays.
func (r *Retention) remove(ctx context.Context, c candidate) {
	if err := r.cfg.Confirm.ConfirmArchived(ctx, c.topic, &c.seg); err != nil {
		r.log.Warn("archived object not confirmed; evicted segment's file kept", "topic", c.topic, "segment", c.seg.ID, "key", c.seg.ArchiveKey, "err", err)
		return
	}
	if err := r.cfg.Local.RemoveLocal(c.topic, c.seg.ID); err != nil {
		r.log.Warn("cannot remove evicted segment file", "topic", c.topic, "segment", c.seg.ID, "err", err)
		return
	}
	r.log.Info("local copy evicted", "topic", c.topic, "segment", c.seg.ID, "bytes", c.seg.Bytes, "key", c.seg.ArchiveKey)
}
