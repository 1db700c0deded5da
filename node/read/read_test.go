package read

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"floe/archive/seekable"
	"floe/meta"
	"floe/wire"
)

func payloads(es []wire.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, string(e.Payload))
	}
	return out
}

// TestReadFallbackOrder: a segment is read from this node's disk, else from its owner,
// else from the archive; only one that is unarchived and on an owner that cannot be
// reached is unreadable, and the error says which node holds it.
func TestReadFallbackOrder(t *testing.T) {
	ab := []string{"a", "b"}
	for _, tc := range []struct {
		name  string
		first seg                       // segment 1 (sealed), read at offset 0
		setup func(w *world)            // faults
		want  []string                  // entries read, if no error
		err   error                     // the error, if any
		msg   string                    // and what its message says
		from  func(w *world) (o, a int) // owner and archive reads expected
	}{
		{name: "local", first: seg{leader: self, payloads: ab, archived: true}, want: ab},
		{name: "owner", first: seg{leader: 2, payloads: ab, archived: true}, want: ab,
			from: func(w *world) (int, int) { return 1, 0 }},
		{name: "owner down: archive", first: seg{leader: 2, payloads: ab, archived: true},
			setup: func(w *world) { w.down[2] = true }, want: ab,
			from: func(w *world) (int, int) { return 1, 1 }},
		{name: "owner failed recently: archive, owner not asked", first: seg{leader: 2, payloads: ab, archived: true},
			setup: func(w *world) { w.recent[2] = true }, want: ab,
			from: func(w *world) (int, int) { return 0, 1 }},
		{name: "owner no longer holds it: archive", first: seg{leader: 2, payloads: ab, archived: true},
			setup: func(w *world) { delete(w.owner, 1) }, want: ab,
			from: func(w *world) (int, int) { return 1, 1 }},
		{name: "local copy evicted: archive", first: seg{leader: self, payloads: ab, archived: true, evicted: true}, want: ab,
			from: func(w *world) (int, int) { return 0, 1 }},
		{name: "local copy corrupt: archive", first: seg{leader: self, payloads: ab, archived: true},
			setup: func(w *world) { w.corrupt[1] = true }, want: ab,
			from: func(w *world) (int, int) { return 0, 1 }},
		{name: "unarchived and owner down", first: seg{leader: 2, payloads: ab},
			setup: func(w *world) { w.down[2] = true }, err: ErrUnavailable,
			msg: `segment 1 of "t" is only on node 2 (not archived yet): `},
		{name: "unarchived, owner lost it", first: seg{leader: 2, payloads: ab},
			setup: func(w *world) { delete(w.owner, 1) }, err: ErrSegmentNotFound,
			msg: `segment 1 of "t" is only on node 2 (not archived yet): `},
		{name: "unarchived, on no node", first: seg{leader: self, payloads: ab},
			setup: func(w *world) { delete(w.local, 1) }, err: ErrSegmentNotFound,
			msg: `segment 1 of "t" is on no node and not archived`},
		{name: "unarchived local copy corrupt", first: seg{leader: self, payloads: ab},
			setup: func(w *world) { w.corrupt[1] = true }, err: ErrCorrupt},
		{name: "local copy shorter than the metadata", first: seg{leader: self, payloads: ab},
			setup: func(w *world) { w.local[1] = w.local[1][:0] }, err: ErrCorrupt,
			msg: "holds 0 entries on node 1, metadata says 2"},
		{name: "archived object corrupt", first: seg{leader: self, payloads: ab, archived: true, evicted: true},
			setup: func(w *world) { w.objErr = fmt.Errorf("frame 0: %w", seekable.ErrCorrupt) }, err: ErrCorrupt},
		{name: "archive unreachable", first: seg{leader: self, payloads: ab, archived: true, evicted: true},
			setup: func(w *world) { w.objErr = errors.New("connection refused") }, err: ErrUnavailable,
			msg: `read of "t" at 0 gave up`},
		{name: "no archive on this node", first: seg{leader: self, payloads: ab, archived: true, evicted: true},
			setup: func(w *world) { w.objErr = ErrNoArchive }, err: ErrUnavailable, msg: "this node has no --archive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(tc.first, seg{leader: self})
			if tc.setup != nil {
				tc.setup(w)
			}
			got, next, err := w.reader().Read(context.Background(), "t", 0, 10)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(fmt.Sprint(err), tc.msg) {
					t.Fatalf("got %q, %v; want an error wrapping %v saying %q", payloads(got), err, tc.err, tc.msg)
				}
				return
			}
			if err != nil || fmt.Sprint(payloads(got)) != fmt.Sprint(tc.want) || next != uint64(len(tc.want)) {
				t.Fatalf("got %q next %d, %v; want %q next %d", payloads(got), next, err, tc.want, len(tc.want))
			}
			wantOwner, wantArchive := 0, 0
			if tc.from != nil {
				wantOwner, wantArchive = tc.from(w)
			}
			if w.ownerReads != wantOwner || w.archiveReads != wantArchive {
				t.Fatalf("%d owner reads and %d archive reads, want %d and %d", w.ownerReads, w.archiveReads, wantOwner, wantArchive)
			}
		})
	}
}

