package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"floe/archive"
	"floe/meta"
	"floe/node/read"
	"floe/node/rpc"
	"floe/node/segment"
	"floe/node/write"
	"floe/tiering"
	"floe/topicname"
	"floe/wire"
)

// Sentinel errors of the node. Those that cross the wire are package rpc's, which
// gives each a code; they are re-exported here. Retryable ones (ErrNotSegmentLeader,
// ErrUnavailable) are retried internally within the request deadline before a client
// ever sees them.
var (
	// ErrNotSegmentLeader: this node does not lead the segment the request needs.
	ErrNotSegmentLeader = rpc.ErrNotSegmentLeader
	// ErrUnavailable: a node, or the quorum, cannot be reached right now.
	ErrUnavailable = rpc.ErrUnavailable
	// ErrCorrupt: stored data failed its checksum; it is never returned as data.
	ErrCorrupt = rpc.ErrCorrupt
	// ErrSegmentNotFound: a node was asked for a segment it does not hold.
	ErrSegmentNotFound = rpc.ErrSegmentNotFound
	// ErrClosed: the node is shutting down.
	ErrClosed = write.ErrClosed
	// ErrOutcomeUnknown: an append may or may not have been written, and nothing can
	// tell any more (the segment leader restarted after the first attempt and forgot
	// it). Final: retrying could write the entry twice.
	ErrOutcomeUnknown = rpc.ErrOutcomeUnknown
	// ErrExpired: the offset was in a segment that topic retention has expired (or
	// that floe restore --cluster marked lost).
	ErrExpired = read.ErrExpired
)

// Config is one node's configuration; the command-line flags (README, "Configuration")
// map onto it.
type Config struct {
	NodeID            uint64
	DataDir           string
	RaftHost          string
	RaftPort          int
	RaftAdvertiseHost string
	ClientHost        string
	ClientPort        int
	HTTPHost          string
	HTTPPort          int // 0 disables the HTTP API; -1 picks a free port
	// Pprof serves Go's profiler under /debug/pprof/ on the HTTP API port. Off by
	// default: a profile shows memory contents and costs CPU while it runs.
	Pprof bool
	Join  string
	// UnsafeNoFsync acknowledges appends without the fdatasync of the segment file
	// (the leader's and every follower copy's): an acknowledged entry is then only in
	// the page cache, and a crash of the machine (not only of the process) loses it.
	// For measuring what fdatasync costs on a machine, never for data that matters;
	// the node says so at start and in floe_unsafe_no_fsync. Metadata (Raft) is
	// fsynced all the same.
	UnsafeNoFsync bool

	// Security (docs/ARCHITECTURE.md, "Security"); empty: off, as before.
	// TLSCert and TLSKey put the client and HTTP listeners behind TLS; TLSClientCA
	// makes them require client certificates from that CA. The ClusterTLS files turn
	// on mutual TLS on the cluster port (Raft included); ClusterSecretFile a shared
	// secret's challenge-response there. Every file is re-read by Reload and when it
	// changes (checked every CredentialCheckInterval: 0, every 10s; negative, never).
	TLSCert, TLSKey, TLSClientCA                string
	ClusterTLSCert, ClusterTLSKey, ClusterTLSCA string
	ClusterSecretFile                           string
	// AuthFile lists the tokens clients must present (package auth), with their
	// roles: a client AUTHs first, an HTTP request carries a Bearer token.
	AuthFile                string
	CredentialCheckInterval time.Duration

	MaxSegmentEntries uint64
	MaxSegmentBytes   int64
	MaxSegmentAge     time.Duration
	LeaseTimeout      time.Duration
	// RequestTimeout bounds the internal retries of one client request.
	RequestTimeout time.Duration
	// GroupCommitWait bounds how long a segment leader's group commit waits for the
	// appends expected to join it (at most the recent commit time; see
	// write.Appender). 0: DefaultGroupCommitWait; negative: it never waits.
	GroupCommitWait time.Duration
	// DefaultReplicationFactor is the replication factor of a topic created without
	// one (REGISTER, or PUT /v1/topics without replication_factor). 0: 1.
	DefaultReplicationFactor int
	// SegmentFailoverTimeout is how long a dead segment leader of a replicated topic
	// may block its writes, and how long a group commit of one waits for a majority
	// of its replicas. 0: DefaultSegmentFailoverTimeout, or LeaseTimeout if longer;
	// never shorter than LeaseTimeout.
	SegmentFailoverTimeout time.Duration
	// MaxConnections bounds the client (Walrus-protocol) connections served at once;
	// one more is answered "ERR ..." and closed. 0: DefaultMaxConnections; negative:
	// no bound.
	MaxConnections int

	// HeartbeatTimeout and ElectionTimeout tune Raft (defaults 1s each).
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration

	// Tiered storage (docs/ARCHITECTURE.md, "Tiering"). Archive is empty: sealed
	// segments stay local.
	Archive             string
	S3Endpoint          string
	S3Region            string
	S3CreateBucket      bool
	S3SSE               string // encryption at rest, archive.Options.SSE: "", "AES256" or "aws:kms"
	S3SSEKMSKeyID       string // the KMS key of S3SSE "aws:kms" (archive.Options.SSEKMSKeyID)
	CacheBytes          int64
	LocalRetentionBytes int64 // 0: keep every local copy
	// UploadMaxBackoff bounds the upload retry delay while the store fails (default 30s).
	UploadMaxBackoff time.Duration
	// OrphanGrace is how old an unreferenced segment object must be before the
	// sweeper deletes it (default 1h); SweepInterval is how often the Raft leader
	// sweeps (default 10m; negative: never, only on request); SweepDryRun makes the
	// periodic sweeps report without deleting.
	OrphanGrace   time.Duration
	SweepInterval time.Duration
	SweepDryRun   bool
	// MetaSnapshotInterval is how often the Raft leader copies changed metadata into
	// the archive (default 5m; negative: never).
	MetaSnapshotInterval time.Duration
	// ForceNewCluster lets a bootstrapping node claim an archive that names another
	// cluster (docs/ARCHITECTURE.md, "Bucket layout and the cluster claim"); without
	// it, such a node refuses to start. It never lets a node start on a prefix that
	// holds segment objects or metadata snapshots.
	ForceNewCluster bool
	// ClaimInterval is how often every node reads the archive's cluster claim (and
	// the Raft leader rewrites it), and how long a node trusts its last read before
	// it writes to the archive (default and at most MaxClaimInterval).
	ClaimInterval time.Duration

	Logger       *slog.Logger
	RaftLogLevel string
	RaftLogJSON  bool

	// httpDeadlines replaces the HTTP server's deadlines (tests shrink them).
	httpDeadlines httpTimeouts
	// clientWriteTimeout replaces defaultClientWriteTimeout (tests shrink it).
	clientWriteTimeout time.Duration
	// authWait replaces defaultAuthWait (tests shrink it).
	authWait time.Duration
	// segmentFS is the file system under the segment files; nil means the OS's
	// (tests inject faults with a segment.FaultFS).
	segmentFS segment.FS
	// appendQueue replaces the appenders' queue length (tests shrink it).
	appendQueue int
	// wrapArchive, when set, wraps the opened archive (tests inject faults with it).
	wrapArchive func(archive.Bucket) archive.Bucket
}

