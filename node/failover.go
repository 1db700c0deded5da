package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"floe/meta"
	"floe/node/rpc"
)

// Failover of a replicated topic's active segment whose leader stopped answering.
//
// The Raft leader probes, every second, each node that leads an active segment of a
// replicated topic. Once one has not answered for --segment-failover-timeout, it fails
// each of those segments over (failoverSegment): it fences the segment's followers
// (OpFence: each stops taking the segment's appends, waits for the one in progress,
// and answers with its copy's totals); once more than N - (N/2+1) of the N replicas
// answered, every entry the old leader acknowledged (which a majority held) is on at
// least one of them, and the old leader can no longer reach a majority; the segment is
// sealed at the totals of the answer holding the most entries (failover_segment,
// through Raft), with that replica as its holder, and the next segment starts at its
// end on a live node. The followers then cut or complete their copies to exactly the
// sealed content (sealReplicas), and the holder uploads it.

// failoverLoop runs failovers on the Raft leader until the node closes.
func (n *Node) failoverLoop() {
	var f failoverWatch
	n.leaderEvery(time.Second, 0, func() { n.failoverPass(&f) })
}

// failoverWatch is when each segment leader last answered, as the Raft leader saw it
// in its current term.
type failoverWatch struct {
	term     uint64
	answered map[uint64]time.Time
	// started are the segments whose failover fenced followers and may have proposed:
	// they are failed over even if their leader answers again.
	started map[segRef]bool
}

