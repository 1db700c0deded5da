package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"floe/meta"
)

// TestAlterTopicLive: floe topic set changes a live topic's settings through Raft.
// Retention set on a topic that kept everything expires its old segments at the next
// pass; a smaller roll-over limit takes effect on the active segment; floe topic ls and
// describe show the result; a misspelt setting is refused and changes nothing.
func TestAlterTopicLive(t *testing.T) {
	c := startCluster(t, clusterOpts{args: []string{"--max-segment-entries", "5"}})
	conn := c.conn(1)
	mustOK(t, conn.Register("life"), "REGISTER")
	for i := range 22 {
		mustOK(t, conn.Put("life", []byte(fmt.Sprintf("e%02d", i))), "PUT %d", i)
	}
	st := c.state(1, "life")
	if st.StartOffset != 0 || len(st.Segments) != 5 {
		t.Fatalf("before: start %d, %d segments; want 0 and 5", st.StartOffset, len(st.Segments))
	}
	http1 := "127.0.0.1:" + strconv.Itoa(c.node(1).httpPort)

	out, err := runFloe(t, "topic", "set", "life", "retention-bytes=1", "max-segment-entries=3", "--http", http1)
	if err != nil {
		t.Fatalf("floe topic set: %v\n%s", err, out)
	}
	c.waitFor(30*time.Second, "the old segments expired by the new retention", func() bool {
		st, err := c.tryState(2, "life")
		return err == nil && st.StartOffset == 20
	})
	var cfg meta.TopicConfig
	st = c.state(3, "life")
	mustOK(t, json.Unmarshal(st.Config, &cfg), "config")
	if cfg.RetentionBytes != 1 || cfg.MaxSegmentEntries != 3 {
		t.Fatalf("STATE config after the change: %+v", cfg)
	}
	// The active segment (2 entries) now rolls over at 3.
	mustOK(t, conn.Put("life", []byte("e22")), "PUT")
	c.waitFor(30*time.Second, "the active segment rolled over at the new limit", func() bool {
		st, err := c.tryState(1, "life")
		return err == nil && len(st.Segments) >= 6 && st.Segments[4].Count == 3
	})
	for i := 23; i < 25; i++ {
		mustOK(t, conn.Put("life", []byte(fmt.Sprintf("e%02d", i))), "PUT %d", i)
	}
	conn2 := c.conn(2)
	es, _, err := conn2.Read("life", 20, 100)
	mustOK(t, err, "READ from 20")
	if len(es) != 5 || es[0].Offset != 20 || string(es[0].Payload) != "e20" || string(es[4].Payload) != "e24" {
		t.Fatalf("READ from 20 after the change: %d entries %v", len(es), es)
	}

	ls, err := runFloe(t, "topic", "ls", "--http", http1)
	if err != nil || !strings.Contains(ls, "life") || !strings.Contains(ls, "expired") {
		t.Fatalf("floe topic ls: %v\n%s", err, ls)
	}
	desc, err := runFloe(t, "topic", "describe", "life", "--http", http1)
	if err != nil || !strings.Contains(desc, "retention    1 B") {
		t.Fatalf("floe topic describe: %v\n%s", err, desc)
	}

	req, _ := http.NewRequest(http.MethodPatch, "http://"+http1+"/v1/topics/life", strings.NewReader(`{"retension_ms": 5}`))
	resp, err := http.DefaultClient.Do(req)
	mustOK(t, err, "PATCH")
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("PATCH with a misspelt setting: %d, want 400", resp.StatusCode)
	}
	if out, err := runFloe(t, "topic", "set", "life", "replicas=9", "--http", http1); err == nil {
		t.Fatalf("replicas=9 on 3 voters accepted:\n%s", out)
	}
	mustOK(t, json.Unmarshal(c.state(1, "life").Config, &cfg), "config")
	if cfg.ReplicationFactor != 1 || cfg.RetentionBytes != 1 {
		t.Fatalf("config after refused changes: %+v", cfg)
	}
}

// TestParseTopicSettings: the key=value forms floe topic set takes, and its refusals.
func TestParseTopicSettings(t *testing.T) {
	p, err := parseTopicSettings([]string{"retention=24h", "max-segment-entries=100", "local_retention_ms=500", "replicas=3", "retention-bytes=0"})
	if err != nil {
		t.Fatal(err)
	}
	if *p.RetentionMS != 86400000 || *p.MaxSegmentEntries != 100 || *p.LocalRetentionMS != 500 || *p.ReplicationFactor != 3 || *p.RetentionBytes != 0 {
		t.Fatalf("patch = %+v", p)
	}
	for _, bad := range [][]string{{}, {"retention"}, {"retention=soon"}, {"retention-bytes=-1"}, {"colour=blue"}, {"replicas=x"}} {
		if _, err := parseTopicSettings(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