// Defaults of the flags (README, "Configuration").
const (
	DefaultMaxSegmentEntries = 1_000_000
	DefaultMaxSegmentBytes   = 256 << 20
	DefaultMaxSegmentAge     = 10 * time.Minute
	DefaultLeaseTimeout      = 2 * time.Second
	DefaultRequestTimeout    = 15 * time.Second
	DefaultMaxConnections    = 10000
	DefaultGroupCommitWait   = time.Millisecond
	// DefaultSegmentFailoverTimeout is the default of Config.SegmentFailoverTimeout.
	DefaultSegmentFailoverTimeout = 5 * time.Second
)

func (c *Config) setDefaults() error {
	if c.NodeID == 0 {
		return errors.New("node: --node-id is required and must be > 0")
	}
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.RaftHost == "" {
		c.RaftHost = "127.0.0.1"
	}
	if c.RaftAdvertiseHost == "" {
		c.RaftAdvertiseHost = c.RaftHost
	}
	if c.ClientHost == "" {
		c.ClientHost = "127.0.0.1"
	}
	if c.HTTPHost == "" {
		c.HTTPHost = c.ClientHost
	}
	if c.MaxSegmentEntries == 0 {
		c.MaxSegmentEntries = DefaultMaxSegmentEntries
	}
	if c.MaxSegmentBytes == 0 {
		c.MaxSegmentBytes = DefaultMaxSegmentBytes
	}
	if c.MaxSegmentAge == 0 {
		c.MaxSegmentAge = DefaultMaxSegmentAge
	}
	if c.LeaseTimeout == 0 {
		c.LeaseTimeout = DefaultLeaseTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.GroupCommitWait == 0 {
		c.GroupCommitWait = DefaultGroupCommitWait
	}
	if c.DefaultReplicationFactor == 0 {
		c.DefaultReplicationFactor = 1
	}
	if c.DefaultReplicationFactor < 1 || c.DefaultReplicationFactor > meta.MaxReplicationFactor {
		return fmt.Errorf("node: --default-replication-factor %d: want 1 to %d", c.DefaultReplicationFactor, meta.MaxReplicationFactor)
	}
	if c.SegmentFailoverTimeout == 0 {
		c.SegmentFailoverTimeout = max(DefaultSegmentFailoverTimeout, c.LeaseTimeout)
	}
	if c.SegmentFailoverTimeout < c.LeaseTimeout {
		return fmt.Errorf("node: --segment-failover-timeout %v is shorter than --lease-timeout %v: a segment leader cut off from the cluster may acknowledge writes for up to --lease-timeout, so it cannot be replaced sooner", c.SegmentFailoverTimeout, c.LeaseTimeout)
	}
	if c.ClaimInterval < 0 || c.ClaimInterval > MaxClaimInterval {
		return fmt.Errorf("node: --claim-interval %v: want more than 0 and at most %v (another cluster's orphan sweeper counts on no node trusting a read of the claim for longer)", c.ClaimInterval, MaxClaimInterval)
	}
	if c.ClaimInterval == 0 {
		c.ClaimInterval = MaxClaimInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// leaderLease is how long a Raft leader keeps leading without hearing from a quorum
// (hashicorp/raft's LeaderLeaseTimeout); it is carved out of --lease-timeout.
func (c *Config) leaderLease() time.Duration {
	l := c.LeaseTimeout / 4
	if l > 500*time.Millisecond {
		l = 500 * time.Millisecond
	}
	if l < 50*time.Millisecond {
		l = 50 * time.Millisecond
	}
	return l
}

// Node is one floe node: Raft member, segment leader for some topics, client listener.
type Node struct {
	cfg Config
	// incarnation names this node's Raft state (incarnationFile; 0 until it is
	// open); lost tracks the active segments it leads that were made active before
	// it was (lost.go).
	incarnation atomic.Uint64
	lost        lostSegments
	log         *slog.Logger
	raft        *meta.Raft
	fsm         *meta.FSM
	store       *segment.Store
	metrics     *metrics
	// replicas are this node's copies of segments it follows (replica.go).
	replicas replicaCopies

	bucket   archive.Bucket // nil without --archive
	remote   *tiering.Remote
	reader   *read.Reader // the read path: READ, TAIL, GET and peers' reads (readpath.go)
	uploader *tiering.Uploader
	sweeper  *tiering.Sweeper
	claim    claimView // this node's view of the archive's claim (claim.go)

	cluster    *rpc.Listener
	clientLn   net.Listener
	httpLn     net.Listener
	httpServer *http.Server
	advertise  string

	writer *write.Writer // the write path: appenders, routing, forwarding (writepath.go)

	mu    sync.Mutex
	conns map[net.Conn]struct{}

	creds     credentials // TLS certificates and the cluster secret (security.go)
	peers     rpc.Peers   // RPC clients of the other members, by cluster address
	rpcServer *rpc.Server // this node's handler of each op (rpcserve.go)

	// getFence is the highest Raft index a GET forwarded by this node was answered
	// at: a STATE through this node waits until its FSM has applied it (State), so
	// that it shows the cursor advance of a GET this node returned.
	getFence atomic.Uint64
	clients  atomic.Int64 // client connections being served
	refusing atomic.Int64 // refused client connections still being answered

	// damagedSeen holds the segKeys of damaged segments already reported (reportDamaged).
	damagedSeen sync.Map

	bootID  uint64    // random per process: tells a restarted node from its former self
	started time.Time // when this process made the node
	// tiered is set once Start has bound the client listeners and startTiering has
	// set uploader, sweeper and remote: the console's reports, which RPCs and the
	// HTTP API may ask for earlier, read those only then.
	tiered atomic.Bool
	recent recentLog // its last warnings and errors, for the console
	// synced is set once this node's metadata has caught up with the Raft leader's
	// since its lease last lapsed (or since start); until then it holds no write lease
	// and creates no segment file. leaseMu orders its changes with the lease checks.
	synced  atomic.Bool
	leaseMu sync.Mutex
	lease   leaseState

	// applyFault, set by tests only, runs on the Raft leader after it applied a
	// forwarded command; an error it returns is sent instead of the result, as if the
	// leader had failed after the commit.
	applyFault atomic.Pointer[func(*meta.Command) error]

	// rpcReady is closed once raft and fsm are set: the cluster listener must exist
	// before Raft opens, and node-to-node RPCs that arrive in between wait for it.
	rpcReady chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start opens the node's state, joins or bootstraps its cluster and starts serving.
// It returns once the listeners are bound; cluster membership settles in the background.
// On an error, what it had opened is closed again.
func Start(cfg Config) (*Node, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	n := newNode(cfg)
	ok := false
	defer func() {
		if !ok {
			n.Close()
		}
	}()

	store, err := segment.OpenStore(filepath.Join(cfg.DataDir, "segments"), segment.Options{Logger: n.log, FS: cfg.segmentFS, NoSync: cfg.UnsafeNoFsync})
	if err != nil {
		return nil, err
	}
	n.store = store
	if cfg.UnsafeNoFsync {
		// At ERROR, so that no log level hides it.
		n.log.Error("--unsafe-no-fsync: appends are acknowledged before they are durable; a crash of this machine loses acknowledged entries (for benchmarks only)")
	}
	if err := n.loadCredentials(); err != nil {
		return nil, err
	}
	if err := n.loadFences(); err != nil {
		return nil, err
	}
	raftDir := filepath.Join(cfg.DataDir, "raft")
	hasState, err := meta.HasState(raftDir)
	if err != nil {
		return nil, err
	}
	if err := n.listenCluster(); err != nil {
		return nil, err
	}
	// A node about to bootstrap claims the archive before it creates any Raft state,
	// so that a refused start leaves the data dir as empty as it found it.
	if err := n.openArchive(); err != nil {
		return nil, err
	}
	clusterID, err := n.prepareBootstrap(hasState)
	if err != nil {
		return nil, err
	}
	if err := n.openRaft(raftDir); err != nil {
		return nil, err
	}
	// Beside the Raft state, so that it goes, and is copied, with it; created only
	// once that exists, so that a refused start leaves no trace.
	inc, err := loadIncarnation(raftDir)
	if err != nil {
		return nil, err
	}
	n.incarnation.Store(inc)
	if err := n.startMembership(raftDir, hasState, clusterID); err != nil {
		return nil, err
	}
	if err := n.listenClients(); err != nil {
		return nil, err
	}
	n.warnExposed()
	if err := n.startTiering(); err != nil {
		return nil, err
	}
	n.tiered.Store(true) // the HTTP API and RPCs, served already, may read them now
	n.metrics.reg.MustRegister(n.rpoGauges()...)
	n.startLoops()
	n.log.Info("node started", "raft", n.advertise, "client", n.clientLn.Addr().String(), "http", n.HTTPAddr())
	ok = true
	return n, nil
}

// newNode is a node with nothing opened yet: its context, boot id and metrics.
func newNode(cfg Config) *Node {
	n := &Node{
		cfg: cfg, conns: map[net.Conn]struct{}{}, rpcReady: make(chan struct{}), started: time.Now(),
	}
	// The console shows a node's recent warnings and errors (console.go).
	n.log = slog.New(&recentHandler{next: cfg.Logger.Handler(), log: &n.recent}).With("node", cfg.NodeID)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	var seed [8]byte
	rand.Read(seed[:])
	n.bootID = binary.LittleEndian.Uint64(seed[:]) | 1 // never 0
	n.metrics = newMetrics(n)
	return n
}

// listenCluster binds the cluster port, which Raft and the node-to-node RPC share,
// and sets the address other members dial. It must be bound before Raft opens; RPCs
// that arrive before then wait for rpcReady.
func (n *Node) listenCluster() error {
	ln, err := net.Listen("tcp", net.JoinHostPort(n.cfg.RaftHost, strconv.Itoa(n.cfg.RaftPort)))
	if err != nil {
		return fmt.Errorf("node: cannot listen on raft port: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	n.advertise = net.JoinHostPort(n.cfg.RaftAdvertiseHost, strconv.Itoa(port))
	n.rpcServer = n.newRPCServer()
	n.cluster, err = rpc.NewListener(ln, n.advertise, n.peers.Guard, n.serveRPC, n.log,
		n.metrics.acceptErrors.WithLabelValues("cluster").Inc)
	if err != nil {
		ln.Close()
		return err
	}
	return nil
}

// prepareBootstrap returns the id of the cluster this node bootstraps: the one an
// unfinished bootstrap recorded in the data dir, or, for a node without Raft state
// and without --join, a new one, which it records and then claims the archive for
// (the archive must be open). It returns "" for a node that joins or restarts with no
// unfinished bootstrap. A refused claim removes the recorded id again.
func (n *Node) prepareBootstrap(hasState bool) (string, error) {
	clusterID, err := readBootstrapID(n.cfg.DataDir) // "" unless a bootstrap did not finish
	if err != nil {
		return "", err
	}
	if hasState || n.cfg.Join != "" {
		return clusterID, nil
	}
	if clusterID == "" {
		clusterID = newClusterID()
		if err := writeBootstrapID(n.cfg.DataDir, clusterID); err != nil {
			return "", fmt.Errorf("node: cannot record the id of the new cluster: %w", err)
		}
	}
	if n.bucket != nil {
		if err := n.claimBucket(clusterID); err != nil {
			if rerr := removeBootstrapID(n.cfg.DataDir); rerr != nil {
				n.log.Warn("cannot remove the id of a refused bootstrap", "err", rerr)
			}
			return "", err
		}
	}
	failpoint("bootstrap-after-claim")
	return clusterID, nil
}

// openRaft opens the Raft state in raftDir, and with it the metadata FSM and the
// read and write paths over it; then it lets waiting node-to-node RPCs through.
func (n *Node) openRaft(raftDir string) error {
	hb := n.cfg.HeartbeatTimeout
	if hb == 0 {
		hb = time.Second
	}
	el := n.cfg.ElectionTimeout
	if el == 0 {
		el = hb
	}
	var err error
	n.raft, err = meta.Open(meta.Config{
		NodeID: n.cfg.NodeID, Dir: raftDir, Advertise: n.advertise, Stream: n.cluster,
		Logger: n.log, RaftLogLevel: n.cfg.RaftLogLevel, RaftLogJSON: n.cfg.RaftLogJSON,
		HeartbeatTimeout: hb, ElectionTimeout: el, LeaderLeaseTimeout: min(n.cfg.leaderLease(), hb),
	})
	if err != nil {
		return err
	}
	n.fsm = n.raft.FSM()
	n.reader = n.newReader()
	n.writer = n.newWriter()
	close(n.rpcReady)
	return nil
}

// startMembership joins, bootstraps or restarts into the cluster, from what the data
// dir holds (hasState: Raft state; clusterID: prepareBootstrap's): it bootstraps Raft
// here, and leaves the join and the cluster's initial metadata to background loops.
// A node killed during its first join or bootstrap finishes it.
func (n *Node) startMembership(raftDir string, hasState bool, clusterID string) error {
	switch {
	case hasState && n.cfg.Join != "" && !n.raft.HasConfiguration():
		// Killed during its first join: its Raft state exists, but no member's
		// configuration has reached it. Nothing else would ever add it.
		n.log.Info("restarting with raft state but no membership: the first join did not finish; joining cluster", "via", n.cfg.Join)
		n.goLoop(func() { n.joinLoop() })
	case hasState && n.cfg.Join == "" && !n.raft.HasConfiguration():
		// Killed between creating its Raft state and bootstrapping: finish it, as
		// the cluster the archive was claimed for.
		if clusterID == "" {
			return fmt.Errorf("node: %s holds Raft state but no membership and no unfinished bootstrap: start it with --join <member> to join a cluster, or empty the data dir to bootstrap a new one", raftDir)
		}
		n.log.Info("restarting with raft state but no membership: the bootstrap did not finish; bootstrapping", "cluster", clusterID)
		if err := n.raft.Bootstrap(); err != nil {
			return err
		}
		n.goLoop(func() { n.initCluster(clusterID) })
	case hasState:
		n.log.Info("restarting with existing raft state", "dir", raftDir)
		if clusterID != "" { // killed before the metadata recorded the cluster's id
			n.goLoop(func() { n.initCluster(clusterID) })
		}
	case n.cfg.Join == "":
		n.log.Info("bootstrapping a new cluster", "advertise", n.advertise, "cluster", clusterID)
		failpoint("bootstrap-before-raft")
		if err := n.raft.Bootstrap(); err != nil {
			return err
		}
		failpoint("bootstrap-before-init")
		n.goLoop(func() { n.initCluster(clusterID) })
	default:
		n.log.Info("joining cluster", "via", n.cfg.Join)
		n.goLoop(func() { n.joinLoop() })
	}
	return nil
}

// listenClients binds the client (Walrus-protocol) port, and the HTTP port unless it
// is off, and starts serving HTTP; acceptClients, started by startLoops, serves the
// client port.
func (n *Node) listenClients() error {
	var err error
	n.clientLn, err = net.Listen("tcp", net.JoinHostPort(n.cfg.ClientHost, strconv.Itoa(n.cfg.ClientPort)))
	if err != nil {
		return fmt.Errorf("node: cannot listen on client port: %w", err)
	}
	n.clientLn = n.secureClientListener(n.clientLn)
	if n.cfg.HTTPPort == 0 {
		return nil
	}
	hp := max(n.cfg.HTTPPort, 0) // -1: a free port
	n.httpLn, err = net.Listen("tcp", net.JoinHostPort(n.cfg.HTTPHost, strconv.Itoa(hp)))
	if err != nil {
		return fmt.Errorf("node: cannot listen on http port: %w", err)
	}
	n.httpServer = n.newHTTPServer()
	httpLn := n.secureClientListener(n.httpLn)
	n.goLoop(func() { n.httpServer.Serve(httpLn) })
	return nil
}

// startLoops starts the node's background loops (each stops when the node's context
// ends) and the client listener's accept loop.
func (n *Node) startLoops() {
	kick := make(chan struct{}, 1)
	n.goLoop(func() { n.leaseLoop(kick) })
	n.goLoop(func() { n.catchUpLoop(kick) })
	n.goLoop(func() { n.registerLoop() })
	n.goLoop(func() { n.ownershipLoop() })
	n.goLoop(func() { n.failoverLoop() })
	n.goLoop(func() { n.segmentFilesLoop() })
	n.goLoop(func() { n.credentialsLoop() })
	n.goLoop(func() { n.acceptClients() })
}

func (n *Node) goLoop(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// ClientAddr is the address of the Walrus-protocol listener.
func (n *Node) ClientAddr() string { return n.clientLn.Addr().String() }

// RaftAddr is the advertised cluster address.
func (n *Node) RaftAddr() string { return n.advertise }

// HTTPAddr is the address of the HTTP API, or "" when it is off.
func (n *Node) HTTPAddr() string {
	if n.httpLn == nil {
		return ""
	}
	return n.httpLn.Addr().String()
}

// ID is the node id.
func (n *Node) ID() uint64 { return n.cfg.NodeID }

// Close stops the node: listeners first, then appenders (in-flight appends finish or
// fail), then Raft and the stores. It is safe to call more than once.
func (n *Node) Close() error {
	if n.cancel == nil {
		return nil
	}
	n.cancel()
	if n.clientLn != nil {
		n.clientLn.Close()
	}
	if n.httpServer != nil {
		n.httpServer.Close()
	}
	n.mu.Lock()
	for c := range n.conns {
		c.Close()
	}
	n.mu.Unlock()
	n.peers.Close()
	n.wg.Wait()
	var err error
	if n.raft != nil {
		err = n.raft.Close()
	}
	if n.cluster != nil {
		n.cluster.Close()
	}
	if n.store != nil {
		n.closeReplicas()
		if cerr := n.store.Close(); err == nil {
			err = cerr
		}
	}
	if n.remote != nil {
		n.remote.Wait() // background prefetches and cache writes
	}
	if n.bucket != nil {
		n.bucket.Close()
	}
	n.log.Info("node stopped")
	return err
}

func (n *Node) trackConn(c net.Conn, add bool) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if add {
		if n.ctx.Err() != nil {
			return false
		}
		n.conns[c] = struct{}{}
	} else {
		delete(n.conns, c)
	}
	return true
}

// nodePeer returns the RPC client for a member by id.
func (n *Node) nodePeer(id uint64) (*rpc.Peer, error) {
	info, ok := n.fsm.Node(id)
	if !ok || info.RaftAddr == "" {
		return nil, rpc.Unavailable(fmt.Sprintf("node %d has no known address", id), nil)
	}
	return n.peers.Get(info.RaftAddr), nil
}

// hasLease reports whether this node may acknowledge writes now (docs/ARCHITECTURE.md,
// "Write lease and fencing"):
//   - it is the Raft leader (which steps down within LeaderLeaseTimeout without a
//     quorum), or a follower that heard from the leader recently enough that, even if
//     that leader has lost its quorum, --lease-timeout has not run out since; and
//   - its metadata has caught up with the leader's since the lease last lapsed: its
//     applied index reached the leader's commit index, asked for after the lapse.
//     Raft's last contact comes back with the first message after a partition heals,
//     before the entries that sealed, abandoned or moved a segment are applied here.
//
// Every check notes a lapse it sees (see checkLease), so a lapse cannot go unnoticed
// between two checks; leaseLoop checks often, and catchUpLoop catches the metadata up
// after one.
func (n *Node) hasLease() bool { return n.checkLease(time.Now()) }

// leaseState is what checkLease remembers between checks (under Node.leaseMu).
type leaseState struct {
	lapses    uint64    // lapses seen; a catch-up started before the latest one does not count
	wasLeader bool      // Raft leader at the last check
	term      uint64    // Raft term at the last check
	contact   time.Time // Raft's last contact seen at the last check (now, while leader)
	changed   chan struct{}
}

// leaseWindow is how long after the last contact with the Raft leader a follower
// still holds its lease.
func (n *Node) leaseWindow() time.Duration { return n.cfg.LeaseTimeout - 2*n.cfg.leaderLease() }

// checkLease reports whether this node holds its write lease at now, and clears
// synced if the lease has lapsed since the last check: no contact within the window
// now, none between the contact the last check saw and now (a lapse healed in
// between, or a leader that stalled), or a change of Raft leadership or term (a new
// leader's metadata may lag what its predecessor committed; a deposed one's certainly
// does). A check that finds nothing wrong but runs more than a window after the last
// one's contact counts as a lapse too: it cannot prove there was none.
func (n *Node) checkLease(now time.Time) bool {
	term := n.raft.Term()
	leader := n.raft.IsLeader()
	lc := n.raft.LastContact()
	window := n.leaseWindow()
	n.leaseMu.Lock()
	defer n.leaseMu.Unlock()
	l := &n.lease
	held := leader || (!lc.IsZero() && now.Sub(lc) < window)
	// While leader, contact is the time of the last check: a leader that did not
	// run for a window (a stall, SIGSTOP) may have been deposed meanwhile and not
	// know it yet.
	lapsed := !held || leader != l.wasLeader || term != l.term ||
		l.contact.IsZero() || now.Sub(l.contact) >= window
	if lapsed {
		l.lapses++
		if n.synced.Swap(false) {
			n.log.Warn("write lease lapsed: no writes until the metadata catches up with the raft leader's",
				"raft_leader", leader, "was_raft_leader", l.wasLeader, "last_contact", lc)
		}
	}
	l.wasLeader, l.term = leader, term
	if leader {
		l.contact = now
	} else {
		l.contact = lc
	}
	return held && !lapsed && n.synced.Load()
}

// leaseSynced sets synced after a catch-up that started when lapses lapses had been
// seen, unless another lapse came since. It reports whether it did.
func (n *Node) leaseSynced(lapses uint64) bool {
	n.leaseMu.Lock()
	defer n.leaseMu.Unlock()
	if n.lease.lapses != lapses {
		return false
	}
	n.synced.Store(true)
	if n.lease.changed != nil {
		close(n.lease.changed)
		n.lease.changed = nil
	}
	return true
}

// syncedChanged returns a channel closed the next time synced is set.
func (n *Node) syncedChanged() <-chan struct{} {
	n.leaseMu.Lock()
	defer n.leaseMu.Unlock()
	if n.lease.changed == nil {
		n.lease.changed = make(chan struct{})
	}
	return n.lease.changed
}

// backoff sleeps for the attempt's delay or until ctx ends or the FSM changes.
func (n *Node) backoff(ctx context.Context, attempt int, changed <-chan struct{}) error {
	d := time.Duration(10<<min(attempt, 6)) * time.Millisecond // 10ms .. 640ms
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-n.ctx.Done():
		return ErrClosed
	case <-changed:
		return nil
	case <-t.C:
		return nil
	}
}

// propose applies a metadata command through the Raft leader, wherever it is, and
// returns once the command is applied on this node too. ErrNotSegmentLeader and lost
// leadership are retried until ctx ends; the command's own error is returned as is.
// Each call is one request: every attempt carries the same request id, so an attempt
// that committed although its answer was lost is never applied twice, and a retry
// gets its result (see meta.Command). c is not modified.
func (n *Node) propose(ctx context.Context, cmd *meta.Command) (*meta.Result, error) {
	c := *cmd
	if c.UnixMS == 0 {
		c.UnixMS = time.Now().UnixMilli()
	}
	if c.RequestID == "" {
		c.RequestID = newCommandID()
	}
	after := n.fsm.AppliedIndex() // an attempt that commits is above this
	sent := false                 // an earlier attempt may have entered the Raft log
	var lastErr error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := n.backoff(ctx, attempt, nil); err != nil {
				return nil, rpc.Unavailable(fmt.Sprintf("cannot commit %s (%v)", c.Op, err), lastErr)
			}
		}
		if sent {
			c.Retry, c.After = true, after
		}
		if n.raft.IsLeader() {
			res, _, err := n.raft.Apply(&c, 5*time.Second)
			if err != nil {
				lastErr = err
				sent = sent || !errors.Is(err, meta.ErrNotRaftLeader)
				continue
			}
			return res, res.Err
		}
		_, addr := n.raft.Leader()
		if addr == "" {
			lastErr = errors.New("no raft leader")
			continue
		}
		body, err := n.peers.Get(addr).Call(ctx, rpc.OpApply, c.Encode(), 10*time.Second)
		if err != nil {
			lastErr = err
			sent = sent || !errors.Is(err, meta.ErrNotRaftLeader)
			continue
		}
		reply, err := rpc.DecodeApplyReply(body)
		if err != nil {
			lastErr, sent = err, true
			continue
		}
		if err := n.waitApplied(ctx, reply.Index); err != nil {
			return nil, err
		}
		res := &meta.Result{Cursor: reply.Cursor, Err: reply.Err}
		return res, res.Err
	}
}

// waitApplied waits until this node's FSM has applied the Raft log up to index, which
// must be the index of a command (the FSM sees nothing else: barriers, configuration
// changes and a new leader's no-op never raise its index). Raft's own applied index is
// no substitute: raft raises it when it hands a batch to the FSM goroutine, before the
// FSM has applied it, so a STATE right after could still show the state before.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	for {
		ch := n.fsm.Changed()
		if n.fsm.AppliedIndex() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return rpc.Unavailable(fmt.Sprintf("waiting for index %d", index), ctx.Err())
		case <-n.ctx.Done():
			return ErrClosed
		}
	}
}

