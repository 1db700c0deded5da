package main

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"floe/wire"
)

// TestConsoleCommands runs floe state and floe top against a real node, their output
// a pipe as in a script: floe state prints JSON by default (what scripts read), the
// tier map with --map; floe top prints one table and exits.
func TestConsoleCommands(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 1, args: []string{"--max-segment-entries", "2"}})
	conn := c.conn(1)
	mustOK(t, conn.Register("console"), "REGISTER console")
	for _, p := range []string{"a", "b", "c"} {
		_, err := conn.PutOffset("console", []byte(p))
		mustOK(t, err, "PUT console %s", p)
	}
	c.waitFor(10*time.Second, "segment 1 sealed", func() bool {
		st, err := c.tryState(1, "console")
		return err == nil && len(st.Segments) == 2 && st.Segments[0].State == "sealed"
	})
	addr := c.node(1).clientAddr()

	t.Run("state prints JSON to a pipe", func(t *testing.T) {
		out, err := runFloe(t, "state", "--addr", addr, "console")
		var st wire.TopicState
		if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Topic != "console" || len(st.Segments) != 2 {
			t.Fatalf("floe state to a pipe: want STATE's JSON with 2 segments, got %v:\n%s", err, out)
		}
	})
	t.Run("state --map", func(t *testing.T) {
		out, err := runFloe(t, "state", "--map", "--addr", addr, "console")
		if err != nil {
			t.Fatalf("floe state --map: %v\n%s", err, out)
		}
		for _, want := range []string{"topic console: 2 segments (ids 1-2)\n", "\n1 LA\n", "active: segment 2 on node 1", "end 3  cursor 0 (3 entries not taken yet)"} {
			if !strings.Contains(out, want) {
				t.Errorf("floe state --map: no %q in\n%s", want, out)
			}
		}
		if strings.Contains(out, "\x1b") {
			t.Errorf("floe state --map to a pipe is coloured:\n%q", out)
		}
	})
	t.Run("state --json --map", func(t *testing.T) {
		out, err := runFloe(t, "state", "--json", "--map", "--addr", addr, "console")
		if err == nil || !strings.Contains(out, "exclude each other") {
			t.Fatalf("floe state --json --map: want a refusal, got %v:\n%s", err, out)
		}
	})
	t.Run("state --map of a missing topic", func(t *testing.T) {
		out, err := runFloe(t, "state", "--map", "--addr", addr, "nosuch")
		if err == nil || !strings.Contains(out, "no such topic") {
			t.Fatalf("floe state --map nosuch: want the node's error, got %v:\n%s", err, out)
		}
	})
	t.Run("top prints one table to a pipe", func(t *testing.T) {
		out, err := runFloe(t, "top", "--interval", "300ms", "--http", "127.0.0.1:"+strconv.Itoa(c.node(1).httpPort))
		if err != nil {
			t.Fatalf("floe top: %v\n%s", err, out)
		}
		table := regexp.MustCompile(`(?m)rates over [0-9.]+s\n(.*\n)+NODE +ROLE +APPENDS/S .*\n +1 +leader +[0-9.]+ +[0-9.]+ [KMG]?i?B/s .* \d+$`)
		if !table.MatchString(out) {
			t.Fatalf("floe top to a pipe: want rates over the interval, the header and node 1's row, the leader's; got\n%s", out)
		}
	})
}
