package tiering

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"floe/archive"
	"floe/archive/seekable"
	"floe/meta"
)

// Sentinel errors of the tiering package. Their texts reach clients and operators
// verbatim (inside an ERR reply or an HTTP error), so they carry no package prefix.
var (
	// ErrConflict: an object already exists under a segment's key and is not that segment.
	ErrConflict = errors.New("object exists with other content")
	// ErrNotArchived: the segment has no object in the archive.
	ErrNotArchived = errors.New("segment not archived")
	// ErrObjectMissing: the object an archived segment names is not in the store (or
	// not with the recorded size), and could not be put back.
	ErrObjectMissing = errors.New("archived object missing")
	// ErrPaused: the uploader's Gate holds archive writes back for now.
	ErrPaused = errors.New("archive writes paused")
)

// Local is what the tiering layer needs of the node's own segment files.
type Local interface {
	// ScanSegment calls fn with every record payload of a local segment, in order.
	// The payload is only valid during the call.
	ScanSegment(topic string, id uint64, fn func(payload []byte) error) error
	// RemoveLocal deletes a local segment file (absent is not an error).
	RemoveLocal(topic string, id uint64) error
	// HasLocal reports whether the node holds the segment's file.
	HasLocal(topic string, id uint64) bool
}

// Proposer commits a metadata command through Raft (wherever the leader is) and
// returns once it has applied locally; the command's own error is returned as is.
type Proposer func(ctx context.Context, c *meta.Command) error

// UploaderConfig configures an Uploader.
type UploaderConfig struct {
	NodeID  uint64
	Bucket  archive.Bucket
	FSM     *meta.FSM
	Local   Local
	Propose Proposer
	// TempDir holds objects while they are encoded (created if missing). It belongs to
	// this uploader alone: NewUploader removes what a crash left there (upload-*.seg).
	TempDir string
	Logger  *slog.Logger
	// Registerer receives the upload metrics (nil: none).
	Registerer prometheus.Registerer
	// MinBackoff and MaxBackoff bound the retry delay while the store fails
	// (defaults 200ms and 30s).
	MinBackoff, MaxBackoff time.Duration
	// FrameSize of the objects' frames (0: the seekable default, 1 MiB).
	FrameSize int
	// Gate, if set, is asked before each write to the store (an upload, a put-back)
	// and by ConfirmArchived: while it returns an error the uploader writes nothing
	// and confirms nothing (so local retention keeps every local copy), and Run asks
	// again every few seconds. It is called once per write, so it must be cheap.
	Gate func(ctx context.Context) error
}

// Uploader archives the sealed segments this node leads, oldest first, one at a time.
// After each Archived commit it checks the object is in the store, and puts it back if
// it vanished (ConfirmArchived), while the local copy exists.
type Uploader struct {
	cfg UploaderConfig
	log *slog.Logger

	mu           sync.Mutex
	backlogSegs  int
	backlogBytes int64
	oldestMS     int64 // created time of the oldest unarchived sealed segment, 0 if none
	// unconfirmed: segments whose Archived committed but whose object was
	// not seen in the store since; Run retries ConfirmArchived on them.
	unconfirmed map[segRef]bool
	// differs: segments whose object vanished and whose local copy, encoded again,
	// is not the object the metadata names (another frame size): not encoded again.
	differs map[segRef]error

	uploads, failures prometheus.Counter
	uploadedBytes     prometheus.Counter
	uploadSeconds     prometheus.Histogram
}

