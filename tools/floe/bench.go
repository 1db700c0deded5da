package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
throughput x mean latency. With --http it also samples each node's resident memory and
reads its CPU seconds before and after the run; --json prints the report as one JSON
object instead of text.

--topics N spreads the PUTs round-robin over the topics <topic>-0 .. <topic>-<N-1>, each
connection starting at a different one, so that every topic has an active segment on the
node. Topics are placed round-robin over the nodes, so a third of them on each of three;
--local-topics registers more names until N of them have their active segment on the
node at --addr, and writes those, so that no PUT is forwarded. --idle-connections N opens N more connections that each register the topic once and
then stay open and silent until the run ends: what many quiet clients cost a busy node.

--read-offsets O1,O2,... writes nothing: it times --reads READs of one entry at each offset
of --topic over one connection and prints their median and max.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd.OutOrStdout(), o, jsonOut)
		},
	}
	fs := c.Flags()
	addrFlag(c, &o.addr)
	o.sec.flags(fs)
	fs.StringVar(&o.topic, "topic", "bench", "topic to write (registered if missing)")
	fs.IntVar(&o.conns, "connections", 16, "concurrent connections")
	fs.IntVar(&o.size, "size", 1024, "payload bytes")
	fs.IntVar(&o.depth, "pipeline", 32, "most PUTs unanswered per connection (1 = request/response)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured run time")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured run time before it")
	fs.StringVar(&o.httpAddr, "http", "", "comma-separated node HTTP addresses to sample RSS and CPU from /metrics")
	fs.IntVar(&o.topics, "topics", 1, "write round-robin over this many topics <topic>-0.. (0 or 1: just --topic)")
	fs.BoolVar(&o.localTopics, "local-topics", false, "with --topics: write only topics whose active segment the --addr node leads (registering more until there are enough)")
	fs.IntVar(&o.idle, "idle-connections", 0, "extra connections held open and silent during the run")
	fs.StringVar(&o.readOffsets, "read-offsets", "", "comma-separated offsets of --topic: time READs of them instead of writing")
	fs.IntVar(&o.reads, "reads", 20, "READs of each --read-offsets offset")
	fs.IntVar(&o.replicas, "replicas", 0, "create the topics with this replication factor first, through the HTTP API of --http (0: REGISTER, the nodes' --default-replication-factor); an existing topic keeps its own")
	fs.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	return c
}

// createReplicated creates topics with replication factor replicas through the
// HTTP API of the first of httpAddrs (PUT /v1/topics/{topic}).
func createReplicated(sec clientSec, httpAddrs string, topics []string, replicas int) error {
	at := strings.TrimSpace(strings.Split(httpAddrs, ",")[0])
	if at == "" {
		return errors.New("--replicas needs --http: topics are created with a replication factor through the HTTP API")
	}
	api := &clusterAPI{addr: at, timeout: time.Minute, sec: sec}
	body := fmt.Sprintf(`{"replication_factor": %d}`, replicas)
	for _, t := range topics {
		ctx, cancel := context.WithTimeout(context.Background(), api.timeout)
		err := api.callBody(ctx, http.MethodPut, api.url(at, "/v1/topics/"+url.PathEscape(t)), []byte(body), nil)
		cancel()
		if err != nil {
			return fmt.Errorf("create %s with %d replicas: %w", t, replicas, err)
		}
	}
	return nil
}

type benchOpts struct {
	sec      clientSec   // --tls-*, --token
	nodes    *benchNodes // made from sec when the run starts
	replicas int
	addr     string
	topic    string
	conns    int
	size     int
	depth    int
	duration time.Duration
	warmup   time.Duration
	httpAddr string
	topics   int
	idle     int
	// localTopics picks the --topics topics among those the node at --addr leads.
	localTopics bool

	readOffsets string
	reads       int
}

// benchReport is floe bench's JSON report: the closed-loop report, what else the node
// carried during the run, and each node's peak RSS and CPU seconds over it.
type benchReport struct {
	*closedloop.Report
	Topics          int       `json:"topics"`
	IdleConnections int       `json:"idle_connections"`
	PeakRSS         []rssPeak `json:"peak_rss,omitempty"`
	CPU             []nodeCPU `json:"cpu,omitempty"`
}

