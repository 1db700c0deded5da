package node

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"floe/meta"
	"floe/node/rpc"
	"floe/wire"
)

// TopicState is the STATE reply.
type TopicState = wire.TopicState

// State describes a topic: its segments with state and tier, and its cursor.
func (n *Node) State(ctx context.Context, name string) (*TopicState, error) {
	// Show the cursor advances of the GETs this node forwarded and returned (getFence);
	// if the FSM cannot catch up within ctx, answer with what it has.
	if f := n.getFence.Load(); n.fsm.AppliedIndex() < f {
		if err := n.waitApplied(ctx, f); err != nil {
			n.log.Debug("STATE: the cursor advances of forwarded GETs have not applied here yet", "topic", name, "index", f, "err", err)
		}
	}
	t, err := n.topicNamed(ctx, name)
	if err != nil {
		return nil, err
	}
	topic := t.Key()
	act := t.Active()
	st := &TopicState{
		CurrentSegment: act.ID, LeaderNode: act.Leader, LastSealedEntryOffset: t.SealedEnd(),
		SealedSegments: map[string]uint64{}, SegmentLeaders: map[string]uint64{},
		Topic: name, ID: t.ID, Cursor: t.Cursor, StartOffset: t.StartOffset(),
	}
	if st.Config, err = json.Marshal(t.Config); err != nil {
		return nil, err
	}
	for _, s := range t.Segments {
		id := strconv.FormatUint(s.ID, 10)
		st.SegmentLeaders[id] = s.Leader
		v := wire.SegmentInfo{ID: s.ID, Leader: s.Leader, Base: s.Base, Count: s.Count, Bytes: s.Bytes, State: string(s.State), Tier: s.Tier(),
			Replicas: s.ReplicaSet(), Epoch: s.Epoch(), Holder: s.Holder, Abandoned: s.Abandoned, Lost: s.Lost}
		if s.State == meta.Expired {
			// Gone: not listed among Walrus's readable sealed segments.
		} else if s.State != meta.Active {
			st.SealedSegments[id] = s.Count
		} else if c, b, sealing, err := n.activeCount(topic, s); err == nil {
			v.Count, v.Bytes = c, b
			if sealing {
				v.State = "sealing"
			}
			end := s.Base + c
			st.EndOffset = &end
		}
		st.Segments = append(st.Segments, v)
	}
	return st, nil
}

// StateJSON is the STATE reply.
func (n *Node) StateJSON(ctx context.Context, topic string) ([]byte, error) {
	st, err := n.State(ctx, topic)
	if err != nil {
		return nil, err
	}
	return json.Marshal(st)
}

// ClusterMetrics is the METRICS reply.
type ClusterMetrics = wire.ClusterMetrics

// Metrics reports this node's view of the Raft group.
func (n *Node) Metrics() (*ClusterMetrics, error) {
	members, err := n.raft.Members()
	if err != nil {
		return nil, err
	}
	m := &ClusterMetrics{
		ID: n.cfg.NodeID, State: n.raft.State(), CurrentTerm: n.raft.Term(),
		LastLogIndex: n.raft.LastIndex(), LastApplied: n.raft.AppliedIndex(),
		ClusterID: n.fsm.ClusterID(), Topics: len(n.fsm.TopicKeys()), HasLease: n.hasLease(),
	}
	if id, _ := n.raft.Leader(); id != 0 {
		m.CurrentLeader = &id
	}
	voters := []uint64{}
	m.MembershipConfig.Membership.Nodes = map[string]string{}
	for _, mem := range members {
		if mem.Voter {
			voters = append(voters, mem.ID)
		}
		m.MembershipConfig.Membership.Nodes[strconv.FormatUint(mem.ID, 10)] = mem.Address
	}
	m.MembershipConfig.Membership.Configs = [][]uint64{voters}
	if n.raft.IsLeader() {
		m.Replication = n.replication(members)
	}
	return m, nil
}

// replication asks every member for its applied index (the leader's view of
// replication progress; hashicorp/raft does not expose match indexes).
func (n *Node) replication(members []meta.Member) map[string]*wire.Replication {
	out := map[string]*wire.Replication{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, mem := range members {
		key := strconv.FormatUint(mem.ID, 10)
		if mem.ID == n.cfg.NodeID {
			out[key] = &wire.Replication{Index: n.raft.LastIndex()}
			continue
		}
		out[key] = nil // unreachable members show as null, as in openraft
		wg.Add(1)
		go func(mem meta.Member) {
			defer wg.Done()
			body, err := n.peers.Get(mem.Address).Call(n.ctx, rpc.OpStatus, nil, 500*time.Millisecond)
			if err != nil {
				return
			}
			if st, err := rpc.DecodeStatus(body); err == nil {
				mu.Lock()
				out[key] = &wire.Replication{Index: st.LastIndex}
				mu.Unlock()
			}
		}(mem)
	}
	wg.Wait()
	return out
}

// MetricsJSON is the METRICS reply.
func (n *Node) MetricsJSON() ([]byte, error) {
	m, err := n.Metrics()
	if err != nil {
		return nil, err
	}
	return json.Marshal(m)
}
