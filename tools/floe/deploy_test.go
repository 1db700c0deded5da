//go:build linux

package main

// Checks of the operator files in deploy/ (README "Dashboard and alerts"): the Grafana
// dashboard and the Prometheus alert rules are well formed, and every metric their
// PromQL names is one a real floe agent exports, as read from its /metrics. Linux only:
// it runs a node out of file descriptors with prlimit, as conns_test.go does.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"

	"floe/auth"
)

const (
	dashboardPath = "../../deploy/grafana/floe-dashboard.json"
	alertsPath    = "../../deploy/prometheus/floe-alerts.yml"
	readmePath    = "../../README.md"
	// dsUID is the data source every panel and target names: the dashboard's
	// variable of type datasource, so that the one file works imported by hand and
	// provisioned from disk.
	dsUID = "${DS_PROMETHEUS}"
)

// promSynthetic are the series Prometheus makes itself for every target it scrapes:
// the rules may name them although no floe node exports them.
var promSynthetic = map[string]bool{"up": true}

// grafanaDashboard is the part of Grafana's dashboard model the checks read.
type grafanaDashboard struct {
	Title         string         `json:"title"`
	UID           string         `json:"uid"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []grafanaVar `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	ID          int                `json:"id"`
	Type        string             `json:"type"`
	Title       string             `json:"title"`
	Description string             `json:"description"`
	Datasource  *grafanaDatasource `json:"datasource"`
	GridPos     struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr       string             `json:"expr"`
		RefID      string             `json:"refId"`
		Datasource *grafanaDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's
}

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaVar struct {
	Name       string             `json:"name"`
	Type       string             `json:"type"`
	Query      json.RawMessage    `json:"query"` // a string, or {"query": "..."}
	Datasource *grafanaDatasource `json:"datasource"`
}

// queryText is the variable's query, in either of Grafana's forms.
func (v grafanaVar) queryText() (string, error) {
	var s string
	if err := json.Unmarshal(v.Query, &s); err == nil {
		return s, nil
	}
	var o struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &o); err != nil {
		return "", fmt.Errorf("variable %q: query is neither a string nor {\"query\": ...}: %w", v.Name, err)
	}
	return o.Query, nil
}

// ruleFile is Prometheus's rule file format; decoding it with KnownFields catches a
// misspelt key, which Prometheus would refuse.
type ruleFile struct {
	Groups []struct {
		Name     string      `yaml:"name"`
		Interval string      `yaml:"interval"`
		Rules    []alertRule `yaml:"rules"`
	} `yaml:"groups"`
}

type alertRule struct {
	Alert         string            `yaml:"alert"`
	Record        string            `yaml:"record"`
	Expr          string            `yaml:"expr"`
	For           string            `yaml:"for"`
	KeepFiringFor string            `yaml:"keep_firing_for"`
	Labels        map[string]string `yaml:"labels"`
	Annotations   map[string]string `yaml:"annotations"`
}

// promExpr is one PromQL expression of the deploy files and where it is.
type promExpr struct {
	where string
	expr  string
}

func loadDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	mustOK(t, err, "read the dashboard")
	var d grafanaDashboard
	mustOK(t, json.Unmarshal(b, &d), "parse %s", dashboardPath)
	return d
}

func loadAlerts(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(alertsPath)
	mustOK(t, err, "read the alert rules")
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var r ruleFile
	mustOK(t, dec.Decode(&r), "parse %s", alertsPath)
	return r
}

