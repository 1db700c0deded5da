package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"floe/meta"
	"floe/node"
)

// topicCmd manages topics over a node's HTTP API (PUT /v1/topics/{topic}).
func topicCmd() *cobra.Command {
	c := &clusterAPI{}
	root := &cobra.Command{Use: "topic", Short: "Create, change, list, describe and delete topics (through any node's HTTP API)"}
	c.apiFlags(root.PersistentFlags())
	root.AddCommand(topicCreateCmd(c), topicSetCmd(c), topicLsCmd(c, false), topicLsCmd(c, true), topicDeleteCmd(c))
	return root
}

// topicDeleteCmd is floe topic delete.
func topicDeleteCmd(c *clusterAPI) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete <topic>",
		Short: "Delete a topic: its entries, cursor, local files and archive objects",
		Long: "Delete a topic through Raft: it is gone at once for every client (ERR no such topic), every node\n" +
			"deletes its files, and the Raft leader writes a tombstone to the archive and deletes the topic's\n" +
			"objects (retried while the archive is down; floe_topic_deletions_pending counts those not done).\n" +
			"A topic created again under the name is a new topic: offsets from 0, none of the old entries.\n" +
			"On a terminal it asks for the topic's name to confirm; elsewhere it needs --yes.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic := args[0]
			if !yes {
				if !stdinIsTerminal() {
					return fmt.Errorf("deleting %q cannot be undone: confirm with --yes (stdin is not a terminal to ask on)", topic)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "Delete topic %q with all its entries, files and archive objects? This cannot be undone.\nType the topic's name to confirm: ", topic)
				line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if strings.TrimSpace(line) != topic {
					return errors.New("not confirmed: nothing deleted")
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), c.timeout)
			defer cancel()
			_, at, err := c.anyView(ctx)
			if err != nil {
				return err
			}
			var d struct {
				Deleted string `json:"deleted"`
				ID      uint64 `json:"id"`
			}
			if err := c.call(ctx, http.MethodDelete, c.url(at, "/v1/topics/"+url.PathEscape(topic)), &d); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "deleted topic %s (id %d); its files and objects are being deleted\n", d.Deleted, d.ID)
			return err
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "delete without asking")
	return cmd
}

// stdinIsTerminal reports whether standard input is a terminal (where a command may
// ask for a confirmation).
func stdinIsTerminal() bool { return term.IsTerminal(int(os.Stdin.Fd())) }

// topicCreateCmd is floe topic create.
func topicCreateCmd(c *clusterAPI) *cobra.Command {
	var cfg meta.TopicConfig
	var age, retention, localRetention time.Duration
	cmd := &cobra.Command{
		Use:   "create <topic>",
		Short: "Create a topic with its settings (an existing topic keeps its own); prints its state",
		Long: "Create a topic with its settings; a topic that exists keeps the settings it was created with.\n" +
			"Unset settings take the node's defaults (--max-segment-*, --default-replication-factor).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.MaxSegmentAgeMS = age.Milliseconds()
			cfg.RetentionMS = retention.Milliseconds()
			cfg.LocalRetentionMS = localRetention.Milliseconds()
			if err := cfg.Validate(); err != nil {
				return err
			}
			return c.sendTopic(cmd, http.MethodPut, args[0], cfg)
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&cfg.ReplicationFactor, "replicas", 0, "replication factor: nodes holding each active segment, an append acknowledged once a majority fsynced it (0: the node's --default-replication-factor)")
	fs.Uint64Var(&cfg.MaxSegmentEntries, "max-segment-entries", 0, "roll a segment over at this many entries (0: the node's default)")
	fs.Int64Var(&cfg.MaxSegmentBytes, "max-segment-bytes", 0, "roll a segment over at this many bytes (0: the node's default)")
	fs.DurationVar(&age, "max-segment-age", 0, "roll a non-empty segment over at this age (0: the node's default)")
	fs.Int64Var(&cfg.RetentionBytes, "retention-bytes", 0, "expire the oldest sealed segments beyond this many bytes (0: no limit)")
	fs.DurationVar(&retention, "retention", 0, "expire sealed segments sealed longer ago than this (0: keep forever)")
	fs.Int64Var(&cfg.LocalRetentionBytes, "local-retention-bytes", 0, "per node, evict local copies of archived segments beyond this many bytes (0: the node's limit only)")
	fs.DurationVar(&localRetention, "local-retention", 0, "evict local copies of archived segments sealed longer ago than this (0: no age limit)")
	return cmd
}

