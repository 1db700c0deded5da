// Package node is one floe node, the composition root: its config, Start and Close,
// the loops, the Walrus-protocol client listener, the write lease, the handlers of the
// node-to-node RPC, and the HTTP API. The write path (appenders, routing, forwarding)
// is package node/write, the read path package node/read; the local segment files are
// kept by package node/segment;
// the cluster metadata by package meta; the node-to-node protocol (frames, peers,
// error codes) by package node/rpc.
//
// Write path: package node/write (its doc.go states the contract). A PUT is routed
// when it is read (write.Sequence): if this node leads the topic's active segment, it
// goes to the topic's appender; else it is forwarded, on one ordered RPC connection, to
// the leader's appender. The appender takes everything queued while its previous batch
// was being written and fsynced, checks the write lease, and appends it with one
// segment.AppendBatch: one WriteAt and one fdatasync (the one group commit). It
// replies only after that fdatasync; a failed write or sync fails the whole batch.
// When the segment reaches a limit it seals it locally and commits Seal through Raft,
// naming the next leader round-robin; queued writes then go to the new leader. This
// package gives node/write its metadata, lease, segment files, proposer and peers
// (writepath.go) and owns the lease itself (hasLease).
//
// Read path: package node/read (Read, Tail, Get, and the local -> owner -> archive
// decision). The node composes it in readpath.go, implementing its interfaces over the
// FSM, the segment store, the RPC peers and the archive.
//
// Ports: the client port speaks the Walrus protocol (package wire, served by
// server.go); the cluster port carries Raft and node RPC, told apart by the first
// byte of each connection (node/rpc's Listener); rpcserve.go registers a handler per
// op.
//
// On disk, under --data-dir:
//
//	raft/                       Raft log, stable store and snapshots (package meta)
//	segments/<key>/<id>.wal     one WAL file per segment this node led or follows (package
//	                            node/segment); <key> is the topic's key, <name>@<id>
//	abandoned/<key>/            salvage copies of segments abandoned by recover-segment
//	cache/                      archive frames read (bounded by --cache-bytes; emptied at start)
//	upload/                     objects being encoded for upload (emptied at start)
package node
