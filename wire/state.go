package wire

import "encoding/json"

// The JSON replies of STATE and METRICS, as the node encodes them and clients decode
// them. Walrus clients read the fields named in the README's protocol table; the
// others are floe's.

// TopicState is the STATE reply: Walrus's fields, then floe's.
type TopicState struct {
	CurrentSegment        uint64            `json:"current_segment"`
	LeaderNode            uint64            `json:"leader_node"`
	LastSealedEntryOffset uint64            `json:"last_sealed_entry_offset"`
	SealedSegments        map[string]uint64 `json:"sealed_segments"`
	SegmentLeaders        map[string]uint64 `json:"segment_leaders"`

	Topic string `json:"topic"`
	// ID is the topic's incarnation id: a topic deleted and created again under
	// its name gets another (0: created before incarnation ids).
	ID       uint64        `json:"id"`
	Segments []SegmentInfo `json:"segments"`
	Cursor   uint64        `json:"cursor"`
	// StartOffset is the first offset retention has kept (0 until a segment expires).
	StartOffset uint64 `json:"start_offset"`
	// Config is the topic's configuration, as registered over HTTP (an object).
	Config json.RawMessage `json:"config"`
	// EndOffset is one past the last durable entry, when the active leader answered.
	EndOffset *uint64 `json:"end_offset,omitempty"`
}

// SegmentInfo is one element of STATE's "segments" list.
type SegmentInfo struct {
	ID     uint64 `json:"id"`
	Leader uint64 `json:"leader"`
	Base   uint64 `json:"base"`
	Count  uint64 `json:"count"`
	Bytes  int64  `json:"bytes"`
	State  string `json:"state"` // active, sealing, sealed, archived or expired
	Tier   string `json:"tier"`  // local, remote or both
	// Replicas are the nodes that hold the segment's copies while it is active,
	// the leader first; Epoch is the Raft index that made the leader its leader.
	Replicas []uint64 `json:"replicas"`
	Epoch    uint64   `json:"epoch"`
	// Holder: the segment was sealed by a failover, from this replica's copy (it
	// uploads the segment).
	Holder uint64 `json:"holder,omitempty"`
	// Abandoned: floe cluster recover-segment moved writes off it (sealed empty).
	Abandoned bool `json:"abandoned,omitempty"`
	// Lost: floe restore --cluster found no copy of its entries (state expired).
	Lost bool `json:"lost,omitempty"`
}

// ClusterMetrics is the METRICS reply: the openraft-style fields Walrus clients read,
// plus floe's.
type ClusterMetrics struct {
	ID               uint64           `json:"id"`
	State            string           `json:"state"`
	CurrentTerm      uint64           `json:"current_term"`
	CurrentLeader    *uint64          `json:"current_leader"`
	LastLogIndex     uint64           `json:"last_log_index"`
	LastApplied      uint64           `json:"last_applied"`
	MembershipConfig MembershipConfig `json:"membership_config"`
	// Replication is each member's last log index, on the Raft leader only; null for
	// a member that did not answer.
	Replication map[string]*Replication `json:"replication"`
	ClusterID   string                  `json:"cluster_id,omitempty"`
	Topics      int                     `json:"topics"`
	HasLease    bool                    `json:"has_lease"`
}

// MembershipConfig is METRICS' membership_config.
type MembershipConfig struct {
	Membership struct {
		Configs [][]uint64        `json:"configs"` // voter ids
		Nodes   map[string]string `json:"nodes"`   // id -> cluster address
	} `json:"membership"`
}

// Replication is one member's entry in METRICS' replication.
type Replication struct {
	Index uint64 `json:"index"`
}
