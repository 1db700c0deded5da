package rpc

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The cluster port carries two protocols: Raft (hashicorp/raft's transport) and the
// node-to-node RPC. The dialer sends one byte first that says which.
const (
	MuxRaft byte = 'R'
	MuxRPC  byte = 'N'
)

// Listener accepts on the cluster port and hands each connection to Raft or to the
// RPC server according to its first byte (read within routeTimeout; anything else is
// closed). It implements raft.StreamLayer.
type Listener struct {
	ln        net.Listener
	advertise net.Addr
	raftConns chan net.Conn
	rpcConn   func(net.Conn)
	guard     *Guard
	routing   chan struct{} // one token per connection being routed (maxRouting)
	log       *slog.Logger
	failed    func() // counts a failed accept
	closeOnce sync.Once
	closed    chan struct{}
}

var _ raft.StreamLayer = (*Listener)(nil)

// routeTimeout bounds the wait for a new connection's first byte and its
// authentication (Guard).
const routeTimeout = 10 * time.Second

// maxRouting bounds the connections being routed at once (read their first byte,
// authenticated); past it a new connection is closed at once, so that peers that never
// finish, unauthenticated, cannot take every file descriptor of the node. A member's
// dial that meets the bound fails and is retried like any failed dial.
const maxRouting = 256

// NewListener serves ln: Raft connections go to Accept, RPC connections to rpc (on a
// goroutine of their own), each once guard authenticated it (nil: no authentication);
// advertise is the routable address Raft records as this node's. Raft's dials go
// through guard too. failed (may be nil) counts accepts that failed.
func NewListener(ln net.Listener, advertise string, guard *Guard, rpc func(net.Conn), log *slog.Logger, failed func()) (*Listener, error) {
	adv, err := net.ResolveTCPAddr("tcp", advertise)
	if err != nil {
		return nil, err
	}
	if adv.IP.IsUnspecified() {
		return nil, errors.New("rpc: advertised raft address must be routable, not " + advertise)
	}
	c := &Listener{
		ln: ln, advertise: adv, raftConns: make(chan net.Conn, 16), rpcConn: rpc, guard: guard, routing: make(chan struct{}, maxRouting), log: log, failed: failed, closed: make(chan struct{}),
	}
	go c.serve()
	return c, nil
}

// serve accepts until Close; running out of file descriptors only pauses it (see
// AcceptLoop).
func (c *Listener) serve() {
	AcceptLoop(c.ln, c.closed, c.log, "cluster", c.failed, func(conn net.Conn) {
		select {
		case c.routing <- struct{}{}:
		default:
			conn.Close() // maxRouting connections have not said who they are yet
			return
		}
		go c.route(conn)
	})
}

// route authenticates conn (Guard) and hands it to the protocol its first byte names.
// It holds one of the routing tokens until then.
func (c *Listener) route(conn net.Conn) {
	conn.SetDeadline(time.Now().Add(routeTimeout))
	conn, kind, err := c.guard.accept(conn)
	<-c.routing
	if err != nil {
		conn.Close()
		return
	}
	conn.SetDeadline(time.Time{})
	switch kind {
	case MuxRaft:
		select {
		case c.raftConns <- conn:
		case <-c.closed:
			conn.Close()
		}
	case MuxRPC:
		c.rpcConn(conn)
	default:
		conn.Close()
	}
}

// Accept returns the next Raft connection.
func (c *Listener) Accept() (net.Conn, error) {
	select {
	case conn := <-c.raftConns:
		return conn, nil
	case <-c.closed:
		return nil, net.ErrClosed
	}
}

// Close stops accepting on the cluster port.
func (c *Listener) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.ln.Close()
	})
	return nil
}

// Addr is the advertised address (what raft records as ours).
func (c *Listener) Addr() net.Addr { return c.advertise }

// BoundAddr is the address the listener is bound to (the advertised one may differ).
func (c *Listener) BoundAddr() net.Addr { return c.ln.Addr() }

// Dial opens a Raft connection to a member.
func (c *Listener) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return c.guard.Dial(string(address), MuxRaft, timeout)
}