// newCommandID returns a random request id for a metadata command.
func newCommandID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newClusterID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// initCluster commits the id of the cluster this node bootstrapped to the metadata
// (init_cluster sets it only if none is set, so a repeat is harmless), retrying until
// it is there, then forgets the unfinished bootstrap.
func (n *Node) initCluster(id string) {
	for attempt := 0; n.fsm.ClusterID() == ""; attempt++ {
		ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
		_, err := n.propose(ctx, &meta.Command{Op: meta.OpInitCluster, ClusterID: id})
		cancel()
		if n.ctx.Err() != nil {
			return
		}
		if err != nil {
			n.log.Warn("cannot record the cluster id yet", "cluster", id, "err", err)
			if n.backoff(n.ctx, attempt+3, nil) != nil {
				return
			}
		}
	}
	if got := n.fsm.ClusterID(); got != id {
		n.log.Warn("the metadata names another cluster id than the one this node bootstrapped", "bootstrapped", id, "metadata", got)
	}
	if err := removeBootstrapID(n.cfg.DataDir); err != nil {
		n.log.Warn("cannot remove the id of a finished bootstrap", "err", err)
	}
}

// joinLoop asks the member at --join to add this node as a voter until it is a member.
func (n *Node) joinLoop() {
	body := encodeJoin(n.cfg.NodeID, n.advertise)
	for attempt := 0; ; attempt++ {
		if n.ctx.Err() != nil {
			return
		}
		p := rpc.NewPeer(n.cfg.Join, n.peers.Guard)
		_, err := p.Call(n.ctx, rpc.OpJoin, body, 30*time.Second)
		p.Close()
		if err == nil {
			n.log.Info("joined cluster", "via", n.cfg.Join)
			return
		}
		if errors.Is(err, wire.ErrUnauthorized) {
			n.log.Error("the cluster refused this node: it is not authenticated as a member; check --cluster-tls-cert/--cluster-tls-key/--cluster-tls-ca or --cluster-secret-file against the cluster's; retrying",
				"via", n.cfg.Join, "err", err)
		} else {
			n.log.Warn("join failed, retrying", "via", n.cfg.Join, "err", err)
		}
		if n.backoff(n.ctx, attempt+3, nil) != nil {
			return
		}
	}
}

