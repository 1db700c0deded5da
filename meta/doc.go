// Package meta is floe's replicated metadata: a hashicorp/raft group whose state
// machine (FSM) holds topics, their segments, the members and the shared GET cursors.
// Segment data never enters it, nor its snapshots.
//
// Topics are known by key (Topic.Key: "<name>@<incarnation id>", the bare name for the
// topics created before incarnation ids): State.Topics is keyed by it and commands name
// it, so a command meant for a deleted topic never changes one created again under its
// name. Clients' names are resolved to keys with Resolve; State.Dead tells a deleted
// incarnation, from any state that does not run ahead of the cluster's.
//
// Commands (Command, JSON-encoded in the Raft log) are applied at most once per request:
// the proposer gives each request a random request id, the same on every attempt, and
// the FSM remembers the results of the last MaxRememberedRequests such commands (in its
// snapshots too). A retry after raft.ErrLeadershipLost or a lost reply, whose outcome is
// unknown, gets the first attempt's result if that committed (a retried advance_cursor
// answers "moved to c+1", not ErrCursorMoved); a retry the table may have forgotten is
// refused with ErrOutcomeUnknown. Commands without an id (older logs) apply as before.
//
// On disk, under <data-dir>/raft:
//
//	raft/
//	  log/                Pebble: the Raft log and stable store (package logstore)
//	  snapshots/<id>/     raft.FileSnapshotStore: meta.json, and state.bin = JSON of
//	                      State plus "requests" (the request table) and
//	                      "applied_index" (both optional: absent in older snapshots)
//
// Membership: an empty data dir without --join bootstraps a single-voter cluster (once;
// raft.ErrCantBootstrap on a member with state is a restart, not an error). A joining
// node is added by the leader with AddVoter; a restarted member just rejoins.
package meta
