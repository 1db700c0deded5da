package node

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"floe/auth"
	"floe/meta"
	"floe/node/console"
	"floe/node/rpc"
	"floe/node/write"
	"floe/tiering"
)

// Report is one node's state as the console shows it (GET /v1/nodes): what only that
// node knows (its RPO, its upload backlog, its connections, its recent errors), beside
// its role. A member that does not answer is reported with Up false and the error.
type Report struct {
	ID         uint64 `json:"id"`
	Up         bool   `json:"up"`
	Error      string `json:"error,omitempty"`
	State      string `json:"state,omitempty"` // Raft role: Leader, Follower, Candidate
	RaftAddr   string `json:"raft_addr"`
	ClientAddr string `json:"client_addr,omitempty"`
	HTTPAddr   string `json:"http_addr,omitempty"`
	// UptimeSeconds since this process started.
	UptimeSeconds float64 `json:"uptime_seconds,omitempty"`
	HasLease      bool    `json:"has_lease"`
	AppliedIndex  uint64  `json:"applied_index,omitempty"`
	// RPOSeconds: floe_rpo_seconds, the age of the oldest entry only this node's disk
	// holds.
	RPOSeconds float64 `json:"rpo_seconds"`
	// BacklogSegments and BacklogBytes: sealed segments this node must still upload.
	BacklogSegments   int   `json:"backlog_segments"`
	BacklogBytes      int64 `json:"backlog_bytes"`
	ClientConnections int64 `json:"client_connections"`
	// LastSweep: what this node's last orphan sweep found (it sweeps as Raft leader).
	LastSweep    *tiering.SweepSummary `json:"last_sweep,omitempty"`
	RecentErrors []LogRecord           `json:"recent_errors"`
}

// LogRecord is one warning or error this node logged.
type LogRecord struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
	// Attrs: the record's attributes, as text.
	Attrs map[string]string `json:"attrs,omitempty"`
}

// report is this node's Report.
func (n *Node) report() Report {
	r := Report{
		ID: n.cfg.NodeID, Up: true, State: n.raft.State(), RaftAddr: n.advertise,
		UptimeSeconds: time.Since(n.started).Seconds(), HasLease: n.hasLease(), AppliedIndex: n.raft.AppliedIndex(),
		ClientConnections: n.clients.Load(), RecentErrors: n.recent.records(),
	}
	if !n.tiered.Load() { // still starting
		return r
	}
	r.ClientAddr, r.HTTPAddr = n.ClientAddr(), n.HTTPAddr()
	r.RPOSeconds = ageSeconds(n.oldestLocalOnly())
	if n.uploader != nil {
		r.BacklogSegments, r.BacklogBytes = n.uploader.Backlog()
	}
	if n.sweeper != nil {
		r.LastSweep = n.sweeper.Last()
	}
	return r
}

// rpcReport answers OpReport: this node's Report.
func (n *Node) rpcReport(req *rpc.Request) {
	b, err := json.Marshal(n.report())
	req.Reply(b, err)
}

// reportTimeout bounds the wait for one member's report.
const reportTimeout = 2 * time.Second

// Reports returns every member's Report, this node's own and the others' over the
// cluster port, at once; a member that does not answer within reportTimeout is
// reported down.
func (n *Node) Reports(ctx context.Context) []Report {
	members := n.fsm.Nodes()
	out := make([]Report, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		if m.ID == n.cfg.NodeID {
			out[i] = n.report()
			continue
		}
		out[i] = Report{ID: m.ID, RaftAddr: m.RaftAddr, ClientAddr: m.ClientAddr, HTTPAddr: m.HTTPAddr}
		peer := n.peers.Get(m.RaftAddr)
		if peer.RecentlyDown() { // do not queue behind a member that just failed a call
			out[i].Error = "did not answer a call in the last seconds"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, err := peer.Call(ctx, rpc.OpReport, nil, reportTimeout)
			switch {
			case err == nil:
				err = json.Unmarshal(body, &out[i])
			case rpc.IsRemote(err) && errors.Is(err, ErrBadRequest):
				// It answered, but does not know the op: an older floe.
				out[i].Up, out[i].Error = true, "runs an older floe without reports"
				return
			}
			if err != nil {
				out[i].Up, out[i].Error = false, err.Error()
			}
		}()
	}
	wg.Wait()
	return out
}