// registerLoop records this node's addresses in the replicated state (once per start,
// since addresses may change across restarts).
func (n *Node) registerLoop() {
	info := &meta.NodeInfo{ID: n.cfg.NodeID, RaftAddr: n.advertise, ClientAddr: n.ClientAddr(), HTTPAddr: n.HTTPAddr(),
		Incarnation: n.incarnation.Load(), Features: meta.CurrentFeatures}
	for attempt := 0; ; attempt++ {
		if cur, ok := n.fsm.Node(n.cfg.NodeID); ok {
			cur.Incarnated = 0 // the FSM's own
			if cur == *info {
				return
			}
		}
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		_, err := n.propose(ctx, &meta.Command{Op: meta.OpRegisterNode, Node: info})
		cancel()
		if err == nil {
			return
		}
		if n.ctx.Err() != nil {
			return
		}
		n.backoff(n.ctx, attempt+3, nil)
	}
}

// syncMeta is a read barrier: it waits until this node's FSM has applied every
// metadata command the Raft leader's had applied when asked.
func (n *Node) syncMeta(ctx context.Context) error {
	if n.raft.IsLeader() {
		return n.raft.Barrier(5 * time.Second)
	}
	_, addr := n.raft.Leader()
	if addr == "" {
		return rpc.Unavailable("no raft leader", nil)
	}
	// The leader runs a barrier first: right after an election its applied index may
	// still lag what was committed before.
	body, err := n.peers.Get(addr).Call(ctx, rpc.OpSync, nil, 6*time.Second)
	if err != nil {
		return err
	}
	d := rpc.NewDecoder(body)
	applied := d.U64()
	if d.Err != nil {
		return rpc.Unavailable("bad sync reply from "+addr, nil)
	}
	return n.waitFSMApplied(ctx, applied)
}

