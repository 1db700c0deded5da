package meta

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"floe/topicname"
)

// applyCmd applies c at index on f and returns the result.
func applyCmd(t *testing.T, f *FSM, index uint64, c *Command) *Result {
	t.Helper()
	res, ok := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: c.Encode()}).(*Result)
	if !ok {
		t.Fatalf("apply %s: no *Result", c.Op)
	}
	return res
}

func TestCreateTopicIsIdempotent(t *testing.T) {
	f := NewFSM()
	if r := applyCmd(t, f, 1, &Command{Op: OpCreateTopic, Topic: "t", Leader: 2, UnixMS: 5}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := applyCmd(t, f, 2, &Command{Op: OpCreateTopic, Topic: "t", Leader: 3}); r.Err != nil {
		t.Fatal(r.Err)
	}
	top, ok := f.Topic("t")
	if !ok || len(top.Segments) != 1 {
		t.Fatalf("topic = %+v, %v", top, ok)
	}
	if s := top.Active(); s.ID != 1 || s.Leader != 2 || s.Base != 0 || s.State != Active || s.LeaderIndex != 1 {
		t.Fatalf("first segment = %+v, want id 1 leader 2 base 0 active leader_index 1", s)
	}
	if r := applyCmd(t, f, 3, &Command{Op: OpCreateTopic, Topic: "../x"}); !errors.Is(r.Err, topicname.ErrInvalid) {
		t.Fatalf("create ../x: %v, want ErrInvalid", r.Err)
	}
}

func TestSealRollsOverAndIsIdempotent(t *testing.T) {
	f := NewFSM()
	applyCmd(t, f, 1, &Command{Op: OpCreateTopic, Topic: "t", Leader: 1})
	seal := &Command{Op: OpSeal, Topic: "t", Segment: 1, Count: 10, Bytes: 100, CRC: 7, NextLeader: 2}
	if r := applyCmd(t, f, 2, seal); r.Err != nil {
		t.Fatal(r.Err)
	}
	// A retried Seal (outcome unknown after ErrLeadershipLost) changes nothing.
	if r := applyCmd(t, f, 3, seal); r.Err != nil {
		t.Fatalf("retried seal: %v", r.Err)
	}
	top, _ := f.Topic("t")
	if len(top.Segments) != 2 {
		t.Fatalf("%d segments, want 2", len(top.Segments))
	}
	s1, s2 := top.Segments[0], top.Segments[1]
	if s1.State != Sealed || s1.Count != 10 || s1.Bytes != 100 || s1.CRC != 7 {
		t.Fatalf("sealed segment = %+v", s1)
	}
	if s2.ID != 2 || s2.Leader != 2 || s2.Base != 10 || s2.State != Active || s2.LeaderIndex != 2 {
		t.Fatalf("next segment = %+v, want id 2 leader 2 base 10 leader_index 2", s2)
	}
	// A conflicting seal of the same segment is refused.
	bad := *seal
	bad.Count = 11
	if r := applyCmd(t, f, 4, &bad); !errors.Is(r.Err, ErrStaleSegment) {
		t.Fatalf("conflicting seal: %v, want ErrStaleSegment", r.Err)
	}
	if r := applyCmd(t, f, 5, &Command{Op: OpSeal, Topic: "t", Segment: 9}); !errors.Is(r.Err, ErrStaleSegment) {
		t.Fatalf("seal of unknown segment: %v, want ErrStaleSegment", r.Err)
	}
	if r := applyCmd(t, f, 6, &Command{Op: OpSeal, Topic: "nope", Segment: 1}); !errors.Is(r.Err, ErrNoTopic) {
		t.Fatalf("seal of unknown topic: %v, want ErrNoTopic", r.Err)
	}
	for off, want := range map[uint64]uint64{0: 1, 9: 1, 10: 2, 1000: 2} {
		if got := top.Find(off).ID; got != want {
			t.Errorf("Find(%d) = segment %d, want %d", off, got, want)
		}
	}
}

func TestAdvanceCursorIsCompareAndSet(t *testing.T) {
	f := NewFSM()
	applyCmd(t, f, 1, &Command{Op: OpCreateTopic, Topic: "t", Leader: 1})
	if r := applyCmd(t, f, 2, &Command{Op: OpAdvanceCursor, Topic: "t", From: 0, To: 1}); r.Err != nil || r.Cursor != 1 {
		t.Fatalf("advance 0->1 = %+v", r)
	}
	// A second caller that read cursor 0 loses: each entry goes to one GET only.
	r := applyCmd(t, f, 3, &Command{Op: OpAdvanceCursor, Topic: "t", From: 0, To: 1})
	if !errors.Is(r.Err, ErrCursorMoved) || r.Cursor != 1 {
		t.Fatalf("stale advance = %+v, want ErrCursorMoved at 1", r)
	}
}

func TestBadCommandChangesNothing(t *testing.T) {
	f := NewFSM()
	applyCmd(t, f, 1, &Command{Op: OpCreateTopic, Topic: "t", Leader: 1})
	before := exportState(t, f)
	res := f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: []byte("{not json")}).(*Result)
	if !errors.Is(res.Err, ErrBadCommand) {
		t.Fatalf("garbage command: %v, want ErrBadCommand", res.Err)
	}
	if r := applyCmd(t, f, 3, &Command{Op: "frobnicate"}); !errors.Is(r.Err, ErrBadCommand) {
		t.Fatalf("unknown op: %v, want ErrBadCommand", r.Err)
	}
	if after := exportState(t, f); before != after {
		t.Fatalf("state changed:\n%s\n%s", before, after)
	}
}

