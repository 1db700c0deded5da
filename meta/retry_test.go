package meta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/hashicorp/raft"

	"floe/topicname"
)

// exportState returns the FSM's replicated state as JSON (what Export hands out).
func exportState(t *testing.T, f *FSM) string {
	t.Helper()
	_, b, err := f.Export()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sameResult fails unless got is the result first was: same error (sentinel and
// message) and same cursor.
func sameResult(t *testing.T, what string, got, first *Result, sentinel error) {
	t.Helper()
	if (got.Err == nil) != (first.Err == nil) || got.Cursor != first.Cursor {
		t.Fatalf("%s = {err %v, cursor %d}, want the first attempt's {err %v, cursor %d}", what, got.Err, got.Cursor, first.Err, first.Cursor)
	}
	if first.Err == nil {
		return
	}
	if got.Err.Error() != first.Err.Error() {
		t.Fatalf("%s: error %q, want the first attempt's %q", what, got.Err, first.Err)
	}
	if sentinel != nil && !errors.Is(got.Err, sentinel) {
		t.Fatalf("%s: error %v does not wrap %v", what, got.Err, sentinel)
	}
}

// retryCase is one command whose retry must get its first attempt's result and change
// nothing, also after other commands have been applied in between.
type retryCase struct {
	name    string
	setup   []*Command // applied first, without request ids
	cmd     *Command   // the command under test (gets a request id)
	wantErr error      // the first attempt's sentinel (nil: success)
	// between are applied after the first attempt and before the retry (another
	// proposer's work while the leader changed). Each case picks commands after which
	// applying cmd again would give another result or another state.
	between []*Command
}

func retryCases() []retryCase {
	node := func(id uint64, host string) *NodeInfo {
		return &NodeInfo{ID: id, RaftAddr: host + ":1", ClientAddr: host + ":2", HTTPAddr: host + ":3"}
	}
	topic := &Command{Op: OpCreateTopic, Topic: "t", Leader: 1}
	seal := func(seg, count uint64) *Command {
		return &Command{Op: OpSeal, Topic: "t", Segment: seg, Count: count, Bytes: int64(count), CRC: uint32(seg), NextLeader: 1}
	}
	archived := &Command{Op: OpArchived, Topic: "t", Segment: 1, Key: "k1", Size: 10, Checksum: 1}
	return []retryCase{
		{name: "init_cluster", cmd: &Command{Op: OpInitCluster, ClusterID: "a"},
			between: []*Command{{Op: OpRegisterNode, Node: node(1, "h")}}},
		{name: "register_node", cmd: &Command{Op: OpRegisterNode, Node: node(1, "old")},
			// The node restarted with new addresses and registered them: a late retry
			// of the old registration must not bring the old addresses back.
			between: []*Command{{Op: OpRegisterNode, Node: node(1, "new")}}},
		{name: "remove_node", setup: []*Command{{Op: OpRegisterNode, Node: node(2, "h")}},
			cmd: &Command{Op: OpRemoveNode, Node: &NodeInfo{ID: 2}},
			// The member was added back: a late retry must not remove it again.
			between: []*Command{{Op: OpRegisterNode, Node: node(2, "h2")}}},
		{name: "create_topic", cmd: &Command{Op: OpCreateTopic, Topic: "t", Leader: 1, Config: &TopicConfig{MaxSegmentEntries: 5}},
			between: []*Command{seal(1, 5)}},
		{name: "create_topic/bad name", cmd: &Command{Op: OpCreateTopic, Topic: "../x", Leader: 1}, wantErr: topicname.ErrInvalid,
			between: []*Command{topic}},
		{name: "seal", setup: []*Command{topic}, cmd: seal(1, 10),
			between: []*Command{seal(2, 3), {Op: OpRecover, Topic: "t", Segment: 3, NextLeader: 2}}},
		{name: "advance_cursor", setup: []*Command{topic, seal(1, 10)},
			cmd: &Command{Op: OpAdvanceCursor, Topic: "t", From: 0, To: 1},
			// Another reader took the next entry: the retry must still say the first
			// attempt won (issue 7 item 6: else GET skips entry 0).
			between: []*Command{{Op: OpAdvanceCursor, Topic: "t", From: 1, To: 2}}},
		{name: "advance_cursor/lost race", setup: []*Command{topic, {Op: OpAdvanceCursor, Topic: "t", From: 0, To: 1}},
			cmd: &Command{Op: OpAdvanceCursor, Topic: "t", From: 0, To: 1}, wantErr: ErrCursorMoved,
			// The cursor came back to 0 (recover-segment): a retry of the lost
			// compare-and-set must not now take entry 0 for a GET that already
			// answered another.
			between: []*Command{{Op: OpRecover, Topic: "t", Segment: 1, NextLeader: 2}}},
		{name: "archived", setup: []*Command{topic, seal(1, 10)}, cmd: archived,
			between: []*Command{{Op: OpExpire, Topic: "t", Segment: 1}}},
		{name: "evict_local", setup: []*Command{topic, seal(1, 10), archived},
			cmd:     &Command{Op: OpEvictLocal, Topic: "t", Segment: 1},
			between: []*Command{{Op: OpExpire, Topic: "t", Segment: 1}}},
		{name: "expire", setup: []*Command{topic, seal(1, 10), seal(2, 10)},
			cmd:     &Command{Op: OpExpire, Topic: "t", Segment: 1},
			between: []*Command{{Op: OpAdvanceCursor, Topic: "t", From: 10, To: 11}, {Op: OpExpire, Topic: "t", Segment: 2}}},
		{name: "recover_segment", setup: []*Command{topic, seal(1, 10)},
			cmd: &Command{Op: OpRecover, Topic: "t", Segment: 2, NextLeader: 2},
			// The operator's retry must not answer ErrStaleSegment (which would invite
			// --force and abandon the new live segment).
			between: []*Command{{Op: OpAdvanceCursor, Topic: "t", From: 0, To: 1}}},
		{name: "recover_segment/stale", setup: []*Command{topic, seal(1, 10)},
			cmd: &Command{Op: OpRecover, Topic: "t", Segment: 1, NextLeader: 2}, wantErr: ErrStaleSegment,
			between: []*Command{seal(2, 0)}},
	}
}

// TestRetriedCommandGetsFirstResult covers every command type: a retry (the same
// request id, as after raft.ErrLeadershipLost or a reply lost with the old leader) is
// answered from the first attempt and applies nothing, whether it is the same log
// entry again or comes after other commands.
func TestRetriedCommandGetsFirstResult(t *testing.T) {
	ops := map[string]bool{}
	for _, tc := range retryCases() {
		ops[tc.cmd.Op] = true
		t.Run(tc.name, func(t *testing.T) {
			start := func() (*FSM, uint64, *Command, *Result) {
				f := NewFSM()
				var index uint64
				for _, c := range tc.setup {
					index++
					if r := applyCmd(t, f, index, c); r.Err != nil {
						t.Fatalf("setup %s: %v", c.Op, r.Err)
					}
				}
				c := *tc.cmd
				c.RequestID = "req-" + tc.name
				after := index
				index++
				first := applyCmd(t, f, index, &c)
				if (first.Err == nil) != (tc.wantErr == nil) || (tc.wantErr != nil && !errors.Is(first.Err, tc.wantErr)) {
					t.Fatalf("first attempt: %v, want %v", first.Err, tc.wantErr)
				}
				c.Retry, c.After = true, after
				return f, index, &c, first
			}

			t.Run("same entry twice", func(t *testing.T) {
				f, index, c, first := start()
				c.Retry, c.After = false, 0 // the very same log entry
				want := exportState(t, f)
				sameResult(t, "the same entry applied again", applyCmd(t, f, index+1, c), first, tc.wantErr)
				if got := exportState(t, f); got != want {
					t.Fatalf("the same entry applied again changed the state:\n got %s\nwant %s", got, want)
				}
			})
			t.Run("retry after other commands", func(t *testing.T) {
				f, index, c, first := start()
				for _, b := range tc.between {
					index++
					if r := applyCmd(t, f, index, b); r.Err != nil {
						t.Fatalf("in between, %s: %v", b.Op, r.Err)
					}
				}
				want := exportState(t, f)
				index++
				sameResult(t, "the retry", applyCmd(t, f, index, c), first, tc.wantErr)
				if got := exportState(t, f); got != want {
					t.Fatalf("the retry changed the state:\n got %s\nwant %s", got, want)
				}
				// And once more through a snapshot: a member restored from it
				// answers the same.
				g := NewFSM()
				if err := g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))); err != nil {
					t.Fatal(err)
				}
				sameResult(t, "the retry on a restored member", applyCmd(t, g, index+1, c), first, tc.wantErr)
				if got := exportState(t, g); got != want {
					t.Fatalf("the retry changed the restored state:\n got %s\nwant %s", got, want)
				}
			})
		})
	}
	for _, op := range []string{OpInitCluster, OpRegisterNode, OpRemoveNode, OpCreateTopic, OpSeal,
		OpAdvanceCursor, OpArchived, OpEvictLocal, OpExpire, OpRecover} {
		if !ops[op] {
			t.Errorf("no retry case for %s", op)
		}
	}
}

