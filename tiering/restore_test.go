package tiering

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"floe/archive"
	"floe/archive/miniotest"
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

// minioBucket returns a fresh bucket on a real MinIO server (archive/miniotest).
func newMinioBucket(t *testing.T) archive.Bucket {
	t.Helper()
	return minioBucket(t, miniotest.Start(t))
}

// putSnapshot writes c's state as cluster's metadata snapshot and returns its index.
func putSnapshot(t *testing.T, b archive.Bucket, c *cluster, cluster string) uint64 {
	t.Helper()
	index, state, err := c.fsm.Export()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(MetaSnapshot{Format: MetaSnapshotFormat, ClusterID: cluster, RaftIndex: index, State: state})
	if err := b.Put(context.Background(), MetaSnapshotKey(index), bytes.NewReader(body), int64(len(body)), archive.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	return index
}

// RebuildState (floe restore --cluster) never drops a segment whose object is present,
// verifies and continues the topic: a segment with no copy is expired when nothing kept
// precedes it (retention deleted its object after the snapshot: the start offset moves
// past it), lost after a kept segment (its offsets stay, unreadable, and are never
// given to new entries), abandoned when the next segment starts at its base
// (recover-segment after the snapshot); the topic ends before a segment with no copy
// whose extent is unknown (the snapshot's active one). Every segment skipped is
// reported with its reason; every topic's new active segment starts above every old
// leader term.
func TestRebuildState(t *testing.T) {
	ctx := context.Background()
	b := newMinioBucket(t)
	if _, _, err := RebuildState(ctx, b, "", 1, time.Now()); err == nil {
		t.Fatal("RebuildState of a bucket without a metadata snapshot succeeded")
	}
	c := newCluster()
	f := newRestoreFixture(t, c, b)
	must, archived, keys := f.must, f.archived, f.keys
	week := &meta.TopicConfig{RetentionMS: 7 * 24 * 3600 * 1000}
	// "retained": 1-4 archived; after the snapshot retention expires 1 and deletes its
	// object (the reproduction). The cursor was at 5, inside segment 1.
	must(&meta.Command{Op: meta.OpCreateTopic, Topic: "retained", Leader: 2, Config: week})
	for id := uint64(1); id <= 4; id++ {
		archived("retained", id, 10)
	}
	must(&meta.Command{Op: meta.OpAdvanceCursor, Topic: "retained", From: 0, To: 5})
	// "front": no retention, segment 1 (sealed, never archived) is on no disk any more,
	// 2 archived.
	must(&meta.Command{Op: meta.OpCreateTopic, Topic: "front", Leader: 2})
	must(&meta.Command{Op: meta.OpSeal, Topic: "front", Segment: 1, Count: 10, NextLeader: 2})
	archived("front", 2, 10)
	// "gap": 1 archived, 2 archived but its object is gone, 3 archived; cursor in 2.
	must(&meta.Command{Op: meta.OpCreateTopic, Topic: "gap", Leader: 2})
	for id := uint64(1); id <= 3; id++ {
		archived("gap", id, 10)
	}
	must(&meta.Command{Op: meta.OpAdvanceCursor, Topic: "gap", From: 0, To: 15})
	// "later": 1 archived; 2 active in the snapshot, archived after it.
	must(&meta.Command{Op: meta.OpCreateTopic, Topic: "later", Leader: 2})
	archived("later", 1, 10)
	// "aband": 1 archived, 2 abandoned by recover-segment, 3 active (no object).
	must(&meta.Command{Op: meta.OpCreateTopic, Topic: "aband", Leader: 2})
	archived("aband", 1, 10)
	must(&meta.Command{Op: meta.OpRecover, Topic: "aband", Segment: 2, NextLeader: 3})
	// "recovered": 1 archived, 2 active in the snapshot; after it, recover-segment
	// abandons 2 and segment 3, at 2's base, is sealed and archived.
	must(&meta.Command{Op: meta.OpCreateTopic, Topic: "recovered", Leader: 2})
	archived("recovered", 1, 10)
	// "allgone": 1-3 archived; after the snapshot retention expires all three.
	must(&meta.Command{Op: meta.OpCreateTopic, Topic: "allgone", Leader: 2, Config: week})
	for id := uint64(1); id <= 3; id++ {
		archived("allgone", id, 10)
	}
	// "backlog": 1 archived, 2 sealed and still in its leader's upload backlog, 3
	// active: the offsets of 2 are never given to new entries.
	must(&meta.Command{Op: meta.OpCreateTopic, Topic: "backlog", Leader: 2})
	archived("backlog", 1, 10)
	must(&meta.Command{Op: meta.OpSeal, Topic: "backlog", Segment: 2, Count: 10, NextLeader: 2})
	// Node 2 registered two data dirs: the restored nodes have new ones, compared with
	// neither (else every restored active segment would be lost on the seed node).
	must(&meta.Command{Op: meta.OpRegisterNode, Node: &meta.NodeInfo{ID: 2, RaftAddr: "h:2", Incarnation: 5}})
	must(&meta.Command{Op: meta.OpRegisterNode, Node: &meta.NodeInfo{ID: 2, RaftAddr: "h:2", Incarnation: 6}})
	putSnapshot(t, b, c, "abc")
	for id := uint64(1); id <= 3; id++ {
		if err := b.Delete(ctx, keys[fmt.Sprint("allgone", id)]); err != nil {
			t.Fatal(err)
		}
	}

	if err := b.Delete(ctx, keys["retained1"]); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, keys["gap2"]); err != nil {
		t.Fatal(err)
	}
	putSegmentObject(t, b, "later", 2, 10, 90, 5)
	putSegmentObject(t, b, "recovered", 3, 10, 80, 4)
	putSegmentObject(t, b, "recovered", 2, 99, 85, 4)                                               // a stray object of 2 that does not continue the topic
	putSegmentObject(t, b, "fresh", 1, 0, 50, 3)                                                    // a topic created after the snapshot
	putSegmentObject(t, b, "fresh", 3, 10, 60, 3)                                                   // beyond a segment 2 no copy of which survived
	putSegmentObject(t, b, "fresh", 4, 13, 61, 2)                                                   // and on
	b.Put(ctx, ObjectKey("fresh", 5, 62), bytes.NewReader([]byte("junk")), 4, archive.PutOptions{}) // damaged

	type report struct {
		doneObjs, totalObjs   int
		doneBytes, totalBytes int64
	}
	var reports []report
	st, rep, err := RebuildStateProgress(ctx, b, "", 7, time.Now(), func(do, to int, db, tb int64) {
		reports = append(reports, report{do, to, db, tb})
	})
	if n := len(reports); n < 2 || reports[0].doneObjs != 0 || reports[n-1].doneObjs != reports[n-1].totalObjs ||
		reports[n-1].doneBytes != reports[n-1].totalBytes || reports[n-1].totalObjs == 0 {
		t.Fatalf("progress reports %+v: want a first at 0 and a last with every object and byte done", reports)
	}
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Nodes[2]; n == nil || n.Incarnation != 0 || n.Incarnated != 0 {
		t.Fatalf("restored node 2: %+v; want it without incarnations", n)
	}
	if rep.ClusterID != "abc" || rep.Index != 91 {
		t.Fatalf("report: cluster %q index %d; want abc and 91 (above term 90)", rep.ClusterID, rep.Index)
	}
	got := map[string]RestoredTopic{}
	for _, rt := range rep.Topics {
		got[rt.Name] = rt
	}
	// check compares a topic's report and rebuilt segments: states is one letter per
	// segment (A archived, E expired, L lost, B abandoned, N the new active one), and
	// skipped the reasons reported, by segment.
	check := func(name string, kept, recovered int, states string, start, end, cursor uint64, skipped map[uint64][]string) {
		t.Helper()
		rt := got[name]
		top := st.Topics[name]
		if rt.Kept != kept || rt.Recovered != recovered || rt.Start != start || rt.End != end || rt.Cursor != cursor ||
			top.Cursor != cursor || top.StartOffset() != start {
			t.Fatalf("%s: %+v; want kept %d recovered %d offsets [%d, %d) cursor %d", name, rt, kept, recovered, start, end, cursor)
		}
		var gotStates string
		next := uint64(0)
		for i, s := range top.Segments {
			if s.ID != uint64(i+1) || s.Base != next {
				t.Fatalf("%s: segment %d is %+v; want id %d at base %d (ids and offsets contiguous)", name, i, s, i+1, next)
			}
			next = s.End()
			switch {
			case s.State == meta.Active:
				gotStates += "N"
				if s.Leader != 7 || s.Base != end || s.LeaderIndex != rep.Index {
					t.Fatalf("%s: active segment %+v", name, s)
				}
			case s.Lost && s.State == meta.Expired:
				gotStates += "L"
			case s.State == meta.Expired:
				gotStates += "E"
			case s.Abandoned && s.Count == 0:
				gotStates += "B"
			case s.State == meta.Archived && s.LocalEvicted && s.ArchiveKey != "":
				gotStates += "A"
			default:
				t.Fatalf("%s: segment %+v", name, s)
			}
		}
		if gotStates != states {
			t.Fatalf("%s: segments %s, want %s: %+v", name, gotStates, states, rt)
		}
		gotSkipped := map[uint64]string{}
		for _, s := range rt.Skipped {
			gotSkipped[s.Segment] += s.Reason
		}
		for id, wants := range skipped {
			for _, want := range wants {
				if !strings.Contains(gotSkipped[id], want) {
					t.Fatalf("%s: segment %d skipped for %q, want %q; report %+v", name, id, gotSkipped[id], want, rt)
				}
			}
		}
		if len(gotSkipped) != len(skipped) {
			t.Fatalf("%s: skipped %v, want %v", name, gotSkipped, skipped)
		}
	}
	type why = map[uint64][]string
	check("retained", 3, 0, "EAAAN", 10, 40, 10, why{1: {SkipExpired}, 5: {SkipTail}})
	check("front", 1, 0, "LAN", 10, 20, 10, why{1: {SkipGoneFront}, 3: {SkipTail}})
	check("gap", 2, 0, "ALAN", 0, 30, 20, why{2: {SkipLost + ": [10, 20)"}, 4: {SkipTail}})
	check("later", 1, 1, "AAN", 0, 15, 0, nil)
	check("aband", 1, 0, "ABN", 0, 10, 0, why{3: {SkipTail}})
	check("recovered", 1, 1, "ABAN", 0, 14, 0, why{2: {SkipBadObject + ": it starts at offset 99", SkipAbandoned}})
	check("allgone", 0, 0, "EEEN", 30, 30, 30, why{1: {SkipExpired}, 2: {SkipExpired}, 3: {SkipExpired}, 4: {SkipTail}})
	check("backlog", 1, 0, "ALN", 0, 20, 0, why{2: {SkipLost + ": [10, 20)"}, 3: {SkipTail}})
	check("fresh", 0, 3, "ALAAN", 0, 15, 0, why{2: {SkipLost + ": [3, 10)"}, 5: {SkipBadObject, SkipTail}})

	// A second cluster's snapshot in the same prefix: restore refuses to guess, and
	// takes the one named.
	other := newCluster()
	if err := other.propose(ctx, &meta.Command{Op: meta.OpCreateTopic, Topic: "x", Leader: 1}); err != nil {
		t.Fatal(err)
	}
	other.index = 1000
	if err := other.propose(ctx, &meta.Command{Op: meta.OpCreateTopic, Topic: "y", Leader: 1}); err != nil {
		t.Fatal(err)
	}
	putSnapshot(t, b, other, "def")
	if _, _, err := RebuildState(ctx, b, "", 7, time.Now()); !errors.Is(err, ErrForeignSnapshot) || !strings.Contains(err.Error(), "abc, def") {
		t.Fatalf("RebuildState of a prefix with two clusters' snapshots: %v; want ErrForeignSnapshot naming both", err)
	}
	if _, rep, err := RebuildState(ctx, b, "abc", 7, time.Now()); err != nil || rep.ClusterID != "abc" {
		t.Fatalf("RebuildState of cluster abc: %v %+v", err, rep)
	}
	if key, snap, err := NewestMetaSnapshot(ctx, b, "def"); err != nil || snap.ClusterID != "def" || key != MetaSnapshotKey(1001) {
		t.Fatalf("NewestMetaSnapshot(def) = %s %+v %v", key, snap, err)
	}
}