type sink struct {
	bytes.Buffer
	cancelled bool
}

func (s *sink) ID() string    { return "test" }
func (s *sink) Cancel() error { s.cancelled = true; return nil }
func (s *sink) Close() error  { return nil }

func snapshotBytes(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var s sink
	if err := snap.Persist(&s); err != nil {
		t.Fatal(err)
	}
	return s.Bytes()
}

func TestSnapshotRestore(t *testing.T) {
	f := NewFSM()
	applyCmd(t, f, 1, &Command{Op: OpInitCluster, ClusterID: "abc"})
	applyCmd(t, f, 2, &Command{Op: OpRegisterNode, Node: &NodeInfo{ID: 1, RaftAddr: "h:1", ClientAddr: "h:2", HTTPAddr: "h:3"}})
	applyCmd(t, f, 3, &Command{Op: OpCreateTopic, Topic: "a", Leader: 1, Config: &TopicConfig{MaxSegmentEntries: 5}})
	applyCmd(t, f, 4, &Command{Op: OpSeal, Topic: "a", Segment: 1, Count: 5, Bytes: 50, CRC: 9, NextLeader: 1})
	applyCmd(t, f, 5, &Command{Op: OpAdvanceCursor, Topic: "a", From: 0, To: 3})
	applyCmd(t, f, 6, &Command{Op: OpCreateTopic, Topic: "b", Leader: 1})

	data := snapshotBytes(t, f)
	g := NewFSM()
	changed := g.Changed()
	if err := g.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Error("Restore did not signal Changed")
	}
	if !reflect.DeepEqual(f.st, g.st) {
		t.Fatalf("restored state differs:\n%+v\n%+v", f.st, g.st)
	}
	if g.ClusterID() != "abc" || len(g.Nodes()) != 1 || !reflect.DeepEqual(g.TopicKeys(), []string{"a", "b"}) {
		t.Fatalf("restored accessors: %q %v %v", g.ClusterID(), g.Nodes(), g.TopicKeys())
	}
	if err := g.Restore(io.NopCloser(strings.NewReader("garbage"))); err == nil {
		t.Fatal("Restore of garbage succeeded")
	}
	if !reflect.DeepEqual(f.st, g.st) {
		t.Fatal("a failed Restore changed the state")
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add((&Command{Op: OpSeal, Topic: "t", Segment: 1, Count: 3}).Encode())
	f.Add([]byte(`{"op":"advance_cursor","topic":"x","from":1,"to":2}`))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		fsm := NewFSM()
		fsm.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: c.Encode()}) // must not panic
	})
}