// waitFSMApplied waits until this node's FSM has applied the metadata command at index
// (the leader's FSM applied index). Unlike waitApplied it does not go by Raft's own
// applied index, which runs ahead of the FSM: Raft counts entries handed to the FSM's
// goroutine as applied before that goroutine has applied them.
func (n *Node) waitFSMApplied(ctx context.Context, index uint64) error {
	for {
		ch := n.fsm.Changed()
		if n.fsm.AppliedIndex() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return rpc.Unavailable(fmt.Sprintf("waiting for the metadata at index %d", index), ctx.Err())
		case <-n.ctx.Done():
			return ErrClosed
		}
	}
}

// leaseLoop checks the write lease a few times per lease window, so that a lapse is
// seen even while no write comes, and wakes catchUpLoop while the node is not synced.
func (n *Node) leaseLoop(kick chan<- struct{}) {
	tick := time.NewTicker(max(n.leaseWindow()/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		n.checkLease(time.Now())
		if !n.synced.Load() {
			select {
			case kick <- struct{}{}:
			default:
			}
		}
		select {
		case <-tick.C:
		case <-n.ctx.Done():
			return
		}
	}
}

// catchUpLoop catches the metadata up with the Raft leader's after start and after
// every lapse of the lease, which lets the node take writes again. A catch-up that a
// lapse overtook is done again.
// catchUpWarnAfter is how long catchUpLoop tries before it says, once, that the
// node cannot regain its write lease.
const catchUpWarnAfter = 5 * time.Second

func (n *Node) catchUpLoop(kick <-chan struct{}) {
	for attempt := 0; ; {
		select {
		case <-kick:
		case <-n.ctx.Done():
			return
		}
		var since time.Time // when this node started trying to catch up
		warned := false
		for !n.synced.Load() && n.ctx.Err() == nil {
			if since.IsZero() {
				since = time.Now()
			}
			n.leaseMu.Lock()
			lapses := n.lease.lapses
			n.leaseMu.Unlock()
			ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
			err := n.syncMeta(ctx)
			cancel()
			synced := err == nil && n.leaseSynced(lapses)
			switch {
			case synced:
				n.log.Debug("metadata caught up", "applied", n.fsm.AppliedIndex())
				if warned {
					n.log.Info("write lease regained", "after", time.Since(since).Round(time.Millisecond))
				}
				attempt = 0
			case !warned && time.Since(since) >= catchUpWarnAfter:
				// Writes to the segments this node leads wait meanwhile: say why.
				why := "the lease lapsed again during each catch-up"
				if err != nil {
					why = err.Error()
				}
				n.log.Warn("write lease not regained: the metadata has not caught up with the raft leader's",
					"for", time.Since(since).Round(time.Millisecond), "why", why)
				warned = true
			}
			if err != nil {
				n.log.Debug("metadata not caught up yet", "err", err)
				attempt++
				n.backoff(n.ctx, attempt+2, nil)
			}
		}
	}
}

// segmentAt returns a copy of the segment holding offset (the active one at or past
// its base) and the topic's cursor, with topic's catch-up rule; it copies one
// segment, not the topic.
func (n *Node) segmentAt(ctx context.Context, topic string, offset uint64) (meta.Segment, uint64, error) {
	return n.viewSegment(ctx, topic, func(t *meta.Topic) *meta.Segment { return t.Find(offset) })
}

// activeSegment returns a copy of the topic's active segment and its cursor, with
// topic's catch-up rule.
func (n *Node) activeSegment(ctx context.Context, topic string) (meta.Segment, uint64, error) {
	return n.viewSegment(ctx, topic, (*meta.Topic).Active)
}

// viewSegment returns a copy of the segment pick chooses of topic, and the topic's
// cursor. A topic this node does not know is looked up once at the Raft leader (topic).
func (n *Node) viewSegment(ctx context.Context, topic string, pick func(*meta.Topic) *meta.Segment) (meta.Segment, uint64, error) {
	var s meta.Segment
	var cursor uint64
	view := func(t *meta.Topic) {
		s = *pick(t)
		cursor = t.Cursor
	}
	if n.fsm.View(topic, view) {
		return s, cursor, nil
	}
	if _, err := n.topic(ctx, topic); err != nil {
		return s, 0, err
	}
	if !n.fsm.View(topic, view) {
		return s, 0, n.noTopic(topic)
	}
	return s, cursor, nil
}

// topic returns the metadata of the topic whose key is key (meta.Topic.Key): the
// node's own name for a topic, which requests carry from node to node once resolve
// has named it. A key this node does not know may have been created through another
// node a moment ago: it then catches up with the leader once before answering
// ErrNoTopic. A deleted incarnation is ErrNoTopic at once, saying so.
func (n *Node) topic(ctx context.Context, key string) (*meta.Topic, error) {
	if t, ok := n.fsm.Topic(key); ok {
		return t, nil
	}
	if err := topicname.ValidateKey(key); err != nil {
		return nil, err
	}
	if !n.fsm.Dead(key) {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, n.cfg.RequestTimeout)
			defer cancel()
		}
		if err := n.syncMeta(ctx); err != nil {
			return nil, rpc.Unavailable(fmt.Sprintf("cannot check topic %q with the raft leader", key), err)
		}
		if t, ok := n.fsm.Topic(key); ok {
			return t, nil
		}
	}
	return nil, n.noTopic(key)
}

