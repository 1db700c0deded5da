package auth

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"

	"floe/wire"
)

// Credential is what a connection keeps once it has presented a token (AUTH
// <token>, Authorization: Bearer <token>): the token's digest, never the token and
// never its rights, so that every request is checked against the table of the
// moment (Table.Authorize on Source.Current()). The zero Credential is "no token".
// Credentials are comparable values.
type Credential struct {
	d  digest
	ok bool
}

// NewCredential returns the credential of token; an empty token is no token (the
// zero Credential).
func NewCredential(token string) Credential {
	if token == "" {
		return Credential{}
	}
	return Credential{d: sha256.Sum256([]byte(token)), ok: true}
}

// FromBearer returns the credential of an Authorization header value "Bearer
// <token>" (the scheme in any case, RFC 9110), and the zero Credential for an
// absent header or another scheme.
func FromBearer(authorization string) Credential {
	scheme, token, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Credential{}
	}
	return NewCredential(strings.TrimSpace(token))
}

// String returns the token's identifier for logs, "sha256:ab12cd34…" (the start of
// its digest), or "none" for the zero Credential. It never holds the token.
func (c Credential) String() string {
	if !c.ok {
		return "none"
	}
	return c.d.id()
}

// Principal is a token the table knows, with its grants as they were in the table
// that returned it: ask the current table again (Table.Identify) rather than keep a
// Principal across requests. The zero Principal holds no grant.
type Principal struct {
	d      digest
	grants []grant // shared with the Table, never changed
}

// String returns the token's identifier for logs, "sha256:ab12cd34…" (the start of
// its digest, which names its lines in the token file), or "none" for the zero
// Principal. It never holds the token.
func (p Principal) String() string {
	if len(p.grants) == 0 {
		return "none"
	}
	return p.d.id()
}

// best returns the highest role of the grants that apply, and whether any applies:
// for a cluster-wide operation the grants without a prefix, otherwise those whose
// prefix (possibly "") begins topic.
func (p Principal) best(cluster bool, topic string) (Role, bool) {
	r, applies := None, false
	for _, g := range p.grants {
		if cluster && g.prefix != "" || !cluster && !strings.HasPrefix(topic, g.prefix) {
			continue
		}
		r, applies = max(r, g.role), true
	}
	return r, applies
}

// Allow reports whether p may do what needs role need on topic: some grant has a
// role of need or above and no prefix or one that begins topic. A prefix is a plain
// string prefix: "orders" covers "orders-eu" and "ordersX", "orders." only names
// that start with "orders.". Allow(None, ...) is true.
func (p Principal) Allow(need Role, topic string) bool {
	r, _ := p.best(false, topic)
	return r >= need
}

// AllowCluster reports whether p may do what needs role need on the cluster as a
// whole (no topic, or every topic): only grants without a prefix count, so an admin
// limited to a prefix administers its topics and never the cluster.
func (p Principal) AllowCluster(need Role) bool {
	r, _ := p.best(true, "")
	return r >= need
}

// Check returns nil when p may do op on topic (topic is ignored for a cluster-wide
// op), and otherwise a 403 *Refusal saying why: "role read cannot PUT", "topic
// outside the token's prefix", "METRICS needs a token without a topic prefix".
func (p Principal) Check(op Op, topic string) error {
	r, applies := p.best(op.Cluster, topic)
	if r >= op.Need {
		return nil
	}
	reason := fmt.Sprintf("role %s cannot %s", r, op.Name)
	switch {
	case !applies && op.Cluster:
		reason = op.Name + " needs a token without a topic prefix"
	case !applies:
		reason = "topic outside the token's prefix"
	}
	return &Refusal{Status: http.StatusForbidden, Reason: reason}
}

// Refusal is a request refused for want of a token or of rights. Its text is what
// the client reads: "unauthorized: <reason>", on the Walrus protocol the reply "ERR
// unauthorized: <reason>" (Reply), over HTTP the body with Status. No Refusal holds
// a token, a topic prefix or a line of the token file.
type Refusal struct {
	// Status is http.StatusUnauthorized (401) for no token or an unknown one, and
	// http.StatusForbidden (403) for a known token whose grants do not cover the
	// request. A 401 reply should carry "WWW-Authenticate: Bearer".
	Status int
	Reason string // "no token", "unknown token", "role read cannot PUT", ...
}

func (r *Refusal) Error() string { return ErrUnauthorized.Error() + ": " + r.Reason }

// Is makes every Refusal ErrUnauthorized for errors.Is.
func (r *Refusal) Is(target error) bool { return target == ErrUnauthorized }

// Reply returns the Walrus reply frame body "ERR unauthorized: <reason>".
func (r *Refusal) Reply() []byte { return wire.ErrorReply(r.Error()) }
