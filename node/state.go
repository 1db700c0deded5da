package node

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"floe/meta"
	"floe/node/rpc"
)

// SegmentView is one element of STATE's "segments" list (README, "Protocol").
type SegmentView struct {
	ID     uint64 `json:"id"`
	Leader uint64 `json:"leader"`
	Base   uint64 `json:"base"`
	Count  uint64 `json:"count"`
	Bytes  int64  `json:"bytes"`
	State  string `json:"state"`
	Tier   string `json:"tier"`
	// Abandoned: floe cluster recover-segment moved writes off it (sealed empty).
	Abandoned bool `json:"abandoned,omitempty"`
	// Lost: floe restore --cluster found no copy of its entries (state expired).
	Lost bool `json:"lost,omitempty"`
}

// TopicState is the STATE reply: Walrus's fields, then floe's.
type TopicState struct {
	CurrentSegment        uint64            `json:"current_segment"`
	LeaderNode            uint64            `json:"leader_node"`
	LastSealedEntryOffset uint64            `json:"last_sealed_entry_offset"`
	SealedSegments        map[string]uint64 `json:"sealed_segments"`
	SegmentLeaders        map[string]uint64 `json:"segment_leaders"`

	Topic    string        `json:"topic"`
	Segments []SegmentView `json:"segments"`
	Cursor   uint64        `json:"cursor"`
	// StartOffset is the first offset retention has kept (0 until a segment expires).
	StartOffset uint64           `json:"start_offset"`
	Config      meta.TopicConfig `json:"config"`
	// EndOffset is one past the last durable entry, when the active leader answered.
	EndOffset *uint64 `json:"end_offset,omitempty"`
}

// State describes a topic: its segments with state and tier, and its cursor.
func (n *Node) State(ctx context.Context, topic string) (*TopicState, error) {
	t, err := n.topic(ctx, topic)
	if err != nil {
		return nil, err
	}
	act := t.Active()
	st := &TopicState{
		CurrentSegment: act.ID, LeaderNode: act.Leader, LastSealedEntryOffset: t.SealedEnd(),
		SealedSegments: map[string]uint64{}, SegmentLeaders: map[string]uint64{},
		Topic: topic, Cursor: t.Cursor, Config: t.Config, StartOffset: t.StartOffset(),
	}
	for _, s := range t.Segments {
		id := strconv.FormatUint(s.ID, 10)
		st.SegmentLeaders[id] = s.Leader
		v := SegmentView{ID: s.ID, Leader: s.Leader, Base: s.Base, Count: s.Count, Bytes: s.Bytes, State: string(s.State), Tier: s.Tier(), Abandoned: s.Abandoned, Lost: s.Lost}
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

// ClusterMetrics is the METRICS reply: the openraft-style fields Walrus clients read,
// plus floe's.
type ClusterMetrics struct {
	ID               uint64                  `json:"id"`
	State            string                  `json:"state"`
	CurrentTerm      uint64                  `json:"current_term"`
	CurrentLeader    *uint64                 `json:"current_leader"`
	LastLogIndex     uint64                  `json:"last_log_index"`
	LastApplied      uint64                  `json:"last_applied"`
	MembershipConfig membershipConfig        `json:"membership_config"`
	Replication      map[string]*replication `json:"replication"`
	ClusterID        string                  `json:"cluster_id,omitempty"`
	Topics           int                     `json:"topics"`
	HasLease         bool                    `json:"has_lease"`
}

type membershipConfig struct {
	Membership membership `json:"membership"`
}

type membership struct {
	Configs [][]uint64        `json:"configs"`
	Nodes   map[string]string `json:"nodes"`
}

type replication struct {
	Index uint64 `json:"index"`
}

// Metrics reports this node's view of the Raft group.
func (n *Node) Metrics() (*ClusterMetrics, error) {
	members, err := n.raft.Members()
	if err != nil {
		return nil, err
	}
	m := &ClusterMetrics{
		ID: n.cfg.NodeID, State: n.raft.State(), CurrentTerm: n.raft.Term(),
		LastLogIndex: n.raft.LastIndex(), LastApplied: n.raft.AppliedIndex(),
		ClusterID: n.fsm.ClusterID(), Topics: len(n.fsm.TopicNames()), HasLease: n.hasLease(),
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
func (n *Node) replication(members []meta.Member) map[string]*replication {
	out := map[string]*replication{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, mem := range members {
		key := strconv.FormatUint(mem.ID, 10)
		if mem.ID == n.cfg.NodeID {
			out[key] = &replication{Index: n.raft.LastIndex()}
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
				out[key] = &replication{Index: st.LastIndex}
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
