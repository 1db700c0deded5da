package meta

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"floe/topicname"
)

// Command is one replicated metadata change. A command that carries a RequestID is
// applied at most once: the FSM remembers the result of the most recent such commands
// (requestTable), and a retry of one that committed (after ErrLeadershipLost or a lost
// reply, whose outcome is unknown) gets the first attempt's result and changes nothing.
// A command without a RequestID (logs written before request ids) is applied each time
// it appears; most ops name the state they expect, so a repeat is then refused or a
// no-op, but advance_cursor, recover_segment, register_node and remove_node are not
// safe to repeat that way.
type Command struct {
	Op string `json:"op"`

	// RequestID names one logical request, the same on every attempt (random, set by
	// the proposer). Empty: no retry protection.
	RequestID string `json:"request_id,omitempty"`
	// Retry marks an attempt after the first; After is the Raft index the proposer had
	// applied before the first attempt, so the first attempt, if it committed, is above
	// it. A retry whose first attempt the FSM may have forgotten is answered with
	// ErrOutcomeUnknown instead of being applied again.
	Retry bool   `json:"retry,omitempty"`
	After uint64 `json:"after,omitempty"`

	// Topic is the key of the topic the command is about (Topic.Key), so a command
	// meant for a deleted topic never changes one created again under its name;
	// create_topic's is the name of the topic to create.
	Topic   string `json:"topic,omitempty"`
	Segment uint64 `json:"segment,omitempty"`

	// create_topic
	Leader uint64 `json:"leader,omitempty"`
	// Incarnate: give the new topic the next incarnation id. Set by every proposer
	// since incarnation ids exist; a create_topic logged before then creates its
	// topic with id 0, on every replica and at every replay alike.
	Incarnate bool         `json:"incarnate,omitempty"`
	Config    *TopicConfig `json:"config,omitempty"`
	// Patch: OpAlterTopic's changes.
	Patch *TopicConfigPatch `json:"patch,omitempty"`
	// create_topic, seal and recover_segment: the replicas of the new active segment,
	// its leader first (nil: the leader alone).
	Replicas []uint64 `json:"replicas,omitempty"`

	// seal and failover_segment: the sealed segment's totals and the next segment's
	// leader; failover_segment also names the replica the totals come from (Holder)
	Count      uint64 `json:"count,omitempty"`
	Bytes      int64  `json:"bytes,omitempty"`
	CRC        uint32 `json:"crc,omitempty"`
	NextLeader uint64 `json:"next_leader,omitempty"`
	Holder     uint64 `json:"holder,omitempty"`

	// advance_cursor: compare-and-set From -> To
	From uint64 `json:"from,omitempty"`
	To   uint64 `json:"to,omitempty"`

	// register_node / remove_node
	Node *NodeInfo `json:"node,omitempty"`

	// replace_replica: a follower of a segment replaced by another node
	OldReplica uint64 `json:"old_replica,omitempty"`
	NewReplica uint64 `json:"new_replica,omitempty"`

	// archived: the object holding a sealed segment
	Key      string `json:"key,omitempty"`
	Size     int64  `json:"size,omitempty"`
	Checksum uint32 `json:"checksum,omitempty"`

	// init_cluster
	ClusterID string `json:"cluster_id,omitempty"`

	// UnixMS is the proposer's clock, recorded so that every replica applies the same value.
	UnixMS int64 `json:"unix_ms,omitempty"`
}

// Command operations.
const (
	OpInitCluster    = "init_cluster"
	OpRegisterNode   = "register_node"
	OpRemoveNode     = "remove_node"
	OpCreateTopic    = "create_topic"
	OpAlterTopic     = "alter_topic"
	OpSeal           = "seal"
	OpAdvanceCursor  = "advance_cursor"
	OpArchived       = "archived"
	OpEvictLocal     = "evict_local"
	OpExpire         = "expire"
	OpRecover        = "recover_segment"
	OpFailover       = "failover_segment"
	OpReplaceReplica = "replace_replica"
	OpDeleteTopic    = "delete_topic"
	OpTopicPurged    = "topic_purged"
)

// Encode returns the command's wire form (JSON: metadata commands are rare and small,
// and a readable Raft log is worth more than the bytes).
func (c *Command) Encode() []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("meta: cannot encode command: %v", err)) // plain structs: cannot happen
	}
	return b
}

