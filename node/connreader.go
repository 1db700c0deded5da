package node

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"syscall"

	"floe/wire"
)

// requestBuffers are the connections' read buffers, lent while a connection has
// bytes to read (connReader).
var requestBuffers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, requestBufferSize) }}

// connReader reads a client connection's request frames through a read buffer it
// borrows only while the connection has bytes waiting: it waits for the socket to be
// readable without a buffer, takes one from requestBuffers, reads frames while any
// bytes remain in it, and gives it back once they are all consumed (each frame is
// copied out of the buffer). So an idle connection, of which a node may hold
// thousands, holds no read buffer. A connection that is not a plain socket (a
// net.Pipe in tests) keeps one buffer for its life.
type connReader struct {
	conn net.Conn
	raw  syscall.RawConn // nil: not a socket, keep br
	br   *bufio.Reader   // nil while idle

	peekFn func(uintptr) bool // c.peek
	peeked bool               // waitReadable has peeked once
}

func newConnReader(conn net.Conn) *connReader {
	c := &connReader{conn: conn}
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	return c
}

// next reads one frame (wire.ReadFrame).
func (c *connReader) next(max int) ([]byte, error) {
	if c.br == nil {
		if c.raw != nil {
			if err := c.waitReadable(); err != nil {
				return nil, err
			}
		}
		c.br = requestBuffers.Get().(*bufio.Reader)
		c.br.Reset(c.conn)
	}
	frame, err := wire.ReadFrame(c.br, max)
	if c.raw != nil && c.br.Buffered() == 0 {
		c.release()
	}
	return frame, err
}

// release gives the read buffer back; call it when done with the connection.
func (c *connReader) release() {
	if c.br != nil {
		c.br.Reset(nil)
		requestBuffers.Put(c.br)
		c.br = nil
	}
}

// waitReadable returns once the socket has bytes to read, has reached its end or
// has an error (which the read after it reports): a one-byte MSG_PEEK that would
// block makes the runtime's poller wait for the socket, and the call after the
// wait reads nothing. The read deadline, if any, applies.
func (c *connReader) waitReadable() error {
	if c.peekFn == nil {
		c.peekFn = c.peek // made once: a method value allocates
	}
	c.peeked = false
	return c.raw.Read(c.peekFn)
}

// peek is waitReadable's RawConn.Read function.
func (c *connReader) peek(fd uintptr) bool {
	if c.peeked {
		return true // woken by the poller: readable, closed or failed
	}
	c.peeked = true
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return !errors.Is(err, syscall.EAGAIN)
}
