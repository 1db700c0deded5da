package node

import (
	"context"
	"sort"
	"sync"
	"time"

	"floe/meta"
	"floe/node/rpc"
	"floe/node/segment"
	"floe/node/write"
)

// newWriter composes the write path (package node/write) over this node: its
// metadata and lease, its segment files, Raft and its peers.
func (n *Node) newWriter() *write.Writer {
	return write.New(n.ctx, write.Config{
		NodeID: n.cfg.NodeID, BootID: n.bootID,
		Metadata: writeMetadata{n.fsm, n},
		Lease:    n.hasLease,
		Store:    writeStore{n},
		Propose: func(ctx context.Context, c *meta.Command) error {
			_, err := n.propose(ctx, c)
			return err
		},
		Peers:      writePeers{n},
		Metrics:    n.metrics,
		NextLeader: n.nextLeader,
		ReplicaSet: n.replicaSet,
		IsVoter:    n.isVoter,
		Limits: write.Limits{
			Entries: n.cfg.MaxSegmentEntries, Bytes: n.cfg.MaxSegmentBytes, Age: n.cfg.MaxSegmentAge,
		},
		RequestTimeout: n.cfg.RequestTimeout,
		ReplicaTimeout: n.cfg.SegmentFailoverTimeout,
		StartIndex:     n.raft.LastIndex(),
		Lost:           n.lostSegment,
		HandOff:        n.handOff,
		Backoff:        n.backoff,
		Go:             n.goLoop,
		CommitWait:     n.cfg.GroupCommitWait,
		QueueLen:       n.cfg.appendQueue,
		Logger:         n.log,
	})
}

// writeMetadata is write.Metadata over the node's FSM, with activeSegment's catch-up
// rule.
type writeMetadata struct {
	*meta.FSM
	n *Node
}

func (m writeMetadata) ActiveSegment(ctx context.Context, topic string) (meta.Segment, error) {
	s, _, err := m.n.activeSegment(ctx, topic)
	return s, err
}

// writeStore is write.Store over the node's segment store; it reports a damaged
// active segment as it opens it (reportDamaged).
type writeStore struct{ n *Node }

func (s writeStore) Open(topic string, act *meta.Segment) (write.Segment, error) {
	seg, err := s.n.store.Create(topic, act.ID)
	if err != nil {
		return nil, err
	}
	s.n.reportDamaged(topic, act, seg)
	return seg, nil
}

func (s writeStore) Release(seg write.Segment) { s.n.store.Release(seg.(*segment.Segment)) }

func (s writeStore) Get(topic string, id uint64) (write.Segment, bool) {
	seg, ok := s.n.store.Get(topic, id)
	if !ok {
		return nil, false
	}
	return seg, true
}

// writePeers is write.Peers over the node's RPC clients.
type writePeers struct{ n *Node }

func (p writePeers) Peer(id uint64) (write.Peer, error) {
	peer, err := p.n.nodePeer(id)
	if err != nil {
		return nil, err
	}
	return peer, nil
}

// Append appends payloads to topic as one contiguous run and returns the offset of the
// first, once it is fsynced on the segment leader (write.Writer.Append).
func (n *Node) Append(ctx context.Context, topic string, payloads [][]byte) (uint64, error) {
	key, err := n.resolve(ctx, topic)
	if err != nil {
		return 0, err
	}
	return n.writer.Append(ctx, key, payloads)
}

// retryable reports whether an error is retried within the request deadline
// (write.Retryable).
func retryable(err error) bool { return write.Retryable(err) }

// oldestLocalOnly returns the time of the oldest entry this node holds on its disk
// only, zero if none: the first entry of an active segment it leads (oldestUnsealedMS)
// and, with an archive, the creation of a sealed segment it led that is not archived
// yet. Without an archive sealed segments are never uploaded; only the unsealed
// entries, which --max-segment-age bounds, count.
func (n *Node) oldestLocalOnly() time.Time {
	oldest := n.writer.OldestUnsealedMS()
	if n.uploader != nil {
		if t := n.uploader.OldestUnarchived(); !t.IsZero() && (oldest == 0 || t.UnixMilli() < oldest) {
			oldest = t.UnixMilli()
		}
	}
	if oldest == 0 {
		return time.Time{}
	}
	return time.UnixMilli(oldest)
}

