// Package rpc is the node-to-node protocol of floe on the cluster port: the mux that
// tells Raft from RPC connections, the frame codec, the ops and their bodies, the
// error codes, the client side (Peer, Peers) and the server side (Server, Conn). It
// knows nothing of a node: package node registers one Handler per op in a Server and
// serves the calls; this package only moves frames, orders them and maps errors.
// See docs/ARCHITECTURE.md for where each call sits in the write and read paths.
//
// # Connections
//
// A Guard first authenticates a connection both ways, when the node has cluster
// credentials: mutual TLS with the cluster CA, a shared secret's challenge-response
// (see Guard for the exchange), or both, TLS outside. Only then comes one byte: 'R' (MuxRaft) hands it to
// hashicorp/raft's transport, 'N' (MuxRPC) to the RPC server; anything else, or
// nothing within 10s, closes it. A Peer keeps one RPC connection per address and
// multiplexes every concurrent call over it. It opens the connection on the first
// call with a handshake, a status call with request id 0, that learns the peer's boot
// id (random per process start), so that a retry can tell a peer that restarted from
// one that was slow.
//
// # Frames
//
// After the mux byte, each direction is a stream of frames, all integers
// little-endian:
//
//	request:
//	+-------------+-------------+---------+----------------------+
//	| length  u32 | id      u64 | op   u8 | body (length-9 bytes) |
//	+-------------+-------------+---------+----------------------+
//	 0             4             12        13
//
//	response:
//	+-------------+-------------+---------+----------------------+
//	| length  u32 | id      u64 | stat u8 | body (length-9 bytes) |
//	+-------------+-------------+---------+----------------------+
//
// length counts id, op or status and body: 9 to MaxFrame (80 MiB); a reader refuses
// anything else before it allocates and drops the connection. A response carries the
// id of its request; status 0 (StatusOK) means the body is the op's reply, 1
// (StatusErr) an error reply. Bodies are built by Encoder: u8, u64, bool (one byte, 0
// or 1) and byte strings as [u32 length][bytes]. Each op's body and reply:
//
//	op            request body                          reply body
//	1 append      topic, segment, id, stream, seq,      first offset u64, segment u64
//	              boot, base, n u64, n payloads
//	2 read        topic, segment, offset, max, maxBytes n u64, n payloads
//	3 apply       meta.Command (its own encoding)       index, cursor, code u8 (255:
//	                                                    none), message
//	4 join        node id u64, raft address             empty
//	5 status      empty                                 applied, last index, state, boot
//	6 count       topic, segment                        count, bytes, sealed (0 or 1)
//	7 sync        empty                                 the FSM's applied index
//	8 unsealed    empty                                 Unix ms of the oldest unsealed
//	                                                    entry this node leads (0: none)
//	9 get         topic, max u64                        n u64, n of [offset u64][payload]
//	10 replicate  topic, segment, epoch, leader, start, the follower's durable count u64
//	              committed, n u64, n payloads
//	11 fence      topic, segment, epoch, lift (bool:    count, bytes, crc of the
//	              lift a fence that proposed nothing)
//	                                                    follower's copy, which takes
//	                                                    no more appends
//
// # Ordering
//
// A Peer queues each request whole under a lock, and one writer goroutine per
// connection writes everything queued in one write, so requests sent in order from
// one goroutine arrive in that order, and the calls of many goroutines leave together.
// Replies are written the same way: a Conn's writer goroutine takes every reply
// pending at once, so whoever answers (an appender, for a whole group commit of
// forwarded appends) never waits for the socket. The server reads a connection's requests in order
// and never waits for one's work on the reader: an op registered with HandleOrdered
// (append, replicate) runs on the reader and only queues its work on the connection's
// queue, which one goroutine runs in arrival order, so a connection's appends reach
// their appenders, and a segment leader's batches its follower's copy, in the order
// they were sent; every other op runs on a goroutine of its
// own. Responses come back in any order and are matched by id. A caller gets its
// reply on a channel (Send, SendBoot, Call) or, with SendFunc, in a callback that the
// connection's reader runs (a time.AfterFunc timer runs it for a timeout, a new
// goroutine for a lost connection), so that a node forwarding thousands of appends
// keeps no goroutine waiting for each.
//
// # Timeouts
//
// Dialling waits DialTimeout (1s), the handshake 2s, a write of requests 5s and of
// replies 10s; a write that fails or runs out drops the connection, failing the calls
// waiting on it (only a failed dial is ErrNotSent: anything queued may have left). Each Call names its own timeout and a context; a timeout, like any failure to
// reach the peer, marks it RecentlyDown for DownFor (3s), which optional calls (reads
// the archive can serve) use to skip it. Answers is the liveness probe: status calls
// over a whole window, so that a live but slow node is not taken for dead.
//
// # Idempotency
//
// status, count, unsealed, read and sync change nothing and are safe to repeat. join
// is idempotent (adding a voter that is one changes nothing). apply carries the
// command's request id and append its request id (and boot id on a retry): the
// receiver answers a repeat with the first attempt's outcome, or, for an append whose
// first attempt went to a node that restarted since, with ErrOutcomeUnknown. get is
// answered only by the Raft leader, which takes the entries from the shared cursor in
// its batch of GETs (elsewhere it is ErrNotRaftLeader, before anything changes); a
// repeat takes further entries, so the entries of an attempt whose reply was lost
// after its advance committed are consumed, as for a client whose connection drops
// after the commit (at most once). A call that failed with an error wrapping
// ErrNotSent never left this node; any other failure that is not a *RemoteError
// (timeout, lost connection) leaves the outcome unknown.
//
// # Errors
//
// An error reply's body is [code u8][message]. The message is the error's text as the
// answering node wrote it; the code names the sentinel it wraps, so that the caller's
// errors.Is works across the wire (a *RemoteError unwraps to it):
//
//	0  other             no sentinel
//	1  not leader        ErrNotSegmentLeader     retryable: route afresh
//	2  unavailable       ErrUnavailable          retryable
//	3  no topic          meta.ErrNoTopic
//	4  bad request       wire.ErrBadRequest
//	5  corrupt           ErrCorrupt
//	6  cursor moved      meta.ErrCursorMoved
//	7  stale segment     meta.ErrStaleSegment    retryable
//	8  bad topic         topicname.ErrInvalid
//	9  raft not leader   meta.ErrNotRaftLeader   retryable: ask the Raft leader
//	10 not found         ErrSegmentNotFound
//	11 outcome unknown   ErrOutcomeUnknown       final
//
// Codes are never renumbered; a code this node does not know decodes as "other".
// Failures to reach a peer (dial, send, lost connection, timeout) are ErrUnavailable
// from this side, never a *RemoteError. Every ErrUnavailable is built by Unavailable,
// which says "unavailable" once however many failures it chains, since the message may
// end up verbatim in a client's ERR reply.
package rpc