// DecodeCommand parses a command produced by Encode.
func DecodeCommand(b []byte) (*Command, error) {
	var c Command
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	if c.Op == "" {
		return nil, fmt.Errorf("%w: no op", ErrBadCommand)
	}
	return &c, nil
}

// Result is what FSM.Apply returns for a command (through raft's ApplyFuture.Response).
type Result struct {
	Err    error
	Cursor uint64 // advance_cursor: the cursor after the command
}

// FSM is the replicated state machine: topics, segments, nodes and cursors. Segment
// data never enters it (nor its snapshots). Apply is called by raft from one goroutine;
// readers use the View/Topic accessors, which take a read lock.
type FSM struct {
	mu      sync.RWMutex
	st      *State
	reqs    *requestTable
	applied uint64
	changed chan struct{} // closed and replaced after every apply
	// deletedAt is when this node applied each deletion (its own clock): not part of
	// the state, only a lower bound of when it committed, for LastDeletion.
	deletedAt map[string]time.Time
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an empty state machine.
func NewFSM() *FSM {
	return &FSM{st: newState(), reqs: newRequestTable(), changed: make(chan struct{}), deletedAt: map[string]time.Time{}}
}

// Apply applies one committed log entry. It implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) interface{} {
	if l.Type != raft.LogCommand {
		return nil
	}
	c, err := DecodeCommand(l.Data)
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.notify(l.Index)
	if err != nil {
		return &Result{Err: err}
	}
	if c.RequestID == "" {
		return f.apply(c, l.Index)
	}
	if res, ok := f.reqs.lookup(c.RequestID); ok {
		return res // a retry of a command that committed: its first answer, no change
	}
	var res *Result
	if c.Retry && f.reqs.mayHaveForgotten(c.After) {
		res = &Result{Err: fmt.Errorf("%w: %s request %q, first proposed after index %d; results up to index %d are forgotten",
			ErrOutcomeUnknown, c.Op, c.RequestID, c.After, f.reqs.evicted)}
	} else {
		res = f.apply(c, l.Index)
	}
	f.reqs.remember(c.RequestID, l.Index, res)
	return res
}

func (f *FSM) notify(index uint64) {
	if index > f.applied {
		f.applied = index
	}
	close(f.changed)
	f.changed = make(chan struct{})
}

// apply applies one committed command at Raft log index to the state: the small ops
// here, each larger one in its own apply<Op> below. A refused command changes nothing
// and returns its error in the Result.
func (f *FSM) apply(c *Command, index uint64) *Result {
	st := f.st
	switch c.Op {
	case OpInitCluster:
		if st.ClusterID == "" {
			st.ClusterID = c.ClusterID
		}
		return &Result{}
	case OpRegisterNode:
		if c.Node == nil || c.Node.ID == 0 {
			return &Result{Err: fmt.Errorf("%w: register_node without node", ErrBadCommand)}
		}
		n := *c.Node
		n.Incarnated = 0
		if old, ok := st.Nodes[n.ID]; ok {
			switch {
			case old.Incarnation != 0 && n.Incarnation != 0 && old.Incarnation != n.Incarnation:
				n.Incarnated = index // a new data dir under the same member
			case n.Incarnation == 0 || n.Incarnation == old.Incarnation:
				n.Incarnation, n.Incarnated = old.Incarnation, old.Incarnated
			}
		}
		st.Nodes[n.ID] = &n
		return &Result{}
	case OpRemoveNode:
		if c.Node != nil {
			delete(st.Nodes, c.Node.ID)
		}
		return &Result{}
	case OpCreateTopic:
		return f.applyCreateTopic(c, index)
	case OpAlterTopic:
		return f.applyAlterTopic(c)
	case OpDeleteTopic:
		return f.applyDeleteTopic(c, index)
	case OpTopicPurged:
		if d, ok := st.Deleted[c.Topic]; ok {
			if d.ID == 0 {
				d.Purged = true
			} else {
				delete(st.Deleted, c.Topic)
			}
		}
		return &Result{}
	case OpSeal:
		return f.applySeal(c, index)
	case OpArchived:
		return f.applyArchived(c)
	case OpEvictLocal:
		t, s, res := f.sealedSegment(c)
		if res != nil {
			return res
		}
		if s.ArchiveKey == "" {
			return &Result{Err: fmt.Errorf("%w: segment %d of %q is not archived; its local copy is the only one", ErrStaleSegment, s.ID, t.Name)}
		}
		s.LocalEvicted = true
		return &Result{}
	case OpExpire:
		return f.applyExpire(c)
	case OpRecover:
		return f.applyRecover(c, index)
	case OpFailover:
		return f.applyFailover(c, index)
	case OpReplaceReplica:
		return f.applyReplaceReplica(c)
	case OpAdvanceCursor:
		return f.applyAdvanceCursor(c)
	default:
		return &Result{Err: fmt.Errorf("%w: unknown op %q", ErrBadCommand, c.Op)}
	}
}