// TestReadFollowerCopies: an active replicated segment is read from its leader; only
// when the leader does not answer are its followers' copies read, this node's first,
// each up to the entries the leader told it a majority holds; a leader that failed
// recently is not asked; and when no copy has an entry at the offset, the leader's
// error is the answer (a copy's silence is not the end of the segment).
func TestReadFollowerCopies(t *testing.T) {
	abcde := []string{"a", "b", "c", "d", "e"}
	newReplicated := func() *world {
		w := newWorld(seg{leader: 2, payloads: abcde})
		w.topic.Segments[0].Replicas = []uint64{2, self, 3}
		w.copies[self] = map[uint64][][]byte{1: w.owner[1][:3]}
		w.copies[3] = map[uint64][][]byte{1: w.owner[1][:4]}
		return w
	}
	for _, tc := range []struct {
		name        string
		setup       func(w *world)
		offset      uint64
		want        []string
		err         error
		owner, copy int // reads expected of the leader, of copies
	}{
		{name: "leader up: the leader", offset: 0, want: abcde, owner: 1},
		{name: "leader down: this node's copy", setup: func(w *world) { w.down[2] = true },
			offset: 0, want: abcde[:3], owner: 1, copy: 1},
		{name: "leader down, this node's copy has none there: the other follower's", setup: func(w *world) { w.down[2] = true },
			offset: 3, want: abcde[3:4], owner: 1, copy: 2},
		{name: "leader failed recently: not asked", setup: func(w *world) { w.recent[2] = true },
			offset: 1, want: abcde[1:3], owner: 0, copy: 1},
		{name: "leader down, no copy there: the leader's error", setup: func(w *world) { w.down[2] = true },
			offset: 4, err: ErrUnavailable},
		{name: "leader and the other follower down, no local copy", setup: func(w *world) {
			w.down[2], w.down[3] = true, true
			delete(w.copies, self)
		}, offset: 0, err: ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newReplicated()
			if tc.setup != nil {
				tc.setup(w)
			}
			got, next, err := w.reader().Read(context.Background(), "t", tc.offset, 10)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || len(got) > 0 {
					t.Fatalf("got %q, %v; want an error wrapping %v", payloads(got), err, tc.err)
				}
				return
			}
			if err != nil || fmt.Sprint(payloads(got)) != fmt.Sprint(tc.want) || next != tc.offset+uint64(len(tc.want)) {
				t.Fatalf("got %q next %d, %v; want %q", payloads(got), next, err, tc.want)
			}
			if w.ownerReads != tc.owner || w.copyReads != tc.copy {
				t.Fatalf("%d leader reads and %d copy reads, want %d and %d", w.ownerReads, w.copyReads, tc.owner, tc.copy)
			}
		})
	}
}

