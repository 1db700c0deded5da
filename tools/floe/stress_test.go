package main

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"floe/client"
)

// TestStress: 16 connections spread over the three nodes each pipeline 300 PUTs of 1 KiB
// (unique payloads) to one topic. Every PUT is acknowledged, READ returns exactly the
// set written, and each connection's entries appear in the order it sent them
// (README, "Protocol": replies come in order; node/server.go routes a connection's
// appends in order).
func TestStress(t *testing.T) {
	stressPipelines(t, "stress", 0)
}

// TestPipelineOrderAcrossRollover is TestStress with a segment limit that makes the
// topic roll over three times while the pipelines run: a connection's entries must
// keep their order across the hand-over to the next segment's leader too.
func TestPipelineOrderAcrossRollover(t *testing.T) {
	stressPipelines(t, "stress-roll", 1500)
}

func stressPipelines(t *testing.T, topic string, segSize int) {
	const (
		conns   = 16
		perConn = 300
		size    = 1024
		window  = 64 // requests in flight per connection
	)
	var o clusterOpts
	if segSize > 0 {
		o.args = []string{"--max-segment-entries", strconv.Itoa(segSize)}
	}
	c := startCluster(t, o)
	mustOK(t, c.conn(1).Register(topic), "REGISTER")
	c.waitTopic(topic)

	payload := func(conn, seq int) []byte {
		head := fmt.Sprintf("c%02d-%04d-", conn, seq)
		return append([]byte(head), bytes.Repeat([]byte{byte('a' + conn)}, size-len(head))...)
	}
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	var all []*client.Conn
	for w := 0; w < conns; w++ {
		cl, err := c.dial(w%3+1, 60*time.Second)
		if err != nil {
			t.Fatalf("dial node %d: %v", w%3+1, err)
		}
		defer cl.Close()
		all = append(all, cl)
	}
	// Pipelined Recv has no deadline of its own: a watchdog closes the connections if the
	// writers hang, which makes their Recv fail.
	watchdog := time.AfterFunc(2*time.Minute, func() {
		for _, cl := range all {
			cl.Close()
		}
	})
	defer watchdog.Stop()
	for w, cl := range all {
		wg.Add(1)
		go func(w int, cl *client.Conn) {
			defer wg.Done()
			errs <- pipeline(cl, topic, perConn, window, func(seq int) []byte { return payload(w, seq) })
		}(w, cl)
	}
	wg.Wait()
	if !watchdog.Stop() {
		t.Fatal("the writers did not finish within 2 minutes; connections closed")
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	for _, id := range []int{1, 3} {
		entries := c.readAll(id, topic)
		if len(entries) != conns*perConn {
			t.Errorf("READ through node %d: %d entries, want %d", id, len(entries), conns*perConn)
		}
		last := make([]int, conns) // last seq seen per connection
		for w := range last {
			last[w] = -1
		}
		seen := map[string]bool{}
		var reordered []string
		for i, e := range entries {
			if e.Offset != uint64(i) {
				t.Fatalf("READ through node %d: entry %d has offset %d", id, i, e.Offset)
			}
			var w, seq int
			if _, err := fmt.Sscanf(string(e.Payload[:10]), "c%02d-%04d-", &w, &seq); err != nil || w < 0 || w >= conns || seq >= perConn {
				t.Fatalf("READ through node %d: offset %d holds %q, not a payload of this test", id, i, truncateBytes(e.Payload))
			}
			if !bytes.Equal(e.Payload, payload(w, seq)) {
				t.Fatalf("READ through node %d: offset %d holds a corrupted payload %q", id, i, truncateBytes(e.Payload))
			}
			key := string(e.Payload[:10])
			if seen[key] {
				t.Errorf("READ through node %d: payload %s appears twice (again at offset %d)", id, key, i)
			}
			seen[key] = true
			if seq < last[w] {
				reordered = append(reordered, fmt.Sprintf("conn %d entry %d at offset %d after its entry %d", w, seq, i, last[w]))
			}
			last[w] = max(last[w], seq)
		}
		if len(seen) != conns*perConn {
			t.Errorf("READ through node %d: %d distinct payloads, want all %d acknowledged ones", id, len(seen), conns*perConn)
		}
		if len(reordered) > 0 {
			t.Errorf("READ through node %d: per-connection order broken %d times, e.g. %v", id, len(reordered), reordered[:min(3, len(reordered))])
		}
	}
	st := c.state(2, topic)
	t.Logf("%d segments, leaders %v", len(st.Segments), st.SegmentLeaders)
}

// pipeline sends n PUTs with up to window in flight on one connection and checks that
// every reply is OK. It runs on its own goroutine and only returns errors.
func pipeline(cl *client.Conn, topic string, n, window int, payload func(seq int) []byte) error {
	sent, acked := 0, 0
	for acked < n {
		for sent < n && sent-acked < window {
			if err := cl.Send(append([]byte("PUT "+topic+" "), payload(sent)...)); err != nil {
				return fmt.Errorf("%s: send %d: %w", cl.RemoteAddr(), sent, err)
			}
			sent++
		}
		if err := cl.Flush(); err != nil {
			return fmt.Errorf("%s: flush: %w", cl.RemoteAddr(), err)
		}
		reply, err := cl.Recv()
		if err != nil {
			return fmt.Errorf("%s: reply to PUT %d: %w", cl.RemoteAddr(), acked, err)
		}
		if string(reply) != "OK" {
			return fmt.Errorf("%s: reply to PUT %d = %q, want OK", cl.RemoteAddr(), acked, truncateBytes(reply))
		}
		acked++
	}
	return nil
}