// applyCreateTopic creates a topic with its first active segment, led by c.Leader;
// an existing topic is left as it is.
func (f *FSM) applyCreateTopic(c *Command, index uint64) *Result {
	if err := topicname.Validate(c.Topic); err != nil {
		return &Result{Err: err}
	}
	if _, ok := f.st.names[c.Topic]; ok {
		return &Result{} // idempotent: REGISTER of an existing topic
	}
	if err := checkReplicas(c.Leader, c.Replicas); err != nil {
		return &Result{Err: err}
	}
	t := &Topic{Name: c.Topic}
	if c.Incarnate {
		if key := topicname.Key(c.Topic, f.st.LastTopicID+1); len(key) > topicname.MaxKeyLen {
			return &Result{Err: fmt.Errorf("%w: %q: with its incarnation id its key would be %d bytes, at most %d; take a shorter name",
				topicname.ErrInvalid, c.Topic, len(key), topicname.MaxKeyLen)}
		}
		f.st.LastTopicID++
		t.ID = f.st.LastTopicID
	} else if _, ok := f.st.Deleted[c.Topic]; ok || f.st.LastTopicID > 0 {
		// An id-less create (a proposer from before incarnation ids) once ids are
		// given: its key, the bare name, could be taken for a dead incarnation's
		// (State.Dead of a name whose other incarnation a lagging state holds live).
		return &Result{Err: fmt.Errorf("%w: create_topic of %q without an incarnation id, once ids are given", ErrBadCommand, c.Topic)}
	}
	if c.Config != nil {
		t.Config = *c.Config
	}
	t.Segments = []*Segment{{
		ID: 1, Leader: c.Leader, Replicas: replicas(c.Leader, c.Replicas), Base: 0, State: Active,
		LeaderIndex: index, CreatedUnixMS: c.UnixMS,
	}}
	f.st.Topics[t.Key()] = t
	f.st.names[t.Name] = t.Key()
	return &Result{}
}

// applyDeleteTopic deletes the topic c.Topic (a key): it is gone for every reader
// and writer at once, and its deletion is recorded until the Raft leader has
// deleted its objects (OpTopicPurged). Deleting a deleted topic again is a no-op.
func (f *FSM) applyDeleteTopic(c *Command, index uint64) *Result {
	t, ok := f.st.Topics[c.Topic]
	if !ok {
		if _, gone := f.st.Deleted[c.Topic]; gone {
			return &Result{}
		}
		return &Result{Err: fmt.Errorf("%w: %q", ErrNoTopic, c.Topic)}
	}
	delete(f.st.Topics, c.Topic)
	delete(f.st.names, t.Name)
	f.st.Deleted[c.Topic] = &Deletion{Name: t.Name, ID: t.ID, DeletedUnixMS: c.UnixMS, Index: index}
	f.deletedAt[c.Topic] = time.Now()
	return &Result{}
}

// applyAlterTopic changes some settings of a topic (c.Patch). They take effect as the
// nodes next read them: a roll-over limit at the next check of the active segment, the
// replication factor at the next roll-over, retention at the next pass.
func (f *FSM) applyAlterTopic(c *Command) *Result {
	t, ok := f.st.Topics[c.Topic]
	if !ok {
		return &Result{Err: fmt.Errorf("%w: %q", ErrNoTopic, c.Topic)}
	}
	if c.Patch.Empty() {
		return &Result{Err: fmt.Errorf("%w: nothing to change", ErrBadConfig)}
	}
	next := c.Patch.Apply(t.Config)
	if err := next.Validate(); err != nil {
		return &Result{Err: err}
	}
	t.Config = next
	return &Result{}
}

