package auth

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"floe/wire"
)

// TestRoles: the roles are ordered, named as the file spells them, and ParseRole
// takes exactly those names.
func TestRoles(t *testing.T) {
	if !(None < Read && Read < Write && Write < Admin) {
		t.Fatal("roles are not ordered None < Read < Write < Admin")
	}
	var zero Role
	if zero != None {
		t.Errorf("the zero Role is %v, want None", zero)
	}
	for _, r := range []Role{Read, Write, Admin} {
		got, err := ParseRole(r.String())
		if err != nil || got != r {
			t.Errorf("ParseRole(%q) = %v, %v; want %v", r.String(), got, err, r)
		}
	}
	for _, s := range []string{"", "none", "Read", "ADMIN", "writer", " read"} {
		if _, err := ParseRole(s); !errors.Is(err, ErrBadRole) {
			t.Errorf("ParseRole(%q) = %v, want ErrBadRole", s, err)
		}
	}
	if got := None.String(); got != "none" {
		t.Errorf("None.String() = %q", got)
	}
	if got := Role(7).String(); got != "Role(7)" {
		t.Errorf("Role(7).String() = %q", got)
	}
}

// principal returns the principal of a table of one token with the given lines
// ("<role> [<prefix>]").
func principal(t *testing.T, grants ...string) Principal {
	t.Helper()
	var file strings.Builder
	for _, g := range grants {
		file.WriteString(hashOf("tok") + " " + g + "\n")
	}
	p, ok := mustParse(t, file.String()).Authenticate("tok")
	if !ok {
		t.Fatal("tok did not authenticate")
	}
	return p
}

// TestAllow: a grant covers a topic when its role is high enough and its prefix (as
// a plain string) begins the topic's name; the best grant decides; only grants
// without a prefix count for the cluster.
func TestAllow(t *testing.T) {
	for _, tc := range []struct {
		grants  []string
		need    Role
		topic   string // "": AllowCluster
		allowed bool
	}{
		{[]string{"read"}, Read, "t", true},
		{[]string{"read"}, Write, "t", false},
		{[]string{"write"}, Read, "t", true}, // write implies read
		{[]string{"write"}, Write, "t", true},
		{[]string{"write"}, Admin, "t", false},
		{[]string{"admin"}, Read, "t", true}, // admin implies both
		{[]string{"admin"}, Write, "t", true},
		{[]string{"admin"}, Admin, "t", true},
		{[]string{"read"}, Read, "", true},
		{[]string{"admin"}, Admin, "", true},
		{[]string{"write orders."}, Write, "orders.eu", true},
		{[]string{"write orders."}, Write, "orders.", true},
		{[]string{"write orders."}, Write, "orders", false},
		{[]string{"write orders."}, Read, "payments", false},
		{[]string{"write orders"}, Write, "ordersX", true}, // a plain string prefix
		{[]string{"write Orders."}, Write, "orders.eu", false},
		{[]string{"read", "write orders."}, Write, "orders.eu", true},
		{[]string{"read", "write orders."}, Write, "payments", false},
		{[]string{"read", "write orders."}, Read, "payments", true},
		{[]string{"write orders.", "admin orders.eu."}, Admin, "orders.eu.1", true},
		{[]string{"write orders.", "admin orders.eu."}, Admin, "orders.us.1", false},
		// A prefixed admin administers its topics, never the cluster.
		{[]string{"admin orders."}, Admin, "orders.eu", true},
		{[]string{"admin orders."}, Admin, "", false},
		{[]string{"admin orders."}, Read, "", false},
		{[]string{"admin orders.", "read"}, Read, "", true},
		{[]string{"admin orders.", "read"}, Admin, "", false},
		{[]string{"admin ."}, Admin, "", false},
	} {
		p := principal(t, tc.grants...)
		var got bool
		if tc.topic == "" {
			got = p.AllowCluster(tc.need)
		} else {
			got = p.Allow(tc.need, tc.topic)
		}
		if got != tc.allowed {
			t.Errorf("grants %q, need %v on %q (\"\": the cluster): allowed %v, want %v", tc.grants, tc.need, tc.topic, got, tc.allowed)
		}
	}
	var nobody Principal
	if nobody.Allow(Read, "t") || nobody.AllowCluster(Read) || !nobody.Allow(None, "t") {
		t.Error("the zero Principal must hold no grant")
	}
}

// TestCheck: refusals say why, with a 403, and never name the prefix or the token.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		grants []string
		op     Op
		topic  string
		reason string // "": allowed
	}{
		{[]string{"read"}, ForCommand("GET"), "t", ""},
		{[]string{"read"}, ForCommand("PUT"), "t", "role read cannot PUT"},
		{[]string{"write"}, ForCommand("PUTBATCH"), "t", ""},
		{[]string{"read secret-team."}, ForCommand("PUT"), "secret-team.x", "role read cannot PUT"},
		{[]string{"write secret-team."}, ForCommand("PUT"), "t", "topic outside the token's prefix"},
		{[]string{"admin secret-team."}, ForCommand("METRICS"), "", "METRICS needs a token without a topic prefix"},
		{[]string{"read"}, ForCommand("METRICS"), "", ""},
		{[]string{"write"}, ForRoute("POST /v1/cluster/transfer-leadership"), "", "role write cannot POST /v1/cluster/transfer-leadership"},
		{[]string{"admin secret-team."}, ForRoute("DELETE /v1/cluster/members/{id}"), "", "DELETE /v1/cluster/members/{id} needs a token without a topic prefix"},
		{[]string{"admin secret-team."}, ForRoute("POST /v1/topics/{topic}/recover-segment"), "secret-team.a", ""},
		{[]string{"admin secret-team."}, ForRoute("POST /v1/topics/{topic}/recover-segment"), "b", "topic outside the token's prefix"},
		{[]string{"write"}, ForRoute("POST /v1/topics/{topic}/recover-segment"), "b", "role write cannot POST /v1/topics/{topic}/recover-segment"},
	} {
		err := principal(t, tc.grants...).Check(tc.op, tc.topic)
		if tc.reason == "" {
			if err != nil {
				t.Errorf("grants %q, %s on %q: %v, want allowed", tc.grants, tc.op.Name, tc.topic, err)
			}
			continue
		}
		var rf *Refusal
		if !errors.As(err, &rf) {
			t.Fatalf("grants %q, %s on %q: %v, want a *Refusal", tc.grants, tc.op.Name, tc.topic, err)
		}
		if rf.Status != http.StatusForbidden || rf.Reason != tc.reason {
			t.Errorf("grants %q, %s on %q: %d %q, want 403 %q", tc.grants, tc.op.Name, tc.topic, rf.Status, rf.Reason, tc.reason)
		}
		if strings.Contains(err.Error(), "secret-team") {
			t.Errorf("refusal %q names the token's prefix", err)
		}
	}
}

