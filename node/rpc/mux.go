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
	// routingAll and routingBy count the connections being routed, in all and by
	// remote host (maxRouting, maxRoutingPerHost).
	routingMu  sync.Mutex
	routingAll int
	routingBy  map[string]int
	log        *slog.Logger
	failed     func() // counts a failed accept
	closeOnce  sync.Once
	closed     chan struct{}
}

var _ raft.StreamLayer = (*Listener)(nil)

// routeTimeout bounds the wait for a new connection's first byte and its
// authentication (Guard).
const routeTimeout = 10 * time.Second

// maxRouting and maxRoutingPerHost bound the connections being routed at once (their
// first byte read, authenticated), in all and from one remote host; past them a new
// connection is closed at once, so that peers that never finish, unauthenticated,
// cannot take every file descriptor of the node, and one host cannot take every slot.
// A member's dial that meets a bound fails and is retried like any failed dial.
// firstByteTimeout: a dialler sends its first byte at once.
const (
	maxRouting        = 256
	maxRoutingPerHost = 32
	firstByteTimeout  = 2 * time.Second
)

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
		ln: ln, advertise: adv, raftConns: make(chan net.Conn, 16), rpcConn: rpc, guard: guard, log: log, failed: failed, closed: make(chan struct{}),
	}
	go c.serve()
	return c, nil
}

// serve accepts until Close; running out of file descriptors only pauses it (see
// AcceptLoop).
func (c *Listener) serve() {
	AcceptLoop(c.ln, c.closed, c.log, "cluster", c.failed, func(conn net.Conn) {
		host := remoteHost(conn)
		if !c.startRouting(host) {
			conn.Close() // too many connections that have not said who they are yet
			return
		}
		go c.route(conn, host)
	})
}

// startRouting takes a routing slot for a connection from host: at most maxRouting in
// all and maxRoutingPerHost from one host, so that one flooding host cannot keep the
// members' connections out.
func (c *Listener) startRouting(host string) bool {
	c.routingMu.Lock()
	defer c.routingMu.Unlock()
	if c.routingAll >= maxRouting || c.routingBy[host] >= maxRoutingPerHost {
		return false
	}
	if c.routingBy == nil {
		c.routingBy = map[string]int{}
	}
	c.routingAll++
	c.routingBy[host]++
	return true
}

func (c *Listener) doneRouting(host string) {
	c.routingMu.Lock()
	defer c.routingMu.Unlock()
	c.routingAll--
	if c.routingBy[host]--; c.routingBy[host] == 0 {
		delete(c.routingBy, host)
	}
}

// remoteHost is the IP address a connection comes from.
func remoteHost(conn net.Conn) string {
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return conn.RemoteAddr().String()
}

// route authenticates conn (Guard) and hands it to the protocol its first byte names.
// It holds host's routing slot until then. The first byte must come within
// firstByteTimeout, the rest of the authentication within routeTimeout.
func (c *Listener) route(conn net.Conn, host string) {
	end := time.Now().Add(routeTimeout)
	conn.SetDeadline(end)
	conn.SetReadDeadline(time.Now().Add(firstByteTimeout))
	conn, kind, err := c.guard.accept(conn, end)
	c.doneRouting(host)
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
