package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"floe/node/segment"
)

// TestDamagedActiveWAL: a bit flipped in the middle of a topic's active WAL while its
// leader is down. On restart the leader must not truncate the acknowledged entries after
// the damage and hand their offsets to new writes: it serves the entries before the
// damage, refuses writes with an error that says why, reports the segment in
// floe_wal_damaged_segments and logs the file and the operator action. The operator's
// recover-segment --force then moves writes off the segment.
func TestDamagedActiveWAL(t *testing.T) {
	const topic = "damaged"
	c := startCluster(t, clusterOpts{})
	conn := c.conn(1)
	mustOK(t, conn.Register(topic), "REGISTER %s", topic)
	c.waitTopic(topic)
	for i := 0; i < 10; i++ {
		mustOK(t, conn.Put(topic, []byte(fmt.Sprintf("entry-%02d", i))), "PUT %d", i)
	}
	x := int(c.state(1, topic).LeaderNode)
	c.stop(x)
	c.waitFor(10*time.Second, fmt.Sprintf("node %d to exit", x), func() bool { return !c.node(x).running() })

	path := filepath.Join(c.segmentDir(x, topic), "00000000000000000001.wal")
	data, err := os.ReadFile(path)
	mustOK(t, err, "read %s", path)
	var offsets []int64
	err = segment.Inspect(strings.NewReader(string(data)), int64(len(data)), func(ri segment.RecordInfo) bool {
		offsets = append(offsets, ri.Offset)
		return true
	})
	mustOK(t, err, "inspect %s", path)
	if len(offsets) != 10 {
		t.Fatalf("%s holds %d records, want 10", path, len(offsets))
	}
	data[offsets[4]+segment.RecordHeaderSize+2] ^= 0x10 // in the payload of entry 4
	mustOK(t, os.WriteFile(path, data, 0o644), "write %s", path)

	c.start(x)
	c.waitReady(30 * time.Second)
	if off, err := c.conn(x).PutOffset(topic, []byte("after")); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("PUT to the damaged segment: offset %d, %v; want a refusal naming the damage (entries 4-9 were acknowledged)", off, err)
	}
	c.waitFor(30*time.Second, fmt.Sprintf("floe_wal_damaged_segments = 1 on node %d", x), func() bool {
		m, err := c.scrape(x)
		return err == nil && m["floe_wal_damaged_segments"] == 1
	})
	if got := c.readAll(x, topic); len(got) != 4 || string(got[3].Payload) != "entry-03" {
		t.Errorf("READ %s after the damage: %d entries, want the 4 before it", topic, len(got))
	}
	if got, _ := os.ReadFile(path); string(got) != string(data) {
		t.Errorf("%s was changed by the restart: %d bytes, want the %d written", path, len(got), len(data))
	}
	logText, _ := os.ReadFile(c.node(x).logPath)
	if !strings.Contains(string(logText), "recover-segment --force --segment 1 "+topic) || !strings.Contains(string(logText), path) {
		t.Errorf("node %d log does not name the file and the operator action:\n%s", x, tail(c.node(x).logPath, 20))
	}

	out, err := runFloe(t, "cluster", "recover-segment", topic, "--force", "--http", "127.0.0.1:"+strconv.Itoa(c.node(x).httpPort))
	if err == nil || !strings.Contains(out, "--segment") {
		t.Fatalf("recover-segment --force without --segment: %v\n%s, want a refusal asking for --segment", err, out)
	}
	out, err = runFloe(t, "cluster", "recover-segment", topic, "--force", "--segment", "1", "--http", "127.0.0.1:"+strconv.Itoa(c.node(x).httpPort))
	if err != nil {
		t.Fatalf("recover-segment --force: %v\n%s", err, out)
	}
	off, err := c.conn(1).PutOffset(topic, []byte("after recover"))
	mustOK(t, err, "PUT after recover-segment")
	if off != 0 {
		t.Errorf("PUT after recover-segment got offset %d, want 0 (the abandoned segment's base)", off)
	}
}