// TestReadFrozenCopies (found by review): when the leader of an active replicated
// segment is frozen (its connection open, nothing answered), a read waits for it at
// most copyReadWait, then reads this node's copy before any other follower's (a
// frozen follower listed before this node is not asked), waits for a frozen
// follower at most copyReadWait too, and asks neither again while they count as
// down. A GET through such a node hands the entries out.
func TestReadFrozenCopies(t *testing.T) {
	abcde := []string{"a", "b", "c", "d", "e"}
	t.Run("this node's copy first", func(t *testing.T) {
		w := newWorld(seg{leader: 2, payloads: abcde})
		w.topic.Segments[0].Replicas = []uint64{2, 3, self}
		w.copies[self] = map[uint64][][]byte{1: w.owner[1][:3]}
		w.copies[3] = map[uint64][][]byte{1: w.owner[1][:3]}
		w.hang[2], w.hang[3] = true, true
		r := w.reader()
		got, _, err := r.Read(context.Background(), "t", 0, 10)
		if err != nil || fmt.Sprint(payloads(got)) != fmt.Sprint(abcde[:3]) {
			t.Fatalf("Read: %q, %v; want %q", payloads(got), err, abcde[:3])
		}
		if w.copyCalls[3] != 0 {
			t.Fatalf("frozen follower 3 was asked %d times before this node's copy", w.copyCalls[3])
		}
		entries, err := r.Get(context.Background(), "t", 10)
		if err != nil || fmt.Sprint(payloads(entries)) != fmt.Sprint(abcde[:3]) || w.cursor() != 3 {
			t.Fatalf("GET: %q, %v, cursor %d; want %q and the cursor at 3", payloads(entries), err, w.cursor(), abcde[:3])
		}
		if w.ownerReads != 1 {
			t.Fatalf("the frozen leader was asked %d times; once, then it counts as down", w.ownerReads)
		}
	})
	t.Run("a frozen follower is waited for at most copyReadWait", func(t *testing.T) {
		w := newWorld(seg{leader: 2, payloads: abcde})
		w.topic.Segments[0].Replicas = []uint64{2, 3, 4} // this node holds no copy
		w.copies[4] = map[uint64][][]byte{1: w.owner[1][:4]}
		w.hang[2], w.hang[3] = true, true
		r := w.reader()
		r.cfg.RequestTimeout = 10 * copyReadWait // the two frozen nodes' waits fit in it
		got, _, err := r.Read(context.Background(), "t", 0, 10)
		if err != nil || fmt.Sprint(payloads(got)) != fmt.Sprint(abcde[:4]) {
			t.Fatalf("Read: %q, %v; want %q from node 4", payloads(got), err, abcde[:4])
		}
		got, _, err = r.Read(context.Background(), "t", 1, 10)
		if err != nil || len(got) != 3 || w.copyCalls[3] != 1 || w.ownerReads != 1 {
			t.Fatalf("second Read: %q, %v; node 3 asked %d times, the leader %d; want both once (then down)",
				payloads(got), err, w.copyCalls[3], w.ownerReads)
		}
	})
}

// TestReadExpired: an offset retention expired, or in a segment floe restore
// --cluster marked lost, fails with ErrExpired naming the first offset kept.
func TestReadExpired(t *testing.T) {
	w := newWorld(
		seg{leader: self, payloads: []string{"a", "b"}, state: meta.Expired},
		seg{leader: self, payloads: []string{"c", "d"}},
		seg{leader: 2, payloads: []string{"e", "f"}, lost: true},
		seg{leader: self, payloads: []string{"g"}},
		seg{leader: self},
	)
	w.local[1] = nil
	r := w.reader()
	for _, tc := range []struct {
		offset uint64
		msg    string
	}{
		{1, `offset 1 of "t" (segment 1) has expired by retention; the earliest offset kept is 2`},
		{5, `offsets [4, 6) of "t" (segment 3) were lost: no copy of them survived (floe restore --cluster); the next offset kept is 6`},
	} {
		_, next, err := r.Read(context.Background(), "t", tc.offset, 10)
		if !errors.Is(err, ErrExpired) || !strings.Contains(err.Error(), tc.msg) || next != tc.offset {
			t.Errorf("read at %d: next %d, %v; want ErrExpired saying %q", tc.offset, next, err, tc.msg)
		}
	}
	// A read that reaches a lost segment after entries returns those; the next one
	// reports it.
	got, next, err := r.Read(context.Background(), "t", 2, 10)
	if err != nil || fmt.Sprint(payloads(got)) != "[c d]" || next != 4 {
		t.Fatalf("read at 2: %q next %d, %v; want [c d] next 4", payloads(got), next, err)
	}
}

// TestReadCrossesSealedSegments: a read goes on into the next segment only when one
// is sealed and exhausted, and stops at the active segment's durable end.
func TestReadCrossesSealedSegments(t *testing.T) {
	w := newWorld(
		seg{leader: self, payloads: []string{"a", "b"}},
		seg{leader: 2, payloads: []string{"c"}, archived: true, evicted: true},
		seg{leader: 2, abandon: true},
		seg{leader: 3, payloads: []string{"d", "e"}},
		seg{leader: self, payloads: []string{"f"}},
	)
	got, next, err := w.reader().Read(context.Background(), "t", 1, 100)
	if err != nil || fmt.Sprint(payloads(got)) != "[b c d e f]" || next != 6 {
		t.Fatalf("got %q next %d, %v; want [b c d e f] next 6", payloads(got), next, err)
	}
	for i, e := range got {
		if e.Offset != uint64(1+i) {
			t.Fatalf("entry %d has offset %d, want %d", i, e.Offset, 1+i)
		}
	}
	got, next, err = w.reader().Read(context.Background(), "t", 6, 100)
	if err != nil || len(got) != 0 || next != 6 {
		t.Fatalf("read at the end: %q next %d, %v; want nothing, next 6", payloads(got), next, err)
	}
}

