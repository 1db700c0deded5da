package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"floe/client"
)

// TestJoin covers membership (README "Running a cluster": --join, and bootstrapping):
//   - a node restarted with existing Raft state just restarts, with or without --join
//     (the harness passes --join to nodes 2..n on every start, as a unit file would):
//     still three voters, no duplicate member, the same cluster id, no second cluster;
//   - a new node whose --join names a follower is added (the follower passes the request
//     to the Raft leader) and becomes a voter: METRICS on every node lists four voters;
//   - the four-node cluster serves reads and writes through the new node.
func TestJoin(t *testing.T) {
	c := startCluster(t, clusterOpts{})
	clusterID := func(id int) string {
		conn, err := c.dial(id, 5*time.Second)
		if err != nil {
			return ""
		}
		defer conn.Close()
		m, err := conn.Metrics()
		if err != nil {
			return ""
		}
		return metricsClusterID(m)
	}
	var cid string
	c.waitFor(10*time.Second, "a cluster id on node 1", func() bool { cid = clusterID(1); return cid != "" })

	checkMembers := func(when string, want int) {
		t.Helper()
		for _, p := range c.nodes {
			if !p.running() {
				continue
			}
			m := c.metrics(p.id)
			if m == nil {
				t.Fatalf("%s: node %d does not answer METRICS", when, p.id)
			}
			voters := m.MembershipConfig.Membership.Configs[0]
			if len(m.MembershipConfig.Membership.Configs) != 1 || len(voters) != want || distinct(voters) != want {
				t.Errorf("%s: node %d sees voter configs %v, want one config of %d distinct voters", when, p.id, m.MembershipConfig.Membership.Configs, want)
			}
			if len(m.MembershipConfig.Membership.Nodes) != want {
				t.Errorf("%s: node %d sees members %v, want %d", when, p.id, m.MembershipConfig.Membership.Nodes, want)
			}
			for i, id := range sortedIDs(voters) {
				if id != uint64(i+1) {
					t.Errorf("%s: node %d sees voters %v, want 1..%d", when, p.id, voters, want)
					break
				}
			}
			// A restarted node learns the cluster id when its FSM replays the log,
			// once the leader told it the commit index: its membership comes first.
			c.waitFor(10*time.Second, fmt.Sprintf("node %d to know a cluster id", p.id), func() bool {
				m = c.metrics(p.id)
				return m != nil && metricsClusterID(m) != ""
			})
			if got := metricsClusterID(m); got != cid {
				t.Errorf("%s: node %d has cluster id %q, want %q (one cluster)", when, p.id, got, cid)
			}
		}
	}

	// Restarts with state: node 2 gets --join again (clean stop, then kill -9); node 1
	// has no --join and must not bootstrap a second cluster.
	for _, r := range []struct {
		id   int
		kill bool
	}{{2, false}, {2, true}, {1, true}} {
		when := fmt.Sprintf("after restarting node %d (kill -9: %v)", r.id, r.kill)
		if r.kill {
			c.kill(r.id)
		} else {
			c.stop(r.id)
		}
		c.start(r.id)
		c.waitMembers(3, 30*time.Second)
		c.waitReady(30 * time.Second) // the restarted node's metadata has caught up
		checkMembers(when, 3)
	}
	for _, id := range []int{1, 2} {
		log := readFile(t, c.node(id).logPath)
		if n := strings.Count(log, "bootstrapping a new cluster"); n > btoi(id == 1) {
			t.Errorf("node %d bootstrapped a cluster %d times, want %d (only node 1's first start)", id, n, btoi(id == 1))
		}
		if n := strings.Count(log, "restarting with existing raft state"); n < 1 {
			t.Errorf("node %d log never says it restarted with existing raft state", id)
		}
	}

	// A new node joins through a follower.
	leader := c.raftLeader()
	follower := 1
	for follower == leader {
		follower++
	}
	n4 := c.addNode(follower)
	c.waitMembers(4, 30*time.Second)
	checkMembers(fmt.Sprintf("after node %d joined through follower node %d (leader %d)", n4, follower, leader), 4)
	if m := c.metrics(n4); m == nil || m.CurrentLeader == nil || int(*m.CurrentLeader) != c.raftLeader() {
		t.Errorf("node %d does not follow the cluster's leader", n4)
	}
	if t.Failed() {
		t.FailNow()
	}

	// The new member serves the protocol like any other.
	const topic = "joined"
	w := c.conn(n4)
	mustOK(t, w.Register(topic), "REGISTER through node %d", n4)
	c.waitTopic(topic) // see TestRegisterVisibleEverywhere
	for i := 0; i < 5; i++ {
		mustOK(t, w.Put(topic, []byte(fmt.Sprintf("e%d", i))), "PUT %d through node %d", i, n4)
	}
	for id := 1; id <= 4; id++ {
		if entries := c.readAll(id, topic); len(entries) != 5 {
			t.Errorf("READ %s through node %d: %d entries, want 5", topic, id, len(entries))
		}
	}

	// And it restarts as a member too (its --join names the follower again).
	c.kill(n4)
	c.start(n4)
	c.waitMembers(4, 30*time.Second)
	checkMembers(fmt.Sprintf("after restarting node %d", n4), 4)
}

// TestJoinKilledDuringJoin: a new node killed during its first --join (it has opened
// its Raft state, but no member has added it yet) finishes joining when restarted with
// the same flags, instead of waiting forever as a member of nothing.
func TestJoinKilledDuringJoin(t *testing.T) {
	c := startCluster(t, clusterOpts{})
	via := c.raftLeader()%3 + 1 // a follower, frozen: the join request waits unanswered
	c.pause(via)
	n4 := c.addNode(via)
	c.waitFor(10*time.Second, fmt.Sprintf("node %d to start joining", n4), func() bool {
		return strings.Contains(readFile(t, c.node(n4).logPath), "joining cluster")
	})
	c.kill(n4)
	c.resume(via)
	c.waitMembers(3, 30*time.Second)

	c.start(n4)
	c.waitMembers(4, 30*time.Second)
	c.waitReady(30 * time.Second)
}

// metricsClusterID reads floe's cluster_id from a METRICS reply.
func metricsClusterID(m *client.Metrics) string {
	var v struct {
		ClusterID string `json:"cluster_id"`
	}
	if json.Unmarshal(m.Raw, &v) != nil {
		return ""
	}
	return v.ClusterID
}

func sortedIDs(ids []uint64) []uint64 {
	out := append([]uint64(nil), ids...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
