package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// floe top's table: one row per member, from two reads of every member's /metrics.
// renderTop is pure (two scrapes in, text out) so that it is tested against golden
// files made from fixed /metrics text; topcmd.go reads the nodes and draws it.

// The series floe top reads (node/metrics.go, node/tier.go, tiering/uploader.go).
const (
	metricRaftLeader     = "floe_raft_leader"
	metricWriteLease     = "floe_write_lease"
	metricEntries        = "floe_appended_entries_total"
	metricAppendedBytes  = "floe_appended_bytes_total"
	metricGroupCommit    = "floe_group_commit_seconds"
	metricUploadedBytes  = "floe_archive_uploaded_bytes_total"
	metricBacklogSegs    = "floe_archive_backlog_segments"
	metricBacklogBytes   = "floe_archive_backlog_bytes"
	metricRPO            = "floe_rpo_seconds"
	metricClusterRPO     = "floe_cluster_rpo_seconds"
	metricConnections    = "floe_client_connections"
	metricUnderReplicate = "floe_under_replicated_segments"
)

// nodeScrape is one member's /metrics at one moment, or why it could not be read.
type nodeScrape struct {
	ID       uint64
	Addr     string // its HTTP address
	Err      error
	Families map[string]*dto.MetricFamily // by name; nil when Err is set
}

// clusterScrape is every member's /metrics, read together.
type clusterScrape struct {
	At        time.Time
	ClusterID string
	Leader    uint64   // the Raft leader as the node asked for the members saw it (0: none)
	Voters    []uint64 // Raft voters
	Nodes     []nodeScrape
	// Err: no node of --http answered GET /v1/cluster; nothing else is set.
	Err error
}

// node returns the scrape of node id, if it was read.
func (s *clusterScrape) node(id uint64) *nodeScrape {
	if s == nil {
		return nil
	}
	for i := range s.Nodes {
		if s.Nodes[i].ID == id && s.Nodes[i].Err == nil {
			return &s.Nodes[i]
		}
	}
	return nil
}

// value is the sum of a counter's or gauge's series (every label set); ok is false
// when the node does not export it (no --archive, an older floe) or was not read.
func (n *nodeScrape) value(name string) (v float64, ok bool) {
	if n == nil {
		return 0, false
	}
	f := n.Families[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		switch {
		case m.Counter != nil:
			v += m.Counter.GetValue()
		case m.Gauge != nil:
			v += m.Gauge.GetValue()
		case m.Untyped != nil:
			v += m.Untyped.GetValue()
		default:
			return 0, false
		}
	}
	return v, true
}

// histogram is a Prometheus histogram's count, sum and cumulative buckets.
type histogram struct {
	count, sum float64
	bounds     []float64 // upper bounds, ascending; the last may be +Inf
	cumulative []float64 // observations at or below each bound
}

// histogram is the histogram name, its series added bucket by bucket.
func (n *nodeScrape) histogram(name string) (h histogram, ok bool) {
	if n == nil || n.Families[name] == nil {
		return h, false
	}
	at := map[float64]float64{}
	for _, m := range n.Families[name].GetMetric() {
		if m.Histogram == nil {
			return h, false
		}
		h.count += float64(m.Histogram.GetSampleCount()) + m.Histogram.GetSampleCountFloat()
		h.sum += m.Histogram.GetSampleSum()
		for _, b := range m.Histogram.GetBucket() {
			at[b.GetUpperBound()] += float64(b.GetCumulativeCount()) + b.GetCumulativeCountFloat()
		}
	}
	for ub := range at {
		h.bounds = append(h.bounds, ub)
	}
	slices.Sort(h.bounds)
	for _, ub := range h.bounds {
		h.cumulative = append(h.cumulative, at[ub])
	}
	return h, true
}