// NewUploader returns an uploader; Run starts it.
func NewUploader(cfg UploaderConfig) *Uploader {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	removeStaleTemps(cfg.TempDir, cfg.Logger)
	u := &Uploader{
		cfg: cfg, log: cfg.Logger.With("component", "uploader"), unconfirmed: map[segRef]bool{}, differs: map[segRef]error{},
		uploads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "floe_archive_uploads_total", Help: "Segment objects written to the archive by this node (a retry that finds its object already there is not counted).",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "floe_archive_upload_failures_total", Help: "Failed upload attempts (retried with backoff).",
		}),
		uploadedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "floe_archive_uploaded_bytes_total", Help: "Object bytes uploaded by this node.",
		}),
		uploadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "floe_archive_upload_seconds", Help: "Time to encode, upload and commit one segment.",
			Buckets: prometheus.ExponentialBuckets(0.01, 3, 10),
		}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(u.uploads, u.failures, u.uploadedBytes, u.uploadSeconds,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "floe_archive_backlog_segments", Help: "Sealed segments led by this node not yet archived, or archived with an object that vanished and is not put back yet.",
			}, func() float64 { s, _ := u.Backlog(); return float64(s) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "floe_archive_backlog_bytes", Help: "Bytes of sealed segments led by this node not yet archived.",
			}, func() float64 { _, b := u.Backlog(); return float64(b) }),
		)
	}
	return u
}

// Backlog returns the sealed segments (and their bytes) this node must still upload.
func (u *Uploader) Backlog() (segments int, bytes int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.backlogSegs, u.backlogBytes
}

// OldestUnarchived returns the created time of the oldest sealed segment this node has
// not archived yet (zero if none).
func (u *Uploader) OldestUnarchived() time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.oldestMS == 0 {
		return time.Time{}
	}
	return time.UnixMilli(u.oldestMS)
}

type pendingSegment struct {
	topic string
	seg   meta.Segment
}

// pending lists the sealed, unarchived segments this node leads, oldest first, then
// the archived ones whose object is not confirmed yet.
func (u *Uploader) pending() []pendingSegment {
	u.mu.Lock()
	unconfirmed := maps.Clone(u.unconfirmed)
	u.mu.Unlock()
	var out, confirm []pendingSegment
	for _, name := range u.cfg.FSM.TopicKeys() {
		t, ok := u.cfg.FSM.Topic(name)
		if !ok {
			continue
		}
		for _, s := range t.Segments {
			if s.Owner() != u.cfg.NodeID || s.Abandoned {
				continue
			}
			switch {
			case s.State == meta.Sealed && s.ArchiveKey == "":
				out = append(out, pendingSegment{topic: name, seg: *s})
			case s.State == meta.Archived && unconfirmed[segRef{name, s.ID}]:
				confirm = append(confirm, pendingSegment{topic: name, seg: *s})
			}
		}
	}
	for r := range unconfirmed {
		if _, ok := u.cfg.FSM.SegmentOf(r.topic, r.id); !ok {
			u.setUnconfirmed(r.topic, r.id, false) // its topic was deleted
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].seg.SealedUnixMS < out[j].seg.SealedUnixMS })
	return append(out, confirm...)
}

// segRef names one segment of one topic.
type segRef struct {
	topic string
	id    uint64
}

// setUnconfirmed records whether a segment's object still has to be confirmed.
func (u *Uploader) setUnconfirmed(topic string, id uint64, v bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if v {
		u.unconfirmed[segRef{topic, id}] = true
	} else {
		delete(u.unconfirmed, segRef{topic, id})
	}
}

func (u *Uploader) setBacklog(p []pendingSegment) {
	var bytes, oldest int64
	for _, s := range p {
		bytes += s.seg.Bytes
		if oldest == 0 || s.seg.CreatedUnixMS < oldest {
			oldest = s.seg.CreatedUnixMS
		}
	}
	u.mu.Lock()
	u.backlogSegs, u.backlogBytes, u.oldestMS = len(p), bytes, oldest
	u.mu.Unlock()
}

// gate asks cfg.Gate whether the uploader may write to the store now; its refusal
// is wrapped in ErrPaused.
func (u *Uploader) gate(ctx context.Context) error {
	if u.cfg.Gate == nil {
		return nil
	}
	if err := u.cfg.Gate(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrPaused, err)
	}
	return nil
}

