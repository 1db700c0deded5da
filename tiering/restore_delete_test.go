package tiering

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"floe/archive"
	"floe/meta"
)

// TestRebuildStateDeletions: RebuildState (floe restore --cluster) brings back no
// deleted topic, whichever way the bucket tells of the deletion, and every
// incarnation created after the snapshot; the rebuilt state records the deletions
// whose objects are left (for the new cluster's leader to purge) and gives no id
// twice.
func TestRebuildStateDeletions(t *testing.T) {
	ctx := context.Background()
	b := newMinioBucket(t)
	c := newCluster()
	f := newRestoreFixture(t, c, b)
	create := func(name string, incarnate bool) string {
		t.Helper()
		f.must(&meta.Command{Op: meta.OpCreateTopic, Topic: name, Incarnate: incarnate, Leader: 2})
		key, ok := c.fsm.Resolve(name)
		if !ok {
			t.Fatalf("%s not created", name)
		}
		return key
	}
	tomb := func(key string) {
		t.Helper()
		body, _ := json.Marshal(Tombstone{Topic: key})
		if err := b.Put(ctx, TombstoneKey(key), bytes.NewReader(body), int64(len(body)), archive.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	zero := create("zero", false) // incarnation 0: created by an earlier release
	f.archived(zero, 1, 10)
	keep := create("keep", true)
	f.archived(keep, 1, 10)
	tombd := create("tombd", true)
	f.archived(tombd, 1, 10)
	super := create("super", true)
	f.archived(super, 1, 10)
	before := create("before", true)
	f.archived(before, 1, 10)
	f.must(&meta.Command{Op: meta.OpDeleteTopic, Topic: before}) // its objects not purged yet
	putSnapshot(t, b, c, "c1")

	// After the snapshot: zero and tombd are deleted and purged as far as their
	// tombstones; super is deleted without its tombstone written yet and created
	// again (its objects are the only trace); fresh is created; ghost was created
	// and deleted, only its tombstone is left.
	tomb(zero)
	tomb(tombd)
	putSegmentObject(t, b, "super@7", 1, 0, 100, 4)
	putSegmentObject(t, b, "fresh@8", 1, 0, 101, 3)
	tomb("ghost@9")

	st, rep, err := RebuildState(ctx, b, "", 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var restored []string
	for key, tp := range st.Topics {
		restored = append(restored, key)
		if tp.Key() != key {
			t.Errorf("topic %q keyed %q", tp.Key(), key)
		}
	}
	slices.Sort(restored)
	if want := []string{"fresh@8", keep, "super@7"}; !slices.Equal(restored, want) {
		t.Fatalf("restored topics %v, want %v; report %+v", restored, want, rep.Deleted)
	}
	want := map[string]string{zero: DropTombstone, tombd: DropTombstone, super: DropSuperseded, before: DropRecorded}
	got := map[string]string{}
	for _, d := range rep.Deleted {
		got[d.Topic] = d.Reason
	}
	for k, r := range want {
		if got[k] != r {
			t.Errorf("report on %s: %q, want %q (all: %v)", k, got[k], r, got)
		}
	}
	for k := range want {
		if d := st.Deleted[k]; d == nil || d.Purged {
			t.Errorf("deletion of %s not recorded for the purge: %+v", k, d)
		}
	}
	if st.LastTopicID != 9 {
		t.Errorf("LastTopicID %d, want 9 (the ghost's tombstone)", st.LastTopicID)
	}
	for key, n := range map[string]uint64{"super@7": 4, "fresh@8": 3, keep: 10} {
		tp := st.Topics[key]
		if end := tp.Active().Base; end != n {
			t.Errorf("%s ends at %d, want %d", key, end, n)
		}
	}
}

// TestListTopicObjects: a name lists every incarnation of it and nothing of a topic
// whose name merely starts with it; a key lists one incarnation; "" lists all.
func TestListTopicObjects(t *testing.T) {
	ctx := context.Background()
	b := newMinioBucket(t)
	for _, o := range []struct {
		topic  string
		id, tm uint64
	}{{"ord", 1, 1}, {"ord@3", 1, 5}, {"ord@12", 2, 9}, {"orders", 1, 2}, {"ord.x@4", 1, 3}} {
		putSegmentObject(t, b, o.topic, o.id, 0, o.tm, 1)
	}
	// Not a segment object, but in the place of one: listed with its topic.
	if err := b.Put(ctx, TopicPrefix("ord@3")+"notes.txt", strings.NewReader("x"), 1, archive.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	list := func(topic string) []string {
		t.Helper()
		var keys []string
		if err := ListTopicObjects(ctx, b, topic, func(o archive.ObjectInfo) error {
			k, _, _, ok := ParseObjectKey(o.Key)
			if !ok {
				k = strings.TrimPrefix(o.Key, TopicsPrefix)
			}
			keys = append(keys, k)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return keys
	}
	for topic, want := range map[string][]string{
		"ord":    {"ord", "ord@12", "ord@3", "ord@3/notes.txt"},
		"ord@3":  {"ord@3", "ord@3/notes.txt"},
		"orders": {"orders"},
		"":       {"ord.x@4", "ord", "ord@12", "ord@3", "ord@3/notes.txt", "orders"}, // key order: "." sorts before "/"
		"none":   nil,
	} {
		if got := list(topic); !slices.Equal(got, want) {
			t.Errorf("ListTopicObjects(%q) = %v, want %v", topic, got, want)
		}
	}
	if err := ListTopicObjects(ctx, b, "ord@0", func(archive.ObjectInfo) error { return nil }); err == nil {
		t.Error("ListTopicObjects of an invalid key succeeded")
	}
}