// restoreFixture builds the metadata and the objects a restore starts from: commands
// committed to a one-node FSM, sealed segments archived into a bucket.
type restoreFixture struct {
	t    *testing.T
	c    *cluster
	b    archive.Bucket
	keys map[string]string // fmt.Sprint(topic, id) -> object key
}

func newRestoreFixture(t *testing.T, c *cluster, b archive.Bucket) *restoreFixture {
	return &restoreFixture{t: t, c: c, b: b, keys: map[string]string{}}
}

// must commits cmd, failing the test if it fails.
func (f *restoreFixture) must(cmd *meta.Command) {
	f.t.Helper()
	if err := f.c.propose(context.Background(), cmd); err != nil {
		f.t.Fatal(err)
	}
}

// archived seals segment id of topic with n entries and archives it (its object key
// goes to keys).
func (f *restoreFixture) archived(topic string, id, n uint64) {
	f.t.Helper()
	tp, _ := f.c.fsm.Topic(topic)
	base := tp.Segment(id).Base
	f.must(&meta.Command{Op: meta.OpSeal, Topic: topic, Segment: id, Count: n, NextLeader: 2})
	k := putSegmentObject(f.t, f.b, topic, id, base, id, int(n))
	f.must(&meta.Command{Op: meta.OpArchived, Topic: topic, Segment: id, Key: k, Size: 1})
	f.keys[fmt.Sprint(topic, id)] = k
}