// ArchiveSummary is the archive as the metadata knows it (GET /v1/archive/summary):
// the segments archived, their bytes before and after compression, and the orphans
// the Raft leader's last sweep found.
type ArchiveSummary struct {
	Enabled bool `json:"enabled"`
	// Objects and ObjectBytes: segments whose object the metadata records, and the
	// objects' sizes; RawBytes: those segments' bytes before compression.
	Objects     int     `json:"objects"`
	ObjectBytes int64   `json:"object_bytes"`
	RawBytes    int64   `json:"raw_bytes"`
	Ratio       float64 `json:"compression_ratio,omitempty"` // RawBytes / ObjectBytes
	// RemoteOnly: archived segments no node holds locally any more.
	RemoteOnly int                   `json:"remote_only"`
	LastSweep  *tiering.SweepSummary `json:"last_sweep,omitempty"`
	// Topics: what each topic has not in the archive yet.
	Topics map[string]TopicBacklog `json:"topics"`
	// PendingDeletions: the keys of deleted topics whose objects are not all deleted
	// yet (floe_topic_deletions_pending).
	PendingDeletions []string `json:"pending_deletions"`
}

// TopicBacklog is what of a topic the archive does not hold yet: its sealed segments
// still to upload, and the age of the oldest of its segments not archived (the active
// one included), an upper bound of the topic's live RPO: nothing older than that is
// outside the archive.
type TopicBacklog struct {
	Segments int   `json:"backlog_segments"`
	Bytes    int64 `json:"backlog_bytes"`
	// UnarchivedAgeSeconds: since the oldest segment not archived was created, the
	// active one included even while it holds no entry (the metadata does not count
	// an active segment's entries), so an upper bound.
	UnarchivedAgeSeconds float64 `json:"unarchived_age_seconds"`
}

// archiveSummary sums the archived segments of every topic; the last sweep is this
// node's (the Raft leader sweeps).
func (n *Node) archiveSummary() ArchiveSummary {
	s := ArchiveSummary{Enabled: n.bucket != nil, Topics: map[string]TopicBacklog{}, PendingDeletions: []string{}}
	for _, d := range n.fsm.Deletions() {
		s.PendingDeletions = append(s.PendingDeletions, d.Key())
	}
	now := time.Now()
	for _, name := range n.fsm.TopicKeys() {
		t, ok := n.fsm.Topic(name)
		if !ok {
			continue
		}
		var tb TopicBacklog
		for _, seg := range t.Segments {
			switch {
			case seg.State == meta.Sealed && seg.Count > 0:
				tb.Segments++
				tb.Bytes += seg.Bytes
				fallthrough
			case seg.State == meta.Active:
				tb.UnarchivedAgeSeconds = max(tb.UnarchivedAgeSeconds, now.Sub(write.CreatedAt(seg)).Seconds())
			}
			if seg.State != meta.Archived || seg.ArchiveKey == "" {
				continue
			}
			s.Objects++
			s.ObjectBytes += seg.ArchiveSize
			s.RawBytes += seg.Bytes
			if seg.LocalEvicted {
				s.RemoteOnly++
			}
		}
		if s.Enabled {
			s.Topics[t.Name] = tb
		}
	}
	if s.ObjectBytes > 0 {
		s.Ratio = float64(s.RawBytes) / float64(s.ObjectBytes)
	}
	if n.tiered.Load() && n.sweeper != nil {
		s.LastSweep = n.sweeper.Last()
	}
	return s
}

// routeConsole serves the console page at / and its files under /console/, and the
// endpoints only it needs: every member's report and the archive's summary.
func (n *Node) routeConsole(mux router) {
	static := console.Handler()
	mux.Handle("GET /{$}", static)
	mux.Handle("GET /console/", static)
	mux.HandleFunc("GET /v1/nodes", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"nodes": n.Reports(r.Context())})
	})
	mux.HandleFunc("GET /v1/archive/summary", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, n.archiveSummary())
	})
	// whoami says whether the node checks tokens and, for the request's token, whether
	// it is known and may administer the cluster: the console shows its admin actions
	// only then.
	mux.HandleFunc("GET /v1/whoami", func(w http.ResponseWriter, r *http.Request) {
		tokens := n.creds.tokens
		if tokens == nil {
			writeJSON(w, map[string]any{"auth": false, "valid": true, "cluster_admin": true})
			return
		}
		cred := auth.FromBearer(r.Header.Get("Authorization"))
		p, err := tokens.Current().Identify(cred)
		if err != nil && cred != (auth.Credential{}) {
			n.unauthorized("http", r.RemoteAddr, err) // a token tried here is counted like anywhere
		}
		writeJSON(w, map[string]any{"auth": true, "valid": err == nil, "cluster_admin": err == nil && p.AllowCluster(auth.Admin)})
	})
}

