package meta

import (
	"errors"
	"fmt"
	"sort"
)

// Sentinel errors of the metadata layer. Callers use errors.Is. Their texts are part
// of the client protocol (a client reads them verbatim in its ERR reply, or in an HTTP
// error), so they carry no package prefix.
var (
	// ErrNoTopic: the topic is not registered.
	ErrNoTopic = errors.New("no such topic")
	// ErrBadConfig: a topic config holds an invalid value.
	ErrBadConfig = errors.New("invalid topic config")
	// ErrStaleSegment: a command names a segment that is no longer in the state it expects
	// (a roll-over already happened). Retrying with fresh metadata is safe.
	ErrStaleSegment = errors.New("stale segment")
	// ErrCursorMoved: a cursor compare-and-set lost the race against another reader.
	ErrCursorMoved = errors.New("cursor moved")
	// ErrNotRaftLeader: this node is not the Raft leader; the command was not proposed.
	ErrNotRaftLeader = errors.New("not the raft leader")
	// ErrBadCommand: a command could not be decoded.
	ErrBadCommand = errors.New("bad command")
	// ErrOutcomeUnknown: a retried command's first attempt may have committed, but the
	// FSM no longer remembers its request id (too many commands applied since), so the
	// retry was not applied. Final: applying it could do the change twice.
	ErrOutcomeUnknown = errors.New("outcome of the first attempt unknown")
)

// SegmentState is the life-cycle state of a segment.
type SegmentState string

// Segment states, in the order a segment moves through them. Sealing is never stored
// in the replicated state: a leader reports it while its Seal command is in flight.
const (
	Active   SegmentState = "active"
	Sealing  SegmentState = "sealing"
	Sealed   SegmentState = "sealed"
	Archived SegmentState = "archived"
	Expired  SegmentState = "expired"
)

// TopicConfig holds a topic's roll-over limits; zero values mean "the node's default".
type TopicConfig struct {
	MaxSegmentEntries uint64 `json:"max_segment_entries,omitempty"`
	MaxSegmentBytes   int64  `json:"max_segment_bytes,omitempty"`
	MaxSegmentAgeMS   int64  `json:"max_segment_age_ms,omitempty"`
	// LocalRetentionBytes bounds, on each node, the bytes of the topic's sealed
	// segments that node led and keeps locally: archived ones beyond it lose their
	// local copy, oldest first (Kafka's local.retention.bytes). 0: only the node's
	// --local-retention-bytes applies.
	LocalRetentionBytes int64 `json:"local_retention_bytes,omitempty"`
	// LocalRetentionMS evicts the local copy of an archived segment sealed longer ago
	// than this (Kafka's local.retention.ms). 0: no age limit.
	LocalRetentionMS int64 `json:"local_retention_ms,omitempty"`
	// RetentionBytes bounds the bytes of the topic's sealed segments: the oldest expire
	// (entries gone, local files and objects deleted) while they hold more (Kafka's
	// retention.bytes). 0: no limit.
	RetentionBytes int64 `json:"retention_bytes,omitempty"`
	// RetentionMS expires sealed segments sealed longer ago than this (Kafka's
	// retention.ms). 0: keep forever.
	RetentionMS int64 `json:"retention_ms,omitempty"`
	// ReplicationFactor is how many nodes hold a copy of each active segment: its
	// leader and ReplicationFactor-1 followers, and an append is acknowledged once a
	// majority of them has it fsynced. Set when the topic is created (the node's
	// --default-replication-factor unless given); 0 in topics created before
	// replication, which means 1.
	ReplicationFactor int `json:"replication_factor,omitempty"`
}

// Validate refuses negative limits (0 means the default).
func (c *TopicConfig) Validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"max_segment_bytes", c.MaxSegmentBytes}, {"max_segment_age_ms", c.MaxSegmentAgeMS},
		{"local_retention_bytes", c.LocalRetentionBytes}, {"local_retention_ms", c.LocalRetentionMS},
		{"retention_bytes", c.RetentionBytes}, {"retention_ms", c.RetentionMS},
	} {
		if f.v < 0 {
			return fmt.Errorf("%w: %s is %d; limits are positive (0: the default)", ErrBadConfig, f.name, f.v)
		}
	}
	if c.ReplicationFactor < 0 || c.ReplicationFactor > MaxReplicationFactor {
		return fmt.Errorf("%w: replication_factor is %d; it is 1 to %d (0: the default)", ErrBadConfig, c.ReplicationFactor, MaxReplicationFactor)
	}
	return nil
}