// Run uploads until ctx ends.
func (u *Uploader) Run(ctx context.Context) {
	failures := 0
	paused := false
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		changed := u.cfg.FSM.Changed()
		p := u.pending()
		u.setBacklog(p)
		if len(p) > 0 {
			if err := u.gate(ctx); err != nil { // the backlog stays, and grows
				if !paused {
					u.log.Warn("uploads paused", "backlog_segments", len(p), "err", err)
				}
				paused = true
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				continue
			}
			if paused {
				u.log.Info("uploads resumed", "backlog_segments", len(p))
				paused = false
			}
			start := time.Now()
			var err error
			if p[0].seg.ArchiveKey == "" {
				err = u.upload(ctx, p[0].topic, &p[0].seg)
			} else {
				err = u.ConfirmArchived(ctx, p[0].topic, &p[0].seg)
			}
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				failures = 0
				u.uploadSeconds.Observe(time.Since(start).Seconds())
				continue
			}
			failures++
			u.failures.Inc()
			delay := min(u.cfg.MaxBackoff, u.cfg.MinBackoff<<min(failures-1, 20))
			u.log.Warn("upload failed; retrying", "topic", p[0].topic, "segment", p[0].seg.ID,
				"attempt", failures, "retry_in", delay, "err", err)
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
	}
}

// upload archives one sealed segment: encode to a temporary file, put it with
// If-None-Match, then commit Archived.
func (u *Uploader) upload(ctx context.Context, topic string, s *meta.Segment) error {
	tmp, sum, err := u.encode(topic, s)
	if err != nil {
		return err
	}
	defer discard(tmp)
	key := ObjectKey(topic, s.ID, s.LeaderIndex)
	size, checksum, wrote, err := u.put(ctx, key, topic, s, tmp, sum)
	if err != nil {
		return err
	}
	if err := u.cfg.Propose(ctx, &meta.Command{
		Op: meta.OpArchived, Topic: topic, Segment: s.ID, Key: key, Size: size, Checksum: checksum,
	}); err != nil {
		return fmt.Errorf("cannot commit archived segment %d of %q: %w", s.ID, topic, err)
	}
	if wrote { // a retry that found its own earlier object wrote nothing new
		u.uploads.Inc()
		u.uploadedBytes.Add(float64(size))
	}
	u.log.Info("segment archived", "topic", topic, "segment", s.ID, "key", key, "bytes", size, "frames", sum.Frames)
	// The object may have gone between the put and the commit (a sweeper of an older
	// release, an operator): tmp holds the very bytes committed, put them back.
	committed := *s
	committed.ArchiveKey, committed.ArchiveSize, committed.ArchiveChecksum = key, size, checksum
	err = u.present(ctx, &committed)
	if archive.IsNotFound(err) {
		err = u.putBack(ctx, topic, &committed, tmp)
	}
	if err != nil {
		u.setUnconfirmed(topic, s.ID, true)
		return fmt.Errorf("segment %d of %q is archived, but its object is not confirmed: %w", s.ID, topic, err)
	}
	return nil
}

// ConfirmArchived makes sure the object the metadata names for an archived segment is
// in the store, with the recorded size (HEAD). If it is gone and this node still holds
// the segment's local copy, it encodes the segment again and puts it back under the
// same key, provided the encoding has the recorded size and checksum (the metadata
// names those very bytes), then checks again. It returns nil only when the object is
// there; ErrObjectMissing (errors.Is) when it is gone and cannot be put back. Local
// retention calls it before it drops a local copy. Safe for concurrent use.
func (u *Uploader) ConfirmArchived(ctx context.Context, topic string, s *meta.Segment) error {
	if s.ArchiveKey == "" {
		return fmt.Errorf("%w: segment %d of %q", ErrNotArchived, s.ID, topic)
	}
	if err := u.gate(ctx); err != nil {
		return err
	}
	err := u.present(ctx, s)
	if archive.IsNotFound(err) {
		err = u.reupload(ctx, topic, s)
	}
	if err != nil {
		return err
	}
	u.setUnconfirmed(topic, s.ID, false)
	return nil
}

