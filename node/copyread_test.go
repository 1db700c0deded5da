package node

import (
	"testing"
	"time"

	"floe/internal/testenv"
	"floe/node/read"
	"floe/node/rpc"
)

// TestFollowerCopyServesCommitted: a follower's copy of an active replicated
// segment is read (Reader.ReadCopy, the answer to a peer's copy read) up to the
// committed count its leader last told it, never further although the copy holds
// more, and the count only grows.
func TestFollowerCopyServesCommitted(t *testing.T) {
	nodes, act := startReplicated(t, "c", "e0", "e1")
	fol := nodes[followerIndex(t, nodes, act)]
	testenv.WaitFor(t, 30*time.Second, "the follower's copy to hold 2 entries", func() bool {
		c, err := fol.replicaCopy(fol.key("c"), act.ID)
		return err == nil && c.seg.Count() == 2
	})
	copyRead := func() int {
		t.Helper()
		s, _ := fol.fsm.SegmentOf(fol.key("c"), act.ID)
		es, err := fol.reader.ReadCopy(fol.key("c"), &s, s.Base, 10, read.MaxBytes)
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	send := func(start, committed uint64, payloads ...string) {
		t.Helper()
		r := &rpc.Replicate{Topic: fol.key("c"), Segment: act.ID, Epoch: act.Epoch(), Leader: act.Leader, Start: start, Committed: committed}
		for _, p := range payloads {
			r.Payloads = append(r.Payloads, []byte(p))
		}
		if _, err := fol.appendReplica(r); err != nil {
			t.Fatal(err)
		}
	}
	// An entry no majority holds yet, with the count of the batch before it.
	send(2, 2, "x2")
	if n := copyRead(); n != 2 {
		t.Fatalf("the copy served %d entries; 2 are committed (it holds 3)", n)
	}
	send(3, 1) // a stale count lowers nothing
	if n := copyRead(); n != 2 {
		t.Fatalf("after a smaller count the copy served %d entries, want 2", n)
	}
	send(3, 3) // the probe that says x2 is committed
	if n := copyRead(); n != 3 {
		t.Fatalf("the copy served %d entries; 3 are committed", n)
	}
}