// TestForgottenRetryIsRefused: once a request id has left the bounded table, a retry
// whose first attempt may be among the forgotten ones is refused with
// ErrOutcomeUnknown; first attempts, and retries whose first attempt would still be
// remembered, apply normally.
func TestForgottenRetryIsRefused(t *testing.T) {
	f := NewFSM()
	f.reqs.limit = 3
	applyCmd(t, f, 1, &Command{Op: OpCreateTopic, Topic: "t", Leader: 1})
	applyCmd(t, f, 2, &Command{Op: OpSeal, Topic: "t", Segment: 1, Count: 10, NextLeader: 1})
	adv := &Command{Op: OpAdvanceCursor, Topic: "t", From: 0, To: 1, RequestID: "a"}
	if r := applyCmd(t, f, 3, adv); r.Err != nil {
		t.Fatal(r.Err)
	}
	for i := uint64(0); i < 3; i++ { // pushes "a" out of the table
		applyCmd(t, f, 4+i, &Command{Op: OpRegisterNode, Node: &NodeInfo{ID: 1 + i}, RequestID: fmt.Sprint("r", i)})
	}
	retry := *adv
	retry.Retry, retry.After = true, 2
	want := exportState(t, f)
	if r := applyCmd(t, f, 7, &retry); !errors.Is(r.Err, ErrOutcomeUnknown) {
		t.Fatalf("retry of a forgotten request: %v, want ErrOutcomeUnknown", r.Err)
	}
	if got := exportState(t, f); got != want {
		t.Fatalf("a refused retry changed the state:\n got %s\nwant %s", got, want)
	}
	// A first attempt from a proposer far behind is not a retry: it applies.
	fresh := &Command{Op: OpAdvanceCursor, Topic: "t", From: 1, To: 2, RequestID: "b", After: 1}
	if r := applyCmd(t, f, 8, fresh); r.Err != nil || r.Cursor != 2 {
		t.Fatalf("first attempt = %+v, want cursor 2", r)
	}
	// A retry proposed after everything forgotten: its first attempt would still be
	// in the table, so it did not commit, and the retry applies.
	late := &Command{Op: OpAdvanceCursor, Topic: "t", From: 2, To: 3, RequestID: "c", Retry: true, After: 7}
	if r := applyCmd(t, f, 9, late); r.Err != nil || r.Cursor != 3 {
		t.Fatalf("retry of an uncommitted request = %+v, want cursor 3", r)
	}
}

