package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"floe/node"
	"floe/tiering"
)

type agentFlags struct {
	cfg       node.Config
	port      int
	logLevel  string
	logFormat string
}

func addNodeFlags(c *cobra.Command, f *agentFlags) {
	fs := c.Flags()
	fs.Uint64Var(&f.cfg.NodeID, "node-id", 0, "unique node id (required)")
	fs.StringVar(&f.cfg.DataDir, "data-dir", "./data", "all local state of this node")
	fs.StringVar(&f.cfg.RaftHost, "raft-host", "127.0.0.1", "cluster listener host (Raft and node-to-node RPC)")
	fs.IntVar(&f.cfg.RaftPort, "raft-port", 6000, "cluster listener port")
	fs.StringVar(&f.cfg.RaftAdvertiseHost, "raft-advertise-host", "", "host other nodes dial (default: --raft-host)")
	fs.StringVar(&f.cfg.ClientHost, "client-host", "127.0.0.1", "Walrus-protocol listener host")
	fs.IntVar(&f.cfg.ClientPort, "client-port", 8080, "Walrus-protocol listener port")
	fs.IntVar(&f.port, "port", 0, "alias of --client-port (newer Distributed Walrus compose files)")
	fs.StringVar(&f.cfg.HTTPHost, "http-host", "", "HTTP API host (default: --client-host)")
	fs.IntVar(&f.cfg.HTTPPort, "http-port", 9080, "HTTP API port (0 disables it)")
	fs.BoolVar(&f.cfg.Pprof, "pprof", false, "serve Go's profiler under /debug/pprof/ on the HTTP API port")
	fs.BoolVar(&f.cfg.UnsafeNoFsync, "unsafe-no-fsync", false, "acknowledge appends without fdatasync: a crash of the machine loses acknowledged entries (for measuring what fsync costs; never for data that matters)")
	fs.StringVar(&f.cfg.Join, "join", "", "host:raftport of any member: join that cluster as a voter")
	fs.StringVar(&f.cfg.TLSCert, "tls-cert", "", "certificate (PEM) of the client and HTTP listeners: they take TLS only (re-read on SIGHUP and when changed)")
	fs.StringVar(&f.cfg.TLSKey, "tls-key", "", "key (PEM) of --tls-cert")
	fs.StringVar(&f.cfg.TLSClientCA, "tls-client-ca", "", "CA bundle (PEM): clients of the client and HTTP listeners must present a certificate from it")
	fs.StringVar(&f.cfg.ClusterTLSCert, "cluster-tls-cert", "", "this node's certificate (PEM) for mutual TLS on the cluster port, Raft included; needs --cluster-tls-key and --cluster-tls-ca")
	fs.StringVar(&f.cfg.ClusterTLSKey, "cluster-tls-key", "", "key (PEM) of --cluster-tls-cert")
	fs.StringVar(&f.cfg.ClusterTLSCA, "cluster-tls-ca", "", "the cluster's CA bundle (PEM): every certificate it issued is a member, so use a CA of this cluster only")
	fs.StringVar(&f.cfg.AuthFile, "auth-file", "", "tokens clients must present, one a line: sha256:<hex> <read|write|admin> [<topic prefix>] (floe auth hash makes a line); Walrus clients send AUTH <token> first, HTTP clients a Bearer token")
	fs.StringVar(&f.cfg.ClusterSecretFile, "cluster-secret-file", "", "file holding one line, the secret every node-to-node connection proves it knows (challenge-response, never sent); without TLS it authenticates but does not encrypt")
	fs.Uint64Var(&f.cfg.MaxSegmentEntries, "max-segment-entries", node.DefaultMaxSegmentEntries, "roll a segment over at this many entries")
	fs.Int64Var(&f.cfg.MaxSegmentBytes, "max-segment-bytes", node.DefaultMaxSegmentBytes, "roll a segment over at this many bytes")
	fs.DurationVar(&f.cfg.MaxSegmentAge, "max-segment-age", node.DefaultMaxSegmentAge, "roll a non-empty segment over at this age")
	fs.DurationVar(&f.cfg.LeaseTimeout, "lease-timeout", node.DefaultLeaseTimeout, "stop acknowledging writes this long after losing the quorum")
	fs.DurationVar(&f.cfg.RequestTimeout, "request-timeout", node.DefaultRequestTimeout, "bound on a request's internal retries")
	fs.DurationVar(&f.cfg.GroupCommitWait, "group-commit-wait", node.DefaultGroupCommitWait, "longest wait of a group commit for the appends expected to join it, at most the recent commit time (negative: never wait)")
	fs.IntVar(&f.cfg.DefaultReplicationFactor, "default-replication-factor", 1, "replicas of each active segment of a topic created without replication_factor (REGISTER): an append is acknowledged once a majority of them fsynced it")
	fs.DurationVar(&f.cfg.SegmentFailoverTimeout, "segment-failover-timeout", node.DefaultSegmentFailoverTimeout, "how long a dead segment leader of a replicated topic may block its writes, and a group commit waits for a majority of its replicas (at least --lease-timeout; default raised to it)")
	fs.IntVar(&f.cfg.MaxConnections, "max-connections", node.DefaultMaxConnections, "client connections served at once; one more is answered ERR and closed (negative: no bound; size the fd limit to it, see the README)")
	fs.DurationVar(&f.cfg.HeartbeatTimeout, "raft-heartbeat-timeout", time.Second, "Raft heartbeat and election timeout")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&f.cfg.Archive, "archive", "", "object store for sealed segments: file:///abs/dir, s3://bucket/prefix or minio://bucket/prefix (empty: keep them local only)")
	fs.StringVar(&f.cfg.S3Endpoint, "s3-endpoint", "", "S3 endpoint URL, e.g. http://minio:9000 (implies path-style addressing)")
	fs.StringVar(&f.cfg.S3Region, "s3-region", "", "S3 region (default: from the AWS chain, else us-east-1)")
	fs.BoolVar(&f.cfg.S3CreateBucket, "s3-create-bucket", false, "create the bucket if it is missing (dev and compose stacks)")
	fs.StringVar(&f.cfg.S3SSE, "s3-sse", "", sseUsage)
	fs.StringVar(&f.cfg.S3SSEKMSKeyID, "s3-sse-kms-key-id", "", sseKMSKeyUsage)
	fs.Int64Var(&f.cfg.CacheBytes, "cache-bytes", node.DefaultCacheBytes, "bound of the on-disk cache of archive frames")
	fs.Int64Var(&f.cfg.LocalRetentionBytes, "local-retention-bytes", 0, "evict local copies of archived segments beyond this many bytes, oldest first (0: keep all)")
	fs.DurationVar(&f.cfg.UploadMaxBackoff, "upload-max-backoff", 30*time.Second, "longest wait between upload retries while the object store fails")
	fs.DurationVar(&f.cfg.OrphanGrace, "orphan-grace", time.Hour, "age after which a segment object no metadata references is deleted by the sweeper")
	fs.DurationVar(&f.cfg.SweepInterval, "sweep-interval", 10*time.Minute, "how often the Raft leader sweeps orphaned objects (negative: only on request)")
	fs.BoolVar(&f.cfg.SweepDryRun, "sweep-dry-run", false, "periodic sweeps only report orphans (metrics, log) and delete nothing")
	fs.DurationVar(&f.cfg.MetaSnapshotInterval, "meta-snapshot-interval", 5*time.Minute, "how often the Raft leader copies changed metadata into the archive ("+tiering.MetaSnapshotPrefix+"; negative: never)")
	fs.DurationVar(&f.cfg.ClaimInterval, "claim-interval", node.MaxClaimInterval, "how often every node reads the archive's cluster claim ("+tiering.ClaimKey+"); a node writes to the archive only while its last read, at most this old, names its cluster (at most 1m)")
	fs.BoolVar(&f.cfg.ForceNewCluster, "force-new-cluster", false, "bootstrap a new cluster even if the archive names another one ("+tiering.ClaimKey+"); refused all the same while the prefix holds segment objects or metadata snapshots")
}

