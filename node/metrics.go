package node

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"floe/tiering"
)

// metrics are the node's Prometheus series, on its own registry (several nodes may
// share one process under `floe dev`).
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	// requestsBy holds requests' counter of each command, looked up once: a
	// request counts itself without hashing its label (read-only after newMetrics).
	requestsBy  map[string]prometheus.Counter
	badRequests prometheus.Counter
	entries     prometheus.Counter
	bytes       prometheus.Counter
	batches     prometheus.Histogram
	// commitTime is each group commit's write and fdatasync; commitWaits counts
	// the group commits that waited for expected appends, by outcome.
	commitTime  prometheus.Histogram
	commitWaits *prometheus.CounterVec
	forwarded   prometheus.Counter
	rolls       prometheus.Counter
	remoteReads prometheus.Counter
	// getBatches observes the GETs each cursor advance of this node (as Raft leader)
	// served: the shared cursor's group commit.
	getBatches prometheus.Histogram
	// acceptErrors counts failed accepts by listener (client, cluster); refusedConns
	// the client connections turned away at --max-connections.
	acceptErrors *prometheus.CounterVec
	refusedConns prometheus.Counter
	// unauthorized counts refusals for want of credentials, by listener (cluster,
	// client, http); reloadErrors the credential files that failed to load again.
	unauthorized *prometheus.CounterVec
	reloadErrors prometheus.Counter
	// claimedByOther is 1 while the archive's cluster claim names another cluster.
	claimedByOther prometheus.Gauge
	// metaSnapshot is when this node last wrote the metadata snapshot to the archive.
	metaSnapshot prometheus.Gauge
}

// newMetrics declares and registers every series of the node. It stays one function
// past 100 lines on purpose: one declaration per series, so the whole set reads (and is
// checked against the README) in one place.
func newMetrics(n *Node) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "floe_client_requests_total", Help: "Client requests by command.",
		}, []string{"command"}),
		badRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "floe_client_bad_requests_total", Help: "Client requests refused as malformed.",
		}),
		entries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "floe_appended_entries_total", Help: "Entries appended and fsynced on this node as segment leader.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "floe_appended_bytes_total", Help: "Payload bytes appended on this node as segment leader.",
		}),
		batches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "floe_append_batch_entries", Help: "Entries per group-commit batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "floe_group_commit_seconds", Help: "Write and fdatasync time of each group commit on this node as segment leader.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 12),
		}),
		commitWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "floe_group_commit_waits_total", Help: "Group commits that waited for the appends expected to join them (--group-commit-wait), by outcome: filled (they came) or ran_out (the wait ended first).",
		}, []string{"outcome"}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "floe_forwarded_appends_total", Help: "Appends this node forwarded to another segment leader.",
		}),
		rolls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "floe_segment_rolls_total", Help: "Segments this node sealed.",
		}),
		remoteReads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "floe_remote_reads_total", Help: "Reads served from the archive (remote tier).",
		}),
		getBatches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "floe_get_batch_gets", Help: "GETs served by one advance of a shared cursor (its group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		acceptErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "floe_accept_errors_total", Help: "Failed accepts by listener (client, cluster): usually the fd limit; the listener backs off and retries.",
		}, []string{"listener"}),
		refusedConns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "floe_client_connections_refused_total", Help: "Client connections answered ERR and closed because --max-connections were open.",
		}),
		unauthorized: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "floe_unauthorized_total", Help: "Connections and requests refused for want of credentials, by listener (cluster, client, http).",
		}, []string{"listener"}),
		reloadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "floe_credential_reload_errors_total", Help: "Reloads of the TLS, secret or token files that failed (the files loaded before stay in use).",
		}),
		metaSnapshot: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "floe_meta_snapshot_last_unix_seconds", Help: "When this node (as Raft leader) last wrote the metadata snapshot to the archive.",
		}),
		claimedByOther: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "floe_archive_claimed_by_other_cluster", Help: "1 if the archive's cluster claim (" + tiering.ClaimKey + ") names another cluster.",
		}),
	}
	m.requestsBy = map[string]prometheus.Counter{}
	for _, cmd := range []string{"REGISTER", "PUT", "PUTOFF", "PUTBATCH", "GET", "READ", "TAIL", "STATE", "METRICS"} {
		m.requestsBy[cmd] = m.requests.WithLabelValues(cmd)
	}
	m.reg.MustRegister(m.requests, m.badRequests, m.entries, m.bytes, m.batches, m.commitTime, m.commitWaits, m.forwarded, m.rolls, m.remoteReads, m.getBatches, m.claimedByOther, m.metaSnapshot,
		m.acceptErrors, m.refusedConns, m.unauthorized, m.reloadErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(nodeGauges(n)...)
	return m
}

