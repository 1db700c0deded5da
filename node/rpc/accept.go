package rpc

import (
	"errors"
	"log/slog"
	"net"
	"time"
)

// Accept back-off, as net/http's Server.Serve: 5 ms after the first failure, doubling
// up to a second while accept keeps failing.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// AcceptLoop accepts connections on ln and hands each to handle, until ln is closed or
// stop is. A failed accept (EMFILE or ENFILE when the process or the system is out of
// file descriptors, ECONNABORTED, ENOBUFS) never ends the loop: it backs off and accepts
// again, so a node that ran out of descriptors serves again once some are released.
// Each failure is counted by failed (may be nil); the first of a run of failures and
// the recovery are logged. It serves the client port as well as the cluster port.
func AcceptLoop(ln net.Listener, stop <-chan struct{}, log *slog.Logger, what string, failed func(), handle func(net.Conn)) {
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err == nil {
			if delay != 0 {
				log.Info("accepting connections again", "listener", what, "addr", ln.Addr().String())
				delay = 0
			}
			handle(conn)
			continue
		}
		select {
		case <-stop:
			return
		default:
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if failed != nil {
			failed()
		}
		if delay == 0 {
			delay = acceptBackoffMin
			log.Warn("cannot accept a connection; retrying with back-off (out of file descriptors? see the fd limit in the README)",
				"listener", what, "addr", ln.Addr().String(), "err", err)
		} else {
			delay = min(2*delay, acceptBackoffMax)
		}
		t := time.NewTimer(delay)
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}
