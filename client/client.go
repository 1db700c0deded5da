// Package client is the Go client of floe's Walrus-compatible protocol: length-prefixed
// text frames plus floe's binary-safe extensions, encoded and decoded by package wire
// (whose doc states the protocol). It knows only the protocol; any node of a cluster
// accepts any request.
package client

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"floe/wire"
)

// Conn is one connection to a node. Calls are serialised by a lock; for pipelining use
// Send and Flush from one goroutine and Recv from one goroutine, the same or another
// (requests and replies have buffers of their own; replies come back in request order).
type Conn struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	// Timeout bounds each call (0 = none).
	Timeout time.Duration
}

// Dial connects to the first of addrs (comma-separated host:port list, or several
// arguments) that answers, over plain TCP.
func Dial(addrs ...string) (*Conn, error) { return Dialer{}.Dial(addrs...) }

// Dialer says how to connect to a node. The zero Dialer is Dial's: plain TCP, a 3 s
// connect timeout.
type Dialer struct {
	// TLS, when set, makes the connection TLS with this configuration. An empty
	// ServerName is taken from the address dialled, as crypto/tls does.
	TLS *tls.Config
	// Timeout bounds connecting, the TLS handshake included (0: 3 s).
	Timeout time.Duration
	// Token, when set, is sent as AUTH <token> before anything else; a refusal fails
	// the dial.
	Token string
}

// Dial connects to the first of addrs (as the package's Dial) that answers.
func (d Dialer) Dial(addrs ...string) (*Conn, error) {
	var list []string
	for _, a := range addrs {
		for _, s := range strings.Split(a, ",") {
			if s = strings.TrimSpace(s); s != "" {
				list = append(list, s)
			}
		}
	}
	if len(list) == 0 {
		return nil, errors.New("client: no address")
	}
	timeout := d.Timeout
	if timeout == 0 {
		timeout = 3 * time.Second
	}
	var errs []error
	for _, a := range list {
		c, err := d.dialOne(a, timeout)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		conn := &Conn{conn: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 64<<10), Timeout: 30 * time.Second}
		if d.Token != "" {
			if err := conn.Auth(d.Token); err != nil {
				conn.Close()
				return nil, fmt.Errorf("client: %s: %w", a, err)
			}
		}
		return conn, nil
	}
	return nil, fmt.Errorf("client: cannot connect to %s: %w", strings.Join(list, ","), errors.Join(errs...))
}

func (d Dialer) dialOne(addr string, timeout time.Duration) (net.Conn, error) {
	nd := &net.Dialer{Timeout: timeout} // Go sets TCP_NODELAY on TCP connections
	if d.TLS == nil {
		return nd.Dial("tcp", addr)
	}
	c, err := tls.DialWithDialer(nd, "tcp", addr, d.TLS)
	if err != nil {
		return nil, fmt.Errorf("TLS with %s: %w", addr, err)
	}
	return c, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.conn.Close() }

// RemoteAddr is the node's address.
func (c *Conn) RemoteAddr() string { return c.conn.RemoteAddr().String() }

// SetDeadline bounds the connection's reads and writes (zero: none), for pipelining
// with Send and Recv; Do sets its own from Timeout.
func (c *Conn) SetDeadline(t time.Time) error { return c.conn.SetDeadline(t) }

// Send buffers one request frame (pipelining; call Flush, then Recv once per Send).
func (c *Conn) Send(req []byte) error { return wire.WriteFrame(c.w, req) }

// Flush writes buffered requests.
func (c *Conn) Flush() error { return c.w.Flush() }

// Recv reads the next reply.
func (c *Conn) Recv() ([]byte, error) { return wire.ReadFrame(c.r, wire.MaxReply) }

// Do sends one raw request and returns the raw reply.
func (c *Conn) Do(req []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Timeout > 0 {
		c.conn.SetDeadline(time.Now().Add(c.Timeout))
		defer c.conn.SetDeadline(time.Time{})
	}
	if err := c.Send(req); err != nil {
		return nil, err
	}
	if err := c.Flush(); err != nil {
		return nil, err
	}
	return c.Recv()
}

// ok runs a request whose success reply is "OK" or "OK <rest>" and returns <rest>.
func (c *Conn) ok(req string) (string, error) {
	reply, err := c.Do([]byte(req))
	if err != nil {
		return "", err
	}
	if err := wire.ReplyError(reply); err != nil {
		return "", err
	}
	if bytes.Equal(reply, []byte("OK")) {
		return "", nil
	}
	if !bytes.HasPrefix(reply, []byte("OK ")) {
		return "", fmt.Errorf("%w: %q", wire.ErrBadReply, truncate(reply))
	}
	return string(reply[3:]), nil
}

// Auth authenticates the connection with token (floe's AUTH request): the node
// checks the connection's later requests against the token's role.
func (c *Conn) Auth(token string) error {
	if token == "" || strings.ContainsAny(token, " \t\r\n") {
		return errors.New("client: a token is one word")
	}
	_, err := c.ok("AUTH " + token)
	return err
}

// Register creates a topic (idempotent).
func (c *Conn) Register(topic string) error {
	_, err := c.ok("REGISTER " + topic)
	return err
}