// TestAuthorize: the check of one request, from the connection's credential: 401
// without a token or with an unknown one, 403 for rights too weak, nothing asked of
// operations that need no role.
func TestAuthorize(t *testing.T) {
	const token = "the-reader-token"
	tab := mustParse(t, hashOf(token)+" read\n")
	for _, tc := range []struct {
		name   string
		cred   Credential
		op     Op
		status int // 0: allowed
		reason string
	}{
		{"no token", Credential{}, ForCommand("GET"), http.StatusUnauthorized, "no token"},
		{"empty token", NewCredential(""), ForCommand("GET"), http.StatusUnauthorized, "no token"},
		{"unknown token", NewCredential("guess"), ForCommand("GET"), http.StatusUnauthorized, "unknown token"},
		{"reader GET", NewCredential(token), ForCommand("GET"), 0, ""},
		{"reader PUT", NewCredential(token), ForCommand("PUT"), http.StatusForbidden, "role read cannot PUT"},
		{"health check without a token", Credential{}, ForRoute("GET /healthz"), 0, ""},
		{"health check with an unknown token", NewCredential("guess"), ForRoute("GET /readyz"), 0, ""},
		{"AUTH needs nothing", Credential{}, ForCommand("AUTH"), 0, ""},
		{"bearer", FromBearer("Bearer " + token), ForRoute("GET /v1/topics/{topic}/records"), 0, ""},
		{"bearer, scheme in lower case", FromBearer("bearer " + token), ForRoute("GET /v1/topics/{topic}"), 0, ""},
		{"bearer, extra spaces", FromBearer("Bearer   " + token + " "), ForRoute("GET /v1/topics/{topic}"), 0, ""},
		{"basic auth is no token", FromBearer("Basic " + token), ForRoute("GET /v1/topics/{topic}"), http.StatusUnauthorized, "no token"},
		{"bearer without a token", FromBearer("Bearer "), ForRoute("GET /v1/topics/{topic}"), http.StatusUnauthorized, "no token"},
		{"no header", FromBearer(""), ForRoute("GET /v1/topics/{topic}"), http.StatusUnauthorized, "no token"},
		{"unknown route", NewCredential(token), ForRoute("GET /v1/new-thing"), http.StatusForbidden, "role read cannot GET /v1/new-thing"},
	} {
		p, err := tab.Authorize(tc.cred, tc.op, "t")
		if tc.status == 0 {
			if err != nil {
				t.Errorf("%s: %v, want allowed", tc.name, err)
			}
			continue
		}
		var rf *Refusal
		if !errors.As(err, &rf) || rf.Status != tc.status || rf.Reason != tc.reason {
			t.Errorf("%s: %v (%+v), want %d %q", tc.name, err, rf, tc.status, tc.reason)
		}
		if strings.Contains(err.Error(), token) {
			t.Errorf("%s: the refusal %q holds the token", tc.name, err)
		}
		if tc.status == http.StatusForbidden && p.String() != NewCredential(token).String() {
			t.Errorf("%s: a 403 returns principal %v, want the token's", tc.name, p)
		}
	}
}

// TestRefusalReply: a refusal is ErrUnauthorized and renders as the Walrus reply
// "ERR unauthorized: <reason>", which the client decodes back to its reason.
func TestRefusalReply(t *testing.T) {
	err := principal(t, "read").Check(ForCommand("PUT"), "t")
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("%v is not ErrUnauthorized", err)
	}
	var rf *Refusal
	errors.As(err, &rf)
	if got, want := string(rf.Reply()), "ERR unauthorized: role read cannot PUT"; got != want {
		t.Errorf("Reply() = %q, want %q", got, want)
	}
	var se *wire.ServerError
	if !errors.As(wire.ReplyError(rf.Reply()), &se) || se.Reason != "unauthorized: role read cannot PUT" {
		t.Errorf("the client reads %v", wire.ReplyError(rf.Reply()))
	}
}

// TestCredentialString: a credential is named by its digest's start, never by the
// token, and the zero one by "none".
func TestCredentialString(t *testing.T) {
	const token = "a-token-to-hide"
	c := NewCredential(token)
	if got, want := c.String(), hashOf(token)[:15]+"…"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := (Credential{}).String(); got != "none" {
		t.Errorf("zero String() = %q, want none", got)
	}
	if c != NewCredential(token) || c == NewCredential(token+"x") {
		t.Error("credentials of one token must be equal, of two tokens different")
	}
}
