// Package testenv holds what floe's tests share about their environment:
// waiting for a condition with a deadline (tests never sleep as
// synchronisation) and free loopback ports for the listeners of nodes and
// servers they start.
package testenv

import (
	"net"
	"testing"
	"time"
)

// PollInterval is how often WaitFor checks its condition.
const PollInterval = 10 * time.Millisecond

// WaitFor checks cond every PollInterval until it holds, and fails t
// (Fatalf, naming what) once within has passed without it holding. It
// must be called from the test's goroutine.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	WaitForEvery(t, within, PollInterval, what, cond)
}

// WaitForEvery is WaitFor checking cond every poll, for a condition that is
// costly to check (a request to every node, a docker command).
func WaitForEvery(t testing.TB, within, poll time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(poll) // poll interval of a condition wait
	}
}

// FreePorts returns n distinct TCP ports on 127.0.0.1 that were free when
// it returned: it listens on all of them at once, then closes the
// listeners. Another process may take one before the caller binds it.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("cannot find a free loopback port: %v", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// FreePort returns one free TCP port on 127.0.0.1, as FreePorts.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePorts(t, 1)[0]
}