// applySeal seals a topic's active segment with its totals and appends the next
// active segment, led by c.NextLeader (the same leader if 0), at its end.
func (f *FSM) applySeal(c *Command, index uint64) *Result {
	t, s, res := f.namedSegment(c)
	if res != nil {
		return res
	}
	if s.State != Active {
		// Already sealed: a retried Seal. Same totals means the same command.
		if s.Count == c.Count && s.CRC == c.CRC {
			return &Result{}
		}
		return &Result{Err: fmt.Errorf("%w: segment %d of %q is %s with %d entries, seal says %d",
			ErrStaleSegment, s.ID, c.Topic, s.State, s.Count, c.Count)}
	}
	next := c.NextLeader
	if next == 0 {
		next = s.Leader
	}
	if err := checkReplicas(next, c.Replicas); err != nil {
		return &Result{Err: err}
	}
	s.State = Sealed
	s.Count, s.Bytes, s.CRC, s.SealedUnixMS = c.Count, c.Bytes, c.CRC, c.UnixMS
	t.Segments = append(t.Segments, &Segment{
		ID: s.ID + 1, Leader: next, Replicas: replicas(next, c.Replicas), Base: s.End(), State: Active,
		LeaderIndex: index, CreatedUnixMS: c.UnixMS,
	})
	return &Result{}
}

// replicas returns the replica set a command names for a segment led by leader, as
// stored: nil for the leader alone.
func replicas(leader uint64, ids []uint64) []uint64 {
	if len(ids) < 2 {
		return nil
	}
	return append([]uint64(nil), ids...)
}

// checkReplicas refuses a replica set that does not start with leader or names a
// node twice.
func checkReplicas(leader uint64, ids []uint64) error {
	if len(ids) == 0 {
		return nil
	}
	if ids[0] != leader {
		return fmt.Errorf("%w: replicas %v do not start with the leader %d", ErrBadCommand, ids, leader)
	}
	seen := map[uint64]bool{}
	for _, id := range ids {
		if id == 0 || seen[id] {
			return fmt.Errorf("%w: replicas %v name a node twice or node 0", ErrBadCommand, ids)
		}
		seen[id] = true
	}
	return nil
}

// applyArchived records a sealed segment's archive object; a retry with the same
// key and checksum is a no-op.
func (f *FSM) applyArchived(c *Command) *Result {
	t, s, res := f.sealedSegment(c)
	if res != nil {
		return res
	}
	if s.State == Expired {
		// Expired while it was being uploaded: the object is an orphan, for the
		// sweeper.
		return &Result{Err: fmt.Errorf("%w: segment %d of %q has expired", ErrStaleSegment, s.ID, t.Name)}
	}
	if c.Key == "" || c.Size <= 0 {
		return &Result{Err: fmt.Errorf("%w: archived without key or size", ErrBadCommand)}
	}
	if s.ArchiveKey != "" {
		if s.ArchiveKey == c.Key && s.ArchiveChecksum == c.Checksum {
			return &Result{} // a retried Archived
		}
		return &Result{Err: fmt.Errorf("%w: segment %d of %q is already archived as %q", ErrStaleSegment, s.ID, t.Name, s.ArchiveKey)}
	}
	s.State = Archived
	s.ArchiveKey, s.ArchiveSize, s.ArchiveChecksum, s.ArchivedUnixMS = c.Key, c.Size, c.Checksum, c.UnixMS
	return &Result{}
}

// applyExpire expires a sealed segment. Retention drops a topic's oldest sealed
// segments, in order: the retained entries stay one contiguous range, from
// StartOffset to the end. The shared cursor moves past what expired.
func (f *FSM) applyExpire(c *Command) *Result {
	t, s, res := f.sealedSegment(c)
	if res != nil {
		return res
	}
	if s.State == Expired {
		return &Result{} // a retried Expire
	}
	if i := t.index(s.ID); i > 0 && t.Segments[i-1].State != Expired {
		return &Result{Err: fmt.Errorf("%w: segment %d of %q cannot expire before segment %d", ErrStaleSegment, s.ID, t.Name, t.Segments[i-1].ID)}
	}
	s.State, s.ExpiredUnixMS = Expired, c.UnixMS
	t.Cursor = max(t.Cursor, s.End())
	return &Result{}
}

