package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"floe/node"
)

func devCmd() *cobra.Command {
	var (
		dataDir     string
		clientBase  int
		raftBase    int
		httpBase    int
		maxEntries  uint64
		logLevel    string
		readyWithin time.Duration
	)
	c := &cobra.Command{
		Use:   "dev",
		Short: "Run an embedded 3-node cluster on loopback (nothing to install)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := bindEnv(c.Flags()); err != nil {
				return err
			}
			log, err := newLogger(logLevel, "text")
			if err != nil {
				return err
			}
			abs, err := filepath.Abs(dataDir)
			if err != nil {
				return err
			}
			var nodes []*node.Node
			defer func() {
				for i := len(nodes) - 1; i >= 0; i-- {
					nodes[i].Close()
				}
			}()
			ports := devPorts{client: clientBase, raft: raftBase, http: httpBase}
			for i := 0; i < 3; i++ {
				cfg := ports.config(abs, i+1, log)
				cfg.MaxSegmentEntries = maxEntries
				n, err := node.Start(cfg)
				if err != nil {
					return fmt.Errorf("node %d: %w", i+1, err)
				}
				nodes = append(nodes, n)
			}
			if err := waitMembers(nodes, readyWithin); err != nil {
				return err
			}
			fmt.Printf("floe dev: 3 nodes up, data in %s, archive file://%s\n", abs, filepath.Join(abs, "archive"))
			for _, n := range nodes {
				fmt.Printf("  node %d  client %s  http http://%s  raft %s\n", n.ID(), n.ClientAddr(), n.HTTPAddr(), n.RaftAddr())
			}
			fmt.Printf("try:  floe register demo && floe put demo hello && floe get demo\n")
			fmt.Printf("Ctrl-C stops the cluster; the data stays for the next run.\n")
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			<-ctx.Done()
			fmt.Println("floe dev: stopping")
			return nil
		},
	}
	fs := c.Flags()
	fs.StringVar(&dataDir, "data-dir", "./data/dev", "where the three nodes keep their state")
	fs.IntVar(&clientBase, "client-port", 9091, "client port of node 1 (nodes 2 and 3 take the next ones)")
	fs.IntVar(&raftBase, "raft-port", 6001, "raft port of node 1")
	fs.IntVar(&httpBase, "http-port", 9181, "HTTP port of node 1")
	fs.Uint64Var(&maxEntries, "max-segment-entries", node.DefaultMaxSegmentEntries, "roll segments over at this many entries")
	fs.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	fs.DurationVar(&readyWithin, "ready-timeout", time.Minute, "how long to wait for the cluster to form")
	return c
}

// devPorts are the first ports of the embedded nodes; node i takes base + i - 1.
type devPorts struct{ client, raft, http int }

// config is the configuration of embedded node id under dir (its data dir
// dir/node<id>, the archive dir/archive), joining node 1 unless it is node 1.
func (p devPorts) config(dir string, id int, log *slog.Logger) node.Config {
	cfg := node.Config{
		NodeID:         uint64(id),
		DataDir:        filepath.Join(dir, fmt.Sprintf("node%d", id)),
		RaftPort:       p.raft + id - 1,
		ClientPort:     p.client + id - 1,
		HTTPPort:       p.http + id - 1,
		Archive:        "file://" + filepath.Join(dir, "archive"),
		S3CreateBucket: true,
		Logger:         log,
		RaftLogLevel:   "error",
	}
	if id > 1 {
		cfg.Join = fmt.Sprintf("127.0.0.1:%d", p.raft)
	}
	return cfg
}

// waitMembers waits until every node sees a leader and three voters.
func waitMembers(nodes []*node.Node, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		ready := true
		for _, n := range nodes {
			m, err := n.Metrics()
			if err != nil || m.CurrentLeader == nil || len(m.MembershipConfig.Membership.Configs) == 0 ||
				len(m.MembershipConfig.Membership.Configs[0]) != len(nodes) {
				ready = false
				break
			}
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("dev cluster did not form in time")
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
}
