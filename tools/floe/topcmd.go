package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// topCmd is floe top: every member's /metrics, read every --interval, as a table.
func topCmd() *cobra.Command {
	c := &clusterAPI{}
	var interval time.Duration
	var once bool
	cmd := &cobra.Command{
		Use:   "top",
		Short: "A live view of every node (role, appends, fsync latency, uploads, backlog, RPO, connections) from their /metrics; q quits",
		Long: "A live view of every member of the cluster, refreshed every --interval from each node's /metrics (the members\n" +
			"come from GET /v1/cluster on the first node of --http that answers). q or Ctrl-C quits. When stdout is not a\n" +
			"terminal, or with --once, it reads the nodes twice, --interval apart, prints one table and exits.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval < 100*time.Millisecond {
				return fmt.Errorf("--interval %v: at least 100ms", interval)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			scrape := func(ctx context.Context) *clusterScrape {
				ctx, cancel := context.WithTimeout(ctx, min(c.timeout, max(interval, time.Second)))
				defer cancel()
				return c.scrape(ctx)
			}
			if tty, _ := stdoutTerminal(); once || !tty {
				return topOnce(ctx, scrape, interval, os.Stdout)
			}
			return topLive(ctx, scrape, interval)
		},
	}
	c.apiFlags(cmd.Flags())
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "time between two reads of the nodes' /metrics (the rates are over it)")
	cmd.Flags().BoolVar(&once, "once", false, "read the nodes twice, --interval apart, print one table and exit (the default when stdout is not a terminal)")
	return cmd
}

// scrape reads the members from the first node of --http that answers, then every
// member's /metrics at once.
func (c *clusterAPI) scrape(ctx context.Context) *clusterScrape {
	s := &clusterScrape{At: time.Now()}
	v, _, err := c.anyView(ctx)
	if err != nil {
		s.Err = err
		return s
	}
	s.ClusterID = v.Metrics.ClusterID
	if v.Metrics.CurrentLeader != nil {
		s.Leader = *v.Metrics.CurrentLeader
	}
	for _, cfg := range v.Metrics.MembershipConfig.Membership.Configs {
		s.Voters = append(s.Voters, cfg...)
	}
	addrs := map[uint64]string{}
	ids := slices.Clone(s.Voters)
	for _, n := range v.Nodes {
		addrs[n.ID] = n.HTTPAddr
		if !slices.Contains(ids, n.ID) {
			ids = append(ids, n.ID)
		}
	}
	slices.Sort(ids)
	s.Nodes = make([]nodeScrape, len(ids))
	s.At = time.Now()
	var wg sync.WaitGroup
	for i, id := range ids {
		n := &s.Nodes[i]
		n.ID, n.Addr = id, addrs[id]
		if n.Addr == "" {
			n.Err = errors.New("no HTTP address registered (yet)")
			continue
		}
		url := c.url(n.Addr, "/metrics") // c.url sets c.scheme on first use: not in the goroutines
		wg.Go(func() {
			n.Families, n.Err = c.metrics(ctx, url)
		})
	}
	wg.Wait()
	return s
}

// metrics reads and parses one node's /metrics, in the Prometheus text format.
func (c *clusterAPI) metrics(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	body, err := c.send(ctx, http.MethodGet, url, nil, "text/plain;version=0.0.4")
	if err != nil {
		return nil, err
	}
	fams, err := parseMetrics(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("cannot parse %s: %w", url, err)
	}
	return fams, nil
}

// parseMetrics reads the Prometheus text format (what a node's /metrics serves) with
// the Prometheus project's own parser.
func parseMetrics(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// topOnce prints one table: the nodes read twice, interval apart.
func topOnce(ctx context.Context, scrape func(context.Context) *clusterScrape, interval time.Duration, out io.Writer) error {
	before := scrape(ctx)
	if before.Err != nil {
		return before.Err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(interval):
	}
	after := scrape(ctx)
	if after.Err != nil {
		return after.Err
	}
	_, err := io.WriteString(out, renderTop(before, after, after.At.Sub(before.At)))
	return err
}

// topLive draws the table on the terminal's alternate screen every interval until
// q, Ctrl-C or a signal; stdin, when a terminal, is in raw mode meanwhile, so that q
// needs no Enter.
func topLive(ctx context.Context, scrape func(context.Context) *clusterScrape, interval time.Duration) error {
	ctx, quit := context.WithCancel(ctx)
	defer quit()
	in := int(os.Stdin.Fd())
	if term.IsTerminal(in) {
		old, err := term.MakeRaw(in)
		if err != nil {
			return fmt.Errorf("cannot put the terminal in raw mode: %w", err)
		}
		defer term.Restore(in, old)
		go readKeys(os.Stdin, quit)
	}
	fmt.Print("\x1b[?1049h\x1b[?25l")       // the alternate screen, no cursor
	defer fmt.Print("\x1b[?25h\x1b[?1049l") // back to the screen as it was
	title := fmt.Sprintf("floe top: every %v; q quits\n", interval)
	return runTop(ctx, scrape, interval, func(frame string) {
		// Home, then each line over the last frame's, the rest cleared: no flicker.
		// Raw mode does not turn \n into \r\n.
		lines := strings.Split(strings.TrimSuffix(title+frame, "\n"), "\n")
		fmt.Print("\x1b[H" + strings.Join(lines, "\x1b[K\r\n") + "\x1b[K\x1b[J")
	})
}

// runTop draws a frame every interval until ctx ends: the first at once, with
// gauges only, then each with the rates since the frame before.
func runTop(ctx context.Context, scrape func(context.Context) *clusterScrape, interval time.Duration, draw func(string)) error {
	prev := scrape(ctx)
	if ctx.Err() != nil {
		return nil
	}
	draw(renderTop(nil, prev, 0))
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		cur := scrape(ctx)
		if ctx.Err() != nil {
			return nil
		}
		draw(renderTop(prev, cur, cur.At.Sub(prev.At)))
		prev = cur
	}
}

// readKeys calls quit when q, Q, Ctrl-C or Ctrl-D is typed (raw mode passes Ctrl-C
// as a byte, not a signal). It returns then, or when r fails.
func readKeys(r io.Reader, quit func()) {
	buf := make([]byte, 64)
	for {
		n, err := r.Read(buf)
		for _, k := range buf[:n] {
			if k == 'q' || k == 'Q' || k == 3 || k == 4 {
				quit()
				return
			}
		}
		if err != nil {
			return
		}
	}
}
