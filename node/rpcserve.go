package node

import (
	"fmt"
	"net"
	"time"

	"floe/meta"
	"floe/node/read"
	"floe/node/rpc"
	"floe/node/write"
	"floe/wire"
)

// newRPCServer is this node's handler table of the node-to-node ops (their bodies are
// drawn in node/rpc/doc.go). Appends are ordered: each is queued on its connection
// before the next request is read, so a connection's appends keep their order; every
// other op runs on a goroutine of its own.
func (n *Node) newRPCServer() *rpc.Server {
	s := &rpc.Server{Go: n.goLoop}
	s.HandleOrdered(rpc.OpAppend, n.rpcAppend)
	s.HandleOrdered(rpc.OpReplicate, n.rpcReplicate)
	s.Handle(rpc.OpRead, n.rpcRead)
	s.Handle(rpc.OpApply, n.rpcApply)
	s.Handle(rpc.OpJoin, n.rpcJoin)
	s.Handle(rpc.OpStatus, n.rpcStatus)
	s.Handle(rpc.OpSync, n.rpcSync)
	s.Handle(rpc.OpUnsealed, n.rpcUnsealed)
	s.Handle(rpc.OpCount, n.rpcCount)
	s.Handle(rpc.OpGet, n.rpcGet)
	s.Handle(rpc.OpFence, n.rpcFence)
	s.Handle(rpc.OpReport, n.rpcReport)
	return s
}

// serveRPC serves one inbound node-to-node connection, once Raft and the FSM are set.
func (n *Node) serveRPC(conn net.Conn) {
	select {
	case <-n.rpcReady:
	case <-n.ctx.Done():
		conn.Close()
		return
	}
	if !n.trackConn(conn, true) {
		conn.Close()
		return
	}
	defer n.trackConn(conn, false)
	n.rpcServer.ServeConn(conn)
}

// rpcAppend queues a forwarded append for the topic's appender, on the reader of its
// connection (see newRPCServer and write.Writer.Received).
func (n *Node) rpcAppend(req *rpc.Request) {
	a, err := rpc.DecodeAppend(req.Body)
	if err != nil {
		req.Reply(nil, err)
		return
	}
	to, r, err := n.writer.Received(&a, func(r write.Result) {
		if r.Err != nil {
			req.Reply(nil, r.Err)
			return
		}
		req.Reply(write.EncodeReply(r), nil)
	})
	if err != nil {
		req.Reply(nil, err)
		return
	}
	// A refused append makes the ones queued behind it on this connection fail too
	// (the appender's stream order), so the sender's retries keep their order.
	if err := req.Conn.Queue(r.Bytes, func() { to.Enqueue(r) }); err != nil {
		r.Done(write.Result{Err: err})
	}
}

// rpcRead serves entries of a segment this node holds.
func (n *Node) rpcRead(req *rpc.Request) {
	d := rpc.NewDecoder(req.Body)
	topic, segID, offset, max, maxBytes := d.Str(), d.U64(), d.U64(), d.U64(), d.U64()
	// A trailing flag asks for this node's copy of an active replicated segment it
	// follows, as readers may see it (the segment's leader does not answer).
	fromCopy := len(d.B) > 0 && d.Bool()
	if d.Err != nil || max == 0 || max > wire.MaxReadMax {
		req.Reply(nil, fmt.Errorf("%w: malformed read", ErrBadRequest))
		return
	}
	seg, ok := n.peerSegment(topic, segID)
	if !ok || offset < seg.Base {
		req.Reply(nil, fmt.Errorf("%w: segment %d of %q at offset %d", ErrSegmentNotFound, segID, topic, offset))
		return
	}
	var entries []wire.Entry
	var err error
	if fromCopy {
		entries, err = n.reader.ReadCopy(topic, &seg, offset, int(max), int(min(maxBytes, read.MaxBytes)))
	} else {
		entries, err = n.reader.ReadLocal(topic, &seg, offset, int(max), int(min(maxBytes, read.MaxBytes)))
	}
	if err != nil {
		req.Reply(nil, err)
		return
	}
	var e rpc.Encoder
	e.U64(uint64(len(entries)))
	for _, en := range entries {
		e.Bytes(en.Payload)
	}
	req.Reply(e.B, nil)
}

// rpcApply commits a metadata command forwarded to this node as the Raft leader
// (meta.ErrNotRaftLeader if it is not).
func (n *Node) rpcApply(req *rpc.Request) {
	cmd, err := meta.DecodeCommand(req.Body)
	if err != nil {
		req.Reply(nil, err)
		return
	}
	res, index, err := n.raft.Apply(cmd, 5*time.Second)
	if f := n.applyFault.Load(); f != nil && err == nil {
		err = (*f)(cmd)
	}
	if err != nil {
		req.Reply(nil, err)
		return
	}
	req.Reply(rpc.ApplyReply{Index: index, Cursor: res.Cursor, Err: res.Err}.Encode(), nil)
}

// encodeJoin is the body of an OpJoin call.
func encodeJoin(id uint64, raftAddr string) []byte {
	var e rpc.Encoder
	e.U64(id)
	e.Str(raftAddr)
	return e.B
}

// rpcJoin adds the asking node as a voter (see join).
func (n *Node) rpcJoin(req *rpc.Request) {
	d := rpc.NewDecoder(req.Body)
	nodeID, addr := d.U64(), d.Str()
	if d.Err != nil || nodeID == 0 || addr == "" {
		req.Reply(nil, fmt.Errorf("%w: malformed join", ErrBadRequest))
		return
	}
	req.Reply(nil, n.join(nodeID, addr))
}

// rpcStatus answers the liveness probe and the handshake of every connection.
func (n *Node) rpcStatus(req *rpc.Request) {
	st := rpc.Status{Applied: n.raft.AppliedIndex(), LastIndex: n.raft.LastIndex(), State: n.raft.State(), Boot: n.bootID}
	req.Reply(st.Encode(), nil)
}

// rpcSync is the read barrier run at the Raft leader for syncMeta.
func (n *Node) rpcSync(req *rpc.Request) {
	if err := n.raft.Barrier(5 * time.Second); err != nil {
		req.Reply(nil, err)
		return
	}
	var e rpc.Encoder
	e.U64(n.fsm.AppliedIndex()) // the FSM's: Raft's own runs ahead of it
	req.Reply(e.B, nil)
}

// rpcUnsealed answers write.Writer.OldestUnsealedMS, for floe_cluster_rpo_seconds.
func (n *Node) rpcUnsealed(req *rpc.Request) {
	var e rpc.Encoder
	e.U64(uint64(n.writer.OldestUnsealedMS()))
	req.Reply(e.B, nil)
}

// rpcCount answers the durable count and bytes of a local segment, and whether it is
// sealed locally while the metadata still has it active.
func (n *Node) rpcCount(req *rpc.Request) {
	d := rpc.NewDecoder(req.Body)
	topic, segID := d.Str(), d.U64()
	sm, ok := n.peerSegment(topic, segID)
	if d.Err != nil || !ok {
		req.Reply(nil, fmt.Errorf("%w: segment %d of %q", ErrSegmentNotFound, segID, topic))
		return
	}
	seg, err := n.localSegment(topic, &sm)
	if err != nil {
		req.Reply(nil, err)
		return
	}
	defer n.store.Release(seg)
	var e rpc.Encoder
	e.U64(seg.Count())
	e.U64(uint64(seg.Bytes()))
	sealed := uint64(0)
	if seg.Sealed() && sm.State == meta.Active {
		sealed = 1
	}
	e.U64(sealed)
	req.Reply(e.B, nil)
}