// applyRecover moves a topic's writes off its active segment, whose leader is down,
// on an operator's request: the segment is sealed empty and abandoned, and the next one, led by NextLeader,
// starts at its base. Entries the old leader holds are not part of the topic
// (the exposure --max-segment-age bounds); the cursor comes back to the base.
func (f *FSM) applyRecover(c *Command, index uint64) *Result {
	t, ok := f.st.Topics[c.Topic]
	if !ok {
		return &Result{Err: fmt.Errorf("%w: %q", ErrNoTopic, c.Topic)}
	}
	s := t.Active()
	if s.ID != c.Segment {
		return &Result{Err: fmt.Errorf("%w: segment %d of %q is not active", ErrStaleSegment, c.Segment, c.Topic)}
	}
	if c.NextLeader == 0 || c.NextLeader == s.Leader {
		return &Result{Err: fmt.Errorf("%w: recover segment %d of %q to node %d, its leader is %d", ErrBadCommand, s.ID, c.Topic, c.NextLeader, s.Leader)}
	}
	if err := checkReplicas(c.NextLeader, c.Replicas); err != nil {
		return &Result{Err: err}
	}
	s.State, s.Count, s.Bytes, s.CRC, s.SealedUnixMS, s.Abandoned = Sealed, 0, 0, 0, c.UnixMS, true
	t.Segments = append(t.Segments, &Segment{
		ID: s.ID + 1, Leader: c.NextLeader, Replicas: replicas(c.NextLeader, c.Replicas), Base: s.Base, State: Active,
		LeaderIndex: index, CreatedUnixMS: c.UnixMS,
	})
	t.Cursor = min(t.Cursor, s.Base)
	return &Result{}
}

// applyFailover seals a replicated topic's active segment whose leader stopped
// answering, at the totals of the replica c.Holder, which holds every entry a
// majority acknowledged, and appends the next segment at its end, led by
// c.NextLeader. A repeat (same totals) is a no-op; a segment no longer active, or
// sealed with other totals, is refused.
func (f *FSM) applyFailover(c *Command, index uint64) *Result {
	t, s, res := f.namedSegment(c)
	if res != nil {
		return res
	}
	if s.State != Active {
		if s.Holder == c.Holder && s.Count == c.Count && s.CRC == c.CRC {
			return &Result{}
		}
		return &Result{Err: fmt.Errorf("%w: segment %d of %q is %s already", ErrStaleSegment, s.ID, c.Topic, s.State)}
	}
	if len(s.Replicas) < 2 || c.Holder == 0 || !s.HasReplica(c.Holder) || c.Holder == s.Leader || c.NextLeader == 0 {
		return &Result{Err: fmt.Errorf("%w: failover of segment %d of %q (replicas %v) from node %d to node %d", ErrBadCommand, s.ID, c.Topic, s.ReplicaSet(), c.Holder, c.NextLeader)}
	}
	if err := checkReplicas(c.NextLeader, c.Replicas); err != nil {
		return &Result{Err: err}
	}
	s.State, s.Holder = Sealed, c.Holder
	s.Count, s.Bytes, s.CRC, s.SealedUnixMS = c.Count, c.Bytes, c.CRC, c.UnixMS
	t.Segments = append(t.Segments, &Segment{
		ID: s.ID + 1, Leader: c.NextLeader, Replicas: replicas(c.NextLeader, c.Replicas), Base: s.End(), State: Active,
		LeaderIndex: index, CreatedUnixMS: c.UnixMS,
	})
	return &Result{}
}

