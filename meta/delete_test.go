package meta

import (
	"errors"
	"strings"
	"testing"
	"time"

	"floe/topicname"
)

// TestDeleteTopic: a deleted topic is gone for every command that names its key, a
// topic created again under its name is another incarnation (key, offsets, cursor),
// and what a node may take for dead follows.
func TestDeleteTopic(t *testing.T) {
	f := NewFSM()
	must := func(r *Result) {
		t.Helper()
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	must(applyCmd(t, f, 1, &Command{Op: OpCreateTopic, Topic: "orders", Incarnate: true, Leader: 1}))
	key, ok := f.Resolve("orders")
	if !ok || key != "orders@1" {
		t.Fatalf("Resolve(orders) = %q, %v; want orders@1", key, ok)
	}
	must(applyCmd(t, f, 2, &Command{Op: OpSeal, Topic: key, Segment: 1, Count: 10, Bytes: 100, CRC: 7}))
	must(applyCmd(t, f, 3, &Command{Op: OpAdvanceCursor, Topic: key, From: 0, To: 4}))
	if f.Dead(key) {
		t.Fatal("a live topic is dead")
	}
	// A command naming the bare name is about incarnation 0, which does not exist.
	if r := applyCmd(t, f, 4, &Command{Op: OpAdvanceCursor, Topic: "orders", From: 4, To: 5}); !errors.Is(r.Err, ErrNoTopic) {
		t.Fatalf("cursor advance by bare name: %v, want ErrNoTopic", r.Err)
	}

	must(applyCmd(t, f, 5, &Command{Op: OpDeleteTopic, Topic: key, UnixMS: 77}))
	if _, ok := f.Resolve("orders"); ok {
		t.Fatal("deleted topic still resolves")
	}
	if _, ok := f.Topic(key); ok {
		t.Fatal("deleted topic still readable by key")
	}
	if !f.Dead(key) {
		t.Fatal("deleted topic not dead")
	}
	if d := f.Deletions(); len(d) != 1 || d[0].Key() != key || d[0].DeletedUnixMS != 77 || d[0].Index != 5 {
		t.Fatalf("deletions = %+v", d)
	}
	// A repeat is a no-op; an unknown key is ErrNoTopic.
	must(applyCmd(t, f, 6, &Command{Op: OpDeleteTopic, Topic: key}))
	if r := applyCmd(t, f, 7, &Command{Op: OpDeleteTopic, Topic: "nope@9"}); !errors.Is(r.Err, ErrNoTopic) {
		t.Fatalf("delete unknown: %v", r.Err)
	}

	// Created again: a new incarnation, from offset 0, cursor 0.
	must(applyCmd(t, f, 8, &Command{Op: OpCreateTopic, Topic: "orders", Incarnate: true, Leader: 2}))
	key2, _ := f.Resolve("orders")
	if key2 != "orders@2" {
		t.Fatalf("re-created key %q, want orders@2", key2)
	}
	top, _ := f.Topic(key2)
	if top.ID != 2 || top.Cursor != 0 || len(top.Segments) != 1 || top.Active().Base != 0 {
		t.Fatalf("re-created topic = %+v", top)
	}
	// Commands of the old incarnation (a late seal, an upload, a GET) change nothing.
	for i, c := range []*Command{
		{Op: OpSeal, Topic: key, Segment: 1, Count: 3},
		{Op: OpAdvanceCursor, Topic: key, From: 0, To: 1},
		{Op: OpArchived, Topic: key, Segment: 1, Key: "k", Size: 1},
		{Op: OpAlterTopic, Topic: key, Patch: &TopicConfigPatch{RetentionMS: ptr(int64(5))}},
	} {
		if r := applyCmd(t, f, uint64(9+i), c); !errors.Is(r.Err, ErrNoTopic) {
			t.Fatalf("%s on the deleted incarnation: %v, want ErrNoTopic", c.Op, r.Err)
		}
	}
	if top2, _ := f.Topic(key2); top2.Cursor != 0 || top2.Active().State != Active || top2.Config.RetentionMS != 0 {
		t.Fatalf("the new incarnation was changed: %+v", top2)
	}

	// Once ids are given, a create without one is refused: its key, the bare name,
	// could be taken for a dead incarnation's by a state that lags.
	if r := applyCmd(t, f, 19, &Command{Op: OpCreateTopic, Topic: "plain", Leader: 1}); !errors.Is(r.Err, ErrBadCommand) {
		t.Fatalf("id-less create once ids are given: %v, want ErrBadCommand", r.Err)
	}
	// The deletion was proposed at UnixMS 77 (1970): it committed when it applied here.
	if d, committed, ok := f.LastDeletion("orders"); !ok || d.Key() != key || time.Since(committed) > time.Minute {
		t.Fatalf("LastDeletion(orders) = %+v, committed %v, %v; want %s, committed about now", d, committed, ok, key)
	}

	// Purged: the record goes; the key stays dead (its id is below LastTopicID).
	must(applyCmd(t, f, 20, &Command{Op: OpTopicPurged, Topic: key}))
	must(applyCmd(t, f, 21, &Command{Op: OpTopicPurged, Topic: key})) // a repeat
	if len(f.Deletions()) != 0 || !f.Dead(key) || f.Dead(key2) {
		t.Fatalf("after purge: deletions %v, dead(old) %v, dead(new) %v", f.Deletions(), f.Dead(key), f.Dead(key2))
	}
	// An incarnation this state has not seen created yet is not dead (a lagging node
	// must not delete the files of a topic created after its view).
	if f.Dead("orders@3") || f.Dead("other@99") {
		t.Fatal("an incarnation not created yet is dead")
	}
}

// TestDeleteTopicIncarnationZero: a topic created before incarnation ids (a create
// without Incarnate, as logged by earlier releases) has the bare name as key; once
// deleted, its record is kept after the purge, since nothing else says its files are
// dead, and an id-less create cannot bring the dead key back.
func TestDeleteTopicIncarnationZero(t *testing.T) {
	f := NewFSM()
	applyCmd(t, f, 1, &Command{Op: OpCreateTopic, Topic: "old", Leader: 1})
	if key, _ := f.Resolve("old"); key != "old" {
		t.Fatalf("incarnation 0 key %q, want the bare name", key)
	}
	if f.Dead("old") {
		t.Fatal("live incarnation 0 dead")
	}
	if r := applyCmd(t, f, 2, &Command{Op: OpDeleteTopic, Topic: "old"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	applyCmd(t, f, 3, &Command{Op: OpTopicPurged, Topic: "old"})
	if len(f.Deletions()) != 0 || !f.Dead("old") {
		t.Fatalf("after purge: %v pending, dead %v", f.Deletions(), f.Dead("old"))
	}
	if r := applyCmd(t, f, 4, &Command{Op: OpCreateTopic, Topic: "old", Leader: 1}); !errors.Is(r.Err, ErrBadCommand) {
		t.Fatalf("id-less create after deletion: %v, want ErrBadCommand", r.Err)
	}
	applyCmd(t, f, 5, &Command{Op: OpCreateTopic, Topic: "old", Incarnate: true, Leader: 1})
	if key, _ := f.Resolve("old"); key != "old@1" || !f.Dead("old") {
		t.Fatalf("re-created as %q; old dead %v", key, f.Dead("old"))
	}

	// Another incarnation-0 topic, deleted by a node that missed the record: dead
	// once its name is live again under an id.
	g := NewFSM()
	applyCmd(t, g, 1, &Command{Op: OpCreateTopic, Topic: "x", Leader: 1})
	st, _ := DecodeState([]byte(`{"topics":{"x@4":{"name":"x","id":4,"segments":[{"id":1,"state":"active"}]}},"last_topic_id":4}`))
	if !st.Dead("x") || st.Dead("x@4") {
		t.Fatalf("dead(x) %v, dead(x@4) %v", st.Dead("x"), st.Dead("x@4"))
	}
}

// TestSnapshotKeepsIncarnations: a snapshot carries ids, deletions and the last id
// given; a snapshot written before incarnation ids restores with keys = names.
func TestSnapshotKeepsIncarnations(t *testing.T) {
	f := NewFSM()
	applyCmd(t, f, 1, &Command{Op: OpCreateTopic, Topic: "a", Incarnate: true, Leader: 1})
	applyCmd(t, f, 2, &Command{Op: OpCreateTopic, Topic: "b", Incarnate: true, Leader: 1})
	applyCmd(t, f, 3, &Command{Op: OpDeleteTopic, Topic: "a@1"})
	g := NewFSM()
	if err := g.Restore(nopCloser{strings.NewReader(string(snapshotBytes(t, f)))}); err != nil {
		t.Fatal(err)
	}
	if k, ok := g.Resolve("b"); !ok || k != "b@2" {
		t.Fatalf("restored Resolve(b) = %q, %v", k, ok)
	}
	if d := g.Deletions(); len(d) != 1 || d[0].Key() != "a@1" || !g.Dead("a@1") {
		t.Fatalf("restored deletions %+v", d)
	}
	applyCmd(t, g, 4, &Command{Op: OpCreateTopic, Topic: "a", Incarnate: true, Leader: 1})
	if k, _ := g.Resolve("a"); k != "a@3" {
		t.Fatalf("id after restore: %q, want a@3", k)
	}

	old := `{"topics":{"t":{"name":"t","config":{},"segments":[{"id":1,"leader":1,"base":0,"state":"active","leader_index":1,"created_unix_ms":1}],"cursor":2}},"nodes":{}}`
	h := NewFSM()
	if err := h.Restore(nopCloser{strings.NewReader(old)}); err != nil {
		t.Fatal(err)
	}
	if k, ok := h.Resolve("t"); !ok || k != "t" {
		t.Fatalf("pre-incarnation snapshot: Resolve(t) = %q, %v", k, ok)
	}
	if top, ok := h.Topic("t"); !ok || top.ID != 0 || top.Cursor != 2 {
		t.Fatalf("pre-incarnation topic = %+v", top)
	}
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }

func ptr[T any](v T) *T { return &v }

// TestCreateRefusesTooLongKey: a topic whose key, with the next incarnation id, would
// be longer than a path element is refused, and no id is used up.
func TestCreateRefusesTooLongKey(t *testing.T) {
	f := NewFSM()
	st, _ := DecodeState([]byte(`{"last_topic_id":99998}`))
	f.st = st
	long := strings.Repeat("n", topicname.MaxLen)
	if r := applyCmd(t, f, 1, &Command{Op: OpCreateTopic, Topic: long, Incarnate: true, Leader: 1}); r.Err != nil {
		t.Fatalf("create with id 99999: %v", r.Err)
	}
	other := strings.Repeat("m", topicname.MaxLen)
	if r := applyCmd(t, f, 2, &Command{Op: OpCreateTopic, Topic: other, Incarnate: true, Leader: 1}); !errors.Is(r.Err, topicname.ErrInvalid) {
		t.Fatalf("create with id 100000 (a %d-byte key): %v, want ErrInvalid", len(topicname.Key(other, 100000)), r.Err)
	}
	if r := applyCmd(t, f, 3, &Command{Op: OpCreateTopic, Topic: "short", Incarnate: true, Leader: 1}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if k, _ := f.Resolve("short"); k != "short@100000" {
		t.Fatalf("next id after a refusal: %q, want short@100000", k)
	}
}