// since is what h observed after before did: h itself if the counts went down (the
// node restarted in between) or the buckets differ.
func (h histogram) since(before histogram) histogram {
	if h.count < before.count || !slices.Equal(h.bounds, before.bounds) {
		return h
	}
	d := histogram{count: h.count - before.count, sum: h.sum - before.sum, bounds: h.bounds}
	for i := range h.cumulative {
		d.cumulative = append(d.cumulative, h.cumulative[i]-before.cumulative[i])
	}
	return d
}

// quantile estimates the q-quantile of h's observations as Prometheus's
// histogram_quantile does: linearly within the bucket that holds it. above is true
// when it falls in the +Inf bucket: v is then the highest finite bound.
func (h histogram) quantile(q float64) (v float64, above bool) {
	rank := q * h.count
	lower, below := 0.0, 0.0
	for i, ub := range h.bounds {
		if h.cumulative[i] >= rank {
			if math.IsInf(ub, 1) {
				return lower, true
			}
			return lower + (ub-lower)*(rank-below)/(h.cumulative[i]-below), false
		}
		lower, below = ub, h.cumulative[i]
	}
	return lower, true
}

// rate is the per-second increase of counter name between two scrapes of a node; a
// counter that went down (the node restarted) counts from 0.
func rate(before, after *nodeScrape, name string, interval time.Duration) (float64, bool) {
	a, ok := after.value(name)
	if !ok || interval <= 0 {
		return 0, false
	}
	b, ok := before.value(name)
	if !ok {
		return 0, false
	}
	d := a - b
	if d < 0 {
		d = a
	}
	return d / interval.Seconds(), true
}

// topColumns are the table's header; topRightAligned says which columns hold numbers.
var (
	topColumns      = []string{"NODE", "ROLE", "APPENDS/S", "APPEND B/S", "FSYNC AVG", "FSYNC P99", "UPLOAD B/S", "BACKLOG", "RPO", "CONNS"}
	topRightAligned = []bool{true, false, true, true, true, true, true, true, true, true}
)