// applyReplaceReplica puts c.NewReplica in the place of c.OldReplica among the
// replicas of a sealed segment not archived yet (a member removed from the cluster),
// so that the new one fetches a copy. An active segment's replicas never change: its
// leader rolls it over instead (the majority that acknowledged its entries must be
// the one a failover asks). When the old replica was the segment's owner, the first
// other replica holds it (Holder). A repeat is a no-op.
func (f *FSM) applyReplaceReplica(c *Command) *Result {
	t, ok := f.st.Topics[c.Topic]
	if !ok {
		return &Result{Err: fmt.Errorf("%w: %q", ErrNoTopic, c.Topic)}
	}
	s := t.Segment(c.Segment)
	if s == nil || s.State == Expired || s.Abandoned || len(s.Replicas) < 2 {
		return &Result{Err: fmt.Errorf("%w: segment %d of %q has no replicas to replace", ErrStaleSegment, c.Segment, c.Topic)}
	}
	if !s.HasReplica(c.OldReplica) && s.HasReplica(c.NewReplica) {
		return &Result{} // a repeat
	}
	if s.State == Active || !s.HasReplica(c.OldReplica) || s.HasReplica(c.NewReplica) || c.NewReplica == 0 {
		return &Result{Err: fmt.Errorf("%w: replace node %d by node %d among the replicas %v of segment %d of %q (%s)",
			ErrBadCommand, c.OldReplica, c.NewReplica, s.ReplicaSet(), s.ID, c.Topic, s.State)}
	}
	// A new slice: readers hold copies of the segment that share the old one.
	replicas := make([]uint64, len(s.Replicas))
	for i, id := range s.Replicas {
		replicas[i] = id
		if id == c.OldReplica {
			replicas[i] = c.NewReplica
		}
	}
	s.Replicas = replicas
	if s.Owner() == c.OldReplica {
		s.Holder = c.NewReplica // no other replica left: it fetches what survives
		for _, id := range s.Replicas {
			if id != c.NewReplica {
				s.Holder = id
				break
			}
		}
	}
	return &Result{}
}

// applyAdvanceCursor moves a topic's shared cursor from c.From to c.To, if it is
// still at c.From.
func (f *FSM) applyAdvanceCursor(c *Command) *Result {
	t, ok := f.st.Topics[c.Topic]
	if !ok {
		return &Result{Err: fmt.Errorf("%w: %q", ErrNoTopic, c.Topic)}
	}
	if t.Cursor != c.From {
		return &Result{Err: ErrCursorMoved, Cursor: t.Cursor}
	}
	t.Cursor = c.To
	return &Result{Cursor: t.Cursor}
}

// namedSegment finds the topic and segment a command names.
func (f *FSM) namedSegment(c *Command) (*Topic, *Segment, *Result) {
	t, ok := f.st.Topics[c.Topic]
	if !ok {
		return nil, nil, &Result{Err: fmt.Errorf("%w: %q", ErrNoTopic, c.Topic)}
	}
	s := t.Segment(c.Segment)
	if s == nil {
		return nil, nil, &Result{Err: fmt.Errorf("%w: topic %q has no segment %d", ErrStaleSegment, c.Topic, c.Segment)}
	}
	return t, s, nil
}

// sealedSegment finds the segment a command names and checks it is no longer active.
func (f *FSM) sealedSegment(c *Command) (*Topic, *Segment, *Result) {
	t, ok := f.st.Topics[c.Topic]
	if !ok {
		return nil, nil, &Result{Err: fmt.Errorf("%w: %q", ErrNoTopic, c.Topic)}
	}
	s := t.Segment(c.Segment)
	if s == nil || s.State == Active {
		return nil, nil, &Result{Err: fmt.Errorf("%w: segment %d of %q is not sealed", ErrStaleSegment, c.Segment, c.Topic)}
	}
	return t, s, nil
}

// Changed returns a channel that is closed at the next apply or restore. Typical use:
// take the channel, check the state, and wait on the channel if the state is not yet
// what you need.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

// AppliedIndex is the Raft index of the last command applied.
func (f *FSM) AppliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.applied
}

// Topic returns a copy of the named topic.
func (f *FSM) Topic(name string) (*Topic, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.st.Topics[name]
	if !ok {
		return nil, false
	}
	return t.clone(), true
}

// View calls fn with the named topic under the state's read lock, without copying it;
// fn must neither keep nor modify t. It reports whether the topic exists.
func (f *FSM) View(name string, fn func(t *Topic)) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.st.Topics[name]
	if ok {
		fn(t)
	}
	return ok
}

// SegmentOf returns a copy of one segment of a topic.
func (f *FSM) SegmentOf(topic string, id uint64) (Segment, bool) {
	var s Segment
	found := false
	f.View(topic, func(t *Topic) {
		if p := t.Segment(id); p != nil {
			s, found = *p, true
		}
	})
	return s, found
}

// ActiveOf returns a copy of a topic's active segment and its config.
func (f *FSM) ActiveOf(topic string) (Segment, TopicConfig, bool) {
	var s Segment
	var c TopicConfig
	ok := f.View(topic, func(t *Topic) { s, c = *t.Active(), t.Config })
	return s, c, ok
}

