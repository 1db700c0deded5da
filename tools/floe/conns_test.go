//go:build linux

package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"floe/client"
	"floe/wire"
)

// openFDs counts the open file descriptors of process pid.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatalf("cannot list the fds of pid %d: %v", pid, err)
	}
	return len(ents)
}

// setNofile sets RLIMIT_NOFILE (soft and hard) of process pid with prlimit(2).
func setNofile(t *testing.T, pid, limit int) {
	t.Helper()
	lim := syscall.Rlimit{Cur: uint64(limit), Max: uint64(limit)}
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), uintptr(syscall.RLIMIT_NOFILE),
		uintptr(unsafe.Pointer(&lim)), 0, 0, 0); errno != 0 {
		t.Fatalf("prlimit(%d, RLIMIT_NOFILE, %d): %v", pid, limit, errno)
	}
}

// roundTrip sends one raw request on a fresh connection to addr and returns the reply.
func roundTrip(addr, req string, timeout time.Duration) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if err := wire.WriteFrame(conn, []byte(req)); err != nil {
		return "", err
	}
	b, err := wire.ReadFrame(bufio.NewReader(conn), wire.MaxReply)
	return string(b), err
}

// rpcStatus opens a node-to-node RPC connection to a cluster port and asks for the
// node's status (the handshake every peer connection starts with).
func rpcStatus(addr string, timeout time.Duration) error {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	msg := []byte{'N'}                             // the mux byte of the RPC protocol
	msg = binary.LittleEndian.AppendUint32(msg, 9) // u64 id + u8 op, no body
	msg = binary.LittleEndian.AppendUint64(msg, 1)
	msg = append(msg, 5) // opStatus
	if _, err := conn.Write(msg); err != nil {
		return err
	}
	var hdr [13]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return err
	}
	if hdr[12] != 0 {
		return errors.New("status call answered with status " + strconv.Itoa(int(hdr[12])))
	}
	return nil
}

// TestAcceptSurvivesEMFILE: a node that runs out of file descriptors while clients
// connect keeps its client and cluster listeners; once the clients let go it serves
// new connections on both ports again.
func TestAcceptSurvivesEMFILE(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 1})
	p := c.node(1)
	pid := p.cmd.Process.Pid
	limit := openFDs(t, pid) + 16
	setNofile(t, pid, limit)

	// Far more connections than fds left: the kernel completes them all (backlog),
	// the node accepts until its table is full, then accept fails with EMFILE.
	var held []net.Conn
	defer func() {
		for _, conn := range held {
			conn.Close()
		}
	}()
	for i := 0; i < 64; i++ {
		addr := p.clientAddr()
		if i%2 == 1 {
			addr = p.raftAddr()
		}
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		held = append(held, conn)
	}
	c.waitFor(20*time.Second, "both listeners to hit the fd limit", func() bool {
		b, _ := os.ReadFile(p.logPath)
		var client, cluster bool
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "too many open files") {
				client = client || strings.Contains(line, "listener=client")
				cluster = cluster || strings.Contains(line, "listener=cluster")
			}
		}
		return client && cluster
	})
	for _, conn := range held {
		conn.Close()
	}
	held = nil

	c.waitFor(30*time.Second, "the client port to serve a new connection", func() bool {
		reply, err := roundTrip(p.clientAddr(), "REGISTER after-emfile", 2*time.Second)
		return err == nil && reply == "OK"
	})
	c.waitFor(30*time.Second, "the cluster port to serve a new RPC connection", func() bool {
		return rpcStatus(p.raftAddr(), 2*time.Second) == nil
	})
	if !p.running() {
		t.Fatal("node exited")
	}
}

// TestMaxConnections: past --max-connections (here through FLOE_MAX_CONNECTIONS) a
// new client connection is answered with one ERR frame and closed; once a client
// leaves, a new one is served.
func TestMaxConnections(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 1, env: []string{"FLOE_MAX_CONNECTIONS=2"}})
	p := c.node(1)
	// The harness's own polls may still be closing; wait until two clients fit.
	var a, b *client.Conn
	c.waitFor(10*time.Second, "two client connections served", func() bool {
		if a != nil {
			a.Close()
		}
		if b != nil {
			b.Close()
		}
		var err error
		if a, err = c.dial(1, 2*time.Second); err != nil {
			return false
		}
		if b, err = c.dial(1, 2*time.Second); err != nil {
			return false
		}
		return a.Register("first") == nil && b.Register("second") == nil
	})
	defer b.Close()

	refused, err := net.DialTimeout("tcp", p.clientAddr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer refused.Close()
	refused.SetDeadline(time.Now().Add(10 * time.Second))
	if err := wire.WriteFrame(refused, []byte("REGISTER third")); err != nil {
		t.Fatalf("write on the refused connection: %v", err)
	}
	r := bufio.NewReader(refused)
	reply, err := wire.ReadFrame(r, wire.MaxReply)
	if err != nil {
		t.Fatalf("the refused connection got no reply: %v", err)
	}
	if !strings.HasPrefix(string(reply), "ERR ") || !strings.Contains(string(reply), "max-connections") {
		t.Fatalf("the refused connection got %q, want an ERR naming --max-connections", reply)
	}
	if extra, err := wire.ReadFrame(r, wire.MaxReply); !errors.Is(err, io.EOF) {
		t.Fatalf("after the ERR frame the refused connection read %q, %v; want EOF", extra, err)
	}
	if err := a.Register("first"); err != nil {
		t.Fatalf("a served client failed: %v", err)
	}

	a.Close()
	c.waitFor(10*time.Second, "a new client served after one left", func() bool {
		reply, err := roundTrip(p.clientAddr(), "REGISTER third", 2*time.Second)
		return err == nil && reply == "OK"
	})
}