// allPanels returns the dashboard's panels, those inside collapsed rows included.
func allPanels(d grafanaDashboard) []grafanaPanel {
	var out []grafanaPanel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// labelValuesQuery matches Grafana's label_values(<series selector>, <label>).
var labelValuesQuery = regexp.MustCompile(`^\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)

// dashboardExprs returns every PromQL expression of d: the panels' targets and the
// series selectors of its query variables.
func dashboardExprs(t *testing.T, d grafanaDashboard) []promExpr {
	t.Helper()
	var out []promExpr
	for _, p := range allPanels(d) {
		for _, tg := range p.Targets {
			out = append(out, promExpr{fmt.Sprintf("dashboard panel %d %q target %s", p.ID, p.Title, tg.RefID), tg.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, err := v.queryText()
		mustOK(t, err, "dashboard variables")
		m := labelValuesQuery.FindStringSubmatch(q)
		if m == nil {
			t.Fatalf("dashboard variable %q: query %q is not label_values(<selector>, <label>)", v.Name, q)
		}
		out = append(out, promExpr{fmt.Sprintf("dashboard variable %q", v.Name), m[1]})
	}
	return out
}

func alertExprs(r ruleFile) []promExpr {
	var out []promExpr
	for _, g := range r.Groups {
		for _, rule := range g.Rules {
			out = append(out, promExpr{fmt.Sprintf("alert %s (group %s)", rule.Alert, g.Name), rule.Expr})
		}
	}
	return out
}

// PromQL's functions and aggregation operators (Prometheus 3), and the words that are
// neither metric names nor functions.
var (
	promAggregations = setOf("sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
		"count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio")
	promFunctions = union(promAggregations, setOf(
		"abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
		"avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
		"count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg",
		"delta", "deriv", "double_exponential_smoothing", "exp", "floor", "histogram_avg",
		"histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev",
		"histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta", "increase",
		"info", "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2",
		"mad_over_time", "max_over_time", "min_over_time", "minute", "month", "pi",
		"predict_linear", "present_over_time", "quantile_over_time", "rad", "rate", "resets",
		"round", "scalar", "sgn", "sin", "sinh", "sort", "sort_by_label", "sort_by_label_desc",
		"sort_desc", "sqrt", "stddev_over_time", "stdvar_over_time", "sum_over_time", "tan",
		"tanh", "time", "timestamp", "vector", "year",
		// @ start() and @ end()
		"start", "end"))
	promKeywords = setOf("and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
		"group_left", "group_right")
	// promLabelLists are the words followed by a parenthesised list of label names.
	promLabelLists = setOf("by", "without", "on", "ignoring", "group_left", "group_right")
)

func setOf(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

func union(sets ...map[string]bool) map[string]bool {
	m := map[string]bool{}
	for _, s := range sets {
		for w := range s {
			m[w] = true
		}
	}
	return m
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isIdentChar(c byte) bool { return isIdentStart(c) || '0' <= c && c <= '9' }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// promqlMetricNames returns the metric names expr selects, sorted, each once: the
// identifiers that are not functions, keywords or label names. It skips label matchers
// ({...}), ranges and subqueries ([...]), the label lists of by, without, on, ignoring,
// group_left and group_right, strings, numbers and durations, and Grafana's variables
// ($name, ${name}). It is no full PromQL parser, but it refuses what would hide a
// name: unbalanced brackets, an unterminated string, a call of an unknown function.
func promqlMetricNames(expr string) ([]string, error) {
	names := map[string]bool{}
	depth := 0
	skipSpace := func(i int) int {
		for i < len(expr) && strings.ContainsRune(" \t\r\n", rune(expr[i])) {
			i++
		}
		return i
	}
	// closing returns the index just past the bracket that closes the one at open
	// (label matchers and ranges do not nest), stepping over strings.
	closing := func(open int, close byte) (int, error) {
		for i := open + 1; i < len(expr); i++ {
			switch c := expr[i]; c {
			case '"', '\'', '`':
				end, err := stringEnd(expr, i)
				if err != nil {
					return 0, err
				}
				i = end - 1
			case close:
				return i + 1, nil
			case '$': // a Grafana variable, [${__interval}]
				if i+1 < len(expr) && expr[i+1] == '{' {
					end := strings.IndexByte(expr[i:], '}')
					if end < 0 {
						return 0, fmt.Errorf("variable at offset %d is not closed", i)
					}
					i += end
				}
			case '{', '[', '(', ')', '}', ']':
				return 0, fmt.Errorf("%q at offset %d inside %q at offset %d", c, i, expr[open], open)
			}
		}
		return 0, fmt.Errorf("%q at offset %d is not closed", expr[open], open)
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case strings.ContainsRune(" \t\r\n,+-*/%^=!<>@", rune(c)):
			i++
		case c == '"' || c == '\'' || c == '`':
			end, err := stringEnd(expr, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '{':
			end, err := closing(i, '}')
			if err != nil {
				return nil, err
			}
			i = end
		case c == '[':
			end, err := closing(i, ']')
			if err != nil {
				return nil, err
			}
			i = end
		case c == '(':
			depth++
			i++
		case c == ')':
			if depth--; depth < 0 {
				return nil, fmt.Errorf("unbalanced ')' at offset %d", i)
			}
			i++
		case c == '$':
			i++
			if i < len(expr) && expr[i] == '{' {
				end := strings.IndexByte(expr[i:], '}')
				if end < 0 {
					return nil, fmt.Errorf("variable at offset %d is not closed", i-1)
				}
				i += end + 1
				break
			}
			for i < len(expr) && isIdentChar(expr[i]) {
				i++
			}
		case isDigit(c) || c == '.' && i+1 < len(expr) && isDigit(expr[i+1]):
			// a number (1e-3, 0x1f, 0.005) or a duration (5m, 1h30m)
			start := i
			for i < len(expr) && (isIdentChar(expr[i]) || expr[i] == '.' ||
				strings.ContainsRune("+-", rune(expr[i])) && strings.ContainsRune("eE", rune(expr[i-1])) &&
					!strings.HasPrefix(expr[start:], "0x") && !strings.HasPrefix(expr[start:], "0X")) {
				i++
			}
		case isIdentStart(c):
			start := i
			for i < len(expr) && isIdentChar(expr[i]) {
				i++
			}
			word := expr[start:i]
			next := skipSpace(i)
			call := next < len(expr) && expr[next] == '('
			if promAggregations[word] && !call {
				// sum by (l) (x): the clause between the operator and its argument
				rest := expr[next:]
				call = strings.HasPrefix(rest, "by") || strings.HasPrefix(rest, "without")
			}
			switch lower := strings.ToLower(word); {
			case promLabelLists[word] && call:
				end, err := closingParen(expr, next)
				if err != nil {
					return nil, err
				}
				i = end
			case promKeywords[lower] || promLabelLists[word]:
			case call:
				if !promFunctions[word] {
					return nil, fmt.Errorf("unknown function %s at offset %d", word, start)
				}
			default:
				names[word] = true
			}
		default:
			return nil, fmt.Errorf("unexpected %q at offset %d", c, i)
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("%d unclosed '('", depth)
	}
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// stringEnd returns the index just past the PromQL string that starts at i.
func stringEnd(expr string, i int) (int, error) {
	q := expr[i]
	for j := i + 1; j < len(expr); j++ {
		switch expr[j] {
		case '\\':
			if q != '`' {
				j++
			}
		case q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("string at offset %d is not terminated", i)
}

// closingParen returns the index just past the ')' that closes the '(' at open.
func closingParen(expr string, open int) (int, error) {
	depth := 0
	for i := open; i < len(expr); i++ {
		switch expr[i] {
		case '"', '\'', '`':
			end, err := stringEnd(expr, i)
			if err != nil {
				return 0, err
			}
			i = end - 1
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				return i + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("'(' at offset %d is not closed", open)
}

func TestPromQLMetricNames(t *testing.T) {
	for _, tc := range []struct {
		name, expr string
		want       []string
		err        string
	}{
		{name: "bare", expr: "floe_raft_leader", want: []string{"floe_raft_leader"}},
		{name: "matchers and a Grafana range",
			expr: `sum by (instance) (rate(floe_appended_entries_total{job="$job", instance=~"$instance"}[$__rate_interval]))`,
			want: []string{"floe_appended_entries_total"}},
		{name: "matcher values that look like names and braces in strings",
			expr: `floe_archive_operations_total{operation=~"put|list", x="}{ sum(", y='a\'b'}`,
			want: []string{"floe_archive_operations_total"}},
		{name: "histogram quantile",
			expr: `histogram_quantile(0.99, sum by (le, operation) (rate(floe_archive_operation_duration_seconds_bucket[5m])))`,
			want: []string{"floe_archive_operation_duration_seconds_bucket"}},
		{name: "numbers and durations", expr: `rate(a_total[5m] offset 1h30m) * 2592000 * 0.005 / 1e3 + 0x1f + 1e-3 + .5 > Inf`,
			want: []string{"a_total"}},
		{name: "vector matching", expr: `a and on (job, instance) (b == 1) or ignoring(x) group_left(y, z) c unless d`,
			want: []string{"a", "b", "c", "d"}},
		{name: "aggregation with the clause after", expr: `sum(rate(x_total[1m])) without (instance)`, want: []string{"x_total"}},
		{name: "subquery", expr: `deriv((max by (job) (floe_archive_orphaned_bytes))[1h:5m]) > 0`,
			want: []string{"floe_archive_orphaned_bytes"}},
		{name: "a braced variable in a range", expr: `rate(a_total[${__interval}])`, want: []string{"a_total"}},
		{name: "colons and a variable outside a selector", expr: `job:requests:rate5m * ${factor} + $scale`,
			want: []string{"job:requests:rate5m"}},
		{name: "time and vector", expr: `time() - max(a > 0) or vector(0)`, want: []string{"a"}},
		{name: "unknown function", expr: `rat(a_total[5m])`, err: "unknown function rat"},
		{name: "unclosed paren", expr: `sum(rate(a_total[5m])`, err: "unclosed"},
		{name: "extra paren", expr: `sum(a))`, err: "unbalanced"},
		{name: "unterminated string", expr: `a{x="y}`, err: "not terminated"},
		{name: "unclosed selector", expr: `a{x="y"`, err: "not closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := promqlMetricNames(tc.expr)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("promqlMetricNames(%q) = %v, %v; want an error with %q", tc.expr, got, err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("promqlMetricNames(%q) = %v, %v; want %v", tc.expr, got, err, tc.want)
			}
		})
	}
}

// TestDashboardWellFormed: every panel has a unique id and a title and fits the grid;
// every panel but a row queries the dashboard's Prometheus data source variable; every
// target has an expression that names at least one metric; the cost panels state their
// prices.
func TestDashboardWellFormed(t *testing.T) {
	d := loadDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard title %q, uid %q: want both", d.Title, d.UID)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want 36 or later (data sources by uid)", d.SchemaVersion)
	}
	vars := map[string]grafanaVar{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v, ok := vars["DS_PROMETHEUS"]; !ok || v.Type != "datasource" || string(v.Query) != `"prometheus"` {
		t.Errorf("variable DS_PROMETHEUS = %+v, want a datasource variable of query \"prometheus\"", v)
	}
	for _, name := range []string{"job", "instance"} {
		if v, ok := vars[name]; !ok || v.Type != "query" || v.Datasource == nil || v.Datasource.UID != dsUID {
			t.Errorf("variable %s = %+v, want a query variable on %s", name, v, dsUID)
		}
	}
	ids := map[int]string{}
	panels := allPanels(d)
	if len(panels) < 20 {
		t.Errorf("%d panels, want the rows and panels of README's Dashboard and alerts", len(panels))
	}
	for _, p := range panels {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 {
			t.Errorf("%s: id must be positive", where)
		}
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("%s: id also used by %q", where, prev)
		}
		ids[p.ID] = p.Title
		if strings.TrimSpace(p.Title) == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("%s: gridPos %+v is off Grafana's 24-column grid", where, g)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != dsUID || p.Datasource.Type != "prometheus" {
			t.Errorf("%s: datasource %+v, want {prometheus %s}", where, p.Datasource, dsUID)
		}
		if p.Description == "" {
			t.Errorf("%s: no description", where)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no targets", where)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("%s: target refId %q empty or repeated", where, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && tg.Datasource.UID != dsUID {
				t.Errorf("%s target %s: datasource %+v, want %s", where, tg.RefID, tg.Datasource, dsUID)
			}
			names, err := promqlMetricNames(tg.Expr)
			if err != nil {
				t.Errorf("%s target %s: %q: %v", where, tg.RefID, tg.Expr, err)
			} else if len(names) == 0 {
				t.Errorf("%s target %s: %q names no metric", where, tg.RefID, tg.Expr)
			}
			if strings.Contains(tg.Expr, "2592000") {
				for _, price := range []string{"$0.005 per 1,000", "$0.0004 per 1,000", "2,592,000"} {
					if !strings.Contains(p.Description, price) {
						t.Errorf("%s: a cost estimate whose description does not say %q", where, price)
					}
				}
			}
		}
	}
}