// nodeGauges are the gauges read from the node's state when scraped.
func nodeGauges(n *Node) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "floe_unsafe_no_fsync", Help: "1 if this node acknowledges appends without fdatasync (--unsafe-no-fsync, for benchmarks only).",
		}, func() float64 {
			if n.cfg.UnsafeNoFsync {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "floe_client_connections", Help: "Client (Walrus-protocol) connections open now.",
		}, func() float64 { return float64(n.clients.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "floe_raft_leader", Help: "1 if this node is the Raft leader.",
		}, func() float64 {
			if n.raft != nil && n.raft.IsLeader() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "floe_write_lease", Help: "1 if this node may acknowledge writes (quorum lease held).",
		}, func() float64 {
			if n.raft != nil && n.hasLease() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "floe_raft_applied_index", Help: "Last Raft index applied to the metadata state machine.",
		}, func() float64 {
			if n.raft == nil {
				return 0
			}
			return float64(n.raft.AppliedIndex())
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "floe_wal_damaged_segments",
			Help: "Active segments this node leads whose WAL holds a damaged record followed by intact ones: writes to them are refused until an operator runs floe cluster recover-segment.",
		}, func() float64 {
			if n.store == nil {
				return 0
			}
			return float64(len(n.store.Damaged()))
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "floe_under_replicated_segments",
			Help: "Segments of replicated topics short of a copy on this node's account: active ones it leads with a follower behind (or not answering), and sealed, unarchived ones whose copy it must hold and has not completed yet.",
		}, func() float64 {
			if n.writer == nil || n.fsm == nil {
				return 0
			}
			return float64(n.writer.UnderReplicated() + n.incompleteCopies())
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "floe_topic_deletions_pending",
			Help: "Deleted topics whose archive objects are not all deleted yet (the cluster's count, from the metadata): the Raft leader retries them every 5 s while the archive is unreachable.",
		}, func() float64 {
			if n.fsm == nil {
				return 0
			}
			return float64(len(n.fsm.Deletions()))
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "floe_open_segments", Help: "Segment files this node holds open: active ones, sealed ones being read, and up to 8 idle sealed ones.",
		}, func() float64 {
			if n.store == nil {
				return 0
			}
			_, open := n.store.OpenIdle()
			return float64(open)
		}),
	}
}

// Appended, Forwarded and Rolled are write.Metrics.
func (m *metrics) Appended(entries int, bytes int64) {
	m.entries.Add(float64(entries))
	m.bytes.Add(float64(bytes))
	m.batches.Observe(float64(entries))
}

func (m *metrics) Forwarded() { m.forwarded.Inc() }

func (m *metrics) Committed(took time.Duration) { m.commitTime.Observe(took.Seconds()) }

func (m *metrics) Waited(filled bool) {
	if filled {
		m.commitWaits.WithLabelValues("filled").Inc()
	} else {
		m.commitWaits.WithLabelValues("ran_out").Inc()
	}
}

func (m *metrics) Rolled() { m.rolls.Inc() }

// request counts one client request of command cmd.
func (m *metrics) request(cmd string) {
	if c, ok := m.requestsBy[cmd]; ok {
		c.Inc()
		return
	}
	m.requests.WithLabelValues(cmd).Inc()
}
