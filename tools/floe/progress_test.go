package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestRenderProgress: the figures of a report, with and without the bar.
func TestRenderProgress(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		doneObj, totalObj     int
		doneBytes, totalBytes int64
		elapsed               time.Duration
		bar                   bool
		want                  string
	}{
		{"a quarter, bar", 10, 40, 2 << 20, 8 << 20, 2 * time.Second, true,
			"verify [======>                 ] 10/40 objects, 2.0 MiB/8.0 MiB, 1.0 MiB/s, 6s left"},
		{"a quarter, log line", 10, 40, 2 << 20, 8 << 20, 2 * time.Second, false,
			"verify: 10/40 objects, 2.0 MiB/8.0 MiB, 1.0 MiB/s, 6s left"},
		{"done", 40, 40, 8 << 20, 8 << 20, 8 * time.Second, true,
			"verify [========================] 40/40 objects, 8.0 MiB/8.0 MiB, 1.0 MiB/s"},
		{"totals unknown", 7, 0, 700, 0, time.Second, true,
			"verify: 7 objects, 700 B, 700 B/s"},
		{"objects only", 1, 4, 0, 0, 0, true,
			"verify [======>                 ] 1/4 objects, 0 B"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := renderProgress("verify", tc.doneObj, tc.totalObj, tc.doneBytes, tc.totalBytes, tc.elapsed, tc.bar)
			if got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestProgressLines: without a terminal a line is written at most every
// progressLogEvery, and always at the end; on a terminal the line is redrawn in place.
func TestProgressLines(t *testing.T) {
	clock := time.Unix(0, 0)
	var out bytes.Buffer
	p := &progress{w: &out, what: "restore", start: clock, now: func() time.Time { return clock }}
	p.update(1, 10, 100, 1000)          // first: written
	clock = clock.Add(time.Second)      //
	p.update(2, 10, 200, 1000)          // too soon: not written
	clock = clock.Add(progressLogEvery) //
	p.update(5, 10, 500, 1000)          // written
	p.update(10, 10, 1000, 1000)        // the end: written at once
	if n := strings.Count(out.String(), "\n"); n != 3 {
		t.Fatalf("%d lines, want 3:\n%s", n, out.String())
	}
	out.Reset()
	p = &progress{w: &out, what: "restore", tty: true, start: clock, now: func() time.Time { return clock }}
	p.update(1, 2, 10, 20)
	clock = clock.Add(time.Second)
	p.update(2, 2, 20, 20)
	if got := out.String(); strings.Count(got, "\r") != 2 || !strings.HasSuffix(got, "\n") || strings.Count(got, "\n") != 1 {
		t.Fatalf("terminal output %q: want two redraws and one final newline", got)
	}
}
