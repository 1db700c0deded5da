package main

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"floe/client"
	"floe/wire"
)

// getBenchOpts are the flags of floe bench-get.
type getBenchOpts struct {
	addr      string // consumers connect to these, round-robin
	putAddr   string // the topic is filled through this node ("": the first of addr)
	topic     string
	consumers int
	max       int // 0: plain GET; else GET <topic> <max>
	entries   int
	size      int
	duration  time.Duration
	httpAddr  string
	sec       clientSec   // --tls-*, --token
	nodes     *benchNodes // made from sec when the run starts
}

func benchGetCmd() *cobra.Command {
	var o getBenchOpts
	c := &cobra.Command{
		Use:   "bench-get",
		Short: "Measure GET throughput and latency through the shared cursor",
		Long: `bench-get fills a fresh topic with --entries entries, then runs --consumers
connections, each with exactly one GET in flight (request/response), until the topic
is drained or --duration has passed, and reports GET requests/s, entries/s and latency
percentiles. Consumers are spread round-robin over the --addr nodes, so pointing --addr
at the Raft leader or at a follower measures either path. With --max, each request is
"GET <topic> <max>". With --http it reports each node's CPU seconds over the run.`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error { return runGetBench(o) },
	}
	fs := c.Flags()
	addrFlag(c, &o.addr)
	o.sec.flags(fs)
	fs.StringVar(&o.putAddr, "put-addr", "", "node to fill the topic through (default: the first --addr)")
	fs.StringVar(&o.topic, "topic", "", "topic to fill and drain (default: a new bench-get-<time> topic)")
	fs.IntVar(&o.consumers, "consumers", 1, "concurrent consumers, one GET in flight each")
	fs.IntVar(&o.max, "max", 0, "entries per GET (GET <topic> <max>); 0: plain GET")
	fs.IntVar(&o.entries, "entries", 50000, "entries to fill the topic with before the run")
	fs.IntVar(&o.size, "size", 100, "payload bytes")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "longest measured run time")
	fs.StringVar(&o.httpAddr, "http", "", "comma-separated node HTTP addresses to read process CPU from /metrics")
	return c
}

func runGetBench(o getBenchOpts) error {
	if o.consumers < 1 || o.size < 1 || o.entries < 1 || o.max < 0 || o.max > 10000 {
		return errors.New("--consumers, --size and --entries must be positive, --max 0 to 10000")
	}
	var err error
	if o.nodes, err = o.sec.benchNodes(); err != nil {
		return err
	}
	addrs := splitAddrs(o.addr)
	if o.putAddr == "" {
		o.putAddr = addrs[0]
	}
	if o.topic == "" {
		o.topic = "bench-get-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	if err := fillGetBench(o); err != nil {
		return err
	}
	cpu := o.nodes.startCPU(o.httpAddr)
	res, err := drainGetBench(o, addrs)
	if err != nil {
		return err
	}
	printGetBench(o, addrs, res, cpu.stop())
	return nil
}