// TopicConfigPatch changes some settings of a topic: those it sets (a set 0 means
// the node's default, as at creation). Its JSON fields are TopicConfig's.
type TopicConfigPatch struct {
	MaxSegmentEntries   *uint64 `json:"max_segment_entries,omitempty"`
	MaxSegmentBytes     *int64  `json:"max_segment_bytes,omitempty"`
	MaxSegmentAgeMS     *int64  `json:"max_segment_age_ms,omitempty"`
	LocalRetentionBytes *int64  `json:"local_retention_bytes,omitempty"`
	LocalRetentionMS    *int64  `json:"local_retention_ms,omitempty"`
	RetentionBytes      *int64  `json:"retention_bytes,omitempty"`
	RetentionMS         *int64  `json:"retention_ms,omitempty"`
	ReplicationFactor   *int    `json:"replication_factor,omitempty"`
}

// Empty reports whether p changes nothing.
func (p *TopicConfigPatch) Empty() bool { return p == nil || *p == TopicConfigPatch{} }

// Apply returns c with p's settings.
func (p *TopicConfigPatch) Apply(c TopicConfig) TopicConfig {
	set := func(dst *int64, v *int64) {
		if v != nil {
			*dst = *v
		}
	}
	if p.MaxSegmentEntries != nil {
		c.MaxSegmentEntries = *p.MaxSegmentEntries
	}
	set(&c.MaxSegmentBytes, p.MaxSegmentBytes)
	set(&c.MaxSegmentAgeMS, p.MaxSegmentAgeMS)
	set(&c.LocalRetentionBytes, p.LocalRetentionBytes)
	set(&c.LocalRetentionMS, p.LocalRetentionMS)
	set(&c.RetentionBytes, p.RetentionBytes)
	set(&c.RetentionMS, p.RetentionMS)
	if p.ReplicationFactor != nil {
		c.ReplicationFactor = *p.ReplicationFactor
	}
	return c
}

// MaxReplicationFactor bounds TopicConfig.ReplicationFactor; the cluster's size
// bounds it further when a topic is created.
const MaxReplicationFactor = 7

// Replication returns the topic's replication factor (1 when unset).
func (c *TopicConfig) Replication() int { return max(c.ReplicationFactor, 1) }

// Segment is the replicated record of one segment of a topic.
type Segment struct {
	ID     uint64       `json:"id"`
	Leader uint64       `json:"leader"`
	Base   uint64       `json:"base"`
	State  SegmentState `json:"state"`
	// LeaderIndex is the Raft index of the command that made Leader the leader of this
	// segment: the "leader term" that goes into archive object keys.
	LeaderIndex uint64 `json:"leader_index"`
	// Holder is set when the segment was sealed by a failover (its leader had
	// stopped answering): the replica whose copy holds every entry of it, which
	// uploads it. 0: the leader holds it (Owner).
	Holder uint64 `json:"holder,omitempty"`
	// Replicas are the nodes that hold a copy of the segment while it is active,
	// Leader first; nil means Leader alone (replication factor 1, and every segment
	// created before replication).
	Replicas []uint64 `json:"replicas,omitempty"`
	// CreatedUnixMS is the leader's clock when the segment became active.
	CreatedUnixMS int64 `json:"created_unix_ms"`
	// Count, Bytes and CRC are set when the segment is sealed.
	Count        uint64 `json:"count,omitempty"`
	Bytes        int64  `json:"bytes,omitempty"`
	CRC          uint32 `json:"crc,omitempty"`
	SealedUnixMS int64  `json:"sealed_unix_ms,omitempty"`
	// Archive* are set by Archived: the object that holds the segment in the
	// remote tier. Only this key is ever read (a deposed leader's late upload under
	// another key is ignored).
	ArchiveKey      string `json:"archive_key,omitempty"`
	ArchiveSize     int64  `json:"archive_size,omitempty"`
	ArchiveChecksum uint32 `json:"archive_checksum,omitempty"`
	ArchivedUnixMS  int64  `json:"archived_unix_ms,omitempty"`
	// LocalEvicted: the leader dropped its local copy (the archive is the only copy).
	LocalEvicted bool `json:"local_evicted,omitempty"`
	// Abandoned: an operator moved writes off this segment while its leader was down
	// (floe cluster recover-segment): it was sealed empty where the cluster's durable
	// knowledge of it ended, and whatever its leader's disk holds of it is not part of
	// the topic.
	Abandoned bool `json:"abandoned,omitempty"`
	// Lost: floe restore --cluster found no copy of this segment's entries (its
	// leader's disk held the only one). It is stored as Expired, so that nothing
	// reads, uploads, retains or counts it, but it may sit between kept segments: the
	// offsets after it keep their values, reads of its own offsets fail, and GET
	// moves past them.
	Lost bool `json:"lost,omitempty"`
	// ExpiredUnixMS is when topic retention expired the segment (state Expired): its
	// entries are gone, its local file and object are deleted.
	ExpiredUnixMS int64 `json:"expired_unix_ms,omitempty"`
}

