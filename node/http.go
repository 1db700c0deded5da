package node

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/pprof"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"floe/archive"
	"floe/meta"
	"floe/tiering"
	"floe/topicname"
	"floe/wire"
)

// maxEntryBytes is the largest record the HTTP API takes, and so the largest entry a
// topic holds (a Walrus-protocol request frame holds less).
const maxEntryBytes = 16 << 20

// httpTimeouts are the HTTP server's deadlines: a request's header must arrive within
// readHeader and its body within read; its reply must be written within write of the
// header's end (handlers that take longer extend it: long-poll reads by their wait,
// archive listing, sweeping and verifying by httpAdminWriteTimeout); a kept-alive
// connection is closed after idle without a request.
type httpTimeouts struct {
	readHeader, read, write, idle time.Duration
}

// httpAdminWriteTimeout bounds the reply of the archive listing, sweep and verify
// handlers, which take as long as the archive is large.
const httpAdminWriteTimeout = 10 * time.Minute

// httpTimeouts returns the configured HTTP deadlines (the defaults below unless a
// test shrank them): every ordinary handler ends within twice the request timeout
// (a metadata catch-up, then a commit), plus half a minute for a slow client.
func (c *Config) httpTimeouts() httpTimeouts {
	if c.httpDeadlines != (httpTimeouts{}) {
		return c.httpDeadlines
	}
	return httpTimeouts{
		readHeader: 10 * time.Second,
		read:       2 * time.Minute, // a 16 MiB record at 1 Mbit/s, with room
		write:      2*c.RequestTimeout + 30*time.Second,
		idle:       2 * time.Minute,
	}
}

// newHTTPServer is the HTTP API server with its deadlines set.
func (n *Node) newHTTPServer() *http.Server {
	to := n.cfg.httpTimeouts()
	return &http.Server{
		Handler:           n.httpHandler(),
		ErrorLog:          log.New(httpErrorLog{n}, "", 0),
		ReadHeaderTimeout: to.readHeader,
		ReadTimeout:       to.read,
		WriteTimeout:      to.write,
		IdleTimeout:       to.idle,
	}
}

// httpErrorLog takes net/http's server log lines: a failed TLS handshake (not a
// client that hung up before its hello) counts as a refusal of the HTTP listener; the
// rest (a handler's panic, a failed accept) are logged as warnings.
type httpErrorLog struct{ n *Node }

func (l httpErrorLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	// net/http says so only in the text: "http: TLS handshake error from <addr>: <err>".
	if rest, ok := strings.CutPrefix(line, "http: TLS handshake error from "); ok {
		if !strings.HasSuffix(rest, ": EOF") {
			addr, why, _ := strings.Cut(rest, ": ")
			l.n.unauthorized("http", addr, errors.New("TLS handshake: "+why))
		}
		return len(p), nil
	}
	l.n.log.Warn("http server", "msg", line)
	return len(p), nil
}

// extendWrite gives a handler that may take long d from now to write its reply,
// instead of the server's write timeout.
func extendWrite(w http.ResponseWriter, d time.Duration) {
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
}

// httpHandler serves the HTTP API (README, "Protocol"): health, Prometheus metrics, and
// /v1 resources for topics, records, the cluster and the archive.
func (n *Node) httpHandler() http.Handler {
	sm := http.NewServeMux()
	mux := router{mux: sm, n: n}
	n.routeHealth(mux)
	n.routeTopics(mux)
	n.routeRecords(mux)
	n.routeCluster(mux)
	n.routeArchive(mux)
	n.routeConsole(mux)
	if n.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return sm
}

// router registers the HTTP API's routes, each behind the check of its token when
// the node has a token file (authorizeHTTP).
type router struct {
	mux *http.ServeMux
	n   *Node
}

func (r router) Handle(pattern string, h http.Handler) {
	r.mux.Handle(pattern, sameOrigin(r.n.authorizeHTTP(pattern, h)))
}

