// Package meta is floe's replicated metadata: a hashicorp/raft group whose state
// machine (FSM) holds topics, their segments, the members and the shared GET cursors.
// Segment data never enters it, nor its snapshots.
//
// Commands (Command, JSON-encoded in the Raft log) are idempotent: each names the state
// it expects (create_topic of an existing topic is a no-op, seal of an already sealed
// segment with the same totals is a no-op, advance_cursor is a compare-and-set), so a
// command retried after raft.ErrLeadershipLost, whose outcome is unknown, is harmless.
//
// On disk, under <data-dir>/raft:
//
//	raft/
//	  log/                Pebble: the Raft log and stable store (package logstore)
//	  snapshots/<id>/     raft.FileSnapshotStore: state.bin = JSON of State, meta.json
//
// Membership: an empty data dir without --join bootstraps a single-voter cluster (once;
// raft.ErrCantBootstrap on a member with state is a restart, not an error). A joining
// node is added by the leader with AddVoter; a restarted member just rejoins.
package meta
