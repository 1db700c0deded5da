package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"floe/client"
	"floe/internal/closedloop"
)

func benchCmd() *cobra.Command {
	var (
		o       benchOpts
		jsonOut bool
	)
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure PUT throughput and latency (every entry fsynced before OK)",
		Long: `bench opens --connections connections to --addr, each with at most --pipeline PUTs
unanswered (1 = request/response: write, read the reply, repeat), runs them for
--warmup and then --duration, and reports entries/s, MB/s and the latency of the PUTs
acknowledged in that window, from before each request is written to after its reply is
read. The report checks itself with Little's law: connections x pipeline against
throughput x mean latency. With --http it also samples each node's resident memory;
--json prints the report as one JSON object instead of text.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd.OutOrStdout(), o, jsonOut)
		},
	}
	fs := c.Flags()
	addrFlag(c, &o.addr)
	fs.StringVar(&o.topic, "topic", "bench", "topic to write (registered if missing)")
	fs.IntVar(&o.conns, "connections", 16, "concurrent connections")
	fs.IntVar(&o.size, "size", 1024, "payload bytes")
	fs.IntVar(&o.depth, "pipeline", 32, "most PUTs unanswered per connection (1 = request/response)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured run time")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured run time before it")
	fs.StringVar(&o.httpAddr, "http", "", "comma-separated node HTTP addresses to sample RSS from /metrics")
	fs.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	return c
}

type benchOpts struct {
	addr     string
	topic    string
	conns    int
	size     int
	depth    int
	duration time.Duration
	warmup   time.Duration
	httpAddr string
}

// benchReport is floe bench's JSON report: the closed-loop report and each node's peak RSS.
type benchReport struct {
	*closedloop.Report
	PeakRSS []rssPeak `json:"peak_rss,omitempty"`
}

func runBench(out io.Writer, o benchOpts, jsonOut bool) error {
	if o.conns < 1 || o.size < 1 || o.depth < 1 {
		return errors.New("--connections, --size and --pipeline must be positive")
	}
	first := strings.Split(o.addr, ",")[0]
	c, err := client.Dial(first)
	if err != nil {
		return err
	}
	err = c.Register(o.topic)
	c.Close()
	if err != nil {
		return err
	}
	req := []byte("PUT " + o.topic + " " + strings.Repeat("x", o.size))
	conns := make([]closedloop.Conn, 0, o.conns)
	for range o.conns {
		conn, err := client.Dial(first)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return err
		}
		conns = append(conns, putConn{conn, req})
	}
	opts := closedloop.Options{Pipeline: o.depth, Warmup: o.warmup, Duration: o.duration}
	rss := startRSSSampler(o.httpAddr)
	res, err := closedloop.Run(conns, opts)
	peaks := rss.stop()
	if err != nil {
		return err
	}
	title := fmt.Sprintf("floe bench, topic %q via %s", o.topic, first)
	r, err := closedloop.NewReport(title, o.conns, o.size, opts, res)
	if err != nil {
		return err
	}
	if jsonOut {
		b, err := json.MarshalIndent(benchReport{r, peaks}, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	}
	r.Print(out)
	for _, p := range peaks {
		fmt.Fprintf(out, "  peak RSS      %s: %.1f MiB\n", p.Addr, float64(p.Bytes)/(1<<20))
	}
	return nil
}

// putConn is one bench connection: every request is the same PUT, and any reply but OK
// refuses it.
type putConn struct {
	c   *client.Conn
	req []byte
}

var _ closedloop.Caller = putConn{}

func (p putConn) Send() error  { return p.c.Send(p.req) }
func (p putConn) Flush() error { return p.c.Flush() }
func (p putConn) Close() error { return p.c.Close() }

// Call is request/response on one goroutine, for --pipeline 1: no hand-off between
// reading a reply and writing the next PUT.
func (p putConn) Call() error {
	if err := p.c.Send(p.req); err != nil {
		return err
	}
	if err := p.c.Flush(); err != nil {
		return err
	}
	return p.Recv()
}

func (p putConn) Recv() error {
	reply, err := p.c.Recv()
	if err != nil {
		return err
	}
	if !bytes.Equal(reply, []byte("OK")) {
		return closedloop.Refused(fmt.Errorf("%.200s", reply))
	}
	return nil
}

type rssPeak struct {
	Addr  string `json:"addr"`
	Bytes int64  `json:"bytes"`
}

type rssSampler struct {
	stopCh chan struct{}
	done   chan struct{}
	peaks  []rssPeak
}

// startRSSSampler polls process_resident_memory_bytes of each node every 100 ms.
func startRSSSampler(addrs string) *rssSampler {
	s := &rssSampler{stopCh: make(chan struct{}), done: make(chan struct{})}
	for _, a := range strings.Split(addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			s.peaks = append(s.peaks, rssPeak{Addr: a})
		}
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			for i := range s.peaks {
				if v, err := scrapeRSS(s.peaks[i].Addr); err == nil && v > s.peaks[i].Bytes {
					s.peaks[i].Bytes = v
				}
			}
			select {
			case <-s.stopCh:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) stop() []rssPeak {
	close(s.stopCh)
	<-s.done
	return s.peaks
}

func scrapeRSS(addr string) (int64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_resident_memory_bytes "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int64(f), err
		}
	}
	return 0, fmt.Errorf("no process_resident_memory_bytes at %s", addr)
}
