package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"floe/internal/testenv"
	"floe/node/segment"
	"floe/node/write"
)

// TestFailedGroupCommitFailsWholeBatch: the appender's batch is the one group commit of
// the write path. While the fdatasync of one request's batch is held, two more requests
// queue behind it in the appender; the fdatasync of their batch fails. The first
// request is acknowledged; neither queued one is, nothing of them is left in the WAL,
// and the next append gets the offset they would have had.
func TestFailedGroupCommitFailsWholeBatch(t *testing.T) {
	ffs := &segment.FaultFS{}
	cfg := Config{
		NodeID: 1, DataDir: t.TempDir(), RaftPort: testenv.FreePort(t), HTTPPort: 0,
		HeartbeatTimeout: 200 * time.Millisecond, LeaseTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RaftLogLevel: "error",
		segmentFS: ffs,
	}
	ctx := context.Background()
	const topic = "faults"
	n := startSingle(t, cfg)
	if err := n.Register(ctx, topic, nil); err != nil {
		t.Fatal(err)
	}
	if off, err := n.Append(ctx, topic, [][]byte{[]byte("a")}); err != nil || off != 0 {
		t.Fatalf("first append: offset %d, err %v; want 0, nil", off, err)
	}

	errInjected := errors.New("injected fdatasync failure")
	a := n.writer.Appender(n.key(topic))
	send := func(payloads ...string) chan write.Result {
		ch := make(chan write.Result, 1)
		r := &write.Request{Done: func(res write.Result) { ch <- res }}
		for _, p := range payloads {
			r.Payloads = append(r.Payloads, []byte(p))
			r.Bytes += int64(len(p)) + 8
		}
		a.Enqueue(r)
		return ch
	}
	entered, release := ffs.HoldNextSync()
	defer release()
	first := send("b")
	<-entered // the appender is inside the fdatasync of the batch holding "b"
	ffs.FailNextSync(errInjected)
	queued := []chan write.Result{send("c"), send("d1", "d2")}
	release()

	if r := <-first; r.Err != nil || r.First != 1 {
		t.Fatalf("append in the held batch: offset %d, err %v; want 1, nil", r.First, r.Err)
	}
	for i, ch := range queued {
		if r := <-ch; !errors.Is(r.Err, errInjected) {
			t.Errorf("queued append %d: offset %d, err %v; want the injected failure (never acknowledged)", i, r.First, r.Err)
		}
	}
	if off, err := n.Append(ctx, topic, [][]byte{[]byte("e")}); err != nil || off != 2 {
		t.Fatalf("append after the failed batch: offset %d, err %v; want 2, nil", off, err)
	}
	act, _, _ := n.fsm.ActiveOf(n.key(topic))
	seg, ok := n.store.Get(n.key(topic), act.ID)
	if !ok {
		t.Fatalf("segment %d of %q is not open", act.ID, topic)
	}
	got, err := seg.Read(0, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "b", "e"}
	if len(got) != len(want) {
		t.Fatalf("WAL holds %q, want %q", got, want)
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Fatalf("WAL holds %q, want %q", got, want)
		}
	}
}

// TestUnsafeNoFsync: with --unsafe-no-fsync a node acknowledges appends without an
// fdatasync of the segment file and says so in floe_unsafe_no_fsync; without it,
// every acknowledged append was synced.
func TestUnsafeNoFsync(t *testing.T) {
	for _, unsafe := range []bool{false, true} {
		ffs := &segment.FaultFS{}
		cfg := Config{
			NodeID: 1, DataDir: t.TempDir(), RaftPort: testenv.FreePort(t), HTTPPort: 0,
			HeartbeatTimeout: 200 * time.Millisecond, LeaseTimeout: time.Second,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RaftLogLevel: "error",
			segmentFS: ffs, UnsafeNoFsync: unsafe,
		}
		ctx := context.Background()
		n := startSingle(t, cfg)
		if err := n.Register(ctx, "t", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := n.Append(ctx, "t", [][]byte{[]byte("open")}); err != nil {
			t.Fatal(err)
		}
		syncs := ffs.Syncs()
		const appends = 5
		for i := range appends {
			if _, err := n.Append(ctx, "t", [][]byte{[]byte{byte('a' + i)}}); err != nil {
				t.Fatal(err)
			}
		}
		got := ffs.Syncs() - syncs
		switch {
		case unsafe && got != 0:
			t.Errorf("--unsafe-no-fsync: %d fdatasyncs for %d appends, want none", got, appends)
		case !unsafe && got < appends:
			t.Errorf("%d fdatasyncs for %d appends acknowledged one after another, want one each", got, appends)
		}
		want := 0.0
		if unsafe {
			want = 1
		}
		if v, ok := gauge(t, n, "floe_unsafe_no_fsync"); !ok || v != want {
			t.Errorf("unsafe %v: floe_unsafe_no_fsync = %v (present %v), want %v", unsafe, v, ok, want)
		}
		n.Close()
	}
}
