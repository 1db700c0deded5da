package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"floe/client"
	"floe/wire"
)

// rawConn is a hand-driven client connection: frames are built byte by byte here, so
// the test does not depend on the client library's encoder.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawConn{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// frame returns a frame with the given length prefix and body (which need not match).
func frame(length uint32, body []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, length)
	return append(b, body...)
}

// text returns a well-formed frame of s.
func text(s string) []byte { return frame(uint32(len(s)), []byte(s)) }

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *rawConn) read() []byte {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var hdr [4]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		c.t.Fatalf("read reply length: %v (connection closed by the node?)", err)
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n == 0 || n > wire.MaxReply {
		c.t.Fatalf("reply frame length %d", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c.r, b); err != nil {
		c.t.Fatalf("read reply body: %v", err)
	}
	return b
}

// TestBadInput: each malformed or refused request gets a reply starting "ERR ", the
// connection stays usable (the next request on it is answered normally), and nothing
// changes: no entry is appended, no topic is created, and no file appears outside the
// node's segment directory (README, "Concepts" and "Protocol").
func TestBadInput(t *testing.T) {
	c := startCluster(t, clusterOpts{})
	const good = "good"
	setup := c.conn(1)
	mustOK(t, setup.Register(good), "REGISTER %s", good)
	c.waitTopic(good)
	for i := 0; i < 3; i++ {
		mustOK(t, setup.Put(good, []byte(fmt.Sprintf("entry %d", i))), "PUT %d", i)
	}
	const entries = 3
	const via = 2 // any node takes any request; node 2 forwards what node 1 leads

	overLimit := append([]byte("PUT good "), bytes.Repeat([]byte("x"), wire.MaxRequest+1-len("PUT good "))...)
	cases := []struct {
		name  string
		frame []byte
		// absent names a topic that must still not exist afterwards
		absent string
	}{
		{name: "frame length 0", frame: frame(0, nil)},
		{name: "frame of 64 KiB + 1", frame: frame(uint32(len(overLimit)), overLimit)},
		{name: "invalid UTF-8 payload", frame: text("PUT good \xff\xfe\xfd")},
		{name: "invalid UTF-8 command", frame: text("\xc3\x28REGISTER x")},
		{name: "invalid UTF-8 topic", frame: text("REGISTER t\xe2\x28\xa1"), absent: "t"},
		{name: "unknown command", frame: text("FROBNICATE good")},
		{name: "lower-case command", frame: text("put good x")},
		{name: "PUT alone", frame: text("PUT")},
		{name: "PUT without payload", frame: text("PUT good")},
		{name: "PUT with blank payload", frame: text("PUT good    ")},
		{name: "PUT to unregistered topic", frame: text("PUT nosuch payload"), absent: "nosuch"},
		{name: "PUTOFF to unregistered topic", frame: text("PUTOFF nosuch2 payload"), absent: "nosuch2"},
		{name: "PUT to invalid topic", frame: text("PUT ../x payload")},
		{name: "PUTBATCH truncated record", frame: text("PUTBATCH good\n\x05\x00\x00\x00ab")},
		{name: "PUTBATCH without records", frame: text("PUTBATCH good\n")},
		{name: "PUTBATCH to unregistered topic", frame: text("PUTBATCH nosuch3\n\x01\x00\x00\x00a"), absent: "nosuch3"},
		{name: "GET of unregistered topic", frame: text("GET nosuch4"), absent: "nosuch4"},
		{name: "READ with bad offset", frame: text("READ good minus-one")},
		{name: "READ of unregistered topic", frame: text("READ nosuch5 0"), absent: "nosuch5"},
		{name: "REGISTER alone", frame: text("REGISTER")},
		{name: "REGISTER with blank topic", frame: text("REGISTER  ")},
		{name: "REGISTER ../x", frame: text("REGISTER ../x")},
		{name: "REGISTER .", frame: text("REGISTER .")},
		{name: "REGISTER ..", frame: text("REGISTER ..")},
		{name: "REGISTER 250 chars", frame: text("REGISTER " + strings.Repeat("a", 250)), absent: strings.Repeat("a", 249)},
		{name: "REGISTER a/b", frame: text("REGISTER a/b"), absent: "a"},
		{name: "REGISTER a b", frame: text("REGISTER a b"), absent: "a"},
		{name: "REGISTER a two spaces b", frame: text("REGISTER a  b"), absent: "b"},
		{name: "REGISTER tab", frame: text("REGISTER a\tb"), absent: "a"},
		{name: "REGISTER non-ASCII", frame: text("REGISTER caf\u00e9"), absent: "caf"},
		{name: "REGISTER absolute path", frame: text("REGISTER /etc")},
	}

	dataDirs := map[string][]string{}
	for _, p := range c.nodes {
		dataDirs[p.dataDir] = listTree(t, p.dataDir)
	}
	metricsTopics := func(conn *rawConn) int {
		conn.write(text("METRICS"))
		reply := conn.read()
		var m struct {
			Topics *int `json:"topics"`
		}
		if err := json.Unmarshal(reply, &m); err != nil || m.Topics == nil {
			t.Fatalf("METRICS reply %q: %v", reply, err)
		}
		return *m.Topics
	}
	checkUnchanged := func(t *testing.T, conn *rawConn, absent string) {
		t.Helper()
		// The same connection still works, and the good topic is as it was.
		conn.write(text("STATE " + good))
		reply := conn.read()
		var st client.TopicState
		if err := json.Unmarshal(reply, &st); err != nil {
			t.Fatalf("STATE %s on the same connection = %q, want its JSON", good, reply)
		}
		if st.EndOffset == nil || *st.EndOffset != entries || len(st.Segments) != 1 {
			t.Errorf("STATE %s: end_offset %v, %d segments, want %d entries in 1 segment", good, st.EndOffset, len(st.Segments), entries)
		}
		if n := metricsTopics(conn); n != 1 {
			t.Errorf("METRICS topics = %d, want 1 (only %q)", n, good)
		}
		if absent != "" {
			conn.write(text("STATE " + absent))
			if reply := conn.read(); !bytes.HasPrefix(reply, []byte("ERR ")) {
				t.Errorf("STATE %s = %q, want ERR (the topic must not exist)", absent, reply)
			}
		}
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := dialRaw(t, c.node(via).clientAddr())
			conn.write(tc.frame)
			reply := conn.read()
			t.Logf("reply: %s", truncateBytes(reply))
			if !bytes.HasPrefix(reply, []byte("ERR ")) || len(bytes.TrimSpace(reply)) <= len("ERR") {
				t.Errorf("reply = %q, want \"ERR <reason>\"", truncateBytes(reply))
			}
			checkUnchanged(t, conn, tc.absent)
		})
	}

	// All of them back to back on one connection, each followed by a valid request:
	// replies come in order and the stream stays in step.
	t.Run("pipelined on one connection", func(t *testing.T) {
		conn := dialRaw(t, c.node(1).clientAddr())
		var all []byte
		for _, tc := range cases {
			all = append(all, tc.frame...)
			all = append(all, text("STATE "+good)...)
		}
		all = append(all, text("PUT "+good+" after")...)
		go conn.conn.Write(all) // the node replies while we still write; read concurrently
		for _, tc := range cases {
			if reply := conn.read(); !bytes.HasPrefix(reply, []byte("ERR ")) {
				t.Errorf("%s: reply = %q, want ERR", tc.name, truncateBytes(reply))
			}
			if reply := conn.read(); !bytes.HasPrefix(reply, []byte("{")) {
				t.Errorf("STATE after %s: reply = %q, want JSON", tc.name, truncateBytes(reply))
			}
		}
		if reply := conn.read(); string(reply) != "OK" {
			t.Errorf("valid PUT after the bad requests = %q, want OK", reply)
		}
	})

	// Nothing was written outside the good topic's segment: the data dirs hold the same
	// files as before (the pipelined PUT appended to an existing file).
	for _, p := range c.nodes {
		if got, want := listTree(t, p.dataDir), dataDirs[p.dataDir]; !equalSegmentTrees(got, want) {
			t.Errorf("node %d: segment files changed from %v to %v", p.id, want, got)
		}
	}
	if _, err := os.Stat(filepath.Join(c.dir, "x")); err == nil {
		t.Errorf("a file %q was created outside the data dirs", filepath.Join(c.dir, "x"))
	}
	entriesNow := c.readAll(1, good)
	if len(entriesNow) != entries+1 || string(entriesNow[entries].Payload) != "after" {
		t.Errorf("READ %s: %d entries, want %d then \"after\"", good, len(entriesNow), entries)
	}
}

// listTree lists the segment directory of a data dir (relative paths of files and dirs).
func listTree(t *testing.T, dataDir string) []string {
	t.Helper()
	root := filepath.Join(dataDir, "segments")
	var out []string
	err := filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		out = append(out, rel)
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("walk %s: %v", root, err)
	}
	sort.Strings(out)
	return out
}

func equalSegmentTrees(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func truncateBytes(b []byte) []byte {
	if len(b) > 200 {
		return append(b[:200:200], "..."...)
	}
	return b
}
