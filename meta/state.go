package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"floe/topicname"
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
	Name string `json:"name"`
	// ID is the topic's incarnation id: State.LastTopicID when it was created, so
	// a topic deleted and created again under the same name is another topic, with
	// its own key (Key), files and objects. 0 for the topics created before
	// incarnation ids existed.
	ID       uint64      `json:"id,omitempty"`
	Config   TopicConfig `json:"config"`
	Segments []*Segment  `json:"segments"` // ascending by ID; the last one is active
	// Cursor is the next offset the shared GET cursor hands out.
	Cursor uint64 `json:"cursor"`
}

// Key is the topic's key: its name and incarnation id (topicname.Key). It is the
// topic's identity inside the cluster: State.Topics is keyed by it, commands name
// topics by it, and it names the topic's files and objects.
func (t *Topic) Key() string { return topicname.Key(t.Name, t.ID) }

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
	// Features are what the member's release applies (Feature* bits), as it last
	// registered: a command that a member without a feature would apply differently
	// is proposed only once every voter has it, so a rolling upgrade never splits the
	// state between releases.
	Features uint64 `json:"features,omitempty"`
}

// Features of a release (NodeInfo.Features).
const (
	// FeatureTopicIDs: create_topic gives incarnation ids (Incarnate), and
	// delete_topic and topic_purged exist. A release without it creates every topic
	// with id 0 and refuses the two ops.
	FeatureTopicIDs uint64 = 1 << iota
)

// CurrentFeatures are the features of this release.
const CurrentFeatures = FeatureTopicIDs

// Deletion is the record of a deleted topic whose archive objects may not all be
// deleted yet: the Raft leader deletes them (after writing a tombstone object, so
// that a restore from the bucket does not bring the topic back) and then proposes
// OpTopicPurged. Local files need no record: a node deletes the files of every
// incarnation that is not live (see State.Dead).
type Deletion struct {
	Name string `json:"name"`
	ID   uint64 `json:"id,omitempty"`
	// DeletedUnixMS is the proposer's clock when the topic was deleted.
	DeletedUnixMS int64 `json:"deleted_unix_ms"`
	// Index is the Raft index of the deletion.
	Index uint64 `json:"index"`
	// Purged: the archive holds nothing of it any more. Only the records of
	// incarnation 0 are kept once purged: for those, nothing else tells a node
	// that missed the deletion that its files are dead (see State.Dead).
	Purged bool `json:"purged,omitempty"`
}

// Key is the deleted topic's key.
func (d *Deletion) Key() string { return topicname.Key(d.Name, d.ID) }

// State is the whole replicated state machine content. It is never mutated outside
// FSM.Apply and FSM.Restore; readers get deep copies or read under the FSM's lock.
type State struct {
	// Topics are the live topics by key (Topic.Key): the bare name for a topic of
	// incarnation 0 (so a state written before incarnation ids reads the same).
	Topics map[string]*Topic    `json:"topics"`
	Nodes  map[uint64]*NodeInfo `json:"nodes"`
	// ClusterID is set by the bootstrap node's first command.
	ClusterID string `json:"cluster_id,omitempty"`
	// LastTopicID is the incarnation id given to the last topic created; ids are
	// never given twice, and a restore from the bucket raises it above every id the
	// bucket names.
	LastTopicID uint64 `json:"last_topic_id,omitempty"`
	// Deleted holds the deletions whose objects are not purged yet, by key (and
	// those of incarnation 0 for good).
	Deleted map[string]*Deletion `json:"deleted,omitempty"`

	// names maps each live topic's name to its key: built from Topics, not stored.
	names map[string]string
}

func newState() *State {
	return &State{Topics: map[string]*Topic{}, Nodes: map[uint64]*NodeInfo{}, Deleted: map[string]*Deletion{}, names: map[string]string{}}
}

// DecodeState decodes the JSON of a State (FSM.Export, a snapshot's state) into
// a State whose lookups (Resolve, Dead) work.
func DecodeState(b []byte) (*State, error) {
	st := &State{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, err
	}
	st.index()
	return st, nil
}

// index rebuilds the derived maps of a decoded state (Restore, Seed).
func (st *State) index() {
	if st.Topics == nil {
		st.Topics = map[string]*Topic{}
	}
	if st.Nodes == nil {
		st.Nodes = map[uint64]*NodeInfo{}
	}
	if st.Deleted == nil {
		st.Deleted = map[string]*Deletion{}
	}
	st.names = make(map[string]string, len(st.Topics))
	for key, t := range st.Topics {
		if k := t.Key(); k != key { // keyed by name by hand: key it as Apply does
			delete(st.Topics, key)
			st.Topics[k] = t
		}
	}
	for key, t := range st.Topics {
		st.names[t.Name] = key
	}
}

// Resolve returns the key of the live topic named name.
func (st *State) Resolve(name string) (string, bool) {
	key, ok := st.names[name]
	return key, ok
}

// Dead reports whether the topic key names an incarnation that has been deleted,
// so that its local files, wherever found, can go: knowing only this state, which
// may lag the cluster's (a node that just restarted) but never runs ahead of it.
//   - An incarnation with an id was created when LastTopicID reached it; if the
//     state is that far and the topic is not live, it was deleted.
//   - An incarnation 0 is dead once another incarnation of its name is live, or
//     while its deletion is recorded (kept for good once purged).
//
// A key that does not parse is not dead: files this state cannot place are left
// alone.
func (st *State) Dead(key string) bool {
	name, id, err := topicname.SplitKey(key)
	if err != nil {
		return false
	}
	if _, live := st.Topics[key]; live {
		return false
	}
	if id > 0 {
		return id <= st.LastTopicID
	}
	if _, ok := st.Deleted[key]; ok {
		return true
	}
	other, ok := st.names[name]
	return ok && other != key
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