// promTemplateFuncs stand in for the functions Prometheus gives alert templates.
var promTemplateFuncs = func() template.FuncMap {
	m := template.FuncMap{}
	for _, f := range []string{"humanize", "humanize1024", "humanizeDuration", "humanizePercentage",
		"humanizeTimestamp", "title", "toUpper", "toLower", "stripPort", "stripDomain", "safeHtml",
		"externalURL", "pathPrefix", "parseDuration", "toTime", "urlquery"} {
		m[f] = func(v ...any) string { return fmt.Sprint(v...) }
	}
	return m
}()

// readmeAnchors returns GitHub's anchors of README.md's headings (code blocks skipped).
func readmeAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(readmePath)
	mustOK(t, err, "read README")
	anchors := map[string]bool{}
	fenced := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var a strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case r == ' ':
				a.WriteRune('-')
			case r == '-' || r == '_' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9':
				a.WriteRune(r)
			}
		}
		anchors[a.String()] = true
	}
	return anchors
}

// TestAlertRulesWellFormed: the rule file is Prometheus's format with no unknown key;
// every rule is an alert with a unique name, an expression, a for duration, a severity
// and a summary, description and runbook_url (a heading of README.md) whose templates
// render.
func TestAlertRulesWellFormed(t *testing.T) {
	r := loadAlerts(t)
	anchors := readmeAnchors(t)
	seen := map[string]bool{}
	rules := 0
	for _, g := range r.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: want a name and rules", g.Name)
		}
		for _, rule := range g.Rules {
			rules++
			where := fmt.Sprintf("alert %q", rule.Alert)
			if !regexp.MustCompile(`^Floe[A-Z][A-Za-z0-9]*$`).MatchString(rule.Alert) || rule.Record != "" {
				t.Errorf("%s (record %q): want an alert named Floe<Something>", where, rule.Record)
			}
			if seen[rule.Alert] {
				t.Errorf("%s: defined twice", where)
			}
			seen[rule.Alert] = true
			if names, err := promqlMetricNames(rule.Expr); err != nil || len(names) == 0 {
				t.Errorf("%s: expr %q: names %v, %v", where, rule.Expr, names, err)
			}
			if d, err := time.ParseDuration(rule.For); err != nil || d < 0 {
				t.Errorf("%s: for %q: want a duration (%v)", where, rule.For, err)
			}
			if s := rule.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
				t.Errorf("%s: severity %q, want critical, warning or info", where, s)
			}
			for _, key := range []string{"summary", "description", "runbook_url"} {
				text := rule.Annotations[key]
				if strings.TrimSpace(text) == "" {
					t.Errorf("%s: no annotation %s", where, key)
					continue
				}
				// Prometheus defines these before expanding an annotation.
				tmpl, err := template.New(key).Funcs(promTemplateFuncs).Option("missingkey=zero").Parse(
					"{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}" + text)
				if err != nil {
					t.Errorf("%s: annotation %s: %v", where, key, err)
					continue
				}
				data := map[string]any{"Labels": map[string]string{"instance": "node1:9080", "job": "floe", "listener": "client"},
					"ExternalLabels": map[string]string{}, "ExternalURL": "", "Value": 1.5}
				if err := tmpl.Execute(new(strings.Builder), data); err != nil {
					t.Errorf("%s: annotation %s: %v", where, key, err)
				}
			}
			if anchor, ok := strings.CutPrefix(rule.Annotations["runbook_url"], "README.md#"); !ok || !anchors[anchor] {
				t.Errorf("%s: runbook_url %q is not README.md#<a heading of README.md>", where, rule.Annotations["runbook_url"])
			}
		}
	}
	if rules < 8 {
		t.Errorf("%d rules, want those README's Dashboard and alerts lists", rules)
	}
}

