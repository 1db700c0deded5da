package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"floe/client"
	"floe/internal/testenv"
)

// TestRollOverByBytesAndAge: a segment rolls over when it reaches --max-segment-bytes,
// and a quiet, non-empty segment rolls over once --max-segment-age has passed.
func TestRollOverByBytesAndAge(t *testing.T) {
	c := startCluster(t, clusterOpts{args: []string{"--max-segment-bytes", "4096", "--max-segment-age", "1s"}})
	w := c.conn(1)
	mustOK(t, w.Register("bytes"), "REGISTER")
	payload := strings.Repeat("b", 1000) // 1008 bytes with the record header: 4 fit in 4096
	for i := 0; i < 10; i++ {
		mustOK(t, w.Put("bytes", []byte(payload)), "PUT %d", i)
	}
	st := c.state(2, "bytes")
	var sealed uint64
	for _, s := range st.Segments {
		if s.State == "active" {
			continue
		}
		if s.Bytes > 4096 || s.Count == 0 {
			t.Fatalf("sealed segment %d holds %d entries, %d bytes; limit 4096", s.ID, s.Count, s.Bytes)
		}
		sealed += s.Count
	}
	if len(st.Segments) < 3 {
		t.Fatalf("10 entries of 1008 bytes with a 4096-byte limit made %d segments, want >= 3: %s", len(st.Segments), st.Raw)
	}

	// Age: after the last write, the active segment is non-empty; within a few seconds
	// it is sealed without any further write.
	before := c.state(3, "bytes")
	act := before.Segments[len(before.Segments)-1]
	if act.State != "active" {
		t.Fatalf("last segment is %s", act.State)
	}
	if act.Count == 0 {
		mustOK(t, w.Put("bytes", []byte("one more")), "PUT")
	}
	c.waitFor(15*time.Second, "the quiet segment sealed by age", func() bool {
		st, err := c.tryState(3, "bytes")
		if err != nil {
			return false
		}
		for _, s := range st.Segments {
			if s.ID == act.ID {
				return s.State != "active"
			}
		}
		return false
	})
	if got := len(c.readAll(1, "bytes")); got < 10 {
		t.Fatalf("read %d entries after the roll-overs, want >= 10", got)
	}
}

// TestDevCluster: `floe dev` starts three nodes, serves the protocol, archives to its
// file archive, and stops cleanly on SIGINT.
func TestDevCluster(t *testing.T) {
	dir := t.TempDir()
	clientBase, raftBase, httpBase := freeConsecutive(t, 3), freeConsecutive(t, 3), freeConsecutive(t, 3)
	cmd := exec.Command(floeBin, "dev", "--data-dir", dir,
		"--client-port", strconv.Itoa(clientBase), "--raft-port", strconv.Itoa(raftBase), "--http-port", strconv.Itoa(httpBase),
		"--max-segment-entries", "5")
	var out bytes.Buffer
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
	})
	// Wait for the banner that says the cluster formed.
	deadline := time.After(60 * time.Second)
	for up := false; !up; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("floe dev exited before it was up:\n%s", out.String())
			}
			up = strings.Contains(l, "3 nodes up")
		case <-deadline:
			t.Fatalf("floe dev did not come up:\n%s", out.String())
		}
	}
	go func() {
		for range lines {
		}
	}()
	addr := fmt.Sprintf("127.0.0.1:%d", clientBase+1) // node 2
	conn, err := client.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mustOK(t, conn.Register("devtopic"), "REGISTER")
	for i := 0; i < 12; i++ {
		mustOK(t, conn.Put("devtopic", []byte(fmt.Sprintf("e%d", i))), "PUT %d", i)
	}
	p, ok, err := conn.Get("devtopic")
	if err != nil || !ok || string(p) != "e0" {
		t.Fatalf("GET = %q %v %v", p, ok, err)
	}
	// Sealed segments reach the file archive under the data dir.
	archived := func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "archive", "topics", "devtopic@*", "*.seg"))
		m0, _ := filepath.Glob(filepath.Join(dir, "archive", "topics", "devtopic", "*.seg")) // id 0: created before every node registered
		return len(m)+len(m0) >= 2
	}
	for end := time.Now().Add(30 * time.Second); !archived(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("no segment of devtopic reached the dev archive")
		}
	}
	// Ctrl-C stops it cleanly.
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("floe dev exited with %v after SIGINT:\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("floe dev did not stop on SIGINT")
	}
	if _, err := os.Stat(filepath.Join(dir, "node1", "raft")); err != nil {
		t.Fatalf("node 1 state not kept: %v", err)
	}
}

// TestShell: the interactive shell sends each line as a request and prints the reply;
// the binary replies (READ, GET <topic> <max>) as one entry per line with its offset.
func TestShell(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 1})
	conn := c.conn(1)
	in := strings.NewReader("register sh\nPUT sh hello shell\nPUT sh second\nPUT sh third\nget sh\nread sh 0\n" +
		"get sh 5\nget sh 5\nfrob\nhelp\nexit\n")
	var out bytes.Buffer
	if err := runShell(conn, in, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"OK", "hello shell", "0\thello shell", "1\tsecond\n2\tthird\n(2 entries, next 3)", "EMPTY",
		"ERR bad request: unknown command", "REGISTER <topic>"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("shell output lacks %q:\n%s", want, out.String())
		}
	}
}

// freeConsecutive returns a port p such that p, p+1, ..., p+n-1 are free now.
func freeConsecutive(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 100; try++ {
		base := testenv.FreePorts(t, 1)[0]
		var lns []net.Listener
		ok := true
		for p := base; p < base+n; p++ {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports found", n)
	return 0
}