func runBench(out io.Writer, o benchOpts, jsonOut bool) error {
	if o.conns < 1 || o.size < 1 || o.depth < 1 || o.topics < 0 || o.idle < 0 {
		return errors.New("--connections, --size and --pipeline must be positive, --topics and --idle-connections not negative")
	}
	var err error
	if o.nodes, err = o.sec.benchNodes(); err != nil {
		return err
	}
	if o.idle > 0 && !o.nodes.plain() {
		return errors.New("--idle-connections holds raw protocol connections: not with --tls-* or --token")
	}
	first := strings.Split(o.addr, ",")[0]
	if o.readOffsets != "" {
		return runReadBench(out, first, o, jsonOut)
	}
	topics := benchTopics(o.topic, max(o.topics, 1)) // 0 as 1: just --topic
	switch {
	case o.replicas > 0:
		err = createReplicated(o.sec, o.httpAddr, topics, o.replicas)
	case o.localTopics && len(topics) > 1:
		topics, err = o.nodes.localTopics(first, o.topic, len(topics))
	default:
		err = o.nodes.registerTopics(first, topics)
	}
	if err != nil {
		return err
	}
	idle, err := openIdle(first, topics, o.idle)
	defer closeIdle(idle)
	if err != nil {
		return err
	}
	conns, err := dialPutConns(first, topics, o)
	if err != nil {
		return err
	}
	opts := closedloop.Options{Pipeline: o.depth, Warmup: o.warmup, Duration: o.duration}
	cpu := o.nodes.startCPU(o.httpAddr)
	rss := o.nodes.startRSSSampler(o.httpAddr)
	res, err := closedloop.Run(conns, opts)
	peaks := rss.stop()
	cpus := cpu.stop()
	if err != nil {
		return err
	}
	title := fmt.Sprintf("floe bench, topic %q via %s", o.topic, first)
	if len(topics) > 1 {
		title = fmt.Sprintf("floe bench, %d topics %s..%s via %s", len(topics), topics[0], topics[len(topics)-1], first)
	}
	r, err := closedloop.NewReport(title, o.conns, o.size, opts, res)
	if err != nil {
		return err
	}
	rep := benchReport{r, len(topics), o.idle, peaks, cpus}
	if jsonOut {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	}
	r.Print(out)
	fmt.Fprintf(out, "  topics        %d\n  idle conns    %d\n", rep.Topics, rep.IdleConnections)
	for _, p := range peaks {
		fmt.Fprintf(out, "  peak RSS      %s: %.1f MiB\n", p.Addr, float64(p.Bytes)/(1<<20))
	}
	for _, c := range cpus {
		fmt.Fprintf(out, "  CPU           %s: %.2f s, %.1f us per acknowledged PUT\n", c.Addr, c.Seconds, c.Seconds*1e6/float64(r.AckedTotal))
	}
	return nil
}

// dialPutConns opens the bench connections. They share one PUT request per topic, and
// connection i starts at topic i, so that with fewer connections than topics each still
// writes every topic and with more, every topic is written from the first round on.
func dialPutConns(addr string, topics []string, o benchOpts) ([]closedloop.Conn, error) {
	payload := strings.Repeat("x", o.size)
	reqs := make([][]byte, len(topics))
	for i, t := range topics {
		reqs[i] = []byte("PUT " + t + " " + payload)
	}
	conns := make([]closedloop.Conn, 0, o.conns)
	for i := range o.conns {
		conn, err := o.nodes.dial(addr)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, err
		}
		conns = append(conns, &putConn{c: conn, reqs: reqs, next: i % len(reqs)})
	}
	return conns, nil
}

// putConn is one bench connection: its requests are PUTs to each topic in turn, and any
// reply but OK refuses one. Only the sending goroutine touches next.
type putConn struct {
	c    *client.Conn
	reqs [][]byte
	next int
}

var _ closedloop.Caller = (*putConn)(nil)

func (p *putConn) Send() error {
	req := p.reqs[p.next]
	p.next = (p.next + 1) % len(p.reqs)
	return p.c.Send(req)
}

func (p *putConn) Flush() error { return p.c.Flush() }
func (p *putConn) Close() error { return p.c.Close() }

// Call is request/response on one goroutine, for --pipeline 1: no hand-off between
// reading a reply and writing the next PUT.
func (p *putConn) Call() error {
	if err := p.Send(); err != nil {
		return err
	}
	if err := p.c.Flush(); err != nil {
		return err
	}
	return p.Recv()
}

func (p *putConn) Recv() error {
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
func (b *benchNodes) startRSSSampler(addrs string) *rssSampler {
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
				if v, err := b.scrapeMetric(s.peaks[i].Addr, "process_resident_memory_bytes"); err == nil && int64(v) > s.peaks[i].Bytes {
					s.peaks[i].Bytes = int64(v)
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

// scrapeMetric reads one unlabelled sample from a node's /metrics.
func (b *benchNodes) scrapeMetric(addr, name string) (float64, error) {
	resp, err := b.http.Get(b.scheme + "://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no %s at %s", name, addr)
}