func TestArchivedAndEvict(t *testing.T) {
	f := NewFSM()
	applyCmd(t, f, 1, &Command{Op: OpCreateTopic, Topic: "t", Leader: 1})
	arch := &Command{Op: OpArchived, Topic: "t", Segment: 1, Key: "topics/t/1.seg", Size: 10, Checksum: 3}
	if r := applyCmd(t, f, 2, arch); !errors.Is(r.Err, ErrStaleSegment) {
		t.Fatalf("archived of the active segment: %v, want ErrStaleSegment", r.Err)
	}
	if r := applyCmd(t, f, 3, &Command{Op: OpEvictLocal, Topic: "t", Segment: 1}); !errors.Is(r.Err, ErrStaleSegment) {
		t.Fatalf("evict of the active segment: %v, want ErrStaleSegment", r.Err)
	}
	applyCmd(t, f, 4, &Command{Op: OpSeal, Topic: "t", Segment: 1, Count: 2, NextLeader: 1})
	if r := applyCmd(t, f, 5, &Command{Op: OpEvictLocal, Topic: "t", Segment: 1}); !errors.Is(r.Err, ErrStaleSegment) {
		t.Fatalf("evict before archiving: %v, want ErrStaleSegment", r.Err)
	}
	top, _ := f.Topic("t")
	if got := top.Segments[0].Tier(); got != "local" {
		t.Fatalf("tier of sealed segment = %q, want local", got)
	}
	for i := 0; i < 2; i++ { // the second is a retry: no-op
		if r := applyCmd(t, f, uint64(6+i), arch); r.Err != nil {
			t.Fatalf("archived (try %d): %v", i, r.Err)
		}
	}
	late := *arch
	late.Key = "topics/t/1-late.seg"
	if r := applyCmd(t, f, 8, &late); !errors.Is(r.Err, ErrStaleSegment) {
		t.Fatalf("a second key for an archived segment: %v, want ErrStaleSegment", r.Err)
	}
	top, _ = f.Topic("t")
	if s := top.Segments[0]; s.State != Archived || s.ArchiveKey != arch.Key || s.Tier() != "both" {
		t.Fatalf("archived segment = %+v tier %s", s, s.Tier())
	}
	if r := applyCmd(t, f, 9, &Command{Op: OpEvictLocal, Topic: "t", Segment: 1}); r.Err != nil {
		t.Fatal(r.Err)
	}
	top, _ = f.Topic("t")
	if got := top.Segments[0].Tier(); got != "remote" {
		t.Fatalf("tier after eviction = %q, want remote", got)
	}
}

func TestCopyingAccessors(t *testing.T) {
	f := NewFSM()
	applyCmd(t, f, 1, &Command{Op: OpCreateTopic, Topic: "t", Leader: 2, Config: &TopicConfig{MaxSegmentEntries: 7}})
	applyCmd(t, f, 2, &Command{Op: OpSeal, Topic: "t", Segment: 1, Count: 4, NextLeader: 3})
	act, cfg, ok := f.ActiveOf("t")
	if !ok || act.ID != 2 || act.Leader != 3 || act.Base != 4 || cfg.MaxSegmentEntries != 7 {
		t.Fatalf("ActiveOf = %+v %+v %v", act, cfg, ok)
	}
	act.Leader = 99 // a copy: the state must not change
	if s, ok := f.SegmentOf("t", 2); !ok || s.Leader != 3 {
		t.Fatalf("SegmentOf(2) = %+v %v after changing a copy", s, ok)
	}
	if _, ok := f.SegmentOf("t", 3); ok {
		t.Fatal("SegmentOf of a missing segment found one")
	}
	if _, _, ok := f.ActiveOf("nope"); ok {
		t.Fatal("ActiveOf of a missing topic found one")
	}
}

