package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTopicRetention (docs/ARCHITECTURE.md, "Topic retention" and "Orphan sweeper"), with real MinIO: a
// topic whose retention_bytes holds three sealed segments expires the older ones
// through Raft; their entries are gone (READ says so and names the first offset kept,
// GET goes on from it), their local files and objects are deleted, and the sweeper
// leaves exactly the kept segments' objects in the bucket.
func TestTopicRetention(t *testing.T) {
	const (
		topic   = "ret"
		perSeg  = 10
		total   = 100
		segSize = perSeg * (8 + 8) // 8-byte payloads, 8-byte record headers
	)
	a, o := startMinIOArchive(t)
	// --orphan-grace 1ms: the test sweeps only once nothing is being uploaded.
	c := startCluster(t, with(o, "--max-segment-entries", strconv.Itoa(perSeg), "--orphan-grace", "1ms", "--sweep-interval", "-1s"))
	httpOf := func(id int) string { return "127.0.0.1:" + strconv.Itoa(c.node(id).httpPort) }
	req, _ := http.NewRequest("PUT", "http://"+httpOf(1)+"/v1/topics/"+topic, strings.NewReader(fmt.Sprintf(`{"retention_bytes": %d}`, 3*segSize)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT topic with retention: %v %v", resp, err)
	}
	resp.Body.Close()
	c.waitTopic(topic)
	w := c.conn(1)
	for i := 0; i < total; i++ {
		mustOK(t, w.Put(topic, []byte(fmt.Sprintf("ret-%04d", i))), "PUT %d", i)
	}

	// Segments 1-10 are sealed (11 is active and empty): 1-7 expire, 8-10 stay and get
	// archived.
	const firstKept = 70
	c.waitFor(60*time.Second, "segments 1-7 expired and 8-10 archived", func() bool {
		st, err := c.tryState(2, topic)
		if err != nil || len(st.Segments) != 11 {
			return false
		}
		for _, s := range st.Segments[:10] {
			want := "expired"
			if s.Base >= firstKept {
				want = "archived"
			}
			if s.State != want {
				return false
			}
		}
		return st.StartOffset == firstKept && st.Cursor == firstKept
	})
	if _, _, err := c.conn(3).Read(topic, 5, 10); err == nil || !strings.Contains(err.Error(), "expired") || !strings.Contains(err.Error(), strconv.Itoa(firstKept)) {
		t.Fatalf("READ at an expired offset: %v, want an error naming the first offset kept (%d)", err, firstKept)
	}
	p, ok, err := c.conn(2).Get(topic)
	if err != nil || !ok || string(p) != fmt.Sprintf("ret-%04d", firstKept) {
		t.Fatalf("GET after expiry = %q %v %v, want ret-%04d", p, ok, err, firstKept)
	}
	got, next, err := c.conn(1).Read(topic, firstKept, 1000)
	if err != nil || len(got) != total-firstKept || next != total || string(got[0].Payload) != fmt.Sprintf("ret-%04d", firstKept) {
		t.Fatalf("READ from the first offset kept: %d entries, next %d, %v", len(got), next, err)
	}

	// Every node deletes the files of the expired segments it led.
	c.waitFor(30*time.Second, "no local file of segments 1-7", func() bool {
		for id := 1; id <= 3; id++ {
			files, _ := os.ReadDir(c.segmentDir(id, topic))
			for _, f := range files {
				if n, err := strconv.ParseUint(strings.TrimSuffix(f.Name(), filepath.Ext(f.Name())), 10, 64); err == nil && n <= 7 {
					return false
				}
			}
		}
		return true
	})

	// The sweeper (through a follower: it is sent to the leader) deletes what expiry
	// left behind; then the bucket holds exactly the kept segments' objects.
	out, err := runFloe(t, "cluster", "sweep", "--http", httpOf(c.anyRunning(c.raftLeader())))
	if err != nil {
		t.Fatalf("floe cluster sweep: %v\n%s", err, out)
	}
	var ids []uint64
	for id := range a.objects(t, topic) {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if fmt.Sprint(ids) != "[8 9 10]" {
		t.Fatalf("objects of %s after expiry and a sweep: segments %v, want [8 9 10]\nsweep said:\n%s", topic, ids, out)
	}
	if out, err = runFloe(t, "cluster", "sweep", "--dry-run", "--http", httpOf(1)); err != nil || !strings.Contains(out, " 0 orphans") {
		t.Fatalf("a second sweep --dry-run: %v\n%s", err, out)
	}

	// retention_ms: every sealed segment older than 1 ms expires; the HTTP API answers
	// 410 Gone below the first offset kept.
	req, _ = http.NewRequest("PUT", "http://"+httpOf(2)+"/v1/topics/ret-ms", strings.NewReader(`{"retention_ms": 1}`))
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT topic with retention_ms: %v %v", resp, err)
	}
	resp.Body.Close()
	c.waitTopic("ret-ms")
	for i := 0; i < 2*perSeg+5; i++ {
		mustOK(t, c.conn(2).Put("ret-ms", []byte(fmt.Sprintf("ms-%05d", i))), "PUT ret-ms %d", i)
	}
	c.waitFor(30*time.Second, "ret-ms segments 1 and 2 expired", func() bool {
		st, err := c.tryState(3, "ret-ms")
		return err == nil && st.StartOffset == 2*perSeg && len(st.Segments) == 3 && st.Segments[1].State == "expired"
	})
	resp, err = http.Get("http://" + httpOf(3) + "/v1/topics/ret-ms/records?offset=3")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGone {
		t.Fatalf("GET records below the first offset kept: %s, want 410 Gone", resp.Status)
	}
}
