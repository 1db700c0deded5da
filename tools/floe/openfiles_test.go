package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// openWALs returns the segment files (.wal) node id holds open, from /proc.
func (c *cluster) openWALs(id int) []string {
	c.t.Helper()
	p := c.node(id)
	p.mu.Lock()
	pid := p.cmd.Process.Pid
	p.mu.Unlock()
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		c.t.Skipf("cannot list open files of node %d (%v): needs /proc", id, err)
	}
	var out []string
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err == nil && strings.HasPrefix(target, p.dataDir) && strings.HasSuffix(target, ".wal") {
			out = append(out, target)
		}
	}
	return out
}

// TestSealedSegmentFilesBounded: after 40 roll-overs, archived by the uploader and
// looked at by every local retention pass, and after a read of the whole topic, the
// node holds at most the bound of idle sealed segments (8) plus its active segment
// open: the uploader and retention go through the segment store like readers do.
func TestSealedSegmentFilesBounded(t *testing.T) {
	const (
		perSegment = 5
		sealed     = 40
		topic      = "fds"
		maxOpen    = 8 + 1 // idle sealed segments, and the active one
	)
	c := startCluster(t, clusterOpts{nodes: 1, args: []string{
		"--archive", "file://" + t.TempDir(), "--max-segment-entries", strconv.Itoa(perSegment)}})
	conn := c.conn(1)
	mustOK(t, conn.Register(topic), "REGISTER %s", topic)
	c.waitTopic(topic)
	for i := 0; i < sealed*perSegment; i++ {
		mustOK(t, conn.Put(topic, []byte(tierPayload(i))), "PUT %d", i)
	}
	c.waitTiers(1, topic, sealed, "both", 60*time.Second)
	if got := c.openWALs(1); len(got) > maxOpen {
		t.Errorf("after archiving %d segments node 1 holds %d segment files open, want at most %d: %v", sealed, len(got), maxOpen, got)
	}
	if got := len(c.readAll(1, topic)); got != sealed*perSegment {
		t.Fatalf("READ %s: %d entries, want %d", topic, got, sealed*perSegment)
	}
	if got := c.openWALs(1); len(got) > maxOpen {
		t.Errorf("after reading %d segments node 1 holds %d segment files open, want at most %d: %v", sealed, len(got), maxOpen, got)
	}
}

// TestManyClientsReadBack is Distributed Walrus's multi-topic stress run: 100 clients
// at once, each registering its own topic, writing 50 entries (10 per segment, so
// about 500 small sealed segments over three nodes, far more than a node keeps open)
// and reading them back through READ and GET. No read may fail because a node closed
// a segment another reader was using.
func TestManyClientsReadBack(t *testing.T) {
	const (
		clients    = 100
		perClient  = 50
		perSegment = 10
	)
	c := startCluster(t, clusterOpts{args: []string{"--max-segment-entries", strconv.Itoa(perSegment)}})
	var wg, written sync.WaitGroup
	errs := make(chan error, clients)
	written.Add(clients)
	for k := 0; k < clients; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			errs <- manyClientsOne(c, k, perClient, &written)
		}(k)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// manyClientsOne is one client of TestManyClientsReadBack: it writes its topic, marks
// written done, waits until every client has written (so that all read at once) and
// reads its topic back.
func manyClientsOne(c *cluster, k, n int, written *sync.WaitGroup) error {
	via := k%3 + 1
	wrote := false
	defer func() {
		if !wrote {
			written.Done()
		}
	}()
	conn, err := c.dial(via, 60*time.Second)
	if err != nil {
		return fmt.Errorf("client %d: dial node %d: %v", k, via, err)
	}
	defer conn.Close()
	conn.Timeout = 60 * time.Second
	topic := fmt.Sprintf("stress_topic_%d", k)
	payload := func(i int) string { return fmt.Sprintf("%s/%03d", topic, i) }
	if err := conn.Register(topic); err != nil {
		return fmt.Errorf("client %d: REGISTER %s: %v", k, topic, err)
	}
	for i := 0; i < n; i++ {
		if err := conn.Put(topic, []byte(payload(i))); err != nil {
			return fmt.Errorf("client %d: PUT %s #%d: %v", k, topic, i, err)
		}
	}
	wrote = true
	written.Done()
	written.Wait()
	var off uint64
	for off < uint64(n) {
		entries, next, err := conn.Read(topic, off, 3)
		if err != nil {
			return fmt.Errorf("client %d: READ %s at %d through node %d: %v", k, topic, off, via, err)
		}
		if len(entries) == 0 {
			return fmt.Errorf("client %d: READ %s at %d: no entries, want %d in all", k, topic, off, n)
		}
		for _, e := range entries {
			if string(e.Payload) != payload(int(e.Offset)) {
				return fmt.Errorf("client %d: READ %s offset %d = %q, want %q", k, topic, e.Offset, e.Payload, payload(int(e.Offset)))
			}
		}
		off = next
	}
	for i := 0; i < n; i++ {
		p, ok, err := conn.Get(topic)
		if err != nil || !ok {
			return fmt.Errorf("client %d: GET %s #%d through node %d: ok %v, %v", k, topic, i, via, ok, err)
		}
		if string(p) != payload(i) {
			return fmt.Errorf("client %d: GET %s #%d = %q, want %q", k, topic, i, p, payload(i))
		}
	}
	return nil
}
