package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"floe/meta"
)

// topicCmd manages topics over a node's HTTP API (PUT /v1/topics/{topic}).
func topicCmd() *cobra.Command {
	c := &clusterAPI{}
	root := &cobra.Command{Use: "topic", Short: "Create topics with their settings (through any node's HTTP API)"}
	c.apiFlags(root.PersistentFlags())
	root.AddCommand(topicCreateCmd(c))
	return root
}

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
			body, err := json.Marshal(cfg)
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
			if err := c.callBody(ctx, http.MethodPut, c.url(at, "/v1/topics/"+url.PathEscape(args[0])), body, &state); err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), string(state))
			return err
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
