package tiering

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"floe/archive"
	"floe/archive/mem"
	"floe/internal/testenv"
	"floe/meta"
)

// While the uploader's Gate refuses, nothing is written to the store (no upload, no
// put-back of a vanished object) and nothing is confirmed, so local retention drops
// no local copy; the backlog stays. Once it allows again, everything catches up.
func TestGateHoldsUploadsPutBacksAndEvictions(t *testing.T) {
	ctx := context.Background()
	c, l := newCluster(), &local{}
	b := &flakyBucket{Bucket: mem.New("gate")}
	var closed atomic.Bool
	var asked atomic.Int64
	errClaimed := errors.New("the archive belongs to another cluster (test)")
	u := NewUploader(UploaderConfig{
		NodeID: 1, Bucket: b, FSM: c.fsm, Local: l, Propose: c.propose, TempDir: t.TempDir(),
		Logger: slog.New(slog.DiscardHandler), MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Gate: func(context.Context) error {
			asked.Add(1)
			if closed.Load() {
				return errClaimed
			}
			return nil
		},
	})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); u.Run(runCtx) }()
	defer func() { cancel(); <-done }()

	var recs [][][]byte
	for i := 0; i < 2; i++ {
		recs = append(recs, sealSegment(t, c, l, "t", 50, 100))
	}
	testenv.WaitFor(t, 10*time.Second, "segments 1 and 2 archived", func() bool { return archivedAll(c, "t") })

	closed.Store(true)
	s1, _ := c.fsm.SegmentOf("t", 1)
	if err := b.Delete(ctx, s1.ArchiveKey); err != nil { // segment 1's object vanishes
		t.Fatal(err)
	}
	puts := b.puts.Load()
	recs = append(recs, sealSegment(t, c, l, "t", 50, 100))
	before := asked.Load()
	testenv.WaitFor(t, 10*time.Second, "segment 3 in the backlog, the gate asked", func() bool {
		segs, bytes := u.Backlog()
		return segs == 1 && bytes > 0 && asked.Load() > before
	})
	if err := u.ConfirmArchived(ctx, "t", &s1); !errors.Is(err, ErrPaused) || !errors.Is(err, errClaimed) {
		t.Fatalf("ConfirmArchived with the gate closed: %v, want ErrPaused wrapping the gate's error", err)
	}
	r := NewRetention(RetentionConfig{NodeID: 1, LimitBytes: 1, FSM: c.fsm, Local: l, Propose: c.propose, Confirm: u,
		Logger: slog.New(slog.DiscardHandler)})
	r.Enforce(ctx)
	state := func() string {
		var out []string
		for id := uint64(1); id <= 3; id++ {
			s, _ := c.fsm.SegmentOf("t", id)
			out = append(out, fmt.Sprintf("%d:%s,file=%v", id, s.Tier(), l.HasLocal("t", id)))
		}
		return fmt.Sprint(out)
	}
	if got, want := state(), "[1:both,file=true 2:both,file=true 3:local,file=true]"; got != want {
		t.Fatalf("gate closed: %s, want %s", got, want)
	}
	if n := b.puts.Load(); n != puts {
		t.Fatalf("%d puts to the store while the gate was closed", n-puts)
	}

	closed.Store(false)
	testenv.WaitFor(t, 10*time.Second, "segment 3 archived", func() bool { return archivedAll(c, "t") })
	r.Enforce(ctx)
	if got, want := state(), "[1:remote,file=false 2:remote,file=false 3:remote,file=false]"; got != want {
		t.Fatalf("gate open again: %s, want %s", got, want)
	}
	for i, want := range recs {
		checkArchived(t, c, b, "t", uint64(i+1), want)
	}
}

// The sweeper deletes no object last modified before HoldBefore, expired or
// unreferenced, and reports it as held.
func TestSweeperHoldsObjectsBeforeHoldBefore(t *testing.T) {
	ctx := context.Background()
	c := newCluster()
	b := mem.New("hold")
	if err := c.propose(ctx, &meta.Command{Op: meta.OpCreateTopic, Topic: "t", Leader: 1}); err != nil {
		t.Fatal(err)
	}
	theirs := ObjectKey("other", 1, 1) // no segment of this cluster names it
	if err := b.Put(ctx, theirs, bytes.NewReader([]byte("x")), 1, archive.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	var hold atomic.Int64
	hold.Store(time.Now().Add(time.Hour).UnixNano())
	s := NewSweeper(SweeperConfig{Bucket: b, FSM: c.fsm, Grace: time.Nanosecond,
		HoldBefore: func() time.Time { return time.Unix(0, hold.Load()) }})
	rep, err := s.Sweep(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Orphans) != 1 || !rep.Orphans[0].Held || rep.Orphans[0].Deletable || rep.Deleted != 0 {
		t.Fatalf("sweep with the object held: %+v", rep)
	}
	if _, err := b.Stat(ctx, theirs); err != nil {
		t.Fatalf("held object deleted: %v", err)
	}
	hold.Store(time.Now().Add(-time.Hour).UnixNano())
	if rep, err = s.Sweep(ctx, false); err != nil || rep.Deleted != 1 || rep.Orphans[0].Held {
		t.Fatalf("sweep past the hold: %+v, %v", rep, err)
	}
}
