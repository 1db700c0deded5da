package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"floe/wire"
)

// The tier map is floe state's view of a topic for a person at a terminal: one cell
// per segment, drawn by where the segment's data lives, then per-class totals, the
// offsets and the topic's configuration. renderTierMap is pure (STATE in, text out)
// so that it is tested against golden files; floe state decides when to draw it.

// segmentClass is where a segment's data lives, as the tier map draws it.
type segmentClass int

const (
	classActive    segmentClass = iota // taking writes (or sealing) on its leader
	classLocal                         // sealed, on local disks only, in a topic nothing was archived from
	classUploading                     // sealed, not archived yet, in a topic others were archived from
	classBoth                          // local copy and archive object (tier both)
	classRemote                        // archive object only (tier remote)
	classExpired                       // dropped by topic retention
	classAbandoned                     // sealed empty by floe cluster recover-segment
	classLost                          // floe restore --cluster found no copy of it
	numClasses
)

// classStyle is how a class is drawn: its glyph (which alone tells the classes apart
// without colour), its ANSI colour and what the legend says of it.
var classStyle = [numClasses]struct {
	glyph  byte
	colour string // SGR parameters
	legend string
}{
	classActive:    {'A', "1;32", "active"},
	classLocal:     {'L', "33", "sealed, local only (not archived)"},
	classUploading: {'U', "35", "sealed, waiting for upload"},
	classBoth:      {'B', "36", "local and archived (tier both)"},
	classRemote:    {'R', "34", "archive only (tier remote)"},
	classExpired:   {'.', "90", "expired (retention dropped them; what they held)"},
	classAbandoned: {'X', "1;31", "abandoned (recover-segment moved writes off them)"},
	classLost:      {'!', "1;31", "lost (restore found no copy; what they held)"},
}

// tierMapCells is the width of the map, in segments per row, when the output's width
// is unknown (not a terminal).
const tierMapCells = 64

// mapOptions say how renderTierMap draws.
type mapOptions struct {
	// Width is the terminal's width in columns; the map's rows, with their labels,
	// fit in it. 0: rows of tierMapCells segments.
	Width int
	// Colour draws each cell, and each glyph of the legend, in its class's ANSI
	// colour.
	Colour bool
}

// classify returns where s's data lives. archiving says the topic has archived
// segments, so that a sealed segment with no archive object is waiting for its
// upload rather than kept local for good (STATE does not say whether the nodes have
// --archive; a topic whose first upload is still pending shows its sealed segments as
// local only until it lands).
func classify(s *wire.SegmentInfo, archiving bool) segmentClass {
	switch {
	case s.Lost:
		return classLost // stored as expired, but its entries were never dropped by retention
	case s.State == "expired":
		return classExpired
	case s.Abandoned:
		return classAbandoned
	case s.State == "active" || s.State == "sealing":
		return classActive
	case s.Tier == "remote":
		return classRemote
	case s.Tier == "both":
		return classBoth
	case archiving:
		return classUploading
	}
	return classLocal
}

// archivesSegments reports whether any segment of st was archived (and not expired
// since: an expired segment's tier reads remote whether or not it ever was).
func archivesSegments(st *wire.TopicState) bool {
	for i := range st.Segments {
		s := &st.Segments[i]
		if s.State == "archived" || (s.State != "expired" && (s.Tier == "both" || s.Tier == "remote")) {
			return true
		}
	}
	return false
}

// classTotal is one row of the tier map's totals: for expired and lost segments,
// what they held.
type classTotal struct {
	segments, entries uint64
	bytes             int64
}

func (t *classTotal) add(s *wire.SegmentInfo) {
	t.segments++
	t.entries += s.Count
	t.bytes += s.Bytes
}