// Put appends one entry; it returns once the entry is fsynced on its segment leader.
// As in Walrus, the request is text: trailing whitespace of payload is trimmed by the
// node. Use PutBatch for arbitrary bytes.
func (c *Conn) Put(topic string, payload []byte) error {
	_, err := c.ok("PUT " + topic + " " + string(payload))
	return err
}

// PutOffset appends one entry and returns its offset.
func (c *Conn) PutOffset(topic string, payload []byte) (uint64, error) {
	s, err := c.ok("PUTOFF " + topic + " " + string(payload))
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(s, 10, 64)
}

// PutBatch appends payloads (any bytes, each non-empty) as one contiguous run and
// returns the offset of the first.
func (c *Conn) PutBatch(topic string, payloads [][]byte) (uint64, error) {
	reply, err := c.Do(wire.EncodeBatch(topic, payloads))
	if err != nil {
		return 0, err
	}
	return ParseOffsetReply(reply)
}

// ParseOffsetReply parses "OK <offset>".
func ParseOffsetReply(reply []byte) (uint64, error) {
	if err := wire.ReplyError(reply); err != nil {
		return 0, err
	}
	if !bytes.HasPrefix(reply, []byte("OK ")) {
		return 0, fmt.Errorf("%w: %q", wire.ErrBadReply, truncate(reply))
	}
	return strconv.ParseUint(string(reply[3:]), 10, 64)
}

// Get takes the next entry of the topic's shared cursor; ok is false when there is none.
func (c *Conn) Get(topic string) (payload []byte, ok bool, err error) {
	reply, err := c.Do([]byte("GET " + topic))
	if err != nil {
		return nil, false, err
	}
	if err := wire.ReplyError(reply); err != nil {
		return nil, false, err
	}
	if bytes.Equal(reply, []byte("EMPTY")) {
		return nil, false, nil
	}
	if !bytes.HasPrefix(reply, []byte("OK ")) {
		return nil, false, fmt.Errorf("%w: %q", wire.ErrBadReply, truncate(reply))
	}
	return reply[3:], true, nil
}

// GetBatch takes up to max entries (1 to 10000) of the topic's shared cursor in one
// cursor advance (floe's "GET <topic> <max>"), with their offsets; none when the
// cursor is at the end. Each entry goes to one GET caller in the cluster.
func (c *Conn) GetBatch(topic string, max int) ([]Entry, error) {
	reply, err := c.Do([]byte("GET " + topic + " " + strconv.Itoa(max)))
	if err != nil {
		return nil, err
	}
	if bytes.Equal(reply, []byte("EMPTY")) {
		return nil, nil
	}
	entries, _, err := wire.DecodeEntries(reply)
	return entries, err
}

// Read returns up to max entries from offset on, and the offset to continue from.
func (c *Conn) Read(topic string, offset uint64, max int) ([]Entry, uint64, error) {
	reply, err := c.Do([]byte(fmt.Sprintf("READ %s %d %d", topic, offset, max)))
	if err != nil {
		return nil, offset, err
	}
	return wire.DecodeEntries(reply)
}

// Tail is Read that waits up to wait for at least one entry.
func (c *Conn) Tail(topic string, offset uint64, max int, wait time.Duration) ([]Entry, uint64, error) {
	reply, err := c.Do([]byte(fmt.Sprintf("TAIL %s %d %d %d", topic, offset, max, wait.Milliseconds())))
	if err != nil {
		return nil, offset, err
	}
	return wire.DecodeEntries(reply)
}

// State returns the STATE reply of a topic, decoded.
func (c *Conn) State(topic string) (*TopicState, error) {
	var st TopicState
	raw, err := c.jsonCall("STATE "+topic, &st)
	if err != nil {
		return nil, err
	}
	st.Raw = raw
	return &st, nil
}

// Metrics returns the METRICS reply, decoded.
func (c *Conn) Metrics() (*Metrics, error) {
	var m Metrics
	raw, err := c.jsonCall("METRICS", &m)
	if err != nil {
		return nil, err
	}
	m.Raw = raw
	return &m, nil
}

func (c *Conn) jsonCall(req string, v any) ([]byte, error) {
	reply, err := c.Do([]byte(req))
	if err != nil {
		return nil, err
	}
	if err := wire.ReplyError(reply); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(reply, v); err != nil {
		return nil, fmt.Errorf("%w: %v", wire.ErrBadReply, err)
	}
	return reply, nil
}

// Entry is one entry of a topic with its offset (wire.Entry).
type Entry = wire.Entry

// ServerError is an "ERR <reason>" reply (wire.ServerError); test with
// errors.As.
type ServerError = wire.ServerError

// SegmentInfo is one element of STATE's segments list (wire.SegmentInfo).
type SegmentInfo = wire.SegmentInfo

// TopicState is the decoded STATE reply, and the reply as received.
type TopicState struct {
	wire.TopicState
	Raw []byte `json:"-"`
}

// Metrics is the decoded METRICS reply, and the reply as received.
type Metrics struct {
	wire.ClusterMetrics
	Raw []byte `json:"-"`
}

func truncate(b []byte) []byte {
	if len(b) > 120 {
		return b[:120]
	}
	return b
}