// renderTop is floe top's table: for each member of after, its role and gauges as
// after read them, and its rates over interval, the time from before to after (before
// may be nil: the rates are then unknown, "-").
func renderTop(before, after *clusterScrape, interval time.Duration) string {
	var b strings.Builder
	if after.Err != nil {
		fmt.Fprintf(&b, "%s  %v\n", after.At.Format(time.TimeOnly), after.Err)
		return b.String()
	}
	leader := "none"
	if after.Leader != 0 {
		leader = "node " + strconv.FormatUint(after.Leader, 10)
	}
	nodes := fmt.Sprintf("%d nodes", len(after.Nodes))
	if len(after.Nodes) == 1 {
		nodes = "1 node"
	}
	fmt.Fprintf(&b, "%s  cluster %s  Raft leader %s  %s", after.At.Format(time.TimeOnly), dash(after.ClusterID), leader, nodes)
	if before != nil && interval > 0 {
		fmt.Fprintf(&b, "  rates over %.1fs", interval.Seconds())
	}
	b.WriteString("\n")
	var rpo, under float64
	var rpoKnown, underKnown bool
	for i := range after.Nodes {
		n := after.node(after.Nodes[i].ID)
		if v, ok := n.value(metricClusterRPO); ok && (!rpoKnown || v > rpo) {
			rpo, rpoKnown = v, true
		}
		if v, ok := n.value(metricUnderReplicate); ok {
			under, underKnown = under+v, true
		}
	}
	fmt.Fprintf(&b, "cluster RPO %s  under-replicated segments %s\n\n", orDash(rpoKnown, formatAge(rpo)), orDash(underKnown, strconv.FormatFloat(under, 'f', 0, 64)))

	rows := [][]string{topColumns}
	var failed []string
	for i := range after.Nodes {
		n := &after.Nodes[i]
		if n.Err != nil {
			rows = append(rows, []string{strconv.FormatUint(n.ID, 10), "no answer", "-", "-", "-", "-", "-", "-", "-", "-"})
			failed = append(failed, fmt.Sprintf("node %d (%s): %v", n.ID, dash(n.Addr), n.Err))
			continue
		}
		rows = append(rows, topRow(before.node(n.ID), n, after, interval))
	}
	writeTable(&b, rows, topRightAligned)
	for _, f := range failed {
		b.WriteString("\n" + f)
	}
	if len(failed) > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

// topRow is the row of node after (before: the same node's previous scrape, or nil).
func topRow(before, after *nodeScrape, cluster *clusterScrape, interval time.Duration) []string {
	role := "follower"
	if v, _ := after.value(metricRaftLeader); v == 1 {
		role = "leader"
	} else if len(cluster.Voters) > 0 && !slices.Contains(cluster.Voters, after.ID) {
		role = "not a voter"
	}
	if v, ok := after.value(metricWriteLease); ok && v == 0 {
		role += ", no lease"
	}
	row := []string{strconv.FormatUint(after.ID, 10), role}

	entries, ok := rate(before, after, metricEntries, interval)
	row = append(row, orDash(ok, formatRate(entries)))
	appended, ok := rate(before, after, metricAppendedBytes, interval)
	row = append(row, orDash(ok, formatBytes(int64(appended))+"/s"))

	avg, p99 := "-", "-"
	if h, ok := after.histogram(metricGroupCommit); ok && before != nil && interval > 0 {
		if hb, ok := before.histogram(metricGroupCommit); ok {
			if d := h.since(hb); d.count > 0 {
				avg = formatLatency(d.sum / d.count)
				v, above := d.quantile(0.99)
				p99 = formatLatency(v)
				if above {
					p99 = ">" + p99
				}
			}
		}
	}
	row = append(row, avg, p99)

	uploaded, ok := rate(before, after, metricUploadedBytes, interval)
	row = append(row, orDash(ok, formatBytes(int64(uploaded))+"/s"))
	backlog := "-"
	if segs, ok := after.value(metricBacklogSegs); ok {
		bytes, _ := after.value(metricBacklogBytes)
		backlog = fmt.Sprintf("%.0f (%s)", segs, formatBytes(int64(bytes)))
	}
	row = append(row, backlog)
	rpo, ok := after.value(metricRPO)
	row = append(row, orDash(ok, formatAge(rpo)))
	conns, ok := after.value(metricConnections)
	row = append(row, orDash(ok, strconv.FormatFloat(conns, 'f', 0, 64)))
	return row
}

// writeTable writes rows in columns two spaces apart, aligned right where right
// says so.
func writeTable(b *strings.Builder, rows [][]string, right []bool) {
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, cell := range r {
			widths[i] = max(widths[i], len([]rune(cell)))
		}
	}
	for _, r := range rows {
		var line strings.Builder
		for i, cell := range r {
			if i > 0 {
				line.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-len([]rune(cell)))
			if right[i] {
				line.WriteString(pad + cell)
			} else {
				line.WriteString(cell + pad)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
}

func orDash(ok bool, s string) string {
	if !ok {
		return "-"
	}
	return s
}

// formatRate writes a rate per second: one decimal below 10.
func formatRate(v float64) string {
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// formatLatency writes seconds in µs, ms or s.
func formatLatency(s float64) string {
	switch {
	case s < 1e-3:
		return fmt.Sprintf("%.0fµs", s*1e6)
	case s < 1:
		return fmt.Sprintf("%.2fms", s*1e3)
	}
	return fmt.Sprintf("%.2fs", s)
}

// formatAge writes an age in seconds: 0s, one decimal below a minute, then as a
// duration rounded to the second.
func formatAge(s float64) string {
	if s == 0 {
		return "0s"
	}
	if s < 60 {
		return strconv.FormatFloat(s, 'f', 1, 64) + "s"
	}
	return (time.Duration(s * float64(time.Second))).Round(time.Second).String()
}
