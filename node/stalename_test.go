package node

import (
	"context"
	"testing"
)

// TestRegisterOnLaggingNodeAfterDelete: REGISTER through a follower right after a
// DELETE through the leader creates the topic: it asks the leader's metadata, not
// its own, which may not have applied the deletion yet (it once answered OK and
// created nothing, and the client's next PUT failed with no such topic).
func TestRegisterOnLaggingNodeAfterDelete(t *testing.T) {
	nodes := startTestCluster(t, 3, nil)
	ctx := context.Background()
	leader, follower := raftLeader(t, nodes)
	for i := 0; i < 5; i++ {
		if err := leader.Register(ctx, "a", nil); err != nil {
			t.Fatal(err)
		}
		follower.key("a") // the follower knows it
		if _, err := leader.DeleteTopic(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if err := follower.Register(ctx, "a", nil); err != nil {
			t.Fatal(err)
		}
		// REGISTER answered OK: the topic must exist now.
		if err := leader.syncMeta(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok := leader.fsm.Resolve("a"); !ok {
			t.Fatalf("round %d: REGISTER through node %d answered OK right after the DELETE, but no topic \"a\" exists", i, follower.cfg.NodeID)
		}
		if _, err := leader.DeleteTopic(ctx, "a"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDeleteOnLaggingNodeAfterRecreate: a topic deleted and created again through
// the leader, then deleted through a follower: the follower deletes the live
// incarnation, as the leader has it (it once resolved the name on its own metadata
// to the dead incarnation, deleted nothing and answered success).
func TestDeleteOnLaggingNodeAfterRecreate(t *testing.T) {
	nodes := startTestCluster(t, 3, nil)
	ctx := context.Background()
	leader, follower := raftLeader(t, nodes)
	if err := leader.Register(ctx, "a", nil); err != nil {
		t.Fatal(err)
	}
	follower.key("a")
	if _, err := leader.DeleteTopic(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := leader.Register(ctx, "a", nil); err != nil {
		t.Fatal(err)
	}
	d, err := follower.DeleteTopic(ctx, "a")
	if err != nil {
		t.Fatalf("DELETE through node %d: %v", follower.cfg.NodeID, err)
	}
	if err := leader.syncMeta(ctx); err != nil {
		t.Fatal(err)
	}
	if key, ok := leader.fsm.Resolve("a"); ok {
		t.Fatalf("DELETE through node %d answered success (deleted %q id %d), but %q is live", follower.cfg.NodeID, d.Name, d.ID, key)
	}
}
