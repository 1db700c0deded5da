package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"floe/meta/logstore"
)

// Config configures the Raft member of one node.
type Config struct {
	NodeID uint64
	// Dir holds the Raft log (Pebble) and snapshots.
	Dir string
	// Advertise is the host:port other members dial; never 0.0.0.0.
	Advertise string
	// Stream carries Raft traffic (the node multiplexes it with its own RPC).
	Stream raft.StreamLayer
	Logger *slog.Logger
	// RaftLogOutput receives hashicorp/raft's own log lines (nil: stderr), at RaftLogLevel.
	RaftLogOutput io.Writer
	RaftLogLevel  string
	RaftLogJSON   bool

	HeartbeatTimeout   time.Duration // default 1s
	ElectionTimeout    time.Duration // default 1s
	LeaderLeaseTimeout time.Duration // default 500ms
	SnapshotThreshold  uint64        // default 8192
}

// Raft is one node's member of the metadata Raft group, with the FSM it drives.
type Raft struct {
	cfg   Config
	fsm   *FSM
	store *logstore.Store
	trans *raft.NetworkTransport
	r     *raft.Raft
	log   *slog.Logger
}

// Open starts the Raft member over the state in cfg.Dir. It does not bootstrap: call
// Bootstrap for a brand-new single-node cluster, or have a member AddVoter this one.
func Open(cfg Config) (*Raft, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = time.Second
	}
	if cfg.ElectionTimeout == 0 {
		cfg.ElectionTimeout = time.Second
	}
	if cfg.LeaderLeaseTimeout == 0 {
		cfg.LeaderLeaseTimeout = 500 * time.Millisecond
	}
	if cfg.SnapshotThreshold == 0 {
		cfg.SnapshotThreshold = 8192
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("meta: cannot create %q: %w", cfg.Dir, err)
	}
	out := cfg.RaftLogOutput
	if out == nil {
		out = os.Stderr
	}
	level := cfg.RaftLogLevel
	if level == "" {
		level = "warn"
	}
	hl := hclog.New(&hclog.LoggerOptions{
		Name: "raft", Level: hclog.LevelFromString(level), Output: out, JSONFormat: cfg.RaftLogJSON,
	})

	store, err := logstore.Open(filepath.Join(cfg.Dir, "log"), logstore.Options{Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hl)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("meta: cannot open snapshot store in %q: %w", cfg.Dir, err)
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: cfg.Stream, MaxPool: 3, Timeout: 5 * time.Second, Logger: hl,
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(strconv.FormatUint(cfg.NodeID, 10))
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = 5 * time.Millisecond
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = 30 * time.Second
	rc.TrailingLogs = 4096
	rc.Logger = hl

	fsm := NewFSM()
	r, err := raft.NewRaft(rc, fsm, store, store, snaps, trans)
	if err != nil {
		trans.Close()
		store.Close()
		return nil, fmt.Errorf("meta: cannot start raft: %w", err)
	}
	// NewRaft restored the newest snapshot. One that does not name its applied index
	// (written by Seed or before the index was recorded) leaves the FSM at 0: give it
	// the snapshot's Raft index, so that AppliedIndex and Export are not stale.
	if si, err := strconv.ParseUint(r.Stats()["last_snapshot_index"], 10, 64); err == nil {
		fsm.raiseApplied(si)
	}
	return &Raft{cfg: cfg, fsm: fsm, store: store, trans: trans, r: r, log: cfg.Logger}, nil
}

// HasState reports whether this member has Raft state from an earlier run (then it
// must neither bootstrap nor join: it just rejoins its cluster).
func HasState(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("meta: cannot read %q: %w", dir, err)
	}
	return len(entries) > 0, nil
}

// Bootstrap makes this member the single voter of a new cluster. Bootstrapping a member
// that already has state is not an error (raft.ErrCantBootstrap): it is a restart.
func (m *Raft) Bootstrap() error {
	err := m.r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter, ID: m.serverID(m.cfg.NodeID), Address: raft.ServerAddress(m.cfg.Advertise),
	}}}).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("meta: cannot bootstrap: %w", err)
	}
	return nil
}

func (m *Raft) serverID(id uint64) raft.ServerID {
	return raft.ServerID(strconv.FormatUint(id, 10))
}

// FSM returns the state machine this member applies to.
func (m *Raft) FSM() *FSM { return m.fsm }

// Apply proposes a command on this member, which must be the leader (else ErrNotRaftLeader),
// and waits for it to be applied here. It returns the FSM's result and the log index.
// raft.ErrLeadershipLost leaves the outcome unknown: the caller retries the same
// command, marked Retry, with the same RequestID (see Command). Its errors, like those
// of AddVoter, RemoveServer, Members and Barrier, carry no package prefix: a client's
// reply may quote them verbatim (the start-up errors of this file keep theirs).
func (m *Raft) Apply(c *Command, timeout time.Duration) (*Result, uint64, error) {
	if m.r.State() != raft.Leader {
		return nil, 0, ErrNotRaftLeader
	}
	f := m.r.Apply(c.Encode(), timeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return nil, 0, ErrNotRaftLeader
		}
		return nil, 0, fmt.Errorf("cannot apply %s: %w", c.Op, err)
	}
	res, _ := f.Response().(*Result)
	if res == nil {
		res = &Result{}
	}
	return res, f.Index(), nil
}

