package node

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"floe/client"
)

// maxInflight bounds the pipelined requests of one client connection.
const maxInflight = 1024

func (n *Node) acceptClients() {
	for {
		conn, err := n.clientLn.Accept()
		if err != nil {
			if n.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			n.log.Error("client listener failed", "err", err)
			return
		}
		if !n.trackConn(conn, true) {
			conn.Close()
			return
		}
		n.goLoop(func() {
			defer n.trackConn(conn, false)
			n.serveClient(conn)
		})
	}
}

// serveClient runs one client connection. Requests are parsed and dispatched in order
// (appends are routed before the next request is read, so pipelined PUTs keep their
// order); replies are written in request order by a second goroutine.
func (n *Node) serveClient(conn net.Conn) {
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	replies := make(chan chan []byte, maxInflight)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		w := bufio.NewWriterSize(conn, 64<<10)
		for slot := range replies {
			b := <-slot
			if err := client.WriteFrame(w, b); err != nil {
				conn.Close()
				continue
			}
			if len(replies) == 0 {
				if err := w.Flush(); err != nil {
					conn.Close()
				}
			}
		}
		w.Flush()
	}()
	defer func() {
		close(replies)
		<-writerDone
	}()
	r := bufio.NewReaderSize(conn, 64<<10)
	seqs := map[string]*putSeq{} // per topic: keeps this connection's appends in order
	for {
		frame, err := client.ReadFrame(r, client.MaxRequest)
		slot := make(chan []byte, 1)
		switch {
		case errors.Is(err, client.ErrEmptyFrame), errors.Is(err, client.ErrFrameTooLarge):
			slot <- []byte("ERR invalid frame length: " + reason(err))
			replies <- slot
			continue
		case err != nil:
			if !errors.Is(err, io.EOF) && n.ctx.Err() == nil {
				n.log.Debug("client connection ended", "remote", conn.RemoteAddr().String(), "err", err)
			}
			return
		}
		replies <- slot
		n.request(frame, slot, seqs)
	}
}

func reason(err error) string {
	s := err.Error()
	return strings.TrimPrefix(s, "client: ")
}

// errReply renders an error as the protocol's "ERR <reason>".
func errReply(err error) []byte {
	s := err.Error()
	for _, p := range []string{"node: ", "meta: ", "segment: ", "client: ", "tiering: ", "archive: "} {
		s = strings.ReplaceAll(s, p, "")
	}
	return []byte("ERR " + s)
}

// request handles one request; the reply goes to slot, possibly later.
func (n *Node) request(frame []byte, slot chan<- []byte, seqs map[string]*putSeq) {
	req, err := ParseRequest(frame)
	if err != nil {
		n.metrics.badRequests.Inc()
		slot <- errReply(err)
		return
	}
	n.metrics.requests.WithLabelValues(req.Cmd).Inc()
	switch req.Cmd {
	case "PUT", "PUTOFF", "PUTBATCH":
		seq, ok := seqs[req.Topic]
		if !ok {
			seq = newPutSeq(n, req.Topic)
			seqs[req.Topic] = seq
		}
		seq.submit(&putJob{cmd: req.Cmd, payloads: req.Payloads, slot: slot, id: n.newRequestID()})
	default:
		go func() { slot <- n.handle(n.ctx, req) }()
	}
}

func putReply(cmd string, first uint64) []byte {
	if cmd == "PUT" {
		return []byte("OK")
	}
	return strconv.AppendUint([]byte("OK "), first, 10)
}

// handle serves every request but the appends.
func (n *Node) handle(ctx context.Context, req Request) []byte {
	switch req.Cmd {
	case "REGISTER":
		if err := n.Register(ctx, req.Topic, nil); err != nil {
			return errReply(err)
		}
		return []byte("OK")
	case "GET":
		p, ok, err := n.Get(ctx, req.Topic)
		if err != nil {
			return errReply(err)
		}
		if !ok {
			return []byte("EMPTY")
		}
		return append([]byte("OK "), p...)
	case "STATE":
		b, err := n.StateJSON(ctx, req.Topic)
		if err != nil {
			return errReply(err)
		}
		return b
	case "METRICS":
		b, err := n.MetricsJSON()
		if err != nil {
			return errReply(err)
		}
		return b
	case "READ":
		entries, next, err := n.Read(ctx, req.Topic, req.Offset, req.Max)
		if err != nil {
			return errReply(err)
		}
		return client.EncodeEntries(entries, next)
	case "TAIL":
		entries, next, err := n.Tail(ctx, req.Topic, req.Offset, req.Max, time.Duration(req.WaitMS)*time.Millisecond)
		if err != nil {
			return errReply(err)
		}
		return client.EncodeEntries(entries, next)
	}
	return errReply(errors.New("unknown command " + req.Cmd))
}