// noTopic is the ErrNoTopic of a topic key this node does not know (after catching
// up): deleted, or never created.
func (n *Node) noTopic(key string) error {
	name := topicname.NameOf(key)
	if n.fsm.Dead(key) {
		return fmt.Errorf("%w: %q (deleted)", meta.ErrNoTopic, name)
	}
	return fmt.Errorf("%w: %q (REGISTER it first)", meta.ErrNoTopic, name)
}

// resolve returns the key of the live topic a client names: where every request
// that names a topic enters the node (a client's name means whatever incarnation
// is live when the request arrives; from here on the request carries the key, so
// it never reaches a topic created after that one's deletion). A name this node
// does not know is looked up at the Raft leader, like topic; while there is none (an
// election, a node that has just restarted and replays its log), it tries again
// within the request timeout, as the write and read paths behind it would.
func (n *Node) resolve(ctx context.Context, name string) (string, error) {
	if key, ok := n.fsm.Resolve(name); ok {
		return key, nil
	}
	if err := topicname.Validate(name); err != nil {
		return "", err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.RequestTimeout)
		defer cancel()
	}
	err := n.syncMetaRetry(ctx, func() bool { _, ok := n.fsm.Resolve(name); return ok })
	if key, ok := n.fsm.Resolve(name); ok {
		return key, nil // synced, or the log replay brought it meanwhile
	}
	if err != nil {
		return "", rpc.Unavailable(fmt.Sprintf("cannot check topic %q with the raft leader", name), err)
	}
	if _, _, deleted := n.fsm.LastDeletion(name); deleted {
		return "", fmt.Errorf("%w: %q (deleted)", meta.ErrNoTopic, name)
	}
	return "", fmt.Errorf("%w: %q (REGISTER it first)", meta.ErrNoTopic, name)
}

// syncMetaRetry is syncMeta tried again, with backoff, while it fails for want of a
// Raft leader (an election, a node that has just restarted), until ctx ends or done
// says the metadata already holds what the caller needs.
func (n *Node) syncMetaRetry(ctx context.Context, done func() bool) error {
	for attempt := 0; ; attempt++ {
		changed := n.fsm.Changed()
		err := n.syncMeta(ctx)
		if err == nil || (done != nil && done()) {
			return nil
		}
		if !retryable(err) || n.backoff(ctx, attempt, changed) != nil {
			return err
		}
	}
}

// topicNamed is resolve then topic: the metadata of the live topic a client names.
func (n *Node) topicNamed(ctx context.Context, name string) (*meta.Topic, error) {
	key, err := n.resolve(ctx, name)
	if err != nil {
		return nil, err
	}
	return n.topic(ctx, key)
}