func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// fillGetBench registers the topic and appends o.entries payloads in batches of 500.
func fillGetBench(o getBenchOpts) error {
	c, err := o.nodes.dial(o.putAddr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Register(o.topic); err != nil {
		return err
	}
	payload := bytes.Repeat([]byte("g"), o.size)
	for left := o.entries; left > 0; {
		batch := make([][]byte, min(500, left))
		for i := range batch {
			batch[i] = payload
		}
		if _, err := c.PutBatch(o.topic, batch); err != nil {
			return fmt.Errorf("filling %s: %w", o.topic, err)
		}
		left -= len(batch)
	}
	return nil
}

// getBenchResult is what the consumers measured.
type getBenchResult struct {
	lat      []time.Duration // one per GET answered with entries
	entries  int64
	elapsed  time.Duration
	errs     int64
	firstErr error
}

// drainGetBench runs the consumers until the topic is drained or o.duration passed.
func drainGetBench(o getBenchOpts, addrs []string) (getBenchResult, error) {
	req := []byte("GET " + o.topic)
	if o.max > 0 {
		req = fmt.Appendf(nil, "GET %s %d", o.topic, o.max)
	}
	var conns []*client.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range o.consumers {
		c, err := o.nodes.dial(addrs[i%len(addrs)])
		if err != nil {
			return getBenchResult{}, err
		}
		conns = append(conns, c)
	}
	var (
		res     getBenchResult
		mu      sync.Mutex
		entries atomic.Int64
		wg      sync.WaitGroup
	)
	deadline := time.Now().Add(o.duration)
	start := time.Now()
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<14)
			var errs int64
			var firstErr error
			for time.Now().Before(deadline) {
				t := time.Now()
				reply, err := c.Do(req)
				if err == nil {
					err = wire.ReplyError(reply)
				}
				if err != nil {
					if errs++; firstErr == nil {
						firstErr = err
					}
					continue
				}
				n := getReplyCount(reply)
				if n == 0 {
					break // drained
				}
				lat = append(lat, time.Since(t))
				entries.Add(int64(n))
			}
			mu.Lock()
			defer mu.Unlock()
			res.lat = append(res.lat, lat...)
			res.errs += errs
			if res.firstErr == nil {
				res.firstErr = firstErr
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.entries = entries.Load()
	if len(res.lat) == 0 {
		return res, fmt.Errorf("no GET returned an entry (%d errors, first: %v)", res.errs, res.firstErr)
	}
	return res, nil
}

// getReplyCount is the number of entries a GET reply carries (0 for EMPTY).
func getReplyCount(reply []byte) int {
	switch {
	case bytes.Equal(reply, []byte("EMPTY")):
		return 0
	case bytes.HasPrefix(reply, []byte("OK ")) && bytes.IndexByte(reply, '\n') > 0:
		head, _, _ := bytes.Cut(reply[3:], []byte(" "))
		n, _ := strconv.Atoi(string(head))
		return n
	}
	return 1
}

func printGetBench(o getBenchOpts, addrs []string, r getBenchResult, cpu []nodeCPU) {
	slices.Sort(r.lat)
	pct := func(p float64) time.Duration { return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))] }
	var sum time.Duration
	for _, l := range r.lat {
		sum += l
	}
	mean := sum / time.Duration(len(r.lat))
	kind := "GET <topic>"
	if o.max > 0 {
		kind = fmt.Sprintf("GET <topic> %d", o.max)
	}
	secs := r.elapsed.Seconds()
	gets := float64(len(r.lat))
	fmt.Printf("floe bench-get: %d consumers x 1 in flight, %s, %d-byte payloads, topic %q via %s\n",
		o.consumers, kind, o.size, o.topic, strings.Join(addrs, ","))
	fmt.Printf("  answered      %d GETs, %d entries in %.2fs\n", len(r.lat), r.entries, secs)
	fmt.Printf("  throughput    %.0f GETs/s, %.0f entries/s\n", gets/secs, float64(r.entries)/secs)
	fmt.Printf("  latency       p50 %v  p99 %v  max %v  mean %v\n", pct(0.50).Round(time.Microsecond),
		pct(0.99).Round(time.Microsecond), r.lat[len(r.lat)-1].Round(time.Microsecond), mean.Round(time.Microsecond))
	// Little's law: with one GET in flight per consumer, consumers / mean latency is
	// the rate the latencies allow; it matches the throughput when both are honest.
	fmt.Printf("  check         %d in flight / mean latency = %.0f GETs/s\n", o.consumers, float64(o.consumers)/mean.Seconds())
	if r.errs > 0 {
		fmt.Printf("  errors        %d (first: %v)\n", r.errs, r.firstErr)
	}
	for _, c := range cpu {
		fmt.Printf("  node CPU      %s: %.2fs (%.0f us per entry)\n", c.Addr, c.Seconds, c.Seconds/float64(r.entries)*1e6)
	}
}
