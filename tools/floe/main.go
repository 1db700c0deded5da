// Command floe is the single floe binary: a node (agent), an embedded dev cluster, the
// client and admin subcommands, and the benchmark.
package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func main() {
	root := &cobra.Command{
		Use:           "floe",
		Short:         "floe: a distributed log with tiered storage, wire-compatible with Distributed Walrus",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(agentCmd(), devCmd(), benchCmd(), shellCmd(), walCmd(), archiveCmd(), clusterCmd(), topCmd(), topicCmd(), restoreCmd(), healthcheckCmd(), certsCmd(), authCmd(), demoCmd())
	root.AddCommand(clientCmds()...)
	root.AddCommand(benchGetCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "floe:", err)
		os.Exit(1)
	}
}

// bindEnv sets every flag the command line did not set from FLOE_<FLAG> (upper snake
// case), so containers can be configured by environment.
func bindEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		name := "FLOE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, serr)
			}
		}
	})
	return err
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