// present checks (HEAD) that s's archive object exists with the recorded size; an
// absent object is archive.ErrNotFound.
func (u *Uploader) present(ctx context.Context, s *meta.Segment) error {
	info, err := u.cfg.Bucket.Stat(ctx, s.ArchiveKey)
	if err != nil {
		return err
	}
	if info.Size != s.ArchiveSize {
		return fmt.Errorf("%w: %q holds %d bytes, the metadata says %d", ErrObjectMissing, s.ArchiveKey, info.Size, s.ArchiveSize)
	}
	return nil
}

// reupload encodes a segment whose object vanished from its local copy and puts it back.
func (u *Uploader) reupload(ctx context.Context, topic string, s *meta.Segment) error {
	if !u.cfg.Local.HasLocal(topic, s.ID) {
		u.setUnconfirmed(topic, s.ID, false) // nothing this node can do
		u.log.Error("archived object is gone and no local copy is left", "topic", topic, "segment", s.ID, "key", s.ArchiveKey)
		return fmt.Errorf("%w: %q (segment %d of %q), and this node holds no local copy", ErrObjectMissing, s.ArchiveKey, s.ID, topic)
	}
	u.mu.Lock()
	err := u.differs[segRef{topic, s.ID}]
	u.mu.Unlock()
	if err != nil {
		return err
	}
	u.log.Warn("archived object is gone; uploading it again from the local copy", "topic", topic, "segment", s.ID, "key", s.ArchiveKey)
	tmp, sum, err := u.encode(topic, s)
	if err != nil {
		return err
	}
	defer discard(tmp)
	if sum.Size != s.ArchiveSize || sum.Checksum != s.ArchiveChecksum {
		err := fmt.Errorf("%w: %q (segment %d of %q): encoded again it is %d bytes, crc32c %08x; the metadata names %d bytes, crc32c %08x",
			ErrObjectMissing, s.ArchiveKey, s.ID, topic, sum.Size, sum.Checksum, s.ArchiveSize, s.ArchiveChecksum)
		u.log.Error("archived object is gone and cannot be put back; the local copy stays", "err", err)
		u.mu.Lock()
		u.differs[segRef{topic, s.ID}] = err
		u.mu.Unlock()
		return err
	}
	return u.putBack(ctx, topic, s, tmp)
}

// putBack writes tmp (the committed bytes of s's object) under s.ArchiveKey with
// If-None-Match (another putBack may have won), then checks the object is there.
func (u *Uploader) putBack(ctx context.Context, topic string, s *meta.Segment, tmp *os.File) error {
	if err := u.gate(ctx); err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	err := u.cfg.Bucket.Put(ctx, s.ArchiveKey, tmp, s.ArchiveSize, archive.PutOptions{IfNoneMatch: true, ContentType: "application/zstd"})
	wrote := err == nil
	if err != nil && !archive.IsExists(err) {
		return err
	}
	if err := u.present(ctx, s); err != nil {
		return err
	}
	if wrote {
		u.uploads.Inc()
		u.uploadedBytes.Add(float64(s.ArchiveSize))
		u.log.Warn("archived object put back", "topic", topic, "segment", s.ID, "key", s.ArchiveKey, "bytes", s.ArchiveSize)
	}
	return nil
}

// encode writes a sealed segment's object to a temporary file (the caller discards it).
func (u *Uploader) encode(topic string, s *meta.Segment) (*os.File, seekable.Summary, error) {
	if err := os.MkdirAll(u.cfg.TempDir, 0o755); err != nil {
		return nil, seekable.Summary{}, err
	}
	tmp, err := os.CreateTemp(u.cfg.TempDir, "upload-*.seg")
	if err != nil {
		return nil, seekable.Summary{}, err
	}
	sum, err := u.encodeTo(tmp, topic, s)
	if err != nil {
		discard(tmp)
		return nil, seekable.Summary{}, err
	}
	return tmp, sum, nil
}