// TestRestoreSetsAppliedIndex (issue 7 item 11): after a restore, AppliedIndex and
// Export name the snapshot's index, not whatever the member had applied before.
func TestRestoreSetsAppliedIndex(t *testing.T) {
	f := NewFSM()
	applyCmd(t, f, 1, &Command{Op: OpInitCluster, ClusterID: "abc"})
	applyCmd(t, f, 2, &Command{Op: OpCreateTopic, Topic: "a", Leader: 1})
	applyCmd(t, f, 6, &Command{Op: OpAdvanceCursor, Topic: "a", From: 0, To: 0})
	data := snapshotBytes(t, f)

	for _, before := range []uint64{0, 3, 9} { // a fresh member, one behind, one ahead (an operator's restore)
		g := NewFSM()
		if before > 0 {
			applyCmd(t, g, before, &Command{Op: OpCreateTopic, Topic: "b", Leader: 1})
		}
		if err := g.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
			t.Fatal(err)
		}
		index, _, err := g.Export()
		if err != nil {
			t.Fatal(err)
		}
		if g.AppliedIndex() != 6 || index != 6 {
			t.Errorf("applied %d before the restore: AppliedIndex %d, Export index %d; want 6", before, g.AppliedIndex(), index)
		}
	}
}

// TestRestoreOfSnapshotWithoutRequests: a snapshot written before request ids (the
// JSON of State alone) restores with an empty request table and applies new commands.
func TestRestoreOfSnapshotWithoutRequests(t *testing.T) {
	old := `{"topics":{"t":{"name":"t","config":{},"segments":[{"id":1,"leader":1,"base":0,"state":"active","leader_index":2,"created_unix_ms":0}],"cursor":0}},"nodes":{},"cluster_id":"abc"}`
	g := NewFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader([]byte(old)))); err != nil {
		t.Fatal(err)
	}
	if g.ClusterID() != "abc" || len(g.reqs.order) != 0 {
		t.Fatalf("restored: cluster %q, %d remembered requests", g.ClusterID(), len(g.reqs.order))
	}
	c := &Command{Op: OpSeal, Topic: "t", Segment: 1, Count: 1, RequestID: "x"}
	if r := applyCmd(t, g, 10, c); r.Err != nil {
		t.Fatal(r.Err)
	}
	c.Retry, c.After = true, 9
	if r := applyCmd(t, g, 11, c); r.Err != nil {
		t.Fatalf("retried seal: %v", r.Err)
	}
	// An old log entry (no request id) applies as it always did.
	res := g.Apply(&raft.Log{Index: 12, Type: raft.LogCommand, Data: []byte(`{"op":"advance_cursor","topic":"t","from":0,"to":1}`)}).(*Result)
	if res.Err != nil || res.Cursor != 1 {
		t.Fatalf("old advance_cursor = %+v, want cursor 1", res)
	}
}
