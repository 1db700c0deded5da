package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"floe/internal/testenv"
	"floe/meta"
	"floe/node/segment"
	"floe/wire"
)

// packagePrefixes are the texts a client must never read in an ERR reply: the
// package names error messages used to start with.
var packagePrefixes = []string{"node: ", "meta: ", "segment: ", "wire: ", "tiering: ", "archive: ",
	"rpc: ", "seekable: ", "record: ", "logstore: "}

// checkReply fails unless reply is an "ERR <reason>" that reads as protocol text: no
// package prefix, "unavailable" at most once, one line.
func checkReply(t *testing.T, what string, reply []byte) {
	t.Helper()
	s := string(reply)
	if !strings.HasPrefix(s, "ERR ") {
		t.Errorf("%s: reply %q, want ERR <reason>", what, s)
	}
	for _, p := range packagePrefixes {
		if strings.Contains(s, p) {
			t.Errorf("%s: reply %q holds the package prefix %q", what, s, p)
		}
	}
	if n := strings.Count(s, "unavailable"); n > 1 {
		t.Errorf("%s: reply %q says unavailable %d times", what, s, n)
	}
	if strings.ContainsAny(s, "\r\n") {
		t.Errorf("%s: reply %q spans lines", what, s)
	}
}

// TestErrorReplies: an ERR reply is the error's text verbatim, and the errors a
// client meets read as protocol text: no package prefix, "unavailable" said once, one
// line. Requests go through the real connection handler of a three-node cluster; for
// the last ones the leader of the topic's segment is down, so a write to, and a read
// of, the segment only it holds chain a failure to reach it inside the retries of the
// node that answers.
func TestErrorReplies(t *testing.T) {
	nodes := startTestCluster(t, 3, func(c *Config) { c.RequestTimeout = 2 * time.Second })
	ctx := context.Background()
	if err := nodes[0].Register(ctx, "t", nil); err != nil {
		t.Fatal(err)
	}
	var leader uint64
	testenv.WaitFor(t, 10*time.Second, "every node to know topic t", func() bool {
		for _, n := range nodes {
			var ok bool
			n.fsm.View(n.key("t"), func(tp *meta.Topic) { leader, ok = tp.Active().Leader, true })
			if !ok {
				return false
			}
		}
		return true
	})
	down := nodes[leader-1]
	if _, err := down.Append(ctx, "t", [][]byte{[]byte("only on the segment leader")}); err != nil {
		t.Fatal(err)
	}
	via := nodes[leader%3] // another node: it forwards to the segment leader

	conn, err := net.Dial("tcp", via.ClientAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	ask := func(frame []byte) string {
		t.Helper()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := conn.Write(frame); err != nil {
			t.Fatal(err)
		}
		reply, err := wire.ReadFrame(r, wire.MaxReply)
		if err != nil {
			t.Fatal(err)
		}
		return string(reply)
	}
	text := func(s string) []byte { return append(binary.LittleEndian.AppendUint32(nil, uint32(len(s))), s...) }
	over := append(binary.LittleEndian.AppendUint32(nil, wire.MaxRequest+1), make([]byte, wire.MaxRequest+1)...)

	for _, tc := range []struct {
		name  string
		frame []byte
		down  bool     // the segment leader is down (once it is, it stays down)
		want  string   // the whole reply, or "" to check only has
		has   []string // parts of the reply
	}{
		{name: "empty frame", frame: text(""), want: "ERR empty frame"},
		{name: "frame too large", frame: over, want: fmt.Sprintf("ERR frame too large: %d bytes, limit %d", wire.MaxRequest+1, wire.MaxRequest)},
		{name: "unknown command", frame: text("FROBNICATE t"), want: `ERR bad request: unknown command "FROBNICATE"`},
		{name: "unknown topic", frame: text("PUT nosuch x"), want: `ERR no such topic: "nosuch" (REGISTER it first)`},
		{name: "invalid topic", frame: text("REGISTER ../x"), has: []string{"ERR invalid topic name"}},
		// "gave up" when every attempt found the node down; "outcome unknown at node N"
		// when the first went out on a connection the node closed as it went down (then
		// the request may have reached it, and the retries stay pinned to it).
		{name: "write to a node that is down", frame: text("PUT t x"), down: true,
			has: []string{`ERR `, `append to "t@1"`, "unavailable: ", fmt.Sprintf(`node %d: cannot reach %s, not sent: dial tcp`, leader, down.RaftAddr())}},
		{name: "read of a node that is down", frame: text("READ t 0"), down: true,
			has: []string{fmt.Sprintf(`segment 1 of "t@1" is only on node %d (not archived yet): unavailable: cannot reach %s, not sent: dial tcp`, leader, down.RaftAddr())}},
	} {
		if tc.down {
			down.Close()
		}
		t.Run(tc.name, func(t *testing.T) {
			reply := ask(tc.frame)
			t.Logf("reply: %s", reply)
			if tc.want != "" && reply != tc.want {
				t.Errorf("reply %q, want %q", reply, tc.want)
			}
			for _, part := range tc.has {
				if !strings.Contains(reply, part) {
					t.Errorf("reply %q, want it to hold %q", reply, part)
				}
			}
			checkReply(t, tc.name, []byte(reply))
		})
	}
}

// TestDamagedSegmentReply: the reply to an append refused by a WAL damaged before
// intact records, built from the segment package's own error, names the damage
// without a package prefix (README, "A WAL record is corrupt").
func TestDamagedSegmentReply(t *testing.T) {
	path := filepath.Join(t.TempDir(), "1.wal")
	seg, err := segment.Open(path, segment.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seg.AppendBatch([][]byte{[]byte("first"), []byte("second"), []byte("third")}); err != nil {
		t.Fatal(err)
	}
	if err := seg.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[segment.HeaderSize+segment.RecordHeaderSize] ^= 0xff // the first payload's first byte
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	seg, err = segment.Open(path, segment.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	_, err = seg.AppendBatch([][]byte{[]byte("after")})
	if !errors.Is(err, segment.ErrDamaged) {
		t.Fatalf("append to a damaged segment: %v, want ErrDamaged", err)
	}
	reply := errReply(err)
	want := fmt.Sprintf("ERR segment damaged before intact records: %q: record 0 at offset %d is damaged (segment corrupt: ", path, segment.HeaderSize)
	if !bytes.HasPrefix(reply, []byte(want)) || !bytes.Contains(reply, []byte("record crc32c mismatch")) {
		t.Errorf("reply %q, want it to start %q and name the crc32c mismatch", reply, want)
	}
	checkReply(t, "damaged segment", reply)
}
