package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// loadScrape builds a scrape of the cluster of testdata/top at at: node i reads
// testdata/top/node<i>-<when>.prom, or fails when the file is absent.
func loadScrape(t *testing.T, at time.Time, when string) *clusterScrape {
	t.Helper()
	s := &clusterScrape{At: at, ClusterID: "f296cd1362a41fb7", Leader: 1, Voters: []uint64{1, 2, 3}}
	for id := uint64(1); id <= 4; id++ {
		n := nodeScrape{ID: id, Addr: fmt.Sprintf("10.0.0.%d:9080", id)}
		f, err := os.Open(filepath.Join("testdata", "top", fmt.Sprintf("node%d-%s.prom", id, when)))
		if errors.Is(err, os.ErrNotExist) {
			n.Err = errors.New("Get \"http://" + n.Addr + "/metrics\": dial tcp " + n.Addr + ": connect: connection refused")
		} else if err != nil {
			t.Fatal(err)
		} else {
			n.Families, err = parseMetrics(f)
			f.Close()
			if err != nil {
				t.Fatalf("node %d %s: %v", id, when, err)
			}
		}
		s.Nodes = append(s.Nodes, n)
	}
	return s
}

// TestTopGolden renders floe top's table from fixed /metrics text (testdata/top):
// a busy leader, a follower that restarted between the reads without its lease and
// with slow fsyncs, a node that stopped answering, an idle non-voter.
func TestTopGolden(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	before := loadScrape(t, t0, "before")
	after := loadScrape(t, t0.Add(2*time.Second), "after")
	checkGolden(t, "top", renderTop(before, after, 2*time.Second))
	checkGolden(t, "top-first", renderTop(nil, before, 0)) // the first frame: gauges, no rates
	down := &clusterScrape{At: t0, Err: errors.New("no node answers at 127.0.0.1:9181: connection refused")}
	checkGolden(t, "top-no-cluster", renderTop(before, down, 2*time.Second))
}

// TestHistogramQuantile pins the interpolation floe top's FSYNC P99 uses (that of
// Prometheus's histogram_quantile).
func TestHistogramQuantile(t *testing.T) {
	h := histogram{count: 100, bounds: []float64{1, 2, 4, math.Inf(1)}, cumulative: []float64{50, 90, 98, 100}}
	for _, tc := range []struct {
		q         float64
		want      float64
		wantAbove bool
	}{
		{0.25, 0.5, false}, // half way into the first bucket, from 0
		{0.5, 1, false},    // its top
		{0.7, 1.5, false},  // half way from 1 to 2
		{0.94, 3, false},   // half way from 2 to 4
		{0.99, 4, true},    // in +Inf: the highest finite bound, marked
	} {
		got, above := h.quantile(tc.q)
		if got != tc.want || above != tc.wantAbove {
			t.Errorf("q %v: got %v (above %v), want %v (above %v)", tc.q, got, above, tc.want, tc.wantAbove)
		}
	}
}

// TestRunTop runs the refresh loop on canned scrapes: a first frame at once without
// rates, then one per interval with them, until the context ends.
func TestRunTop(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	scrapes := []*clusterScrape{loadScrape(t, t0, "before"), loadScrape(t, t0.Add(2*time.Second), "after")}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var frames []string
	next := 0
	scrape := func(context.Context) *clusterScrape {
		mu.Lock()
		defer mu.Unlock()
		s := scrapes[min(next, len(scrapes)-1)]
		next++
		return s
	}
	done := make(chan error)
	go func() {
		done <- runTop(ctx, scrape, 5*time.Millisecond, func(f string) {
			mu.Lock()
			frames = append(frames, f)
			if len(frames) == 2 {
				cancel()
			}
			mu.Unlock()
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("runTop did not return after its context ended")
	}
	if len(frames) != 2 {
		t.Fatalf("got %d frames, want 2", len(frames))
	}
	if frames[0] != renderTop(nil, scrapes[0], 0) {
		t.Errorf("first frame: got\n%s\nwant the gauges-only frame", frames[0])
	}
	if frames[1] != renderTop(scrapes[0], scrapes[1], 2*time.Second) {
		t.Errorf("second frame: got\n%s\nwant the rates over the 2 s between the scrapes' times", frames[1])
	}
}

// TestReadKeys: q, Q, Ctrl-C and Ctrl-D quit; other keys do not, nor does the end
// of input.
func TestReadKeys(t *testing.T) {
	for _, tc := range []struct {
		in   string
		quit bool
	}{
		{"q", true}, {"abcQ", true}, {"\x03", true}, {"\x04", true}, {"x\r\n", false}, {"", false},
	} {
		quit := false
		readKeys(strings.NewReader(tc.in), func() { quit = true })
		if quit != tc.quit {
			t.Errorf("keys %q: quit %v, want %v", tc.in, quit, tc.quit)
		}
	}
}
