package tiering

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"floe/archive"
	"floe/archive/mem"
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
	put(orphan)                // an upload that never committed
	put("topics/t/README.txt") // not a segment object
	put("meta/cluster.json")
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
	if want := fmt.Sprint([]string{"meta/cluster.json", k2, orphan, "topics/t/README.txt"}); keys() != want {
		t.Fatalf("after a sweep with 1h grace: %s, want %s (the expired segment's object gone)", keys(), want)
	}
	// Past the grace period, the upload that never committed goes too.
	rep, err = NewSweeper(SweeperConfig{Bucket: b, FSM: c.fsm, Grace: 0}).Sweep(ctx, false)
	if err != nil || rep.Deleted != 1 {
		t.Fatalf("sweep with no grace: %+v, %v", rep, err)
	}
	if want := fmt.Sprint([]string{"meta/cluster.json", k2, "topics/t/README.txt"}); keys() != want {
		t.Fatalf("after a sweep with no grace: %s, want %s", keys(), want)
	}
}