// AddVoter adds (or re-addresses) a voter; the caller must be the leader.
func (m *Raft) AddVoter(id uint64, addr string, timeout time.Duration) error {
	if m.r.State() != raft.Leader {
		return ErrNotRaftLeader
	}
	if err := m.r.AddVoter(m.serverID(id), raft.ServerAddress(addr), 0, timeout).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return ErrNotRaftLeader
		}
		return fmt.Errorf("cannot add voter %d at %s: %w", id, addr, err)
	}
	return nil
}

// RemoveServer removes a member; the caller must be the leader.
func (m *Raft) RemoveServer(id uint64, timeout time.Duration) error {
	if m.r.State() != raft.Leader {
		return ErrNotRaftLeader
	}
	if err := m.r.RemoveServer(m.serverID(id), 0, timeout).Error(); err != nil {
		return fmt.Errorf("cannot remove server %d: %w", id, err)
	}
	return nil
}

// TransferLeadership asks the leader to hand over to another voter.
func (m *Raft) TransferLeadership() error {
	return m.r.LeadershipTransfer().Error()
}

// Leader returns the current leader's id and address, zero if none is known.
func (m *Raft) Leader() (uint64, string) {
	addr, id := m.r.LeaderWithID()
	n, _ := strconv.ParseUint(string(id), 10, 64)
	return n, string(addr)
}

// IsLeader reports whether this member is the Raft leader.
func (m *Raft) IsLeader() bool { return m.r.State() == raft.Leader }

// State returns the member's Raft state name (Leader, Follower, Candidate, Shutdown).
func (m *Raft) State() string { return m.r.State().String() }

// LastContact is when a follower last heard from its leader.
func (m *Raft) LastContact() time.Time { return m.r.LastContact() }

// LastIndex is the last index in the local log (or snapshot).
func (m *Raft) LastIndex() uint64 { return m.r.LastIndex() }

// AppliedIndex is the last index applied to the FSM.
func (m *Raft) AppliedIndex() uint64 { return m.r.AppliedIndex() }

// Term returns the current term as raft reports it (cheap: an atomic load).
func (m *Raft) Term() uint64 { return m.r.CurrentTerm() }

// Member is one entry of the Raft configuration.
type Member struct {
	ID      uint64
	Address string
	Voter   bool
}

// Members returns the latest Raft configuration, sorted by id.
func (m *Raft) Members() ([]Member, error) {
	f := m.r.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("cannot read the raft configuration: %w", err)
	}
	var out []Member
	for _, s := range f.Configuration().Servers {
		id, err := strconv.ParseUint(string(s.ID), 10, 64)
		if err != nil {
			continue
		}
		out = append(out, Member{ID: id, Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// HasConfiguration reports whether this member knows any Raft configuration (from a
// bootstrap, a seed, or a member that added it). A member opened on state of its own
// that knows none was never added to a cluster: it must still join one.
func (m *Raft) HasConfiguration() bool {
	f := m.r.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

// Close shuts raft down and closes its stores.
func (m *Raft) Close() error {
	err := m.r.Shutdown().Error()
	m.trans.Close()
	if cerr := m.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// Barrier waits until every entry committed before the call has been applied to the
// FSM; the caller must be the leader.
func (m *Raft) Barrier(timeout time.Duration) error {
	if err := m.r.Barrier(timeout).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return ErrNotRaftLeader
		}
		return fmt.Errorf("raft barrier: %w", err)
	}
	return nil
}

// Seed writes state (the JSON of a State) into dir, a member's empty Raft directory, as
// a Raft snapshot at index whose configuration holds this member alone. A member opened
// on dir restores the state and, the only voter it knows, elects itself; other members
// join it. This is how a cluster is rebuilt from its archive (floe restore --cluster).
func Seed(dir string, nodeID uint64, advertise string, state []byte, index uint64) error {
	has, err := HasState(dir)
	if err != nil {
		return err
	}
	if has {
		return fmt.Errorf("meta: %q already holds Raft state; seed only an empty data dir", dir)
	}
	st := &State{}
	if err := json.Unmarshal(state, st); err != nil {
		return fmt.Errorf("meta: the state to seed does not decode: %w", err)
	}
	// The snapshot names its applied index: a member that joins gets this snapshot from
	// the leader and restores it through FSM.Restore, which does not know Raft's index.
	state, err = json.Marshal(snapshotJSON{State: st, AppliedIndex: index})
	if err != nil {
		return fmt.Errorf("meta: cannot encode the state to seed: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("meta: cannot create %q: %w", dir, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclog.NewNullLogger())
	if err != nil {
		return fmt.Errorf("meta: cannot open snapshot store in %q: %w", dir, err)
	}
	id := raft.ServerID(strconv.FormatUint(nodeID, 10))
	_, trans := raft.NewInmemTransport(raft.ServerAddress(advertise)) // only encodes the peer list
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: id, Address: raft.ServerAddress(advertise)}}}
	sink, err := snaps.Create(1, index, 1, conf, index, trans)
	if err != nil {
		return fmt.Errorf("meta: cannot create the seed snapshot: %w", err)
	}
	if _, err := sink.Write(state); err != nil {
		sink.Cancel()
		return fmt.Errorf("meta: cannot write the seed snapshot: %w", err)
	}
	return sink.Close()
}
