package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"floe/meta"
	"floe/node/rpc"
	"floe/node/segment"
	"floe/topicname"
)

// localSegment returns this node's copy of a segment, opening it from disk if needed,
// with a reference the caller must give back with n.store.Release; ErrSegmentNotFound
// if the node does not hold it. The segment stays open and readable until released.
func (n *Node) localSegment(topic string, s *meta.Segment) (*segment.Segment, error) {
	if checksCopy(s, n.cfg.NodeID) && !n.readableCopy(topic, s) {
		return nil, fmt.Errorf("%w: segment %d of %q: this node's copy is not checked yet", ErrSegmentNotFound, s.ID, topic)
	}
	seg, err := n.store.Acquire(topic, s.ID, s.State != meta.Active)
	if errors.Is(err, segment.ErrClosed) {
		return nil, err
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: segment %d of %q", ErrSegmentNotFound, s.ID, topic)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: segment %d of %q: %v", ErrCorrupt, s.ID, topic, err)
	}
	return seg, nil
}

// Register creates the topic if it does not exist (idempotent). The first segment's
// leader is picked round-robin by the number of topics, so topics spread over nodes;
// its followers are the voters after it (replicaSet). A topic created without a
// replication factor gets --default-replication-factor; one larger than the
// cluster's voters is refused.
func (n *Node) Register(ctx context.Context, topic string, cfg *meta.TopicConfig) error {
	if err := topicname.Validate(topic); err != nil {
		return err
	}
	var c meta.TopicConfig
	if cfg != nil {
		if err := cfg.Validate(); err != nil {
			return err
		}
		c = *cfg
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	// The topic exists if the leader's metadata says so: this node's may not have
	// applied a deletion yet (REGISTER would answer OK and create nothing, or create
	// without waiting for the deletion to settle). Through an election the ask is
	// made again, to the next leader.
	if err := n.syncMetaRetry(ctx, nil); err != nil {
		return rpc.Unavailable(fmt.Sprintf("cannot check topic %q with the raft leader", topic), err)
	}
	if _, ok := n.fsm.Resolve(topic); ok {
		return nil // exists (the count below is fresh too)
	}
	if _, committed, ok := n.fsm.LastDeletion(topic); ok {
		if err := n.deletionSettled(ctx, topic, committed); err != nil {
			return err
		}
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = n.cfg.DefaultReplicationFactor
	}
	voters := n.voters()
	if len(voters) > 0 && c.ReplicationFactor > len(voters) {
		return fmt.Errorf("%w: replication_factor %d, but the cluster has %d voters", meta.ErrBadConfig, c.ReplicationFactor, len(voters))
	}
	leader := n.cfg.NodeID
	if len(voters) > 0 {
		leader = n.nextLeader(voters[n.fsm.TopicCount()%len(voters)] - 1)
	}
	// Ids only once every voter gives them: a member of an earlier release would
	// create the topic without one, and its state would part from the others'. Once
	// ids are given, a topic is never created without one (the FSM refuses it): a
	// voter not registered yet (it has just joined) is waited for.
	incarnate := n.missingFeature(meta.FeatureTopicIDs) == 0
	if !incarnate && n.fsm.LastTopicID() > 0 {
		return rpc.Unavailable(fmt.Sprintf("node %d has not registered as a member of this release yet: try again", n.missingFeature(meta.FeatureTopicIDs)), nil)
	}
	cmd := &meta.Command{Op: meta.OpCreateTopic, Topic: topic, Incarnate: incarnate, Leader: leader, Config: &c, Replicas: n.replicaSet(leader, c.ReplicationFactor)}
	_, err := n.propose(ctx, cmd)
	return err
}

// missingFeature returns a voter whose registered release lacks feature (0: none):
// every voter must apply a command the same way before it is proposed.
func (n *Node) missingFeature(feature uint64) uint64 {
	for _, id := range n.voters() {
		if info, ok := n.fsm.Node(id); !ok || info.Features&feature != feature {
			return id
		}
	}
	return 0
}

// AlterTopic changes the settings p sets of an existing topic, through Raft. A
// replication factor of 0 means --default-replication-factor, as at creation, and one
// larger than the cluster's voters is refused. The change takes effect as the nodes
// next read the settings: the replication factor at the next roll-over.
func (n *Node) AlterTopic(ctx context.Context, topic string, p *meta.TopicConfigPatch) error {
	if err := topicname.Validate(topic); err != nil {
		return err
	}
	if p.Empty() {
		return fmt.Errorf("%w: nothing to change", meta.ErrBadConfig)
	}
	patch := *p
	if rf := patch.ReplicationFactor; rf != nil {
		v := *rf
		if v == 0 {
			v = max(n.cfg.DefaultReplicationFactor, 1)
		}
		if voters := n.voters(); len(voters) > 0 && v > len(voters) {
			return fmt.Errorf("%w: replication_factor %d, but the cluster has %d voters", meta.ErrBadConfig, v, len(voters))
		}
		patch.ReplicationFactor = &v
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	t, err := n.topicNamed(ctx, topic)
	if err != nil {
		return err
	}
	next := patch.Apply(t.Config)
	if err := next.Validate(); err != nil {
		return err
	}
	_, err = n.propose(ctx, &meta.Command{Op: meta.OpAlterTopic, Topic: t.Key(), Patch: &patch})
	return err
}

// activeCount returns the durable entry count and bytes of a topic's active segment,
// and whether its leader has sealed it locally while the Seal command is not applied
// yet (the segment is then "sealing"): from this node's disk if it leads the segment,
// else from the leader.
func (n *Node) activeCount(topic string, s *meta.Segment) (count uint64, bytes int64, sealing bool, err error) {
	if s.Leader == n.cfg.NodeID {
		seg, err := n.localSegment(topic, s)
		if err != nil {
			return 0, 0, false, err
		}
		defer n.store.Release(seg)
		return seg.Count(), seg.Bytes(), seg.Sealed(), nil
	}
	p, err := n.nodePeer(s.Leader)
	if err != nil {
		return 0, 0, false, err
	}
	var e rpc.Encoder
	e.Str(topic)
	e.U64(s.ID)
	body, err := p.Call(n.ctx, rpc.OpCount, e.B, time.Second)
	if err != nil {
		return 0, 0, false, err
	}
	d := rpc.NewDecoder(body)
	c, b, sealed := d.U64(), d.U64(), d.U64()
	return c, int64(b), sealed == 1, d.Err
}

// join adds a node as a voter: here if this node is the Raft leader, else through it.
func (n *Node) join(id uint64, addr string) error {
	for attempt := 0; attempt < 20; attempt++ {
		if n.raft.IsLeader() {
			err := n.raft.AddVoter(id, addr, 10*time.Second)
			if err == nil {
				n.log.Info("added voter", "id", id, "addr", addr)
				return nil
			}
			if !errors.Is(err, meta.ErrNotRaftLeader) {
				return err
			}
		} else if _, leaderAddr := n.raft.Leader(); leaderAddr != "" && leaderAddr != n.advertise {
			_, err := n.peers.Get(leaderAddr).Call(n.ctx, rpc.OpJoin, encodeJoin(id, addr), 20*time.Second)
			if err == nil || !retryable(err) {
				return err
			}
		}
		if err := n.backoff(n.ctx, attempt+2, nil); err != nil {
			return err
		}
	}
	return rpc.Unavailable(fmt.Sprintf("no raft leader to add node %d", id), nil)
}

// RemoveMember removes a member from the Raft configuration and the metadata. It must
// run on the Raft leader (ErrNotSegmentLeader otherwise: ask the leader). Segments the member
// leads keep their leader; their active segments take no writes until it returns.
func (n *Node) RemoveMember(ctx context.Context, id uint64) error {
	if id == n.cfg.NodeID {
		return fmt.Errorf("%w: a node cannot remove itself; transfer leadership first", ErrBadRequest)
	}
	if err := n.raft.RemoveServer(id, 10*time.Second); err != nil {
		return err
	}
	_, err := n.propose(ctx, &meta.Command{Op: meta.OpRemoveNode, Node: &meta.NodeInfo{ID: id}})
	return err
}

// peerSegment looks up a segment another node asks about. The asker learned of it from
// the metadata, so if this node does not know it yet, its own metadata lags (it may have
// just restarted and not replayed the raft log): it catches up once before answering
// that it does not hold the segment.
func (n *Node) peerSegment(topic string, id uint64) (meta.Segment, bool) {
	if s, ok := n.fsm.SegmentOf(topic, id); ok {
		return s, true
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
	defer cancel()
	if err := n.syncMeta(ctx); err != nil {
		return meta.Segment{}, false
	}
	return n.fsm.SegmentOf(topic, id)
}