// exportedMetrics returns the metric families node id exports (name -> type), from
// the # TYPE lines of its /metrics.
func (c *cluster) exportedMetrics(id int) (map[string]string, error) {
	resp, err := c.httpc.Get(c.scheme + "://127.0.0.1:" + strconv.Itoa(c.node(id).httpPort) + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics on node %d: %s", id, resp.Status)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = f[3]
		}
	}
	return out, sc.Err()
}

// exported reports whether the series name belongs to one of the families: the family
// itself, or a histogram's _bucket, _sum or _count, or a summary's _sum or _count.
func exported(families map[string]string, name string) bool {
	if families[name] != "" {
		return true
	}
	for suffix, types := range map[string][]string{"_bucket": {"histogram"}, "_sum": {"histogram", "summary"}, "_count": {"histogram", "summary"}} {
		if base, ok := strings.CutSuffix(name, suffix); ok && slices.Contains(types, families[base]) {
			return true
		}
	}
	return false
}

// TestDeployMetricsExported runs a real floe agent (a file:// archive, tokens, small
// segments), drives it until every kind of series has samples (appends from several
// clients at once, uploads, a refused request, a failed archive read, accepts failing
// at the fd limit), and checks that every metric the dashboard and the alert rules
// name is one its /metrics exports. Labelled families appear on /metrics only once a
// label value has been used, hence the traffic.
func TestDeployMetricsExported(t *testing.T) {
	exprs := append(dashboardExprs(t, loadDashboard(t)), alertExprs(loadAlerts(t))...)

	tok := "tok-deploy-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	line, err := auth.Line(tok, auth.Admin, "")
	mustOK(t, err, "auth line")
	tokens := filepath.Join(t.TempDir(), "tokens")
	mustOK(t, os.WriteFile(tokens, []byte(line+"\n"), 0o600), "write tokens")
	c := startCluster(t, clusterOpts{nodes: 1, token: tok, args: []string{
		"--auth-file", tokens, "--archive", "file://" + t.TempDir(), "--max-segment-entries", "20",
	}})
	p := c.node(1)
	mustOK(t, c.conn(1).Register("deploy"), "REGISTER")

	// Appends from several clients at once: group commits that wait for each other,
	// segments that roll over and upload.
	var families map[string]string
	c.waitFor(60*time.Second, "appends, uploads and group-commit waits on /metrics", func() bool {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				conn, err := c.dialer.Dial(p.clientAddr())
				if err != nil {
					errs <- err
					return
				}
				defer conn.Close()
				for i := range 10 {
					if err := conn.Put("deploy", []byte("entry "+strconv.Itoa(i))); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("PUT: %v", err)
		}
		families, err = c.exportedMetrics(1)
		return err == nil && families["floe_group_commit_waits_total"] != "" && families["floe_archive_operations_total"] != ""
	})
	if _, _, err := c.conn(1).Get("deploy"); err != nil {
		t.Fatalf("GET: %v", err)
	}

	// A request without a token; an archive read of an object that is not there.
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(p.httpPort) + "/v1/topics")
	mustOK(t, err, "GET /v1/topics without a token")
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /v1/topics without a token: %s, want 401", resp.Status)
	}
	resp, err = c.httpc.Post(c.scheme+"://127.0.0.1:"+strconv.Itoa(p.httpPort)+"/v1/archive/verify?key=topics/deploy/999999-1.seg", "", nil)
	mustOK(t, err, "verify a missing object")
	resp.Body.Close()

	// Accepts failing at the fd limit, as in TestAcceptSurvivesEMFILE; uploads done first,
	// so no segment file is wanted meanwhile.
	c.waitFor(30*time.Second, "the upload backlog to drain", func() bool {
		return c.counter(1, "floe_archive_backlog_segments") == 0
	})
	setNofile(t, p.cmd.Process.Pid, openFDs(t, p.cmd.Process.Pid)+16)
	var held []net.Conn
	for i := range 64 {
		conn, err := net.DialTimeout("tcp", p.clientAddr(), 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		held = append(held, conn)
	}
	c.waitFor(20*time.Second, "the client listener to hit the fd limit", func() bool {
		return c.logContains(1, "too many open files")
	})
	for _, conn := range held {
		conn.Close()
	}

	// The process collector's series come back once the node has closed its side of
	// the held connections: at the fd limit it cannot open /proc/self/limits, and
	// leaves them out (a scrape right after the closes failed once on
	// process_max_fds).
	c.waitFor(30*time.Second, "every labelled family on /metrics, and the process's", func() bool {
		families, err = c.exportedMetrics(1)
		return err == nil && families["floe_unauthorized_total"] != "" &&
			families["floe_accept_errors_total"] != "" && families["floe_archive_operation_errors_total"] != "" &&
			families["process_max_fds"] != "" && families["process_open_fds"] != ""
	})

	var unknown []string
	used := map[string]bool{}
	for _, e := range exprs {
		names, err := promqlMetricNames(e.expr)
		if err != nil {
			t.Errorf("%s: %q: %v", e.where, e.expr, err)
			continue
		}
		for _, n := range names {
			used[n] = true
			if !exported(families, n) && !promSynthetic[n] {
				unknown = append(unknown, fmt.Sprintf("%s: %s", e.where, n))
			}
		}
	}
	if len(unknown) > 0 {
		t.Fatalf("%d metric names that floe does not export:\n\t%s", len(unknown), strings.Join(unknown, "\n\t"))
	}
	t.Logf("%d expressions name %d metrics, all exported by floe or made by Prometheus", len(exprs), len(used))
}