// sameOrigin refuses a change (any method but GET and HEAD) that a browser sends on
// behalf of a page of another origin: a page the operator visits must not move
// leadership or append records through the operator's browser (on a node without
// tokens nothing else would stop it). Clients that are not browsers send no Origin.
func sameOrigin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			origin := r.Header.Get("Origin")
			cross := r.Header.Get("Sec-Fetch-Site") == "cross-site"
			if origin != "" && origin != "null" {
				if u, err := url.Parse(origin); err != nil || u.Host != r.Host {
					cross = true
				}
			} else if origin == "null" {
				cross = true
			}
			if cross {
				http.Error(w, "forbidden: a change from a page of another origin", http.StatusForbidden)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

func (r router) HandleFunc(pattern string, h http.HandlerFunc) { r.Handle(pattern, h) }

// routeHealth serves /healthz (the process is up), /readyz (it has a Raft leader, has
// caught up with its metadata and is a registered member) and /metrics.
func (n *Node) routeHealth(mux router) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if id, _ := n.raft.Leader(); id == 0 {
			http.Error(w, "no raft leader", http.StatusServiceUnavailable)
			return
		}
		if !n.synced.Load() {
			http.Error(w, "metadata not caught up with the raft leader yet", http.StatusServiceUnavailable)
			return
		}
		if info, ok := n.fsm.Node(n.cfg.NodeID); !ok || info.Features&meta.CurrentFeatures != meta.CurrentFeatures {
			http.Error(w, "not yet a registered member (of this release)", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{}))
}

// routeTopics serves the topic list, and a topic's registration and state.
func (n *Node) routeTopics(mux router) {
	mux.HandleFunc("GET /v1/topics", func(w http.ResponseWriter, r *http.Request) {
		if d := r.URL.Query().Get("detail"); d == "1" || d == "true" {
			writeJSON(w, map[string]any{"topics": n.topicSummaries()})
			return
		}
		names := []string{}
		for _, key := range n.fsm.TopicKeys() {
			names = append(names, topicname.NameOf(key))
		}
		sort.Strings(names) // by name ("a-b@1" sorts before "a@3" by key)
		writeJSON(w, map[string]any{"topics": names})
	})
	mux.HandleFunc("PUT /v1/topics/{topic}", func(w http.ResponseWriter, r *http.Request) {
		var cfg meta.TopicConfig
		if r.ContentLength != 0 {
			dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
			dec.DisallowUnknownFields() // a misspelt setting is an error, not a silent default
			if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
				http.Error(w, "bad topic config: "+err.Error(), http.StatusBadRequest)
				return
			}
		}
		if err := n.Register(r.Context(), r.PathValue("topic"), &cfg); err != nil {
			httpErr(w, err)
			return
		}
		n.writeState(w, r)
	})
	mux.HandleFunc("GET /v1/topics/{topic}", func(w http.ResponseWriter, r *http.Request) {
		n.writeState(w, r)
	})
	// DELETE a topic: gone at once for every request; its files and objects are
	// deleted after (floe_topic_deletions_pending counts those not done).
	mux.HandleFunc("DELETE /v1/topics/{topic}", func(w http.ResponseWriter, r *http.Request) {
		d, err := n.DeleteTopic(r.Context(), r.PathValue("topic"))
		if err != nil {
			httpErr(w, err)
			return
		}
		writeJSON(w, map[string]any{"deleted": d.Name, "id": d.ID, "key": d.Key()})
	})
	// PATCH a topic: change the settings the body names (TopicConfig's fields).
	mux.HandleFunc("PATCH /v1/topics/{topic}", func(w http.ResponseWriter, r *http.Request) {
		var p meta.TopicConfigPatch
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields() // a misspelt setting is an error, not a silent no-op
		if err := dec.Decode(&p); err != nil {
			http.Error(w, "bad topic settings: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := n.AlterTopic(r.Context(), r.PathValue("topic"), &p); err != nil {
			httpErr(w, err)
			return
		}
		n.writeState(w, r)
	})
}

