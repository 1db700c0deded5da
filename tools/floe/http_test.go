package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestHTTPTopicsAndRecords drives the HTTP API (README, "Protocol"): a topic created
// with a config through one node and described through another; bad configs refused
// with 400 and no topic created; records appended (one, then NDJSON) and read back by
// offset.
func TestHTTPTopicsAndRecords(t *testing.T) {
	c := startCluster(t, clusterOpts{})
	base := func(id int) string { return "http://127.0.0.1:" + strconv.Itoa(c.node(id).httpPort) }
	do := func(method, url, ctype, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		cl := &http.Client{Timeout: 30 * time.Second}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	for _, bad := range []string{
		`{"local_retention_byts": 100}`, // misspelt
		`{"local_retention_bytes": -1}`,
		`{"max_segment_age_ms": -5}`,
		`not json`,
	} {
		code, body := do("PUT", base(1)+"/v1/topics/badcfg", "application/json", bad)
		if code != http.StatusBadRequest {
			t.Fatalf("PUT topic with config %s: %d %s, want 400", bad, code, body)
		}
	}
	if code, body := do("PUT", base(1)+"/v1/topics/..", "", ""); code != http.StatusBadRequest && code != http.StatusNotFound {
		t.Fatalf("PUT topic '..': %d %s, want 400", code, body)
	}

	cfg := `{"max_segment_entries": 3, "local_retention_bytes": 1048576, "local_retention_ms": 3600000}`
	if code, body := do("PUT", base(1)+"/v1/topics/orders", "application/json", cfg); code != http.StatusOK {
		t.Fatalf("PUT topic: %d %s", code, body)
	}
	var st struct {
		Config map[string]int64 `json:"config"`
	}
	c.waitFor(10*time.Second, "node 2 to describe the topic", func() bool {
		code, body := do("GET", base(2)+"/v1/topics/orders", "", "")
		return code == http.StatusOK && json.Unmarshal([]byte(body), &st) == nil
	})
	if st.Config["max_segment_entries"] != 3 || st.Config["local_retention_bytes"] != 1048576 || st.Config["local_retention_ms"] != 3600000 {
		t.Fatalf("topic config through node 2: %v", st.Config)
	}
	// The topic list is node 3's own metadata, which may trail the leader's: wait for
	// it to list the topic, then check nothing of the refused PUTs is there.
	var code int
	var body string
	c.waitFor(10*time.Second, "node 3 to list the topic", func() bool {
		code, body = do("GET", base(3)+"/v1/topics", "", "")
		return code == http.StatusOK && strings.Contains(body, `"orders"`)
	})
	if strings.Contains(body, "badcfg") {
		t.Fatalf("GET /v1/topics: %d %s (want no topic from the refused PUTs)", code, body)
	}

	if code, body := do("POST", base(2)+"/v1/topics/orders/records", "", "first"); code != http.StatusOK || !strings.Contains(body, `"offset":0`) {
		t.Fatalf("POST one record: %d %s", code, body)
	}
	if code, body := do("POST", base(3)+"/v1/topics/orders/records", "application/x-ndjson", "a\nb\n\nc\nd\n"); code != http.StatusOK || !strings.Contains(body, `"offset":1`) || !strings.Contains(body, `"count":4`) {
		t.Fatalf("POST NDJSON: %d %s", code, body)
	}
	var got []string
	for off := 0; off < 5; {
		code, body := do("GET", fmt.Sprintf("%s/v1/topics/orders/records?offset=%d&max=10", base(1), off), "", "")
		var r struct {
			Records []struct {
				Offset int    `json:"offset"`
				Value  []byte `json:"value"`
			} `json:"records"`
			Next int `json:"next"`
		}
		if code != http.StatusOK || json.Unmarshal([]byte(body), &r) != nil || len(r.Records) == 0 {
			t.Fatalf("GET records at %d: %d %s", off, code, body)
		}
		for _, rec := range r.Records {
			if rec.Offset != off {
				t.Fatalf("record at offset %d, want %d", rec.Offset, off)
			}
			got = append(got, string(rec.Value))
			off++
		}
		if r.Next != off {
			t.Fatalf("next %d after offset %d", r.Next, off)
		}
	}
	if fmt.Sprint(got) != "[first a b c d]" { // across segments of 3 entries
		t.Fatalf("records read back: %v", got)
	}
}
