package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"floe/meta"
	"floe/node"
	"floe/tiering"
)

// clusterView is the reply of GET /v1/cluster.
type clusterView struct {
	Metrics node.ClusterMetrics `json:"metrics"`
	Nodes   []meta.NodeInfo     `json:"nodes"`
	// UnderReplicated: segments of replicated topics, not archived yet, with a replica
	// that is not a voter or does not answer.
	UnderReplicated int `json:"under_replicated_segments"`
}

// clusterCmd is the operator's view of the Raft group, over a node's HTTP API.
// Changes (removing a member, moving leadership) go to the Raft leader, found through
// whichever node --http names.
func clusterCmd() *cobra.Command {
	c := &clusterAPI{}
	root := &cobra.Command{
		Use:   "cluster",
		Short: "Show the members and leader, remove a member, move Raft leadership, sweep orphaned objects, move writes off a dead segment leader (through any node's HTTP API)",
	}
	c.apiFlags(root.PersistentFlags())
	root.AddCommand(clusterStatusCmd(c), clusterRemoveCmd(c), clusterTransferCmd(c), clusterSweepCmd(c), clusterRecoverSegmentCmd(c))
	return root
}

// clusterAPI reaches the cluster through the HTTP API of the nodes of --http.
type clusterAPI struct {
	addr    string        // --http: comma-separated node addresses
	timeout time.Duration // --timeout
	sec     clientSec     // --tls-*

	client *http.Client // made from sec on first use
	scheme string       // of the URLs: http, or https with TLS
}

// apiFlags registers the flags of a command that reaches nodes through clusterAPI.
func (c *clusterAPI) apiFlags(fs *pflag.FlagSet) {
	def := os.Getenv("FLOE_HTTP")
	if def == "" {
		def = "127.0.0.1:9181,127.0.0.1:9182,127.0.0.1:9183,127.0.0.1:9080" // floe dev and compose, then the agent's default
	}
	fs.StringVar(&c.addr, "http", def, "HTTP address(es) (host:port) of nodes, comma-separated; the first that answers is used (env FLOE_HTTP)")
	fs.DurationVar(&c.timeout, "timeout", 20*time.Second, "give up after this long")
	c.sec.flags(fs)
}

// url is the URL of path (with its query) on the node at at.
func (c *clusterAPI) url(at, path string) string {
	if c.scheme == "" {
		c.scheme = "http"
		if cfg, err := c.sec.tlsConfig(); err == nil && cfg != nil {
			c.scheme = "https"
		}
	}
	return c.scheme + "://" + at + path
}

// call sends one request and decodes a 2xx reply's JSON into out (unless out is nil);
// another status is an error that carries the reply's text.
func (c *clusterAPI) call(ctx context.Context, method, url string, out any) error {
	return c.callBody(ctx, method, url, nil, out)
}

// callBody is call with a request body (JSON; nil: none).
func (c *clusterAPI) callBody(ctx context.Context, method, url string, in []byte, out any) error {
	reply, err := c.send(ctx, method, url, in, "")
	if err != nil {
		return err
	}
	if out != nil {
		return json.Unmarshal(reply, out)
	}
	return nil
}

// send sends one request (with a JSON body unless in is nil, and an Accept header
// unless accept is empty) and returns a 2xx reply's body, at most 4 MiB of it;
// another status is an error that carries the reply's text. The first call makes
// c.client; calls may run concurrently once one has returned.
func (c *clusterAPI) send(ctx context.Context, method, url string, in []byte, accept string) ([]byte, error) {
	var body io.Reader
	if in != nil {
		body = bytes.NewReader(in)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if c.client == nil {
		if c.client, _, err = c.sec.httpClient(); err != nil {
			return nil, err
		}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(reply)))
	}
	return reply, nil
}