// clusterOldestLocalOnly returns the time of the oldest entry that any node holds on
// its disk only, zero if none. It counts every topic's active segment: by the oldest
// unsealed entry its leader reports (opUnsealed), or, for a leader that does not
// answer within a short timeout, from the segment's creation time, since what a node
// that is down holds is unknown (it may hold entries). With an archive it also counts
// every sealed segment not archived yet, from its creation time (the metadata).
func (n *Node) clusterOldestLocalOnly() time.Time {
	var oldest int64
	keep := func(ms int64) {
		if ms > 0 && (oldest == 0 || ms < oldest) {
			oldest = ms
		}
	}
	leaders := map[uint64]int64{} // leader of active segments -> oldest creation
	for _, name := range n.fsm.TopicKeys() {
		t, ok := n.fsm.Topic(name)
		if !ok {
			continue
		}
		for _, s := range t.Segments {
			switch {
			case s.State == meta.Sealed && s.Count > 0 && n.bucket != nil:
				keep(s.CreatedUnixMS)
			case s.State == meta.Active && s.Leader != n.cfg.NodeID:
				if ms, ok := leaders[s.Leader]; !ok || write.CreatedAt(s).UnixMilli() < ms {
					leaders[s.Leader] = write.CreatedAt(s).UnixMilli()
				}
			}
		}
	}
	keep(n.writer.OldestUnsealedMS())
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id, created := range leaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms, err := n.peerOldestUnsealed(id)
			if err != nil {
				ms = created
			}
			mu.Lock()
			keep(int64(ms))
			mu.Unlock()
		}()
	}
	wg.Wait()
	if oldest == 0 {
		return time.Time{}
	}
	return time.UnixMilli(oldest)
}

// peerOldestUnsealed asks node id for its oldestUnsealedMS.
func (n *Node) peerOldestUnsealed(id uint64) (int64, error) {
	p, err := n.nodePeer(id)
	if err != nil {
		return 0, err
	}
	body, err := p.Call(n.ctx, rpc.OpUnsealed, nil, 500*time.Millisecond)
	if err != nil {
		return 0, err
	}
	d := rpc.NewDecoder(body)
	ms := d.U64()
	return int64(ms), d.Err
}

// nextLeader picks the leader of the next segment: the voter after current in id order
// (round-robin), skipping voters that do not answer a status call within
// nextLeaderProbe.
func (n *Node) nextLeader(current uint64) uint64 {
	ids := n.voters()
	start := sort.Search(len(ids), func(i int) bool { return ids[i] > current })
	for i := 0; i < len(ids); i++ {
		id := ids[(start+i)%len(ids)]
		if n.peerProbe(n.ctx, id, nextLeaderProbe, 1) {
			return id
		}
	}
	return n.cfg.NodeID
}

// isVoter reports whether node id is a voter of the Raft configuration (true when
// the configuration cannot be read: nothing is rolled over on a guess).
func (n *Node) isVoter(id uint64) bool {
	members, err := n.raft.Members()
	if err != nil {
		return true
	}
	for _, m := range members {
		if m.ID == id {
			return m.Voter
		}
	}
	return false
}

// voters returns the ids of the Raft configuration's voters, ascending (none if the
// configuration cannot be read).
func (n *Node) voters() []uint64 {
	members, err := n.raft.Members()
	if err != nil {
		return nil
	}
	var ids []uint64
	for _, m := range members {
		if m.Voter {
			ids = append(ids, m.ID)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// replicaSet returns the replicas of a segment led by leader in a topic of
// replication factor r: leader, then the voters after it in id order, those that
// answer a status call within nextLeaderProbe first, so that the followers rotate
// across the members as the leaders do. With fewer voters than r it returns them all
// (the segment is then under-replicated from its start); nil for r <= 1.
func (n *Node) replicaSet(leader uint64, r int) []uint64 {
	if r <= 1 {
		return nil
	}
	ids := n.voters()
	start := sort.Search(len(ids), func(i int) bool { return ids[i] > leader })
	set := []uint64{leader}
	var silent []uint64
	for i := 0; i < len(ids) && len(set) < r; i++ {
		id := ids[(start+i)%len(ids)]
		if id == leader {
			continue
		}
		if n.peerProbe(n.ctx, id, nextLeaderProbe, 1) {
			set = append(set, id)
		} else {
			silent = append(silent, id)
		}
	}
	for _, id := range silent {
		if len(set) == r {
			break
		}
		set = append(set, id)
	}
	return set
}

// nextLeaderProbe is how long nextLeader waits for a voter to answer.
const nextLeaderProbe = 500 * time.Millisecond

// ownershipLoop, once the metadata has caught up after start and after every
// metadata change, opens the active segments this node leads, so that a restarted
// leader recovers its WAL before the first write, and starts the appender of each that
// holds entries, so that its age limit is checked although no write may ever come. It
// creates no file while the metadata may be stale: a node returning from a partition
// or a restart may still see itself as the leader of a segment that was sealed or
// abandoned meanwhile.
func (n *Node) ownershipLoop() {
	retry := time.NewTicker(replicaRetry)
	defer retry.Stop()
	for {
		ch, synced := n.fsm.Changed(), n.syncedChanged()
		if n.synced.Load() {
			n.writer.OpenLed()
			n.sealReplicas()
		}
		select {
		case <-ch:
		case <-synced:
		case <-retry.C: // copies of replicated segments not completed yet
		case <-n.ctx.Done():
			return
		}
	}
}
