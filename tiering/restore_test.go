package tiering

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"floe/archive"
	"floe/archive/mem"
	"floe/archive/seekable"
	"floe/meta"
)

// putSegmentObject writes the object of segment id of topic (n records from base) under
// its key with term, and returns the key.
func putSegmentObject(t *testing.T, b archive.Bucket, topic string, id, base, term uint64, n int) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := seekable.NewWriter(&buf, seekable.Meta{Topic: topic, Segment: id, Base: base, Count: uint64(n), LeaderTerm: term}, seekable.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := w.Append([]byte(fmt.Sprintf("%s-%d", topic, int(base)+i))); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	key := ObjectKey(topic, id, term)
	if err := b.Put(context.Background(), key, bytes.NewReader(buf.Bytes()), sum.Size, archive.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	return key
}

// RebuildState keeps what the snapshot references, recovers what was archived after
// it, ends a topic before the first segment whose data is nowhere (dropping the later
// ones, since offsets stay contiguous), rebuilds topics created after the snapshot
// from their objects, and starts every topic's new active segment above every old
// leader term.
func TestRebuildState(t *testing.T) {
	ctx := context.Background()
	b := mem.New("restore")
	if _, _, err := RebuildState(ctx, b, 1, time.Now()); err == nil {
		t.Fatal("RebuildState of a bucket without a metadata snapshot succeeded")
	}
	c := newCluster()
	must := func(cmd *meta.Command) {
		t.Helper()
		if err := c.propose(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	// Topic "gap": 1 archived, 2 archived but its object is gone, 3 archived.
	// Topic "later": 1 archived; 2 active in the snapshot, archived after it.
	for _, topic := range []string{"gap", "later"} {
		must(&meta.Command{Op: meta.OpCreateTopic, Topic: topic, Leader: 2})
	}
	keys := map[string]string{}
	for id := uint64(1); id <= 3; id++ {
		must(&meta.Command{Op: meta.OpSeal, Topic: "gap", Segment: id, Count: 10, NextLeader: 2})
		k := putSegmentObject(t, b, "gap", id, (id-1)*10, id, 10)
		must(&meta.Command{Op: meta.OpArchived, Topic: "gap", Segment: id, Key: k, Size: 1})
		keys[fmt.Sprint("gap", id)] = k
	}
	b.Delete(ctx, keys["gap2"])
	must(&meta.Command{Op: meta.OpSeal, Topic: "later", Segment: 1, Count: 10, NextLeader: 2})
	k := putSegmentObject(t, b, "later", 1, 0, 4, 10)
	must(&meta.Command{Op: meta.OpArchived, Topic: "later", Segment: 1, Key: k, Size: 1})
	must(&meta.Command{Op: meta.OpAdvanceCursor, Topic: "gap", From: 0, To: 25})
	// Topic "aband": 1 archived, 2 abandoned by recover-segment (empty, no object).
	must(&meta.Command{Op: meta.OpCreateTopic, Topic: "aband", Leader: 2})
	must(&meta.Command{Op: meta.OpSeal, Topic: "aband", Segment: 1, Count: 10, NextLeader: 2})
	must(&meta.Command{Op: meta.OpArchived, Topic: "aband", Segment: 1, Key: putSegmentObject(t, b, "aband", 1, 0, 1, 10), Size: 1})
	must(&meta.Command{Op: meta.OpRecover, Topic: "aband", Segment: 2, NextLeader: 3})
	index, state, err := c.fsm.Export()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(MetaSnapshot{Format: MetaSnapshotFormat, ClusterID: "abc", RaftIndex: index, State: state})
	b.Put(ctx, MetaSnapshotKey(index), bytes.NewReader(body), int64(len(body)), archive.PutOptions{})
	// After the snapshot: "later" segment 2 archived (term 90), a new topic "fresh".
	putSegmentObject(t, b, "later", 2, 10, 90, 5)
	putSegmentObject(t, b, "fresh", 1, 0, 50, 3)
	putSegmentObject(t, b, "fresh", 3, 10, 60, 3) // beyond a gap (no segment 2)

	st, rep, err := RebuildState(ctx, b, 7, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if rep.ClusterID != "abc" || rep.Index != 91 {
		t.Fatalf("report: cluster %q index %d; want abc and 91 (above term 90)", rep.ClusterID, rep.Index)
	}
	got := map[string]RestoredTopic{}
	for _, rt := range rep.Topics {
		got[rt.Name] = rt
	}
	check := func(name string, kept, recovered int, lost uint64, dropped string, end, cursor uint64) {
		t.Helper()
		rt := got[name]
		if rt.Kept != kept || rt.Recovered != recovered || rt.Lost != lost || fmt.Sprint(rt.Dropped) != dropped || rt.End != end || rt.Cursor != cursor {
			t.Fatalf("%s: %+v; want kept %d recovered %d lost %d dropped %s end %d cursor %d", name, rt, kept, recovered, lost, dropped, end, cursor)
		}
		top := st.Topics[name]
		act := top.Active()
		if act.State != meta.Active || act.Leader != 7 || act.Base != end || act.LeaderIndex != rep.Index || top.Cursor != cursor {
			t.Fatalf("%s: active segment %+v, cursor %d", name, act, top.Cursor)
		}
		for _, s := range top.Segments[:len(top.Segments)-1] {
			if s.State != meta.Archived || !s.LocalEvicted || s.ArchiveKey == "" {
				t.Fatalf("%s: segment %+v should be archived, remote only", name, s)
			}
		}
	}
	check("gap", 1, 0, 2, "[3]", 10, 10)
	if rt := got["aband"]; rt.Kept != 1 || rt.Lost != 3 || rt.End != 10 || len(st.Topics["aband"].Segments) != 3 || !st.Topics["aband"].Segments[1].Abandoned {
		t.Fatalf("aband: %+v; segments %d; want segment 1 kept, 2 still abandoned, 3 (active in the snapshot) lost", rt, len(st.Topics["aband"].Segments))
	}
	check("later", 1, 1, 0, "[]", 15, 0)
	check("fresh", 0, 1, 0, "[3]", 3, 0)
}