func TestExpireInOrderMovesCursor(t *testing.T) {
	f := NewFSM()
	applyCmd(t, f, 1, &Command{Op: OpCreateTopic, Topic: "t", Leader: 1})
	for i := uint64(1); i <= 3; i++ {
		applyCmd(t, f, 1+i, &Command{Op: OpSeal, Topic: "t", Segment: i, Count: 10, NextLeader: 1})
	}
	applyCmd(t, f, 5, &Command{Op: OpAdvanceCursor, Topic: "t", From: 0, To: 4})
	if r := applyCmd(t, f, 6, &Command{Op: OpExpire, Topic: "t", Segment: 4}); !errors.Is(r.Err, ErrStaleSegment) {
		t.Fatalf("expire of the active segment: %v, want ErrStaleSegment", r.Err)
	}
	if r := applyCmd(t, f, 7, &Command{Op: OpExpire, Topic: "t", Segment: 2}); !errors.Is(r.Err, ErrStaleSegment) {
		t.Fatalf("expire of segment 2 before 1: %v, want ErrStaleSegment", r.Err)
	}
	for i := 0; i < 2; i++ { // the second is a retry: no-op
		if r := applyCmd(t, f, uint64(8+i), &Command{Op: OpExpire, Topic: "t", Segment: 1, UnixMS: 99}); r.Err != nil {
			t.Fatalf("expire segment 1 (try %d): %v", i, r.Err)
		}
	}
	top, _ := f.Topic("t")
	if s := top.Segments[0]; s.State != Expired || s.ExpiredUnixMS != 99 || s.Tier() != "remote" {
		t.Fatalf("expired segment = %+v tier %s", s, s.Tier())
	}
	if top.Cursor != 10 || top.StartOffset() != 10 {
		t.Fatalf("after expiring offsets 0-9: cursor %d, start %d; want 10 and 10", top.Cursor, top.StartOffset())
	}
	arch := &Command{Op: OpArchived, Topic: "t", Segment: 1, Key: "topics/t/1.seg", Size: 10}
	if r := applyCmd(t, f, 10, arch); !errors.Is(r.Err, ErrStaleSegment) {
		t.Fatalf("archived after expiry: %v, want ErrStaleSegment", r.Err)
	}
	applyCmd(t, f, 11, &Command{Op: OpAdvanceCursor, Topic: "t", From: 10, To: 25})
	applyCmd(t, f, 12, &Command{Op: OpExpire, Topic: "t", Segment: 2})
	if top, _ = f.Topic("t"); top.Cursor != 25 || top.StartOffset() != 20 {
		t.Fatalf("a cursor past the expired range stays: cursor %d, start %d; want 25 and 20", top.Cursor, top.StartOffset())
	}
}

func TestRecoverSegmentAbandonsTheActiveOne(t *testing.T) {
	f := NewFSM()
	applyCmd(t, f, 1, &Command{Op: OpCreateTopic, Topic: "t", Leader: 2})
	applyCmd(t, f, 2, &Command{Op: OpSeal, Topic: "t", Segment: 1, Count: 10, NextLeader: 3})
	applyCmd(t, f, 3, &Command{Op: OpAdvanceCursor, Topic: "t", From: 0, To: 10})
	if r := applyCmd(t, f, 4, &Command{Op: OpRecover, Topic: "t", Segment: 2, NextLeader: 3}); !errors.Is(r.Err, ErrBadCommand) {
		t.Fatalf("recover to the same leader: %v, want ErrBadCommand", r.Err)
	}
	if r := applyCmd(t, f, 5, &Command{Op: OpRecover, Topic: "t", Segment: 1, NextLeader: 1}); !errors.Is(r.Err, ErrStaleSegment) {
		t.Fatalf("recover of a sealed segment: %v, want ErrStaleSegment", r.Err)
	}
	if r := applyCmd(t, f, 6, &Command{Op: OpRecover, Topic: "t", Segment: 2, NextLeader: 1}); r.Err != nil {
		t.Fatal(r.Err)
	}
	top, _ := f.Topic("t")
	s, act := top.Segments[1], top.Active()
	if s.State != Sealed || s.Count != 0 || !s.Abandoned || act.ID != 3 || act.Leader != 1 || act.Base != 10 || act.LeaderIndex != 6 {
		t.Fatalf("after recovery: abandoned %+v, active %+v", s, act)
	}
	if got := top.Find(10); got.ID != 3 {
		t.Fatalf("offset 10 is in segment %d, want the new active 3", got.ID)
	}
	if r := applyCmd(t, f, 7, &Command{Op: OpSeal, Topic: "t", Segment: 2, Count: 5, NextLeader: 1}); !errors.Is(r.Err, ErrStaleSegment) {
		t.Fatalf("the old leader's late seal: %v, want ErrStaleSegment", r.Err)
	}
}