// Tier says where a segment's data lives: "local" (the leader's disk only), "remote"
// (the archive only) or "both".
func (s *Segment) Tier() string {
	switch {
	case s.State == Expired:
		return "remote" // nothing local; what is left of it is in the archive, until deleted
	case s.ArchiveKey == "":
		return "local"
	case s.LocalEvicted:
		return "remote"
	default:
		return "both"
	}
}

// ReplicaSet returns the segment's replicas, Leader first.
func (s *Segment) ReplicaSet() []uint64 {
	if len(s.Replicas) == 0 {
		return []uint64{s.Leader}
	}
	return s.Replicas
}

// Owner is the node whose copy of the segment is complete by construction, and which
// uploads it: its leader, or, after a failover, the replica it was sealed from.
func (s *Segment) Owner() uint64 {
	if s.Holder != 0 {
		return s.Holder
	}
	return s.Leader
}

// HasReplica reports whether node holds (or is to hold) a copy of the segment.
func (s *Segment) HasReplica(node uint64) bool {
	for _, id := range s.ReplicaSet() {
		if id == node {
			return true
		}
	}
	return false
}

// Epoch is the segment's epoch: the Raft index of the command that made Leader its
// leader (LeaderIndex). Every change of a topic's writer makes a new segment, so a
// segment has one epoch, and epochs grow along a topic's segments.
func (s *Segment) Epoch() uint64 { return s.LeaderIndex }

// End is the offset one past the last entry of a sealed segment.
func (s *Segment) End() uint64 { return s.Base + s.Count }

// Topic is the replicated record of one topic.
type Topic struct {
	Name     string      `json:"name"`
	Config   TopicConfig `json:"config"`
	Segments []*Segment  `json:"segments"` // ascending by ID; the last one is active
	// Cursor is the next offset the shared GET cursor hands out.
	Cursor uint64 `json:"cursor"`
}

// Active returns the topic's active segment (always the last one).
func (t *Topic) Active() *Segment { return t.Segments[len(t.Segments)-1] }

// SealedEnd is the offset one past the last entry of the last sealed segment, which is
// also the base of the active segment.
func (t *Topic) SealedEnd() uint64 { return t.Active().Base }

// Find returns the segment holding offset, or the active segment when offset is at or
// beyond the active segment's base.
func (t *Topic) Find(offset uint64) *Segment {
	i := sort.Search(len(t.Segments), func(i int) bool { return t.Segments[i].Base > offset })
	if i == 0 {
		return t.Segments[0]
	}
	return t.Segments[i-1]
}

// Segment returns the segment with the given id, or nil.
func (t *Topic) Segment(id uint64) *Segment {
	if id == 0 || id > uint64(len(t.Segments)) {
		return nil
	}
	s := t.Segments[id-1]
	if s.ID != id {
		return nil
	}
	return s
}

// index returns the position of segment id in t.Segments (ids are 1, 2, 3, ...).
func (t *Topic) index(id uint64) int { return int(id - 1) }

// StartOffset is the first offset retention has kept: the base of the first segment
// that has not expired.
func (t *Topic) StartOffset() uint64 {
	for _, s := range t.Segments {
		if s.State != Expired {
			return s.Base
		}
	}
	return t.Active().Base
}

// NodeInfo is what the cluster knows about one member.
type NodeInfo struct {
	ID         uint64 `json:"id"`
	RaftAddr   string `json:"raft_addr"`
	ClientAddr string `json:"client_addr"`
	HTTPAddr   string `json:"http_addr"`
	// Incarnation names the node's data dir (a random id it keeps there; 0: a node
	// that does not say). Incarnated is the Raft index at which an incarnation
	// replaced another one of the same member: the node came back with an empty
	// disk, so the active segments it was made leader of before that index are not
	// on it (0: never).
	Incarnation uint64 `json:"incarnation,omitempty"`
	Incarnated  uint64 `json:"incarnated,omitempty"`
}

// State is the whole replicated state machine content. It is never mutated outside
// FSM.Apply and FSM.Restore; readers get deep copies or read under the FSM's lock.
type State struct {
	Topics map[string]*Topic    `json:"topics"`
	Nodes  map[uint64]*NodeInfo `json:"nodes"`
	// ClusterID is set by the bootstrap node's first command.
	ClusterID string `json:"cluster_id,omitempty"`
}

func newState() *State {
	return &State{Topics: map[string]*Topic{}, Nodes: map[uint64]*NodeInfo{}}
}

func (t *Topic) clone() *Topic {
	c := *t
	c.Segments = make([]*Segment, len(t.Segments))
	for i, s := range t.Segments {
		sc := *s
		sc.Replicas = append([]uint64(nil), s.Replicas...)
		c.Segments[i] = &sc
	}
	return &c
}