// sendTopic sends settings (JSON) to /v1/topics/{topic} with method through the first
// node that answers, and prints the topic's state it answers with.
func (c *clusterAPI) sendTopic(cmd *cobra.Command, method, topic string, settings any) error {
	body, err := json.Marshal(settings)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), c.timeout)
	defer cancel()
	_, at, err := c.anyView(ctx)
	if err != nil {
		return err
	}
	var state json.RawMessage
	if err := c.callBody(ctx, method, c.url(at, "/v1/topics/"+url.PathEscape(topic)), body, &state); err != nil {
		return err
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), string(state))
	return err
}

// parseTopicSettings turns floe topic set's key=value arguments into a patch. Keys are
// the create flags' names (max-segment-age=1m, retention=24h, replicas=3, ...) or the
// JSON fields' (retention_ms=86400000); durations take Go's units.
func parseTopicSettings(args []string) (*meta.TopicConfigPatch, error) {
	p := &meta.TopicConfigPatch{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || v == "" {
			return nil, fmt.Errorf("%q: want key=value", a)
		}
		k = strings.ReplaceAll(k, "_", "-")
		num := func() (int64, error) {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("%s=%q: want a number, 0 or more", k, v)
			}
			return n, nil
		}
		dur := func() (int64, error) {
			d, err := time.ParseDuration(v)
			if v == "0" {
				d, err = 0, nil
			}
			if err != nil || d < 0 {
				return 0, fmt.Errorf("%s=%q: want a duration such as 90s, 15m or 24h", k, v)
			}
			return d.Milliseconds(), nil
		}
		var err error
		var n int64
		switch k {
		case "max-segment-entries":
			if n, err = num(); err == nil {
				u := uint64(n)
				p.MaxSegmentEntries = &u
			}
		case "max-segment-bytes":
			n, err = num()
			p.MaxSegmentBytes = &n
		case "max-segment-age", "max-segment-age-ms":
			n, err = pick(k, num, dur)
			p.MaxSegmentAgeMS = &n
		case "retention-bytes":
			n, err = num()
			p.RetentionBytes = &n
		case "retention", "retention-ms":
			n, err = pick(k, num, dur)
			p.RetentionMS = &n
		case "local-retention-bytes":
			n, err = num()
			p.LocalRetentionBytes = &n
		case "local-retention", "local-retention-ms":
			n, err = pick(k, num, dur)
			p.LocalRetentionMS = &n
		case "replicas", "replication-factor":
			if n, err = num(); err == nil {
				rf := int(n)
				p.ReplicationFactor = &rf
			}
		default:
			return nil, fmt.Errorf("%q: unknown setting; known: max-segment-entries, max-segment-bytes, max-segment-age, retention, retention-bytes, local-retention, local-retention-bytes, replicas", k)
		}
		if err != nil {
			return nil, err
		}
	}
	if p.Empty() {
		return nil, errors.New("give at least one key=value")
	}
	return p, nil
}

// pick parses a *-ms key as milliseconds and the duration key as a duration.
func pick(k string, ms, dur func() (int64, error)) (int64, error) {
	if strings.HasSuffix(k, "-ms") {
		return ms()
	}
	return dur()
}