// routeRecords serves a topic's records: appends and (long-poll) reads.
func (n *Node) routeRecords(mux router) {
	// POST records: the body is one record, or with Content-Type application/x-ndjson
	// one record per line.
	mux.HandleFunc("POST /v1/topics/{topic}/records", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxEntryBytes+1))
		if err != nil || len(body) > maxEntryBytes || len(body) == 0 {
			http.Error(w, "body must hold 1 byte to 16 MiB", http.StatusBadRequest)
			return
		}
		payloads := [][]byte{body}
		if r.Header.Get("Content-Type") == "application/x-ndjson" {
			payloads = nil
			sc := bufio.NewScanner(bytes.NewReader(body))
			sc.Buffer(nil, maxEntryBytes)
			for sc.Scan() {
				if len(sc.Bytes()) > 0 {
					payloads = append(payloads, bytes.Clone(sc.Bytes()))
				}
			}
			if len(payloads) == 0 {
				http.Error(w, "no records", http.StatusBadRequest)
				return
			}
		}
		first, err := n.Append(r.Context(), r.PathValue("topic"), payloads)
		if err != nil {
			httpErr(w, err)
			return
		}
		writeJSON(w, map[string]uint64{"offset": first, "count": uint64(len(payloads))})
	})
	// GET records?offset=N&max=M[&wait_ms=W]: values are base64 in JSON.
	mux.HandleFunc("GET /v1/topics/{topic}/records", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		offset, err := strconv.ParseUint(q.Get("offset"), 10, 64)
		if err != nil && q.Get("offset") != "" {
			http.Error(w, "offset must be a number", http.StatusBadRequest)
			return
		}
		limit := wire.DefaultReadMax
		if s := q.Get("max"); s != "" {
			if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > wire.MaxReadMax {
				http.Error(w, "max must be 1-10000", http.StatusBadRequest)
				return
			}
		}
		wait, _ := strconv.Atoi(q.Get("wait_ms"))
		wait = min(max(wait, 0), wire.MaxTailWaitMS)
		// The long poll, then a read that may take the request timeout, then the reply.
		extendWrite(w, time.Duration(wait)*time.Millisecond+n.cfg.RequestTimeout+n.cfg.httpTimeouts().write)
		key, err := n.resolve(r.Context(), r.PathValue("topic"))
		if err != nil {
			httpErr(w, err)
			return
		}
		entries, next, err := n.reader.Tail(r.Context(), key, offset, limit, time.Duration(wait)*time.Millisecond)
		if err != nil {
			httpErr(w, err)
			return
		}
		type rec struct {
			Offset uint64 `json:"offset"`
			Value  []byte `json:"value"`
		}
		out := make([]rec, len(entries))
		for i, e := range entries {
			out[i] = rec{e.Offset, e.Payload}
		}
		writeJSON(w, map[string]any{"records": out, "next": next})
	})
}

// routeCluster serves the cluster's members and metrics, and the operator's actions
// on it: moving Raft leadership, removing a member, and recovering a topic's active
// segment from a leader that is down.
func (n *Node) routeCluster(mux router) {
	mux.HandleFunc("GET /v1/cluster", func(w http.ResponseWriter, r *http.Request) {
		m, err := n.Metrics()
		if err != nil {
			httpErr(w, err)
			return
		}
		writeJSON(w, map[string]any{"metrics": m, "nodes": n.fsm.Nodes(), "under_replicated_segments": n.UnderReplicated(r.Context())})
	})
	mux.HandleFunc("POST /v1/cluster/transfer-leadership", func(w http.ResponseWriter, r *http.Request) {
		if !n.raft.IsLeader() {
			httpErr(w, meta.ErrNotRaftLeader)
			return
		}
		if err := n.raft.TransferLeadership(); err != nil {
			httpErr(w, err)
			return
		}
		writeJSON(w, map[string]string{"result": "ok"})
	})
	// DELETE a member: removes it from the Raft configuration (on the leader) and from
	// the metadata. The removed node must be wiped before it may join again.
	mux.HandleFunc("DELETE /v1/cluster/members/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
		if err != nil || id == 0 {
			http.Error(w, "member id must be a positive number", http.StatusBadRequest)
			return
		}
		if err := n.RemoveMember(r.Context(), id); err != nil {
			httpErr(w, err)
			return
		}
		writeJSON(w, map[string]string{"result": "ok"})
	})
	// POST recover-segment[?to=N&segment=K&force=1]: move the topic's writes off its active
	// segment's leader, which must be down (floe cluster recover-segment).
	mux.HandleFunc("POST /v1/topics/{topic}/recover-segment", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		to, err := strconv.ParseUint(q.Get("to"), 10, 64)
		if err != nil && q.Get("to") != "" {
			http.Error(w, "to must be a node id", http.StatusBadRequest)
			return
		}
		seg, err := strconv.ParseUint(q.Get("segment"), 10, 64)
		if err != nil && q.Get("segment") != "" {
			http.Error(w, "segment must be a segment id", http.StatusBadRequest)
			return
		}
		force := q.Get("force") == "1" || q.Get("force") == "true"
		extendWrite(w, n.cfg.LeaseTimeout+n.cfg.httpTimeouts().write) // the liveness probes come first
		next, err := n.RecoverSegment(r.Context(), r.PathValue("topic"), to, seg, force)
		if err != nil {
			httpErr(w, err)
			return
		}
		writeJSON(w, map[string]uint64{"segment": next.ID, "leader": next.Leader, "base": next.Base})
	})
}