// view is the cluster as the node at at sees it.
func (c *clusterAPI) view(ctx context.Context, at string) (*clusterView, error) {
	var v clusterView
	if err := c.call(ctx, http.MethodGet, c.url(at, "/v1/cluster"), &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// anyView asks the nodes of --http in turn; it returns the first answer and the
// address that gave it.
func (c *clusterAPI) anyView(ctx context.Context) (*clusterView, string, error) {
	var errs []string
	for _, at := range strings.Split(c.addr, ",") {
		if at = strings.TrimSpace(at); at == "" {
			continue
		}
		v, err := c.view(ctx, at)
		if err == nil {
			return v, at, nil
		}
		errs = append(errs, err.Error())
	}
	return nil, "", fmt.Errorf("no node answers at %s: %s", c.addr, strings.Join(errs, "; "))
}

// leaderHTTP returns the HTTP address of the Raft leader, as the first node of
// --http that answers sees it.
func (c *clusterAPI) leaderHTTP(ctx context.Context) (string, *clusterView, error) {
	v, at, err := c.anyView(ctx)
	if err != nil {
		return "", nil, err
	}
	if v.Metrics.CurrentLeader == nil {
		return "", v, fmt.Errorf("node %d at %s knows no Raft leader (no quorum?)", v.Metrics.ID, at)
	}
	for _, n := range v.Nodes {
		if n.ID == *v.Metrics.CurrentLeader && n.HTTPAddr != "" {
			return n.HTTPAddr, v, nil
		}
	}
	return "", v, fmt.Errorf("the HTTP address of leader %d is unknown (it has not registered yet)", *v.Metrics.CurrentLeader)
}

// clusterStatusCmd is floe cluster status.
func clusterStatusCmd(c *clusterAPI) *cobra.Command {
	var asJSON bool
	status := &cobra.Command{
		Use: "status", Short: "Members (id, role, addresses, log index) and the Raft leader", Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
			defer cancel()
			v, _, err := c.anyView(ctx)
			if err != nil {
				return err
			}
			// The leader knows every member's log index; ask it when it is not this node.
			if at, lv, err := c.leaderHTTP(ctx); err == nil && lv.Metrics.State != "Leader" {
				if l, err := c.view(ctx, at); err == nil {
					v.Metrics.Replication = l.Metrics.Replication
				}
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			printCluster(v)
			return nil
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print the raw JSON")
	return status
}

// clusterRemoveCmd is floe cluster remove-node.
func clusterRemoveCmd(c *clusterAPI) *cobra.Command {
	return &cobra.Command{
		Use:   "remove-node <id>",
		Short: "Remove a member from the Raft group and the metadata (wipe its data dir before it joins again)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, a []string) error {
			id, err := strconv.ParseUint(a[0], 10, 64)
			if err != nil || id == 0 {
				return fmt.Errorf("node id must be a positive number, not %q", a[0])
			}
			ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
			defer cancel()
			at, v, err := c.leaderHTTP(ctx)
			if err != nil {
				return err
			}
			if id == *v.Metrics.CurrentLeader {
				return fmt.Errorf("node %d is the Raft leader: run floe cluster transfer-leadership first", id)
			}
			if err := c.call(ctx, http.MethodDelete, c.url(at, fmt.Sprintf("/v1/cluster/members/%d", id)), nil); err != nil {
				return err
			}
			fmt.Printf("node %d removed\n", id)
			return nil
		},
	}
}

// clusterTransferCmd is floe cluster transfer-leadership.
func clusterTransferCmd(c *clusterAPI) *cobra.Command {
	return &cobra.Command{
		Use:   "transfer-leadership",
		Short: "Hand Raft leadership to another voter (before maintenance of the leader); waits for the new leader",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
			defer cancel()
			at, v, err := c.leaderHTTP(ctx)
			if err != nil {
				return err
			}
			old := *v.Metrics.CurrentLeader
			if err := c.call(ctx, http.MethodPost, c.url(at, "/v1/cluster/transfer-leadership"), nil); err != nil {
				return err
			}
			for {
				if v, _, err := c.anyView(ctx); err == nil && v.Metrics.CurrentLeader != nil && *v.Metrics.CurrentLeader != old {
					fmt.Printf("leader: node %d (was node %d)\n", *v.Metrics.CurrentLeader, old)
					return nil
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("leadership left node %d, but no new leader was seen within %v", old, c.timeout)
				case <-time.After(100 * time.Millisecond):
				}
			}
		},
	}
}

// clusterSweepCmd is floe cluster sweep.
func clusterSweepCmd(c *clusterAPI) *cobra.Command {
	var dryRun bool
	sweep := &cobra.Command{
		Use:   "sweep",
		Short: "Delete the archive objects no segment references (expired segments' objects, uploads that never committed and are older than --orphan-grace); --dry-run only lists them",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(context.Background(), max(c.timeout, 10*time.Minute))
			defer cancel()
			at, _, err := c.leaderHTTP(ctx)
			if err != nil {
				return err
			}
			var rep tiering.SweepReport
			if err := c.call(ctx, http.MethodPost, c.url(at, fmt.Sprintf("/v1/archive/sweep?dry_run=%v", dryRun)), &rep); err != nil {
				return err
			}
			printSweep(&rep)
			return nil
		},
	}
	sweep.Flags().BoolVar(&dryRun, "dry-run", false, "list the orphans, delete nothing")
	return sweep
}

// printSweep prints a sweep's report: one line per orphan with what was done to it,
// then the totals.
func printSweep(rep *tiering.SweepReport) {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KEY\tBYTES\tMODIFIED\tREASON\tACTION")
	for _, o := range rep.Orphans {
		action := "kept (younger than the grace period)"
		switch {
		case o.Deleted:
			action = "deleted"
		case o.Error != "":
			action = "delete failed: " + o.Error
		case o.Deletable && rep.DryRun:
			action = "would delete"
		case o.Held:
			action = "kept (older than this cluster's takeover of the archive claim settled; may be another cluster's)"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", o.Key, o.Size, o.LastModified.UTC().Format(time.RFC3339), o.Reason, action)
	}
	w.Flush()
	fmt.Printf("%d segment objects scanned, %d orphans (%d bytes), %d deleted (grace %s)\n",
		rep.Scanned, len(rep.Orphans), rep.OrphanBytes, rep.Deleted, rep.Grace)
}

// clusterRecoverSegmentCmd is floe cluster recover-segment.
func clusterRecoverSegmentCmd(c *clusterAPI) *cobra.Command {
	var to, segment uint64
	var force bool
	recoverSeg := &cobra.Command{
		Use: "recover-segment <topic>",
		Short: "Move a topic's writes off its active segment's leader, which is down: the segment is sealed empty and abandoned " +
			"(what that node wrote into it and had not archived leaves the topic) and the next one starts at its base on a live node",
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, a []string) error {
			ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
			defer cancel()
			_, at, err := c.anyView(ctx)
			if err != nil {
				return err
			}
			var next struct {
				Segment, Leader, Base uint64
			}
			url := c.url(at, fmt.Sprintf("/v1/topics/%s/recover-segment?to=%d&segment=%d&force=%v", a[0], to, segment, force))
			if err := c.call(ctx, http.MethodPost, url, &next); err != nil {
				return err
			}
			fmt.Printf("%s: writes go to segment %d on node %d, from offset %d\n", a[0], next.Segment, next.Leader, next.Base)
			return nil
		},
	}
	recoverSeg.Flags().Uint64Var(&to, "to", 0, "node to lead the next segment (default: the next live voter)")
	recoverSeg.Flags().Uint64Var(&segment, "segment", 0, "the active segment to abandon (required with --force): if it was abandoned already, nothing is done, so the command is safe to repeat")
	recoverSeg.Flags().BoolVar(&force, "force", false, "recover even though the leader answers (it loses what its active segment holds); needs --segment")
	return recoverSeg
}

func printCluster(v *clusterView) {
	m := v.Metrics
	leader := "none"
	if m.CurrentLeader != nil {
		leader = strconv.FormatUint(*m.CurrentLeader, 10)
	}
	fmt.Printf("cluster %s  term %d  leader %s  (as seen by node %d)\n", m.ClusterID, m.CurrentTerm, leader, m.ID)
	fmt.Printf("under-replicated segments: %d\n", v.UnderReplicated)
	var voters []uint64
	for _, c := range m.MembershipConfig.Membership.Configs {
		voters = append(voters, c...)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tROLE\tRAFT\tCLIENT\tHTTP\tLOG INDEX")
	known := map[uint64]meta.NodeInfo{}
	for _, n := range v.Nodes {
		known[n.ID] = n
	}
	ids := slices.Clone(voters)
	for _, n := range v.Nodes {
		if !slices.Contains(ids, n.ID) {
			ids = append(ids, n.ID)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		role := "follower"
		switch {
		case !slices.Contains(voters, id):
			role = "not a voter"
		case m.CurrentLeader != nil && *m.CurrentLeader == id:
			role = "leader"
		}
		raftAddr := m.MembershipConfig.Membership.Nodes[strconv.FormatUint(id, 10)]
		n := known[id]
		if raftAddr == "" {
			raftAddr = n.RaftAddr
		}
		index := "-"
		if r, ok := m.Replication[strconv.FormatUint(id, 10)]; ok {
			if r == nil {
				index = "unreachable"
			} else {
				index = strconv.FormatUint(r.Index, 10)
			}
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", id, role, dash(raftAddr), dash(n.ClientAddr), dash(n.HTTPAddr), index)
	}
	w.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