func (u *Uploader) encodeTo(f *os.File, topic string, s *meta.Segment) (seekable.Summary, error) {
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := seekable.NewWriter(bw, seekable.Meta{
		Topic: topic, Segment: s.ID, Base: s.Base, Count: s.Count, LeaderTerm: s.LeaderIndex,
		RecordCRC: s.CRC, RawBytes: s.Bytes, CreatedUnixMS: s.SealedUnixMS,
	}, seekable.WriterOptions{FrameSize: u.cfg.FrameSize, Concurrency: 2})
	if err != nil {
		return seekable.Summary{}, err
	}
	if err := u.cfg.Local.ScanSegment(topic, s.ID, w.Append); err != nil {
		return seekable.Summary{}, fmt.Errorf("cannot read segment %d of %q for upload: %w", s.ID, topic, err)
	}
	sum, err := w.Close()
	if err != nil {
		return seekable.Summary{}, fmt.Errorf("cannot encode segment %d of %q: %w", s.ID, topic, err)
	}
	if err := bw.Flush(); err != nil {
		return seekable.Summary{}, err
	}
	return sum, nil
}

func discard(f *os.File) {
	f.Close()
	os.Remove(f.Name())
}

// put writes an encoded object (in tmp) under key with If-None-Match: *. An object
// already there is accepted once it verifies as this very segment (an earlier attempt
// got there first), and wrote is then false; tmp then holds that object's bytes. It
// returns the size and CRC32C of the object under key.
func (u *Uploader) put(ctx context.Context, key, topic string, s *meta.Segment, tmp *os.File, sum seekable.Summary) (size int64, checksum uint32, wrote bool, err error) {
	if err := u.gate(ctx); err != nil {
		return 0, 0, false, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return 0, 0, false, err
	}
	err = u.cfg.Bucket.Put(ctx, key, tmp, sum.Size, archive.PutOptions{IfNoneMatch: true, ContentType: "application/zstd"})
	if archive.IsExists(err) {
		body, err := u.verifyExisting(ctx, key, topic, s)
		if err != nil {
			return 0, 0, false, err
		}
		if err := tmp.Truncate(0); err != nil {
			return 0, 0, false, err
		}
		if _, err := tmp.WriteAt(body, 0); err != nil {
			return 0, 0, false, err
		}
		return int64(len(body)), crc32.Checksum(body, castagnoli), false, nil
	}
	if err != nil {
		return 0, 0, false, err
	}
	return sum.Size, sum.Checksum, true, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// verifyExisting reads an object that already exists under a segment's key, checks
// that it holds exactly that segment (metadata and record CRC, every frame intact) and
// returns its bytes.
func (u *Uploader) verifyExisting(ctx context.Context, key, topic string, s *meta.Segment) ([]byte, error) {
	rc, err := u.cfg.Bucket.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	body, err := io.ReadAll(rc)
	if err != nil {
		return nil, archive.Error("read", key, "archive", err)
	}
	var bad error
	m, err := seekable.Verify(ctx, seekable.BytesSource(body), func(r seekable.FrameReport) {
		if r.Err != nil && bad == nil {
			bad = r.Err
		}
	})
	if err == nil {
		err = bad
	}
	if err == nil && (m.Topic != topic || m.Segment != s.ID || m.Base != s.Base || m.Count != s.Count || m.RecordCRC != s.CRC) {
		err = fmt.Errorf("holds %q segment %d base %d count %d crc %08x", m.Topic, m.Segment, m.Base, m.Count, m.RecordCRC)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrConflict, key, err)
	}
	return body, nil
}

// removeStaleTemps deletes the objects a crash left half-encoded in dir. Nothing else
// writes there, and the uploader that will is not running yet.
func removeStaleTemps(dir string, log *slog.Logger) {
	if dir == "" {
		return
	}
	stale, _ := filepath.Glob(filepath.Join(dir, "upload-*.seg"))
	for _, f := range stale {
		if err := os.Remove(f); err != nil {
			log.Warn("cannot remove a stale upload file", "file", f, "err", err)
		}
	}
	if len(stale) > 0 {
		log.Info("removed upload files left by a crash", "dir", dir, "files", len(stale))
	}
}
