package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"floe/meta"
	"floe/tiering"
)

// restoreCmd rebuilds a cluster that lost every disk from its archive alone: the
// newest metadata snapshot, reconciled with the segment objects, seeded as the Raft
// state of a new first node.
func restoreCmd() *cobra.Command {
	f := &archiveFlags{}
	var cluster, dryRun bool
	var nodeID uint64
	var dataDir, advertiseHost, clusterID string
	var raftPort int
	c := &cobra.Command{
		Use:   "restore --cluster --archive URL --node-id N --data-dir DIR",
		Short: "Rebuild a cluster that lost every disk from its archive (metadata snapshot and segment objects) into a new first node's data dir",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if !cluster {
				return fmt.Errorf("only --cluster is built: a single node that lost its disk rejoins instead " +
					"(floe cluster remove-node <id>, then start it on an empty data dir with --join); its archived segments are read from the archive meanwhile")
			}
			if nodeID == 0 {
				return fmt.Errorf("--node-id is required")
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			b, err := f.open(ctx, c)
			if err != nil {
				return err
			}
			defer b.Close()
			prog := newProgress("restore")
			st, rep, err := tiering.RebuildStateProgress(ctx, b, clusterID, nodeID, time.Now(), prog.update)
			prog.done()
			if err != nil {
				return err
			}
			printRestore(rep)
			if dryRun {
				fmt.Println("dry run: nothing written")
				return nil
			}
			state, err := json.Marshal(st)
			if err != nil {
				return err
			}
			advertise := net.JoinHostPort(advertiseHost, strconv.Itoa(raftPort))
			if err := meta.Seed(filepath.Join(dataDir, "raft"), nodeID, advertise, state, rep.Index); err != nil {
				return err
			}
			fmt.Printf("\nseeded %s: node %d, the only voter, at %s (raft index %d)\n", dataDir, nodeID, advertise, rep.Index)
			fmt.Printf("next: start it with the same --node-id, --data-dir, --raft-port and --raft-advertise-host and the same --archive;\n")
			fmt.Printf("      start the other nodes on empty data dirs with --join %s\n", advertise)
			return nil
		},
	}
	f.add(c)
	c.Flags().BoolVar(&cluster, "cluster", false, "rebuild the whole cluster from the archive")
	c.Flags().StringVar(&clusterID, "cluster-id", "", "restore this cluster's newest metadata snapshot (needed only if the prefix holds snapshots of several clusters)")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be restored, write nothing")
	c.Flags().Uint64Var(&nodeID, "node-id", 0, "id of the node to seed (the new cluster's first voter)")
	c.Flags().StringVar(&dataDir, "data-dir", "./data", "its data dir (must hold no Raft state)")
	c.Flags().StringVar(&advertiseHost, "raft-advertise-host", "127.0.0.1", "the host other nodes will dial it on (as the agent's --raft-advertise-host)")
	c.Flags().IntVar(&raftPort, "raft-port", 6000, "its cluster port (as the agent's --raft-port)")
	return c
}

func printRestore(rep *tiering.RestoreReport) {
	fmt.Printf("from %s: cluster %s; the rebuilt state starts at raft index %d\n", rep.Snapshot, rep.ClusterID, rep.Index)
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TOPIC\tID\tKEPT\tRECOVERED\tEXPIRED\tLOST\tOFFSETS KEPT\tCURSOR")
	for _, t := range rep.Topics {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t[%d, %d)\t%d\n", t.Name, t.ID, t.Kept, t.Recovered, t.Expired, t.Lost, t.Start, t.End, t.Cursor)
	}
	w.Flush()
	if len(rep.Deleted) > 0 {
		fmt.Printf("\nnot restored: deleted (%d; what is left of their objects is deleted by the new cluster):\n", len(rep.Deleted))
		w = tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "TOPIC\tREASON")
		for _, d := range rep.Deleted {
			fmt.Fprintf(w, "%s\t%s\n", d.Topic, d.Reason)
		}
		w.Flush()
	}
	var skipped int
	for _, t := range rep.Topics {
		skipped += len(t.Skipped)
	}
	if skipped == 0 {
		return
	}
	fmt.Printf("\nskipped (%d):\n", skipped)
	w = tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TOPIC\tSEGMENT\tOBJECT\tREASON")
	for _, t := range rep.Topics {
		for _, s := range t.Skipped {
			key := s.Key
			if key == "" {
				key = "-"
			}
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", t.Name, s.Segment, key, s.Reason)
		}
	}
	w.Flush()
}