// TestReadByteBudget: one read returns at most MaxBytes of payload, passing it only
// with the entry that crosses it, on every tier.
func TestReadByteBudget(t *testing.T) {
	big := string(bytes.Repeat([]byte{'x'}, 6<<20))
	for _, tc := range []struct {
		name string
		segs []seg
	}{
		{"local", []seg{{leader: self, payloads: []string{big, big}}, {leader: self, payloads: []string{big, big}}}},
		{"owner", []seg{{leader: 2, payloads: []string{big, big}}, {leader: 2, payloads: []string{big, big}}}},
		{"archive", []seg{{leader: 2, payloads: []string{big, big}, archived: true, evicted: true}, {leader: 2, payloads: []string{big, big}, archived: true, evicted: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(append(tc.segs, seg{leader: self})...)
			got, next, err := w.reader().Read(context.Background(), "t", 0, 100)
			// 6+6 MiB leave 4 MiB of the budget: the next segment gives one more
			// entry, which crosses it, and the read stops there.
			if err != nil || len(got) != 3 || next != 3 {
				t.Fatalf("got %d entries next %d, %v; want 3 next 3", len(got), next, err)
			}
		})
	}
	w := newWorld(seg{leader: self, payloads: []string{big}}, seg{leader: self})
	if got, _, err := w.reader().Read(context.Background(), "t", 0, 100); err != nil || len(got) != 1 {
		t.Fatalf("an entry alone: %d entries, %v; want 1", len(got), err)
	}
}

// TestReadLocal: this node's own active segment before its file exists reads empty,
// and an active segment reads up to its durable end.
func TestReadLocal(t *testing.T) {
	w := newWorld(seg{leader: self})
	r := w.reader()
	delete(w.local, 1) // not created yet
	act := *w.topic.Active()
	if got, err := r.ReadLocal("t", &act, 0, 10, 0); err != nil || len(got) != 0 {
		t.Fatalf("own active segment without a file: %q, %v; want none", payloads(got), err)
	}
	act.Leader = 2
	if _, err := r.ReadLocal("t", &act, 0, 10, 0); !errors.Is(err, ErrSegmentNotFound) {
		t.Fatalf("another node's active segment: %v; want ErrSegmentNotFound", err)
	}
	w.append("a", "b")
	act.Leader = self
	if got, err := r.ReadLocal("t", &act, 1, 10, 0); err != nil || fmt.Sprint(payloads(got)) != "[b]" {
		t.Fatalf("active segment at 1: %q, %v; want [b]", payloads(got), err)
	}
	if got, err := r.ReadLocal("t", &act, 2, 10, 0); err != nil || len(got) != 0 {
		t.Fatalf("active segment at its end: %q, %v; want none", payloads(got), err)
	}
}

// TestTail: a TAIL waits for the first entry, and returns nothing once its wait or
// its context ends.
func TestTail(t *testing.T) {
	w := newWorld(seg{leader: self})
	r := w.reader()
	type result struct {
		got  []string
		next uint64
		err  error
	}
	done := make(chan result, 1)
	go func() {
		got, next, err := r.Tail(context.Background(), "t", 0, 10, time.Minute)
		done <- result{payloads(got), next, err}
	}()
	w.append("a")
	res := <-done
	if res.err != nil || fmt.Sprint(res.got) != "[a]" || res.next != 1 {
		t.Fatalf("tail: %q next %d, %v; want [a] next 1", res.got, res.next, res.err)
	}
	if got, next, err := r.Tail(context.Background(), "t", 1, 10, 0); err != nil || len(got) != 0 || next != 1 {
		t.Fatalf("tail without wait: %q next %d, %v; want nothing", payloads(got), next, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got, next, err := r.Tail(ctx, "t", 1, 10, time.Minute); len(got) != 0 || next != 1 {
		t.Fatalf("tail with its context ended: %q next %d, %v; want nothing", payloads(got), next, err)
	}
}

// TestFirstBytes: a read from the archive stops at its byte budget as a local read
// does, passing it only with its first entry.
func TestFirstBytes(t *testing.T) {
	p := func(sizes ...int) [][]byte {
		var out [][]byte
		for _, s := range sizes {
			out = append(out, make([]byte, s))
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		payloads [][]byte
		maxBytes int
		want     int
	}{
		{"all fit", p(3, 3, 3), 9, 3},
		{"stops before the budget", p(3, 3, 3), 8, 2},
		{"first alone over the budget", p(20, 1), 8, 1},
		{"no budget", p(20, 20), 0, 2},
		{"empty", nil, 8, 0},
	} {
		if got := len(firstBytes(tc.payloads, tc.maxBytes)); got != tc.want {
			t.Errorf("%s: got %d payloads, want %d", tc.name, got, tc.want)
		}
	}
}
