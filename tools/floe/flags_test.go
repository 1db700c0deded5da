package main

import (
	"testing"

	"github.com/spf13/cobra"
)

// TestEnvSetsFlagsButNotUnsafeOnes: FLOE_<FLAG> sets an agent flag the command line
// left alone, but never --unsafe-no-fsync, which must be asked for on the command line.
func TestEnvSetsFlagsButNotUnsafeOnes(t *testing.T) {
	t.Setenv("FLOE_UNSAFE_NO_FSYNC", "true")
	t.Setenv("FLOE_MAX_CONNECTIONS", "77")
	var f agentFlags
	c := &cobra.Command{Use: "agent"}
	addNodeFlags(c, &f)
	if err := c.Flags().Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := bindEnv(c.Flags()); err != nil {
		t.Fatal(err)
	}
	if f.cfg.MaxConnections != 77 {
		t.Errorf("FLOE_MAX_CONNECTIONS=77 gave --max-connections %d", f.cfg.MaxConnections)
	}
	if f.cfg.UnsafeNoFsync {
		t.Error("FLOE_UNSAFE_NO_FSYNC=true turned --unsafe-no-fsync on")
	}
	if err := c.Flags().Parse([]string{"--unsafe-no-fsync"}); err != nil {
		t.Fatal(err)
	}
	if !f.cfg.UnsafeNoFsync {
		t.Error("--unsafe-no-fsync on the command line did not turn it on")
	}
}
