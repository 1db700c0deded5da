package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"floe/wire"
)

// TestTierMapGolden draws fixed STATE replies (testdata/tiermap-*.json) with and
// without colour and compares them with testdata/tiermap-*.golden.
func TestTierMapGolden(t *testing.T) {
	for _, tc := range []struct {
		name, fixture string
		width         int
	}{
		{name: "empty", fixture: "empty"},                       // a new topic: one active segment, no entries
		{name: "single-active", fixture: "single-active"},       // one replicated active segment
		{name: "every-tier", fixture: "every-tier"},             // every class the map draws in an archiving cluster
		{name: "no-archive", fixture: "no-archive"},             // sealed segments that stay local; end offset unknown
		{name: "wrapped", fixture: "wrapped"},                   // 150 segments: rows of 64
		{name: "wrapped-narrow", fixture: "wrapped", width: 40}, // a 40-column terminal
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "tiermap-"+tc.fixture+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var st wire.TopicState
			if err := json.Unmarshal(raw, &st); err != nil {
				t.Fatal(err)
			}
			plain := renderTierMap(&st, mapOptions{Width: tc.width})
			if strings.Contains(plain, "\x1b") {
				t.Errorf("the map without colour holds an escape sequence:\n%q", plain)
			}
			checkGolden(t, "tiermap-"+tc.name, plain)
			checkGolden(t, "tiermap-"+tc.name+"-colour", renderTierMap(&st, mapOptions{Width: tc.width, Colour: true}))
		})
	}
}

// TestTierMapRows checks the wrapping rule on its own: each row starts with its
// first segment's id and holds at most the cells that fit.
func TestTierMapRows(t *testing.T) {
	st := &wire.TopicState{Topic: "t"}
	for i := range 20 {
		st.Segments = append(st.Segments, wire.SegmentInfo{ID: uint64(i + 1), State: "archived", Tier: "remote"})
	}
	for _, tc := range []struct {
		width int
		want  []string
	}{
		{0, []string{" 1 RRRRRRRRRRRRRRRRRRRR"}},
		{20, []string{" 1 RRRRRRRRRRRRRRRRR", "18 RRR"}},       // 20 columns: a label of 2, a space, 17 cells
		{4, []string{" 1 RRRRRRRR", " 9 RRRRRRRR", "17 RRRR"}}, // never fewer than 8 cells
	} {
		out := renderTierMap(st, mapOptions{Width: tc.width})
		var rows []string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasSuffix(l, "R") && !strings.Contains(l, "(") {
				rows = append(rows, l)
			}
		}
		if strings.Join(rows, "|") != strings.Join(tc.want, "|") {
			t.Errorf("width %d: got rows %q, want %q", tc.width, rows, tc.want)
		}
	}
}

// TestClassify pins the class of each kind of segment STATE can list.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name      string
		s         wire.SegmentInfo
		archiving bool
		want      segmentClass
	}{
		{"active", wire.SegmentInfo{State: "active", Tier: "local"}, true, classActive},
		{"sealing", wire.SegmentInfo{State: "sealing", Tier: "local"}, true, classActive},
		{"sealed without archive", wire.SegmentInfo{State: "sealed", Tier: "local"}, false, classLocal},
		{"sealed with archive", wire.SegmentInfo{State: "sealed", Tier: "local"}, true, classUploading},
		{"archived", wire.SegmentInfo{State: "archived", Tier: "both"}, true, classBoth},
		{"evicted", wire.SegmentInfo{State: "archived", Tier: "remote"}, true, classRemote},
		{"expired", wire.SegmentInfo{State: "expired", Tier: "remote"}, true, classExpired},
		{"lost", wire.SegmentInfo{State: "expired", Tier: "remote", Lost: true}, true, classLost},
		{"abandoned", wire.SegmentInfo{State: "sealed", Tier: "local", Abandoned: true}, true, classAbandoned},
		{"abandoned, then expired", wire.SegmentInfo{State: "expired", Tier: "remote", Abandoned: true}, true, classExpired},
	} {
		if got := classify(&tc.s, tc.archiving); got != tc.want {
			t.Errorf("%s: got class %c, want %c", tc.name, classStyle[got].glyph, classStyle[tc.want].glyph)
		}
	}
}

// TestStateDrawsMap: JSON unless asked for the map or writing to a terminal, so
// that scripts reading floe state keep getting JSON.
func TestStateDrawsMap(t *testing.T) {
	for _, tc := range []struct {
		asJSON, asMap, tty bool
		want               bool
		fails              bool
	}{
		{tty: false, want: false},
		{tty: true, want: true},
		{asJSON: true, tty: true, want: false},
		{asMap: true, tty: false, want: true},
		{asJSON: true, asMap: true, fails: true},
	} {
		got, err := stateDrawsMap(tc.asJSON, tc.asMap, tc.tty)
		if (err != nil) != tc.fails || got != tc.want {
			t.Errorf("--json=%v --map=%v terminal=%v: got map %v, err %v; want map %v, failure %v", tc.asJSON, tc.asMap, tc.tty, got, err, tc.want, tc.fails)
		}
	}
}