// renderTierMap draws the tier map of a topic from its STATE reply.
func renderTierMap(st *wire.TopicState, opt mapOptions) string {
	var b strings.Builder
	paint := func(c segmentClass, s string) string {
		if !opt.Colour {
			return s
		}
		return "\x1b[" + classStyle[c].colour + "m" + s + "\x1b[0m"
	}
	archiving := archivesSegments(st)
	classes := make([]segmentClass, len(st.Segments))
	var totals [numClasses]classTotal
	var kept classTotal // all but the expired and lost, whose entries are gone
	for i := range st.Segments {
		s := &st.Segments[i]
		c := classify(s, archiving)
		classes[i] = c
		totals[c].add(s)
		if c != classExpired && c != classLost {
			kept.add(s)
		}
	}

	if len(st.Segments) == 0 {
		fmt.Fprintf(&b, "topic %s: no segments\n", st.Topic)
	} else {
		first, last := st.Segments[0].ID, st.Segments[len(st.Segments)-1].ID
		if len(st.Segments) == 1 {
			fmt.Fprintf(&b, "topic %s: 1 segment (id %d)\n\n", st.Topic, first)
		} else {
			fmt.Fprintf(&b, "topic %s: %d segments (ids %d-%d)\n\n", st.Topic, len(st.Segments), first, last)
		}
		writeMapRows(&b, st.Segments, classes, opt.Width, paint)
	}

	fmt.Fprintf(&b, "\n  %8s %10s %11s\n", "SEGMENTS", "ENTRIES", "BYTES")
	for c := range numClasses {
		t := totals[c]
		if t.segments == 0 {
			continue
		}
		legend := classStyle[c].legend
		if c == classActive {
			legend = activeLegend(st)
		}
		fmt.Fprintf(&b, "%s %8d %10d %11s  %s\n", paint(c, string(classStyle[c].glyph)), t.segments, t.entries, formatBytes(t.bytes), legend)
	}
	fmt.Fprintf(&b, "  %8d %10d %11s  kept (all but expired and lost)\n\n", kept.segments, kept.entries, formatBytes(kept.bytes))

	fmt.Fprintf(&b, "offsets  %s\n", offsetsLine(st))
	fmt.Fprintf(&b, "config   %s\n", configLine(st.Config))
	return b.String()
}

// writeMapRows draws one cell per segment, in rows that each start with the id of
// their first segment, and that fit in width columns (0: tierMapCells cells a row).
// A run of cells of one class is painted as one.
func writeMapRows(b *strings.Builder, segs []wire.SegmentInfo, classes []segmentClass, width int, paint func(segmentClass, string) string) {
	labelWidth := len(strconv.FormatUint(slices.MaxFunc(segs, func(x, y wire.SegmentInfo) int {
		return cmpUint(x.ID, y.ID)
	}).ID, 10))
	cells := tierMapCells
	if width > 0 {
		cells = max(width-labelWidth-1, 8) // too narrow a terminal wraps the rows itself
	}
	for row := 0; row < len(segs); row += cells {
		end := min(row+cells, len(segs))
		fmt.Fprintf(b, "%*d ", labelWidth, segs[row].ID)
		for i := row; i < end; {
			j := i
			for j < end && classes[j] == classes[i] {
				j++
			}
			b.WriteString(paint(classes[i], strings.Repeat(string(classStyle[classes[i]].glyph), j-i)))
			i = j
		}
		b.WriteByte('\n')
	}
}

func cmpUint(x, y uint64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// activeLegend says which segment takes the topic's writes and where.
func activeLegend(st *wire.TopicState) string {
	var parts []string
	for i := range st.Segments {
		s := &st.Segments[i]
		if classify(s, false) != classActive {
			continue
		}
		verb := "active"
		if s.State == "sealing" {
			verb = "sealing (takes no more writes)"
		}
		p := fmt.Sprintf("%s: segment %d on node %d", verb, s.ID, s.Leader)
		if len(s.Replicas) > 1 {
			p += " (replicas " + joinUints(s.Replicas) + ")"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}

// offsetsLine gives the topic's kept offsets and its shared cursor.
func offsetsLine(st *wire.TopicState) string {
	if st.EndOffset == nil {
		return fmt.Sprintf("start %d  end unknown (the active segment's leader did not answer)  cursor %d", st.StartOffset, st.Cursor)
	}
	end := *st.EndOffset
	line := fmt.Sprintf("start %d  end %d  cursor %d", st.StartOffset, end, st.Cursor)
	if from := max(st.Cursor, st.StartOffset); from < end {
		line += fmt.Sprintf(" (%d entries not taken yet)", end-from)
	}
	return line
}

// configLine gives the topic's settings as key=value pairs; those it does not set
// take the nodes' defaults.
func configLine(raw json.RawMessage) string {
	var cfg map[string]json.RawMessage
	if len(bytes.TrimSpace(raw)) == 0 || json.Unmarshal(raw, &cfg) != nil {
		return strings.TrimSpace(string(raw))
	}
	if len(cfg) == 0 {
		return "the nodes' defaults"
	}
	var kv []string
	for k, v := range cfg {
		kv = append(kv, k+"="+string(v))
	}
	slices.Sort(kv)
	return strings.Join(kv, " ") + " (the rest: the nodes' defaults)"
}

func joinUints(ids []uint64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(s, " ")
}

// formatBytes writes n in binary units, one decimal above a KiB.
func formatBytes(n int64) string {
	if n < 1024 && n > -1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, unit := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= 1024
		if v < 1024 && v > -1024 || unit == "TiB" {
			return fmt.Sprintf("%.1f %s", v, unit)
		}
	}
	return "" // not reached
}