// routeArchive serves the archive's segment objects (listing, verifying one; 404 on a
// node without --archive) and its orphans (listing, sweeping, on the Raft leader).
func (n *Node) routeArchive(mux router) {
	// Archive: list the segment objects (optionally of one topic), verify one object.
	mux.HandleFunc("GET /v1/archive/objects", func(w http.ResponseWriter, r *http.Request) {
		if n.bucket == nil {
			http.Error(w, "this node has no --archive", http.StatusNotFound)
			return
		}
		// Every topic's; a name's, every incarnation's; a key's (name@id), one's.
		t := r.URL.Query().Get("topic")
		if err := topicname.ValidateKey(t); t != "" && err != nil {
			httpErr(w, err)
			return
		}
		extendWrite(w, httpAdminWriteTimeout)
		var objs []archive.ObjectInfo
		if err := tiering.ListTopicObjects(r.Context(), n.bucket, t, func(o archive.ObjectInfo) error {
			objs = append(objs, o)
			return nil
		}); err != nil {
			httpErr(w, err)
			return
		}
		writeJSON(w, map[string]any{"objects": objs})
	})
	mux.HandleFunc("POST /v1/archive/verify", func(w http.ResponseWriter, r *http.Request) {
		if n.bucket == nil {
			http.Error(w, "this node has no --archive", http.StatusNotFound)
			return
		}
		key := r.URL.Query().Get("key")
		if err := archive.ValidateKey(key); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		extendWrite(w, httpAdminWriteTimeout) // reads the whole object
		writeJSON(w, tiering.VerifyObject(r.Context(), n.bucket, key))
	})
	// Orphans: GET lists them (a dry-run sweep now); POST sweeps now (?dry_run=1: only
	// report). Both run on the Raft leader: another node redirects there (307).
	sweep := func(dryRun func(*http.Request) bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !n.raft.IsLeader() {
				if at := n.leaderHTTP(); at != "" {
					scheme := "http://"
					if n.creds.clientTLS != nil {
						scheme = "https://"
					}
					http.Redirect(w, r, scheme+at+r.URL.RequestURI(), http.StatusTemporaryRedirect)
					return
				}
			}
			extendWrite(w, httpAdminWriteTimeout) // lists the whole archive
			rep, err := n.Sweep(r.Context(), dryRun(r))
			if err != nil {
				httpErr(w, err)
				return
			}
			writeJSON(w, rep)
		}
	}
	mux.HandleFunc("GET /v1/archive/orphans", sweep(func(*http.Request) bool { return true }))
	mux.HandleFunc("POST /v1/archive/sweep", sweep(func(r *http.Request) bool {
		v := r.URL.Query().Get("dry_run")
		return v != "" && v != "0" && v != "false"
	}))
}

// leaderHTTP returns the Raft leader's HTTP address, if known.
func (n *Node) leaderHTTP() string {
	id, _ := n.raft.Leader()
	for _, m := range n.fsm.Nodes() {
		if m.ID == id {
			return m.HTTPAddr
		}
	}
	return ""
}

func (n *Node) writeState(w http.ResponseWriter, r *http.Request) {
	st, err := n.State(r.Context(), r.PathValue("topic"))
	if err != nil {
		httpErr(w, err)
		return
	}
	writeJSON(w, st)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func httpErr(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, meta.ErrNoTopic):
		code = http.StatusNotFound
	case errors.Is(err, ErrExpired):
		code = http.StatusGone
	case errors.Is(err, topicname.ErrInvalid), errors.Is(err, meta.ErrBadConfig), errors.Is(err, ErrBadRequest):
		code = http.StatusBadRequest
	case retryable(err):
		code = http.StatusServiceUnavailable
	}
	http.Error(w, string(errReply(err)), code)
}