// topicSetCmd is floe topic set.
func topicSetCmd(c *clusterAPI) *cobra.Command {
	return &cobra.Command{
		Use:   "set <topic> key=value...",
		Short: "Change settings of a topic (roll-over limits, retention, replication): through Raft, effective at the next roll-over or retention pass; prints its state",
		Long: "Change settings of an existing topic. Keys: max-segment-entries, max-segment-bytes,\n" +
			"max-segment-age (a duration), retention (a duration), retention-bytes, local-retention (a duration),\n" +
			"local-retention-bytes, replicas; 0 means the node's default (no limit for retention).\n" +
			"Example: floe topic set orders retention=72h retention-bytes=0 replicas=3",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := parseTopicSettings(args[1:])
			if err != nil {
				return err
			}
			return c.sendTopic(cmd, http.MethodPatch, args[0], p)
		},
	}
}

// topicLsCmd is floe topic ls and floe topic describe.
func topicLsCmd(c *clusterAPI, describe bool) *cobra.Command {
	var asJSON bool
	use, short := "ls", "List the topics: replication, offsets, bytes local and archived, segments per tier, retention"
	args := cobra.NoArgs
	if describe {
		use, short, args = "describe <topic>", "Show one topic's settings, offsets, bytes and segments per tier", cobra.ExactArgs(1)
	}
	cmd := &cobra.Command{
		Use: use, Short: short, Args: args,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), c.timeout)
			defer cancel()
			_, at, err := c.anyView(ctx)
			if err != nil {
				return err
			}
			var v struct {
				Topics []node.TopicSummary `json:"topics"`
			}
			if err := c.call(ctx, http.MethodGet, c.url(at, "/v1/topics?detail=1"), &v); err != nil {
				return err
			}
			topics := v.Topics
			if describe {
				topics = slices.DeleteFunc(topics, func(t node.TopicSummary) bool { return t.Name != args[0] })
				if len(topics) == 0 {
					return fmt.Errorf("no such topic: %q", args[0])
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if describe {
					return enc.Encode(topics[0])
				}
				return enc.Encode(topics)
			}
			if describe {
				return describeTopic(out, topics[0])
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TOPIC\tID\tREPLICAS\tOFFSETS\tCURSOR\tLOCAL\tARCHIVED\tSEGMENTS\tRETENTION")
			for _, t := range topics {
				fmt.Fprintf(w, "%s\t%d\t%d\t[%d, %d+)\t%d\t%s\t%s\t%s\t%s\n", t.Name, t.ID, t.Replication, t.StartOffset, t.SealedEnd, t.Cursor,
					sizeText(t.LocalBytes), sizeText(t.ArchivedBytes), segmentCounts(t.Segments), retentionText(t.Config))
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// segmentCounts is "2 active, 3 both" in a fixed order.
func segmentCounts(m map[string]int) string {
	var parts []string
	for _, k := range []string{"active", "sealed", "both", "remote", "expired"} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", m[k], k))
		}
	}
	return strings.Join(parts, ", ")
}

// retentionText says how long and how much a topic keeps.
func retentionText(c meta.TopicConfig) string {
	var parts []string
	if c.RetentionMS > 0 {
		parts = append(parts, (time.Duration(c.RetentionMS) * time.Millisecond).String())
	}
	if c.RetentionBytes > 0 {
		parts = append(parts, sizeText(c.RetentionBytes))
	}
	if len(parts) == 0 {
		return "forever"
	}
	return strings.Join(parts, ", ")
}

func describeTopic(w io.Writer, t node.TopicSummary) error {
	cfg, err := json.Marshal(t.Config)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "topic        %s\nid           %d\nreplicas     %d\noffsets      %d to %d sealed (STATE has the active segment's end)\ncursor       %d\nactive on    node %d\nsegments     %s\nlocal        %s\narchived     %s\nretention    %s\nsettings     %s\n",
		t.Name, t.ID, t.Replication, t.StartOffset, t.SealedEnd, t.Cursor, t.ActiveLeader, segmentCounts(t.Segments),
		sizeText(t.LocalBytes), sizeText(t.ArchivedBytes), retentionText(t.Config), cfg)
	return err
}
