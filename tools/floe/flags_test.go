package main

import (
	"testing"

	"github.com/spf13/cobra"
)

// TestEnvSetsAgentFlags: FLOE_<FLAG> sets an agent flag the command line left alone,
// --unsafe-no-fsync included (every flag is, by the interface contract), and the
// command line wins over the environment.
func TestEnvSetsAgentFlags(t *testing.T) {
	t.Setenv("FLOE_UNSAFE_NO_FSYNC", "true")
	t.Setenv("FLOE_MAX_CONNECTIONS", "77")
	var f agentFlags
	c := &cobra.Command{Use: "agent"}
	addNodeFlags(c, &f)
	if err := c.Flags().Parse([]string{"--max-connections", "5"}); err != nil {
		t.Fatal(err)
	}
	if err := bindEnv(c.Flags()); err != nil {
		t.Fatal(err)
	}
	if f.cfg.MaxConnections != 5 {
		t.Errorf("--max-connections 5 with FLOE_MAX_CONNECTIONS=77 gave %d, want the command line's", f.cfg.MaxConnections)
	}
	if !f.cfg.UnsafeNoFsync {
		t.Error("FLOE_UNSAFE_NO_FSYNC=true left --unsafe-no-fsync off")
	}
}