// applyWalrusEnv honours Distributed Walrus's environment variables.
func applyWalrusEnv(c *cobra.Command, f *agentFlags) error {
	if v, ok := os.LookupEnv("WALRUS_MAX_SEGMENT_ENTRIES"); ok && !c.Flags().Changed("max-segment-entries") {
		if _, set := os.LookupEnv("FLOE_MAX_SEGMENT_ENTRIES"); !set {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil || n == 0 {
				return fmt.Errorf("WALRUS_MAX_SEGMENT_ENTRIES=%q: want a positive number", v)
			}
			f.cfg.MaxSegmentEntries = n
		}
	}
	// WALRUS_MONITOR_CHECK_MS sets how often Walrus looks for full segments. floe rolls a
	// segment as soon as it is full, so the variable is accepted and needs no effect.
	if v, ok := os.LookupEnv("WALRUS_MONITOR_CHECK_MS"); ok {
		if _, err := strconv.ParseUint(v, 10, 64); err != nil {
			return fmt.Errorf("WALRUS_MONITOR_CHECK_MS=%q: want a number", v)
		}
	}
	return nil
}

func agentCmd() *cobra.Command {
	f := &agentFlags{}
	c := &cobra.Command{
		Use:   "agent",
		Short: "Run one floe node (accepts the Distributed Walrus flags)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := bindEnv(c.Flags()); err != nil {
				return err
			}
			if err := applyWalrusEnv(c, f); err != nil {
				return err
			}
			if c.Flags().Changed("port") && !c.Flags().Changed("client-port") {
				f.cfg.ClientPort = f.port
			}
			if !c.Flags().Changed("segment-failover-timeout") {
				f.cfg.SegmentFailoverTimeout = 0 // the default, raised to --lease-timeout if that is longer
			}
			log, err := newLogger(f.logLevel, f.logFormat)
			if err != nil {
				return err
			}
			f.cfg.Logger = log
			f.cfg.RaftLogLevel = "warn"
			if f.logLevel == "debug" {
				f.cfg.RaftLogLevel = "debug"
			}
			f.cfg.RaftLogJSON = f.logFormat == "json"
			if f.cfg.DataDir, err = filepath.Abs(f.cfg.DataDir); err != nil {
				return err
			}
			// SIGHUP is taken from here on, so that one sent while the node starts does
			// not kill it; it reloads once the node is up (the start read the files).
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			n, err := node.Start(f.cfg)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			for ctx.Err() == nil {
				select {
				case <-hup:
					log.Info("SIGHUP: reloading credentials")
					n.Reload() // logs what failed; the credentials loaded before stay in use
				case <-ctx.Done():
				}
			}
			log.Info("shutting down")
			return n.Close()
		},
	}
	addNodeFlags(c, f)
	return c
}
