// Package read is a node's read path: READ and TAIL by offset, GET through the
// topic's shared cursor, and the answer to a peer's read of a segment this node holds.
// Package node composes it: it implements the small interfaces declared here
// (Metadata, Local, Owner, Archive, Proposer) and hands client and peer requests to a
// Reader. The read path is drawn in docs/ARCHITECTURE.md.
//
// # Which tier serves a read
//
// A read resolves its offset to one segment in the metadata, then takes the first of
// these that holds it (readSegment, the one place the order is decided):
//
//	local   this node's disk, unless the metadata says the local copy was evicted
//	owner   the node that led the segment, if that is not this node; skipped for a
//	        few seconds after a call to it failed, while the archive holds the segment
//	        or, for an active replicated segment, its followers do; then, for a sealed
//	        replicated segment, its other replicas' checked copies
//	copies  for an active replicated segment whose leader did not answer (within
//	        copyReadWait), its followers' copies, this node's first, each up to what
//	        the leader told it a majority holds (ReadCopy); none that has entries at
//	        the offset: the leader's error
//	archive the object store, if the segment is archived
//
// An owner that is down, or no longer holds the segment, falls through to the archive.
// A segment that is on no node that answers and not archived is unreadable: the error
// names the segment and the owner ("segment 3 of "t" is only on node 2 (not archived
// yet): ..."), wrapping the owner's error (ErrUnavailable when it is down), or, when
// no node should hold it, ErrSegmentNotFound. A corrupt local copy of an archived
// segment is logged and read from the archive.
//
// # Errors
//
//   - ErrExpired: the offset is in a segment topic retention expired ("the earliest
//     offset kept is N") or one floe restore --cluster marked lost ("the next offset
//     kept is N"). The HTTP API answers it 410 Gone. Final.
//   - ErrUnavailable: a node or the archive cannot be reached; Read retries it until
//     Config.RequestTimeout while it has read nothing.
//   - ErrCorrupt: a stored copy failed its checksum or disagrees with the metadata (a
//     sealed local copy holding fewer entries than the metadata says). Final.
//   - ErrSegmentNotFound: no copy of an unexpired segment can be found.
//
// # Invariants
//
//   - Never corrupt data: every payload returned was checked against its CRC by
//     package segment or archive/seekable; a failure is an error, never data, and a
//     short local copy is ErrCorrupt, never a short read.
//   - Offsets are dense: a Read returns entries offset, offset+1, ..., and the offset
//     to continue from. It crosses into the next segment only when the current one is
//     sealed and exhausted; it returns at most MaxBytes of payload, but at least one
//     entry when there is one.
//   - A sealed segment is never read past its metadata count, whatever a copy holds.
//
// # The shared cursor
//
// GET hands out each offset at most once across the cluster: the cursor moves by a
// compare-and-set (advance From -> To) through Raft, and only the GETs whose advance
// commits get the entries; a batch that loses the race (meta.ErrCursorMoved) reads the
// new cursor and tries again. GETs are group-committed per topic: the GETs waiting
// together share one read at the cursor and one advance past everything they take,
// and the entries are handed out in arrival order, each to one GET, at most its limit
// to each (cursor.go). A topic has a goroutine only while its GETs wait. The Proposer
// gives every attempt of one advance the same request id, so an attempt that
// committed although its answer was lost is not applied again: the retry returns its
// success and the batch hands its entries out, which are thus neither handed out
// twice nor skipped. (Entries can still be lost to a client whose connection drops
// after the commit, or to a failure after the advance may have committed: at most
// once, not exactly once.) The cursor moves past what retention expired (the Expire
// command does it), past segments marked lost (GET does it), and past segments
// abandoned by recover-segment (they hold no offsets). Package node runs the batches
// on the Raft leader, whose own advances are applied before its next read of the
// cursor, and forwards GETs there.
package read
