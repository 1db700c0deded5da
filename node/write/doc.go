// Package write is a node's write path: where an append goes, how it gets there, and
// how it is made durable and acknowledged. It holds
//
//   - Appender, the single writer of one topic's active segment on its leader: the
//     group commit, the dedup window, stream sequencing, the lease check, roll-over
//     at the entry, byte and age limits;
//   - Sequence, which keeps one client connection's pipelined appends to a topic in
//     request order across roll-overs and leader changes;
//   - Writer, which routes an append to the leader of the topic's active segment
//     (this node's appender, or forwarded over the node RPC), retries it, and takes
//     the appends peers forward (Received).
//
// It depends on the rest of the node only through the small interfaces in write.go
// (Metadata, Lease, Store and Segment, Proposer, Peers, Metrics), which package node
// implements over its FSM, its lease, its segment.Store, Raft and its rpc.Peers.
//
// # Contract
//
// Durability. An append is acknowledged (Result.Err nil) only after the fdatasync of
// the batch that holds it has returned. The appender takes everything queued while
// its previous batch was written (at most 4096 requests, 8 MiB) and writes it with one
// Segment.AppendBatch: one write and one fdatasync, on the appender's goroutine. That
// is the only batching stage of the write path. If the write or the sync fails, the
// file is back at its last durable size and every request of the batch fails; none is
// acknowledged.
//
// Replication (replicate.go). In a topic of replication factor N above 1, the batch
// is also sent to the segment's N-1 followers before it is written here, and it is
// acknowledged only once N/2 of them and this node hold it durably: at once, or, when
// at least as many requests wait as it carries, after the next batch's own write. A
// batch no majority confirms within Config.ReplicaTimeout stays in the file and is
// answered rpc.ErrOutcomeUnknown. Readers see what a majority holds (Committed). A
// replicated segment is sealed at what a majority holds, and is sealed before anything
// is written to it after a failed write, after a restart, or once a follower is no
// longer a voter, so that no index ever gets two contents.
//
// Fencing. The appender writes only the active segment that the applied metadata
// names this node leader of, and only while Lease holds (checked before every write,
// before the segment file is opened, and before an age roll-over; without it the
// batch fails at once, neither written nor sealed). A sender that expects a newer
// segment than the appender's shows that this node's metadata is behind: its request
// and the rest of the batch fail (rpc.ErrUnavailable).
//
// Order. A request's payloads get consecutive offsets, and requests are written in
// the order the appender takes them. A stream (Tag.Stream, one per client connection
// and topic, see Sequence) is written in Seq order without gaps: an append whose Seq
// does not follow its stream's last written one fails, and so does every later one of
// the stream in the batch, so a failure is always a suffix of what a connection has in
// flight. Tag.Base says that every earlier append of the stream has settled: Seq may
// then start the stream on an appender that does not know it (a new segment, a new
// leader, or a stream forgotten past 16384 tracked ones). Sequencing holds within one
// segment: it starts afresh with each.
//
// Dedup. An appender remembers the outcome of the last DedupWindow (32768) request
// ids it wrote. A retry with a remembered id gets the original outcome instead of
// being written again, but only while this node holds the lease and only if that
// segment is not abandoned since (then it is taken as new, and refused with
// rpc.ErrNotSegmentLeader, which sends it to the segment that replaced it). A retry
// queued behind its original in the same batch is answered like the original. Local
// hand-offs carry no id: they cannot be lost, so they are never retried ambiguously.
//
// Roll-over. After a batch, a segment at its entry or byte limit is sealed locally
// (Segment.Seal) and a Seal command with its count, bytes and CRC is proposed, naming
// the next leader; a batch that would pass a limit is cut there (an empty segment
// always takes its first request). Once its first entry is older than the age limit
// (checked every second, also for a segment not written since a restart, which counts
// from the segment's creation) the segment rolls over too. A damaged segment is never
// sealed. Until the Seal commits, the segment stays sealed locally and nothing is
// written: every later batch retries the commit first.
//
// # Retries
//
// Retryable errors are rpc.ErrNotSegmentLeader, rpc.ErrUnavailable,
// meta.ErrNotRaftLeader and meta.ErrStaleSegment; Append and Sequence retry them
// within the request timeout, with the node's backoff, waking at every metadata
// change. Every other error is final (rpc.ErrOutcomeUnknown, meta.ErrNoTopic, a failed
// fdatasync, ...), and a final failure consumes the request's sequence number (the
// sender starts a new stream).
//
// A forwarded append that got no answer (a timeout, a connection lost after it left;
// not an error the leader sent, not one wrapping rpc.ErrNotSent) is ambiguous: it may
// have been written. Its retry is pinned to the same node, with the same id and that
// node's boot id, until the node answers: with the remembered outcome, or with
// rpc.ErrNotSegmentLeader, which proves it never wrote it; only then is it routed
// afresh. A node that restarted since answers rpc.ErrOutcomeUnknown, which is final,
// so an append is never written twice by a retry (a client's own resent PUT has no id).
//
// Sequence runs a fast path while routes are stable: every append is routed and
// handed off at once. When the route changes while appends are in flight, new ones are
// held until those settle, then pipelined to the new route; when an append fails retryably, every in-flight one settles
// first, then the failed ones are retried one at a time, in request order, before
// anything submitted later is sent.
package write
