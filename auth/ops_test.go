package auth

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"floe/wire"
)

// TestForCommand: what each Walrus command needs, as the contract says; the names
// are the ones wire.ParseRequest gives; an unknown command needs cluster admin.
func TestForCommand(t *testing.T) {
	for _, tc := range []struct {
		frame   string
		need    Role
		cluster bool
	}{
		{"REGISTER t", Write, false}, // creates the topic
		{"PUT t x", Write, false},
		{"PUTOFF t x", Write, false},
		{string(wire.EncodeBatch("t", [][]byte{{1}})), Write, false},
		{"GET t", Read, false}, // moves the shared cursor: see commands
		{"GET t 10", Read, false},
		{"READ t 0", Read, false},
		{"TAIL t 0", Read, false},
		{"STATE t", Read, false},
		{"METRICS", Read, true},
	} {
		req, err := wire.ParseRequest([]byte(tc.frame))
		if err != nil {
			t.Fatalf("ParseRequest(%q): %v", tc.frame, err)
		}
		op := ForCommand(req.Cmd)
		if op.Name != req.Cmd || op.Need != tc.need || op.Cluster != tc.cluster {
			t.Errorf("ForCommand(%q) = %+v, want need %v, cluster %v", req.Cmd, op, tc.need, tc.cluster)
		}
		if !op.Cluster && req.Topic == "" {
			t.Errorf("%s is checked on its topic, but its request has none", req.Cmd)
		}
	}
	if op := ForCommand("AUTH"); op.Need != None {
		t.Errorf("ForCommand(AUTH) = %+v, want need None", op)
	}
	if op := ForCommand("FROBNICATE"); op != (Op{Name: "FROBNICATE", Need: Admin, Cluster: true}) {
		t.Errorf("ForCommand(FROBNICATE) = %+v, want cluster admin", op)
	}
}

// TestForRouteAdminActions: the contract's admin actions need admin, those on the
// cluster without a prefix; an unknown route needs cluster admin.
func TestForRouteAdminActions(t *testing.T) {
	for pattern, cluster := range map[string]bool{
		"POST /v1/cluster/transfer-leadership":    true,
		"DELETE /v1/cluster/members/{id}":         true,
		"GET /v1/archive/orphans":                 true,
		"POST /v1/archive/sweep":                  true,
		"POST /v1/topics/{topic}/recover-segment": false,
		"GET /v1/whatever-comes-next":             true,
		"":                                        true, // a request no route matched
	} {
		if op := ForRoute(pattern); op.Need != Admin || op.Cluster != cluster {
			t.Errorf("ForRoute(%q) = %+v, want admin, cluster %v", pattern, op, cluster)
		}
	}
	if op := ForRoute("POST /v1/archive/sweep"); op.Name != "POST /v1/archive/sweep" {
		t.Errorf("ForRoute names the op %q, want its pattern", op.Name)
	}
	if op := ForRoute(""); op.Name != "(no route)" {
		t.Errorf("ForRoute(\"\") names the op %q, want (no route)", op.Name)
	}
	if op := ForRoute("GET /healthz"); op.Need != None {
		t.Errorf("ForRoute(GET /healthz) = %+v: container health checks carry no token", op)
	}
}

// TestEveryOperationHasARule reads the servers' source: every command the wire
// parser knows and every route node/http.go and node/console.go register has its own rule here (rather
// than the cluster-admin default), and every rule here names one that exists. A new
// command or route fails this test until someone decides what it needs.
func TestEveryOperationHasARule(t *testing.T) {
	for _, tc := range []struct {
		file  string
		re    *regexp.Regexp
		rules map[string]Op
	}{
		{"../wire/request.go", regexp.MustCompile(`"([A-Z][A-Z]+)"`), commands},
		{"../node/http.go ../node/console.go", regexp.MustCompile(`mux\.Handle(?:Func)?\("([^"]+)"`), routes},
	} {
		var src []byte
		for _, f := range strings.Fields(tc.file) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			src = append(src, b...)
		}
		found := map[string]bool{}
		for _, m := range tc.re.FindAllStringSubmatch(string(src), -1) {
			found[m[1]] = true
			if _, ok := tc.rules[m[1]]; !ok {
				t.Errorf("%s: %q has no rule in package auth", tc.file, m[1])
			}
		}
		if len(found) < 5 {
			t.Fatalf("%s: found only %v: has the code moved?", tc.file, found)
		}
		for name := range tc.rules {
			if !found[name] && name != "AUTH" {
				t.Errorf("rule for %q: %s has no such operation", name, tc.file)
			}
		}
	}
}