// TopicKeys returns the keys of the live topics, sorted.
func (f *FSM) TopicKeys() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	keys := make([]string, 0, len(f.st.Topics))
	for k := range f.st.Topics {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TopicCount returns how many topics are live.
func (f *FSM) TopicCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.st.Topics)
}

// Resolve returns the key of the live topic named name.
func (f *FSM) Resolve(name string) (string, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.Resolve(name)
}

// Dead reports whether key names a deleted incarnation (State.Dead).
func (f *FSM) Dead(key string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.Dead(key)
}

// LastDeletion returns the most recent recorded deletion of a topic named name
// (records go once the topic's objects are purged) and when it committed at the
// latest, as DeletionCommitted says.
func (f *FSM) LastDeletion(name string) (d Deletion, committed time.Time, ok bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, r := range f.st.Deleted {
		if r.Name == name && (!ok || r.Index > d.Index) {
			d, ok = *r, true
		}
	}
	return d, f.committedAt(d), ok
}

// DeletionCommitted is when the deletion d committed at the latest, as this node
// knows: the later of its proposer's clock and the time this node applied it (a
// deletion proposed long before it committed, say across an election, is dated by
// the second).
func (f *FSM) DeletionCommitted(d Deletion) time.Time {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.committedAt(d)
}

func (f *FSM) committedAt(d Deletion) time.Time {
	t := time.UnixMilli(d.DeletedUnixMS)
	if at, seen := f.deletedAt[d.Key()]; seen && at.After(t) {
		t = at
	}
	return t
}

// LastTopicID is the incarnation id given last (0: none yet).
func (f *FSM) LastTopicID() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.LastTopicID
}

// Deletions returns the recorded deletions whose objects are not purged yet,
// oldest first.
func (f *FSM) Deletions() []Deletion {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []Deletion
	for _, d := range f.st.Deleted {
		if !d.Purged {
			out = append(out, *d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out
}

// Node returns what is known of a member.
func (f *FSM) Node(id uint64) (NodeInfo, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n, ok := f.st.Nodes[id]
	if !ok {
		return NodeInfo{}, false
	}
	return *n, true
}

// Nodes returns every registered member, sorted by id.
func (f *FSM) Nodes() []NodeInfo {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]NodeInfo, 0, len(f.st.Nodes))
	for _, n := range f.st.Nodes {
		out = append(out, *n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ClusterID is the id recorded by the bootstrap node.
func (f *FSM) ClusterID() string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.ClusterID
}

// snapshotJSON is the form of a Raft snapshot: the JSON of State, plus the request
// table and the index of the last command applied. A snapshot without the two (written
// before they existed, or by Seed) restores with an empty table and applied index 0.
type snapshotJSON struct {
	*State
	Requests     *requestTable `json:"requests,omitempty"`
	AppliedIndex uint64        `json:"applied_index,omitempty"`
}

// Snapshot implements raft.FSM. The snapshot is the JSON of the whole state, with the
// request table and the applied index.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(snapshotJSON{State: f.st, Requests: f.reqs, AppliedIndex: f.applied})
	if err != nil {
		return nil, fmt.Errorf("meta: cannot encode snapshot: %w", err)
	}
	return &snapshot{data: b}, nil
}

// Export returns the whole replicated state as JSON (a valid Raft snapshot, without the
// request table) and the Raft index of the last command it reflects.
func (f *FSM) Export() (index uint64, state []byte, err error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(f.st)
	if err != nil {
		return 0, nil, fmt.Errorf("meta: cannot encode state: %w", err)
	}
	return f.applied, b, nil
}

// Restore implements raft.FSM: it replaces the whole state, the request table and the
// applied index with the snapshot's.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st := newState()
	snap := snapshotJSON{State: st}
	if err := json.NewDecoder(rc).Decode(&snap); err != nil {
		return fmt.Errorf("meta: cannot decode snapshot: %w", err)
	}
	if snap.Requests == nil {
		snap.Requests = newRequestTable()
	}
	st.index()
	f.mu.Lock()
	f.st, f.reqs, f.applied = st, snap.Requests, snap.AppliedIndex
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	return nil
}

// raiseApplied sets the applied index to at least index: Raft's index of the snapshot
// restored at start when the snapshot does not name it (see snapshotJSON).
func (f *FSM) raiseApplied(index uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = max(f.applied, index)
}

type snapshot struct{ data []byte }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		sink.Cancel()
		return fmt.Errorf("meta: cannot write snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}
