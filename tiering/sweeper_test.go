package tiering

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"floe/archive"
	"floe/archive/mem"
	archiveminio "floe/archive/minio"
	"floe/archive/miniotest"
	"floe/internal/testenv"
	"floe/meta"
)

func TestSweeperDeletesOnlyOrphans(t *testing.T) {
	ctx := context.Background()
	c := newCluster()
	b := mem.New("sweep")
	put := func(key string) {
		t.Helper()
		if err := b.Put(ctx, key, bytes.NewReader([]byte("x")), 1, archive.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	must := func(cmd *meta.Command) {
		t.Helper()
		if err := c.propose(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	must(&meta.Command{Op: meta.OpCreateTopic, Topic: "t", Leader: 1})
	k1, k2, orphan := ObjectKey("t", 1, 1), ObjectKey("t", 2, 3), ObjectKey("t", 3, 9)
	for i, k := range []string{k1, k2} {
		id := uint64(i + 1)
		must(&meta.Command{Op: meta.OpSeal, Topic: "t", Segment: id, Count: 5, NextLeader: 1})
		must(&meta.Command{Op: meta.OpArchived, Topic: "t", Segment: id, Key: k, Size: 1})
		put(k)
	}
	put(orphan)                          // an upload that never committed
	put(TopicPrefix("t") + "README.txt") // not a segment object
	put(ClaimKey)
	must(&meta.Command{Op: meta.OpExpire, Topic: "t", Segment: 1})

	keys := func() string {
		var out []string
		b.List(ctx, "", func(o archive.ObjectInfo) error { out = append(out, o.Key); return nil })
		return fmt.Sprint(out)
	}
	all := keys()
	s := NewSweeper(SweeperConfig{Bucket: b, FSM: c.fsm, Grace: time.Hour})
	rep, err := s.Sweep(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Scanned != 3 || len(rep.Orphans) != 2 || rep.Deleted != 0 || keys() != all {
		t.Fatalf("dry run: %+v; bucket %s (was %s)", rep, keys(), all)
	}
	if o := rep.Orphans; o[0].Key != k1 || o[0].Reason != "expired" || !o[0].Deletable || o[1].Key != orphan || o[1].Deletable {
		t.Fatalf("dry run orphans: %+v", o)
	}
	if rep, err = s.Sweep(ctx, false); err != nil || rep.Deleted != 1 {
		t.Fatalf("sweep: %+v, %v", rep, err)
	}
	if want := fmt.Sprint([]string{ClaimKey, k2, orphan, TopicPrefix("t") + "README.txt"}); keys() != want {
		t.Fatalf("after a sweep with 1h grace: %s, want %s (the expired segment's object gone)", keys(), want)
	}
	// Past the grace period, the upload that never committed goes too.
	rep, err = NewSweeper(SweeperConfig{Bucket: b, FSM: c.fsm, Grace: 0}).Sweep(ctx, false)
	if err != nil || rep.Deleted != 1 {
		t.Fatalf("sweep with no grace: %+v, %v", rep, err)
	}
	if want := fmt.Sprint([]string{ClaimKey, k2, TopicPrefix("t") + "README.txt"}); keys() != want {
		t.Fatalf("after a sweep with no grace: %s, want %s", keys(), want)
	}
}

// later is the clock of a sweep that runs two hours after now: every object is past a
// one-hour grace, as for an upload whose Archived took that long (Raft unavailable) or
// a retry that finds the object an hour-old attempt left.
func later() time.Time { return time.Now().Add(2 * time.Hour) }

// minioBucket opens a fresh bucket of srv.
func minioBucket(t *testing.T, srv *miniotest.Server) archive.Bucket {
	t.Helper()
	b, err := archiveminio.OpenWithCredentials(context.Background(), srv.NewBucket(t),
		credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""), archive.Options{Endpoint: srv.Endpoint, Region: srv.Region})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// checkArchived fails unless the object the metadata names for segment id of topic
// exists with the recorded size and reads back as want.
func checkArchived(t *testing.T, c *cluster, b archive.Bucket, topic string, id uint64, want [][]byte) {
	t.Helper()
	ctx := context.Background()
	s, ok := c.fsm.SegmentOf(topic, id)
	if !ok || s.ArchiveKey == "" {
		t.Fatalf("segment %d of %q is not archived: %+v", id, topic, s)
	}
	info, err := b.Stat(ctx, s.ArchiveKey)
	if err != nil {
		t.Fatalf("the metadata names %q for segment %d, but: %v", s.ArchiveKey, id, err)
	}
	if info.Size != s.ArchiveSize {
		t.Fatalf("object %q holds %d bytes, the metadata says %d", s.ArchiveKey, info.Size, s.ArchiveSize)
	}
	r := newRemote(t, b, mustCache(t, 1<<20), slog.New(slog.DiscardHandler))
	var got [][]byte
	for uint64(len(got)) < s.Count {
		recs, err := r.Read(ctx, s.ArchiveKey, s.ArchiveSize, s.Base+uint64(len(got)), int(s.Count)-len(got))
		if err != nil || len(recs) == 0 {
			t.Fatalf("read of %q at %d: %d entries, %v", s.ArchiveKey, s.Base+uint64(len(got)), len(recs), err)
		}
		got = append(got, recs...)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d entries of %q, want %d", len(got), s.ArchiveKey, len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("entry %d of %q differs", i, s.ArchiveKey)
		}
	}
}

// quietUploader is an uploader that the test drives by hand (no Run).
func quietUploader(c *cluster, l *local, b archive.Bucket, dir string, propose Proposer) *Uploader {
	return NewUploader(UploaderConfig{NodeID: 1, Bucket: b, FSM: c.fsm, Local: l, Propose: propose, TempDir: dir,
		Logger: slog.New(slog.DiscardHandler), FrameSize: 16 << 10})
}

func lostCommit(context.Context, *meta.Command) error { return errors.New("leadership lost (test)") }

// A sweep that lists the bucket between an upload's put and its Archived commit, with
// the object past the grace period: the first attempt, and a retry that finds its own
// earlier object, verifies it and commits. The sweep must leave the object the segment
// is about to record.
func TestSweepBetweenPutAndCommitKeepsTheObject(t *testing.T) {
	srv := miniotest.Start(t)
	buckets := map[string]func(t *testing.T) archive.Bucket{
		"mem":   func(*testing.T) archive.Bucket { return mem.New("sweep") },
		"minio": func(t *testing.T) archive.Bucket { return minioBucket(t, srv) },
	}
	for name, bucket := range buckets {
		for _, retry := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/retry=%v", name, retry), func(t *testing.T) {
				ctx := context.Background()
				b := bucket(t)
				c, l := newCluster(), &local{}
				recs := sealSegment(t, c, l, "t", 50, 100)
				seg, _ := c.fsm.SegmentOf("t", 1)
				if retry {
					if err := quietUploader(c, l, b, t.TempDir(), lostCommit).upload(ctx, "t", &seg); err == nil {
						t.Fatal("upload with a failing proposer succeeded")
					}
				}
				sw := NewSweeper(SweeperConfig{Bucket: b, FSM: c.fsm, Grace: time.Hour, Now: later, Logger: slog.New(slog.DiscardHandler)})
				var rep *SweepReport
				propose := func(ctx context.Context, cmd *meta.Command) error {
					if cmd.Op == meta.OpArchived && rep == nil {
						var err error
						if rep, err = sw.Sweep(ctx, false); err != nil {
							return err
						}
					}
					return c.propose(ctx, cmd)
				}
				if err := quietUploader(c, l, b, t.TempDir(), propose).upload(ctx, "t", &seg); err != nil {
					t.Fatal(err)
				}
				if rep == nil || rep.Scanned != 1 || rep.Deleted != 0 || len(rep.Orphans) != 0 {
					t.Fatalf("the sweep between put and commit: %+v; want the object scanned, not an orphan", rep)
				}
				checkArchived(t, c, b, "t", 1, recs)
			})
		}
	}
}

// An upload whose Archived was lost leaves its object; a sweep past the grace period
// must leave it (the retry will commit it). If it is gone anyway (a sweeper of an older
// release, an operator), the retry uploads it again.
func TestRetryAfterTheObjectWasSwept(t *testing.T) {
	ctx := context.Background()
	c, l := newCluster(), &local{}
	b := mem.New("swept")
	recs := sealSegment(t, c, l, "t", 50, 100)
	seg, _ := c.fsm.SegmentOf("t", 1)
	if err := quietUploader(c, l, b, t.TempDir(), lostCommit).upload(ctx, "t", &seg); err == nil {
		t.Fatal("upload with a failing proposer succeeded")
	}
	key := ObjectKey("t", seg.ID, seg.LeaderIndex)
	sw := NewSweeper(SweeperConfig{Bucket: b, FSM: c.fsm, Grace: time.Hour, Now: later, Logger: slog.New(slog.DiscardHandler)})
	rep, err := sw.Sweep(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Deleted != 0 || len(rep.Orphans) != 0 {
		t.Fatalf("sweep: %+v; the object of a sealed, unarchived segment is no orphan", rep)
	}
	if _, err := b.Stat(ctx, key); err != nil {
		t.Fatalf("the object a retry will commit is gone: %v", err)
	}
	if err := b.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := quietUploader(c, l, b, t.TempDir(), c.propose).upload(ctx, "t", &seg); err != nil {
		t.Fatalf("retry after the object was deleted: %v", err)
	}
	checkArchived(t, c, b, "t", 1, recs)
	if rep, err = sw.Sweep(ctx, false); err != nil || rep.Deleted != 0 {
		t.Fatalf("sweep after the commit: %+v, %v", rep, err)
	}
	checkArchived(t, c, b, "t", 1, recs)
}

// An object that vanishes right after its Archived commit (here deleted as the commit
// applies, as the unfixed sweeper did) is uploaded again while the local copy exists:
// upload returns only once the committed key holds the committed bytes. Both for a
// first attempt and for a retry that committed an earlier attempt's object.
func TestObjectVanishedAfterCommitIsUploadedAgain(t *testing.T) {
	for _, retry := range []bool{false, true} {
		t.Run(fmt.Sprintf("retry=%v", retry), func(t *testing.T) {
			ctx := context.Background()
			c, l := newCluster(), &local{}
			b := mem.New("vanish")
			recs := sealSegment(t, c, l, "t", 50, 100)
			seg, _ := c.fsm.SegmentOf("t", 1)
			if retry {
				// The earlier attempt encoded with another frame size: the retry commits
				// that object's bytes, not its own encoding's.
				u := quietUploader(c, l, b, t.TempDir(), lostCommit)
				u.cfg.FrameSize = 4 << 10
				if err := u.upload(ctx, "t", &seg); err == nil {
					t.Fatal("upload with a failing proposer succeeded")
				}
			}
			vanish := func(ctx context.Context, cmd *meta.Command) error {
				err := c.propose(ctx, cmd)
				if err == nil && cmd.Op == meta.OpArchived {
					if err := b.Delete(ctx, cmd.Key); err != nil {
						t.Error(err)
					}
				}
				return err
			}
			if err := quietUploader(c, l, b, t.TempDir(), vanish).upload(ctx, "t", &seg); err != nil {
				t.Fatal(err)
			}
			checkArchived(t, c, b, "t", 1, recs)
		})
	}
}

// Which keys a sweep past the grace period deletes: only those no segment can still
// record. A segment that is neither archived nor expired protects the key its uploader
// writes (its own leader term); a key of a segment the metadata does not know is
// protected if a segment created later could carry its term.
func TestSweeperSparesKeysASegmentMayStillCommit(t *testing.T) {
	ctx := context.Background()
	c, l := newCluster(), &local{}
	b := mem.New("spare")
	for i := 0; i < 3; i++ {
		sealSegment(t, c, l, "t", 5, 10)
	}
	top, _ := c.fsm.Topic("t")
	s1, s2, s3, s4 := *top.Segments[0], *top.Segments[1], *top.Segments[2], *top.Segments[3]
	for _, cmd := range []*meta.Command{
		{Op: meta.OpArchived, Topic: "t", Segment: 1, Key: ObjectKey("t", 1, s1.LeaderIndex), Size: 1},
		{Op: meta.OpExpire, Topic: "t", Segment: 1},
		{Op: meta.OpArchived, Topic: "t", Segment: 2, Key: ObjectKey("t", 2, s2.LeaderIndex), Size: 1},
	} {
		if err := c.propose(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	applied := c.fsm.AppliedIndex()
	keep := map[string]string{
		ObjectKey("t", 2, s2.LeaderIndex): "archived under it",
		ObjectKey("t", 3, s3.LeaderIndex): "sealed, its upload may still commit",
		ObjectKey("t", 4, s4.LeaderIndex): "active, will be uploaded under it",
		ObjectKey("t", 5, applied+1):      "unknown segment, a later term",
		ObjectKey("u", 1, applied+7):      "unknown topic, a later term",
	}
	drop := map[string]string{
		ObjectKey("t", 1, s1.LeaderIndex):   "its segment expired",
		ObjectKey("t", 2, s2.LeaderIndex+1): "its segment is archived under another key",
		ObjectKey("t", 3, s3.LeaderIndex+1): "not the term of its segment",
		ObjectKey("t", 5, applied):          "unknown segment, a term no later segment can have",
		ObjectKey("u", 1, 1):                "unknown topic, an old term",
	}
	for _, m := range []map[string]string{keep, drop} {
		for k := range m {
			if err := b.Put(ctx, k, bytes.NewReader([]byte("x")), 1, archive.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	rep, err := NewSweeper(SweeperConfig{Bucket: b, FSM: c.fsm, Grace: time.Hour, Now: later}).Sweep(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Deleted != len(drop) || len(rep.Orphans) != len(drop) {
		t.Errorf("deleted %d of %d orphans, want %d: %+v", rep.Deleted, len(rep.Orphans), len(drop), rep.Orphans)
	}
	for k, why := range keep {
		if _, err := b.Stat(ctx, k); err != nil {
			t.Errorf("%s (%s) was deleted", k, why)
		}
	}
	for k, why := range drop {
		if _, err := b.Stat(ctx, k); err == nil {
			t.Errorf("%s (%s) was kept", k, why)
		}
	}
}

// The uploader (whose Archived commits are lost half of the time, before or after they
// apply) against a sweeper that runs without pause, every object past the grace
// period: once every segment is archived, every object the metadata names is there.
func TestSweeperAgainstUploaderRetries(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, l := newCluster(), &local{}
	b := mem.New("race")
	var n atomic.Int64
	propose := func(ctx context.Context, cmd *meta.Command) error {
		if cmd.Op != meta.OpArchived {
			return c.propose(ctx, cmd)
		}
		switch n.Add(1) % 4 {
		case 0:
			return errors.New("leadership lost before the commit (test)")
		case 1:
			c.propose(ctx, cmd)
			return errors.New("leadership lost after the commit (test)")
		}
		return c.propose(ctx, cmd)
	}
	u := NewUploader(UploaderConfig{NodeID: 1, Bucket: b, FSM: c.fsm, Local: l, Propose: propose, TempDir: t.TempDir(),
		Logger: slog.New(slog.DiscardHandler), MinBackoff: time.Microsecond, MaxBackoff: time.Millisecond, FrameSize: 16 << 10})
	sw := NewSweeper(SweeperConfig{Bucket: b, FSM: c.fsm, Grace: time.Hour, Now: later, Logger: slog.New(slog.DiscardHandler)})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); u.Run(ctx) }()
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if _, err := sw.Sweep(ctx, false); err != nil && ctx.Err() == nil {
				t.Error(err)
			}
		}
	}()
	recs := map[uint64][][]byte{}
	for i := 0; i < 20; i++ {
		top, _ := c.fsm.Topic("t")
		id := uint64(1)
		if top != nil {
			id = top.Active().ID
		}
		recs[id] = sealSegment(t, c, l, "t", 20, 50)
	}
	testenv.WaitFor(t, 30*time.Second, "every segment archived", func() bool { segs, _ := u.Backlog(); return archivedAll(c, "t") && segs == 0 })
	cancel()
	wg.Wait()
	for id, want := range recs {
		checkArchived(t, c, b, "t", id, want)
	}
}