// recentLog keeps the last recentLogSize warnings and errors a node logged.
type recentLog struct {
	mu   sync.Mutex
	ring []LogRecord
	next int
	full bool
}

const recentLogSize = 50

func (l *recentLog) add(r LogRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ring == nil {
		l.ring = make([]LogRecord, recentLogSize)
	}
	l.ring[l.next] = r
	l.next = (l.next + 1) % recentLogSize
	l.full = l.full || l.next == 0
}

// records returns the records kept, newest first.
func (l *recentLog) records() []LogRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.next
	if l.full {
		n = recentLogSize
	}
	out := make([]LogRecord, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, l.ring[(l.next-i+recentLogSize)%recentLogSize])
	}
	return out
}

// recentHandler passes every record to next and keeps the warnings and errors in log.
type recentHandler struct {
	next  slog.Handler
	log   *recentLog
	attrs []slog.Attr
}

func (h *recentHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h *recentHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		rec := LogRecord{Time: r.Time, Level: r.Level.String(), Message: r.Message, Attrs: map[string]string{}}
		for _, a := range h.attrs {
			rec.Attrs[a.Key] = a.Value.String()
		}
		r.Attrs(func(a slog.Attr) bool {
			rec.Attrs[a.Key] = a.Value.String()
			return true
		})
		h.log.add(rec)
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *recentHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &recentHandler{next: h.next.WithAttrs(as), log: h.log, attrs: append(append([]slog.Attr{}, h.attrs...), as...)}
}

func (h *recentHandler) WithGroup(name string) slog.Handler {
	return &recentHandler{next: h.next.WithGroup(name), log: h.log, attrs: h.attrs}
}

// TopicSummary is one topic in GET /v1/topics?detail=1 (floe topic ls): its settings,
// offsets, and where its segments and bytes are, from the metadata alone.
type TopicSummary struct {
	Name string `json:"name"`
	// ID is the topic's incarnation id (STATE's "id").
	ID     uint64           `json:"id"`
	Config meta.TopicConfig `json:"config"`
	// Replication: the replication factor (1 when unset).
	Replication int `json:"replication"`
	// StartOffset is the first offset kept; SealedEnd the end of the sealed segments
	// (the active one's entries are counted by its leader only: STATE has them).
	StartOffset uint64 `json:"start_offset"`
	SealedEnd   uint64 `json:"sealed_end"`
	Cursor      uint64 `json:"cursor"`
	// Segments by where their data is: active, sealed (local only), archived with a
	// local copy (both), archive only (remote), expired.
	Segments map[string]int `json:"segments"`
	// LocalBytes: sealed bytes a node still holds; ArchivedBytes: the objects' sizes.
	LocalBytes    int64 `json:"local_bytes"`
	ArchivedBytes int64 `json:"archived_bytes"`
	// ActiveLeader leads the active segment.
	ActiveLeader uint64 `json:"active_leader"`
}

// topicSummaries returns every topic's summary, by name.
func (n *Node) topicSummaries() []TopicSummary {
	var out []TopicSummary
	for _, name := range n.fsm.TopicKeys() {
		n.fsm.View(name, func(t *meta.Topic) {
			s := TopicSummary{Name: t.Name, ID: t.ID, Config: t.Config, Replication: t.Config.Replication(), Cursor: t.Cursor,
				Segments: map[string]int{}}
			started := false
			for _, seg := range t.Segments {
				switch {
				case seg.State == meta.Active:
					s.Segments["active"]++
					s.ActiveLeader = seg.Leader
				case seg.State == meta.Expired:
					s.Segments["expired"]++
				case seg.State == meta.Archived && seg.LocalEvicted:
					s.Segments["remote"]++
					s.ArchivedBytes += seg.ArchiveSize
				case seg.State == meta.Archived:
					s.Segments["both"]++
					s.ArchivedBytes += seg.ArchiveSize
					s.LocalBytes += seg.Bytes
				default:
					s.Segments["sealed"]++
					s.LocalBytes += seg.Bytes
				}
				if seg.State != meta.Expired && !started {
					s.StartOffset, started = seg.Base, true
				}
				if seg.State != meta.Active {
					s.SealedEnd = max(s.SealedEnd, seg.Base+seg.Count)
				}
			}
			out = append(out, s)
		})
	}
	return out
}