// TestReplicaSets: create_topic, seal and recover_segment record the replicas of the
// new active segment, leader first; a set that does not start with the leader or
// names a node twice is refused and changes nothing; a command without one leaves
// the leader alone (replication factor 1, and every log written before replication).
func TestReplicaSets(t *testing.T) {
	f := NewFSM()
	cfg := &TopicConfig{ReplicationFactor: 3}
	if r := applyCmd(t, f, 1, &Command{Op: OpCreateTopic, Topic: "t", Leader: 2, Config: cfg, Replicas: []uint64{2, 3, 1}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	s, _ := f.SegmentOf("t", 1)
	if !reflect.DeepEqual(s.ReplicaSet(), []uint64{2, 3, 1}) || s.Epoch() != 1 || !s.HasReplica(1) || s.HasReplica(4) {
		t.Fatalf("segment 1: replicas %v epoch %d", s.ReplicaSet(), s.Epoch())
	}
	for _, bad := range [][]uint64{{3, 2, 1}, {1, 1}, {1, 0}} {
		before, _ := f.Topic("t")
		r := applyCmd(t, f, 2, &Command{Op: OpSeal, Topic: "t", Segment: 1, Count: 5, NextLeader: 1, Replicas: bad})
		if !errors.Is(r.Err, ErrBadCommand) {
			t.Fatalf("seal with replicas %v: %v, want ErrBadCommand", bad, r.Err)
		}
		if after, _ := f.Topic("t"); !reflect.DeepEqual(before, after) {
			t.Fatalf("a refused seal changed the topic: %+v -> %+v", before, after)
		}
	}
	if r := applyCmd(t, f, 3, &Command{Op: OpSeal, Topic: "t", Segment: 1, Count: 5, NextLeader: 3, Replicas: []uint64{3, 1, 2}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	s, _ = f.SegmentOf("t", 2)
	if !reflect.DeepEqual(s.ReplicaSet(), []uint64{3, 1, 2}) || s.Epoch() != 3 || s.Leader != 3 {
		t.Fatalf("segment 2: leader %d replicas %v epoch %d", s.Leader, s.ReplicaSet(), s.Epoch())
	}
	if r := applyCmd(t, f, 4, &Command{Op: OpRecover, Topic: "t", Segment: 2, NextLeader: 1, Replicas: []uint64{1, 2, 3}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	s, _ = f.SegmentOf("t", 3)
	if !reflect.DeepEqual(s.ReplicaSet(), []uint64{1, 2, 3}) || s.Epoch() != 4 {
		t.Fatalf("segment 3 after recover: replicas %v epoch %d", s.ReplicaSet(), s.Epoch())
	}
	// Without replicas: the leader alone.
	applyCmd(t, f, 5, &Command{Op: OpCreateTopic, Topic: "u", Leader: 2})
	if s, _ := f.SegmentOf("u", 1); !reflect.DeepEqual(s.ReplicaSet(), []uint64{2}) || s.Replicas != nil {
		t.Fatalf("topic without replicas: %v", s.ReplicaSet())
	}
	// The replicas survive a snapshot.
	g := NewFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))); err != nil {
		t.Fatal(err)
	}
	if s, _ := g.SegmentOf("t", 2); !reflect.DeepEqual(s.ReplicaSet(), []uint64{3, 1, 2}) {
		t.Fatalf("segment 2 after a snapshot: replicas %v", s.ReplicaSet())
	}
	if top, _ := g.Topic("t"); top.Config.Replication() != 3 {
		t.Fatalf("replication factor after a snapshot: %d", top.Config.Replication())
	}
}

// TestReplicationFactorValidation: 0 (the node's default) to MaxReplicationFactor.
func TestReplicationFactorValidation(t *testing.T) {
	for rf, ok := range map[int]bool{-1: false, 0: true, 1: true, MaxReplicationFactor: true, MaxReplicationFactor + 1: false} {
		c := TopicConfig{ReplicationFactor: rf}
		if err := c.Validate(); (err == nil) != ok {
			t.Errorf("replication_factor %d: %v", rf, err)
		}
	}
	if (&TopicConfig{}).Replication() != 1 {
		t.Errorf("an unset replication factor is not 1")
	}
}

// TestFailoverSegment: failover_segment seals a replicated active segment at the
// holder's totals and appends the next one at its end; it is refused for a segment
// that is not replicated, a holder that is not a follower, or a segment already
// sealed with other totals, and a repeat changes nothing.
func TestFailoverSegment(t *testing.T) {
	f := NewFSM()
	applyCmd(t, f, 1, &Command{Op: OpCreateTopic, Topic: "t", Leader: 1, Replicas: []uint64{1, 2, 3}})
	applyCmd(t, f, 2, &Command{Op: OpAdvanceCursor, Topic: "t", From: 0, To: 4})
	applyCmd(t, f, 3, &Command{Op: OpCreateTopic, Topic: "solo", Leader: 1})
	for _, bad := range []*Command{
		{Op: OpFailover, Topic: "solo", Segment: 1, Count: 5, Holder: 2, NextLeader: 2},
		{Op: OpFailover, Topic: "t", Segment: 1, Count: 5, Holder: 1, NextLeader: 2},
		{Op: OpFailover, Topic: "t", Segment: 1, Count: 5, Holder: 4, NextLeader: 2},
		{Op: OpFailover, Topic: "t", Segment: 1, Count: 5, Holder: 2},
	} {
		if r := applyCmd(t, f, 4, bad); !errors.Is(r.Err, ErrBadCommand) {
			t.Fatalf("%+v: %v, want ErrBadCommand", bad, r.Err)
		}
	}
	fo := &Command{Op: OpFailover, Topic: "t", Segment: 1, Count: 5, Bytes: 60, CRC: 9, Holder: 3, NextLeader: 2, Replicas: []uint64{2, 3, 1}}
	if r := applyCmd(t, f, 5, fo); r.Err != nil {
		t.Fatal(r.Err)
	}
	top, _ := f.Topic("t")
	s1, s2 := top.Segments[0], top.Segments[1]
	if s1.State != Sealed || s1.Count != 5 || s1.Holder != 3 || s1.Owner() != 3 || s2.Base != 5 || s2.Leader != 2 || s2.Epoch() != 5 || top.Cursor != 4 {
		t.Fatalf("after the failover: %+v, %+v, cursor %d", s1, s2, top.Cursor)
	}
	if r := applyCmd(t, f, 6, fo); r.Err != nil {
		t.Fatalf("a repeated failover: %v", r.Err)
	}
	other := *fo
	other.Count = 6
	if r := applyCmd(t, f, 7, &other); !errors.Is(r.Err, ErrStaleSegment) {
		t.Fatalf("a failover with other totals of a sealed segment: %v, want ErrStaleSegment", r.Err)
	}
	if top, _ := f.Topic("t"); len(top.Segments) != 2 {
		t.Fatalf("%d segments after repeats, want 2", len(top.Segments))
	}
}

// TestReplaceReplica: replace_replica swaps a replica of a sealed segment for another
// node (in a new slice: copies handed out earlier keep theirs), hands the segment to
// another replica when its owner is replaced (with two replicas, to the one left: found
// by review), refuses an active segment (its leader rolls it over instead), and is a
// no-op when repeated.
func TestReplaceReplica(t *testing.T) {
	f := NewFSM()
	applyCmd(t, f, 1, &Command{Op: OpCreateTopic, Topic: "t", Leader: 1, Replicas: []uint64{1, 2, 3}})
	if r := applyCmd(t, f, 2, &Command{Op: OpReplaceReplica, Topic: "t", Segment: 1, OldReplica: 3, NewReplica: 4}); !errors.Is(r.Err, ErrBadCommand) {
		t.Fatalf("replacing a replica of an active segment: %v, want ErrBadCommand", r.Err)
	}
	applyCmd(t, f, 3, &Command{Op: OpSeal, Topic: "t", Segment: 1, Count: 3, NextLeader: 2, Replicas: []uint64{2, 1}})
	before, _ := f.SegmentOf("t", 1)
	rep := &Command{Op: OpReplaceReplica, Topic: "t", Segment: 1, OldReplica: 3, NewReplica: 4}
	for i := 0; i < 2; i++ {
		if r := applyCmd(t, f, uint64(4+i), rep); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if s, _ := f.SegmentOf("t", 1); !reflect.DeepEqual(s.ReplicaSet(), []uint64{1, 2, 4}) || !reflect.DeepEqual(before.Replicas, []uint64{1, 2, 3}) {
		t.Fatalf("replicas %v (a copy taken before: %v), want [1 2 4] ([1 2 3])", s.ReplicaSet(), before.Replicas)
	}
	if r := applyCmd(t, f, 6, &Command{Op: OpReplaceReplica, Topic: "t", Segment: 1, OldReplica: 1, NewReplica: 3}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if s, _ := f.SegmentOf("t", 1); s.Owner() != 2 || !reflect.DeepEqual(s.ReplicaSet(), []uint64{3, 2, 4}) {
		t.Fatalf("sealed segment after its owner was replaced: owner %d, replicas %v", s.Owner(), s.ReplicaSet())
	}
	// Two replicas, the holder replaced: the other one holds it.
	applyCmd(t, f, 7, &Command{Op: OpFailover, Topic: "t", Segment: 2, Count: 1, Holder: 1, NextLeader: 1, Replicas: []uint64{1, 2}})
	if r := applyCmd(t, f, 8, &Command{Op: OpReplaceReplica, Topic: "t", Segment: 2, OldReplica: 1, NewReplica: 3}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if s, _ := f.SegmentOf("t", 2); s.Owner() != 2 || !reflect.DeepEqual(s.ReplicaSet(), []uint64{2, 3}) {
		t.Fatalf("factor 2, holder replaced: owner %d, replicas %v; want owner 2", s.Owner(), s.ReplicaSet())
	}
}

// TestRegisterNodeIncarnation: a member that registers a new incarnation (a new data
// dir) in place of another records the index at which it did, and keeps it through
// re-registrations of the same incarnation and of one that does not say; a first
// incarnation, of a new member or of one that did not say before, records none.
func TestRegisterNodeIncarnation(t *testing.T) {
	f := NewFSM()
	reg := func(index, inc uint64, addr string) NodeInfo {
		t.Helper()
		if res := applyCmd(t, f, index, &Command{Op: OpRegisterNode, Node: &NodeInfo{ID: 1, RaftAddr: addr, Incarnation: inc}}); res.Err != nil {
			t.Fatal(res.Err)
		}
		n, _ := f.Node(1)
		return n
	}
	for _, step := range []struct {
		index, inc uint64
		addr       string
		want       uint64
	}{
		{2, 0, "h:1", 0},  // an older node: no incarnation
		{3, 7, "h:1", 0},  // its first: nothing was lost
		{4, 7, "h:2", 0},  // the same data dir, a new address
		{5, 9, "h:2", 5},  // an empty data dir in its place
		{6, 9, "h:3", 5},  // the same again
		{7, 0, "h:3", 5},  // a registration that does not say keeps it
		{8, 11, "h:3", 8}, // another empty data dir
	} {
		if n := reg(step.index, step.inc, step.addr); n.Incarnated != step.want {
			t.Fatalf("register at %d (incarnation %d): incarnated %d, want %d", step.index, step.inc, n.Incarnated, step.want)
		}
	}
	applyCmd(t, f, 9, &Command{Op: OpRemoveNode, Node: &NodeInfo{ID: 1}})
	if n := reg(10, 13, "h:4"); n.Incarnated != 0 {
		t.Fatalf("a removed member rejoining: incarnated %d, want 0 (its segments were moved off it)", n.Incarnated)
	}
}

// TestAlterTopic: a patch changes only the settings it sets, through the log (so it
// survives a snapshot like the rest); a patch that would make a setting invalid, an
// empty one, and one for a missing topic change nothing.
func TestAlterTopic(t *testing.T) {
	f := NewFSM()
	applyCmd(t, f, 1, &Command{Op: OpCreateTopic, Topic: "t", Leader: 1, Config: &TopicConfig{MaxSegmentEntries: 5, RetentionMS: 1000, ReplicationFactor: 1}})
	ptr := func(v int64) *int64 { return &v }
	rf := 3
	if r := applyCmd(t, f, 2, &Command{Op: OpAlterTopic, Topic: "t", Patch: &TopicConfigPatch{RetentionBytes: ptr(64), RetentionMS: ptr(0), ReplicationFactor: &rf}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	want := TopicConfig{MaxSegmentEntries: 5, RetentionBytes: 64, ReplicationFactor: 3}
	if top, _ := f.Topic("t"); top.Config != want {
		t.Fatalf("config after the patch = %+v, want %+v", top.Config, want)
	}
	for name, c := range map[string]*Command{
		"negative":      {Op: OpAlterTopic, Topic: "t", Patch: &TopicConfigPatch{RetentionBytes: ptr(-1)}},
		"empty":         {Op: OpAlterTopic, Topic: "t", Patch: &TopicConfigPatch{}},
		"missing topic": {Op: OpAlterTopic, Topic: "nope", Patch: &TopicConfigPatch{RetentionBytes: ptr(1)}},
	} {
		if r := applyCmd(t, f, 3, c); r.Err == nil {
			t.Errorf("%s patch applied", name)
		}
	}
	if top, _ := f.Topic("t"); top.Config != want {
		t.Fatalf("config after refused patches = %+v, want %+v", top.Config, want)
	}
}