// failoverPass probes the leaders of active replicated segments and fails over the
// segments of every one that has not answered for --segment-failover-timeout.
func (n *Node) failoverPass(f *failoverWatch) {
	if term := n.raft.Term(); term != f.term || f.answered == nil {
		f.term, f.answered = term, map[uint64]time.Time{} // a new term: everyone gets the full timeout
		f.started = map[segRef]bool{}
	}
	led := map[uint64][]segRef{}
	for _, name := range n.fsm.TopicKeys() {
		n.fsm.View(name, func(t *meta.Topic) {
			if s := t.Active(); len(s.Replicas) > 1 && s.Leader != n.cfg.NodeID {
				led[s.Leader] = append(led[s.Leader], segRef{name, s.ID})
			}
		})
	}
	for id := range f.answered {
		if _, ok := led[id]; !ok {
			delete(f.answered, id) // leads nothing now: the full timeout again when it does
		}
	}
	now := time.Now()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id := range led {
		if _, ok := f.answered[id]; !ok {
			f.answered[id] = now
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n.peerAnswers(n.ctx, id, failoverProbe, 1) {
				mu.Lock()
				f.answered[id] = time.Now()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	n.replaceRemoved()
	for id, segs := range led {
		silent := time.Since(f.answered[id])
		for _, r := range segs {
			// A failover that fenced followers and proposed is finished even if the
			// leader answers again: they refuse its appends now.
			if silent >= n.cfg.SegmentFailoverTimeout || f.started[r] {
				f.started[r] = true
				ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
				_, err := n.failoverSegment(ctx, r.topic, r.id, 0)
				cancel()
				switch {
				case err == nil:
					delete(f.started, r)
				case errors.Is(err, errFenceShort):
					delete(f.started, r) // nothing proposed, and the fences are lifted
					n.log.Warn("cannot fail over a segment whose leader does not answer; will try again", "topic", r.topic,
						"segment", r.id, "leader", id, "silent", silent.Round(time.Millisecond), "err", err)
				default:
					n.log.Warn("cannot fail over a segment whose leader does not answer; will try again", "topic", r.topic,
						"segment", r.id, "leader", id, "silent", silent.Round(time.Millisecond), "err", err)
				}
			}
		}
	}
	for r := range f.started {
		if s, ok := n.fsm.SegmentOf(r.topic, r.id); !ok || s.State != meta.Active {
			delete(f.started, r)
		}
	}
}

// errFenceShort: too few followers answered a failover's fence; nothing was proposed.
var errFenceShort = errors.New("too few followers answered the fence")

// replaceRemoved re-replicates the unarchived segments of replicated topics that
// name, among their replicas, a node that is no longer a voter (floe cluster
// remove-node): an active segment it led is failed over (fencing its followers, since
// the node may still run), and elsewhere a voter that holds no copy takes its place
// (replace_replica) and fetches one: from the segment's leader while it is active,
// from the other replicas once it is sealed. A segment with no voter to spare stays
// as it is (under-replicated) and is tried again at the next pass.
func (n *Node) replaceRemoved() {
	voters := n.voters()
	if len(voters) == 0 {
		return
	}
	n.eachUnarchivedReplicated(func(name string, s *meta.Segment) {
		for _, old := range s.Replicas {
			if slices.Contains(voters, old) {
				continue
			}
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
			err := n.replaceReplica(ctx, name, s, old, voters)
			cancel()
			if err != nil {
				n.log.Warn("cannot re-replicate a segment off a removed member; will try again", "topic", name, "segment", s.ID, "node", old, "err", err)
			}
			return // the segment changed: look again at the next pass
		}
	})
}

// replaceReplica takes node old, no longer a voter, out of segment s's replicas. An
// active segment's replicas never change (the majority that acknowledged its entries
// must stay the one a failover asks): one it led is failed over, and one it follows
// is rolled over by its leader (Appender: a follower that is no voter).
func (n *Node) replaceReplica(ctx context.Context, topic string, s *meta.Segment, old uint64, voters []uint64) error {
	if s.State == meta.Active {
		if s.Leader != old {
			return nil
		}
		_, err := n.failoverSegment(ctx, topic, s.ID, 0)
		return err
	}
	var spare []uint64
	for _, id := range voters {
		if !s.HasReplica(id) {
			spare = append(spare, id)
		}
	}
	if len(spare) == 0 {
		return nil // nothing to do until a member joins; counted as under-replicated
	}
	pick := spare[0]
	for _, id := range spare {
		if n.peerProbe(ctx, id, failoverProbe, 1) {
			pick = id
			break
		}
	}
	if _, err := n.propose(ctx, &meta.Command{Op: meta.OpReplaceReplica, Topic: topic, Segment: s.ID, OldReplica: old, NewReplica: pick}); err != nil {
		return err
	}
	n.log.Info("segment re-replicated off a removed member", "topic", topic, "segment", s.ID, "removed", old, "new_replica", pick)
	return nil
}

// segRef names one segment of one topic.
type segRef struct {
	topic string
	id    uint64
}

// failoverProbe is how long one probe of a segment leader waits.
const failoverProbe = 500 * time.Millisecond

// fenceTimeout bounds one OpFence call.
const fenceTimeout = 2 * time.Second

// fenced is one follower's answer to OpFence.
type fenced struct {
	node  uint64
	count uint64
	bytes int64
	crc   uint32
}

// failoverSegment seals segment id of topic, if it is still the active segment of a
// replicated topic, at what its surviving replicas hold, and starts the next one on
// node to (0: the next live voter). See the comment at the top of this file.
func (n *Node) failoverSegment(ctx context.Context, topic string, id, to uint64) (*meta.Segment, error) {
	act, cfg, ok := n.fsm.ActiveOf(topic)
	if !ok {
		return nil, fmt.Errorf("%w: %q", meta.ErrNoTopic, topic)
	}
	if act.ID != id {
		return nil, fmt.Errorf("%w: segment %d of %q is not active (segment %d is)", meta.ErrStaleSegment, id, topic, act.ID)
	}
	replicas := act.ReplicaSet()
	if len(replicas) < 2 {
		return nil, fmt.Errorf("%w: segment %d of %q is not replicated", ErrBadRequest, id, topic)
	}
	answers := n.fenceFollowers(ctx, topic, &act)
	// Every acknowledged entry is on a majority (N/2+1); answers from more than the
	// other N-(N/2+1) replicas include one of them.
	need := len(replicas) - (len(replicas)/2 + 1) + 1
	if len(answers) < need {
		// Nothing is proposed: lift the fences, so the leader, if it is back, goes on.
		n.unfenceFollowers(topic, &act, answers)
		return nil, rpc.Unavailable(fmt.Sprintf("only %d of the %d followers of segment %d of %q answered, %d needed to know every acknowledged entry",
			len(answers), len(replicas)-1, id, topic, need), errFenceShort)
	}
	best := answers[0]
	for _, a := range answers[1:] {
		if a.count > best.count {
			best = a
		}
	}
	if to == 0 {
		to = n.nextLeader(act.Leader)
		if to == act.Leader {
			to = best.node
		}
	}
	cmd := &meta.Command{
		Op: meta.OpFailover, Topic: topic, Segment: id, Count: best.count, Bytes: best.bytes, CRC: best.crc,
		Holder: best.node, NextLeader: to, Replicas: n.replicaSet(to, cfg.Replication()),
	}
	if _, err := n.propose(ctx, cmd); err != nil {
		return nil, err
	}
	n.log.Warn("segment failed over: its leader did not answer", "topic", topic, "segment", id, "old_leader", act.Leader,
		"count", best.count, "holder", best.node, "answers", len(answers), "new_leader", to, "new_replicas", cmd.Replicas)
	next, _, _ := n.fsm.ActiveOf(topic)
	return &next, nil
}

// unfenceFollowers lifts the fence of a failover that proposed nothing, on the
// followers that answered it (best effort: a follower that misses it keeps refusing
// the leader's appends until a failover of the segment succeeds).
func (n *Node) unfenceFollowers(topic string, act *meta.Segment, answers []fenced) {
	var e rpc.Encoder
	e.Str(topic)
	e.U64(act.ID)
	e.U64(act.Epoch())
	e.Bool(true)
	for _, a := range answers {
		if a.node == n.cfg.NodeID {
			if err := n.unfence(topic, act.ID); err != nil {
				n.log.Warn("cannot record that a fence was lifted", "topic", topic, "segment", act.ID, "err", err)
			}
			continue
		}
		if p, err := n.nodePeer(a.node); err == nil {
			if _, err := p.Call(n.ctx, rpc.OpFence, e.B, fenceTimeout); err != nil {
				n.log.Warn("cannot lift the fence of a failover that proposed nothing", "topic", topic, "segment", act.ID, "node", a.node, "err", err)
			}
		}
	}
}

// fenceFollowers fences the followers of act in parallel and returns the answers.
func (n *Node) fenceFollowers(ctx context.Context, topic string, act *meta.Segment) []fenced {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var answers []fenced
	var e rpc.Encoder
	e.Str(topic)
	e.U64(act.ID)
	e.U64(act.Epoch())
	e.Bool(false)
	for _, id := range act.ReplicaSet()[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var (
				a   fenced
				err error
			)
			if id == n.cfg.NodeID {
				a.count, a.bytes, a.crc, err = n.fenceReplica(topic, act.ID, act.Epoch())
			} else {
				var p *rpc.Peer
				if p, err = n.nodePeer(id); err == nil {
					var body []byte
					if body, err = p.Call(ctx, rpc.OpFence, e.B, fenceTimeout); err == nil {
						d := rpc.NewDecoder(body)
						a.count, a.bytes, a.crc = d.U64(), int64(d.U64()), uint32(d.U64())
						err = d.Err
					}
				}
			}
			if err != nil {
				n.log.Info("a follower did not answer the fence of a failover", "topic", topic, "segment", act.ID, "node", id, "err", err)
				return
			}
			a.node = id
			mu.Lock()
			answers = append(answers, a)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return answers
}
