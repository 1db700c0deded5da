package tiering

import (
	"context"
	"testing"
	"time"

	"floe/meta"
)

// A run of several segments that were archived in the snapshot and have no object any
// more (retention expired them after the snapshot, or an operator deleted them) keeps
// each segment's own extent: every one is reported with its offsets, none is recorded
// as empty while the next one takes over its entries.
func TestRebuildStateKeepsEachExtentOfAMissingRun(t *testing.T) {
	ctx := context.Background()
	b := newMinioBucket(t)
	c := newCluster()
	f := newRestoreFixture(t, c, b)
	must, archived, keys := f.must, f.archived, f.keys
	week := &meta.TopicConfig{RetentionMS: 7 * 24 * 3600 * 1000}
	// "ret": 1-4 archived; after the snapshot retention expires 1 and 2.
	must(&meta.Command{Op: meta.OpCreateTopic, Topic: "ret", Leader: 2, Config: week})
	// "mid": 1-4 archived; after the snapshot the objects of 2 and 3 are gone.
	must(&meta.Command{Op: meta.OpCreateTopic, Topic: "mid", Leader: 2})
	for id := uint64(1); id <= 4; id++ {
		archived("ret", id, 10)
		archived("mid", id, 10)
	}
	putSnapshot(t, b, c, "abc")
	for _, k := range []string{"ret1", "ret2", "mid2", "mid3"} {
		if err := b.Delete(ctx, keys[k]); err != nil {
			t.Fatal(err)
		}
	}
	st, rep, err := RebuildState(ctx, b, "", 7, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][][2]uint64{ // per segment: base, count
		"ret": {{0, 10}, {10, 10}, {20, 10}, {30, 10}, {40, 0}},
		"mid": {{0, 10}, {10, 10}, {20, 10}, {30, 10}, {40, 0}},
	}
	for name, segs := range want {
		top := st.Topics[name]
		for i, w := range segs {
			s := top.Segments[i]
			if s.Base != w[0] || s.Count != w[1] {
				t.Errorf("%s: segment %d is [%d, %d) (%s lost=%v); want [%d, %d)", name, s.ID, s.Base, s.End(), s.State, s.Lost, w[0], w[0]+w[1])
			}
		}
	}
	for _, rt := range rep.Topics {
		t.Logf("%s: %+v", rt.Name, rt)
	}
}
