package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"floe/client"
)

func benchCmd() *cobra.Command {
	var (
		addr     string
		topic    string
		conns    int
		size     int
		depth    int
		duration time.Duration
		warmup   time.Duration
		httpAddr string
	)
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure PUT throughput and latency (every entry fsynced before OK)",
		Long: `bench opens --connections connections to --addr, each keeping --pipeline PUTs in
flight, for --duration, and reports entries/s, MB/s and latency percentiles of the
acknowledged PUTs. With --http it also samples each node's resident memory.`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			return runBench(benchOpts{addr, topic, conns, size, depth, duration, warmup, httpAddr})
		},
	}
	fs := c.Flags()
	addrFlag(c, &addr)
	fs.StringVar(&topic, "topic", "bench", "topic to write (registered if missing)")
	fs.IntVar(&conns, "connections", 16, "concurrent connections")
	fs.IntVar(&size, "size", 1024, "payload bytes")
	fs.IntVar(&depth, "pipeline", 32, "PUTs in flight per connection (1 = request/response)")
	fs.DurationVar(&duration, "duration", 10*time.Second, "measured run time")
	fs.DurationVar(&warmup, "warmup", 2*time.Second, "unmeasured run time before it")
	fs.StringVar(&httpAddr, "http", "", "comma-separated node HTTP addresses to sample RSS from /metrics")
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

func runBench(o benchOpts) error {
	if o.conns < 1 || o.size < 1 || o.depth < 1 {
		return errors.New("--connections, --size and --pipeline must be positive")
	}
	first := strings.Split(o.addr, ",")[0]
	c, err := client.Dial(first)
	if err != nil {
		return err
	}
	if err := c.Register(o.topic); err != nil {
		return err
	}
	c.Close()
	payload := bytes.Repeat([]byte("x"), o.size)
	req := []byte("PUT " + o.topic + " " + string(payload))

	var measuring, stop atomic.Bool
	var mu sync.Mutex
	var lat []time.Duration
	var errCount atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for i := 0; i < o.conns; i++ {
		conn, err := client.Dial(first)
		if err != nil {
			return err
		}
		defer conn.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent := make(chan time.Time, o.depth)
			local := make([]time.Duration, 0, 1<<16)
			done := make(chan struct{})
			go func() { // receiver
				defer close(done)
				for t := range sent {
					reply, err := conn.Recv()
					if err != nil {
						firstErr.CompareAndSwap(nil, err)
						errCount.Add(1)
						return
					}
					if !bytes.Equal(reply, []byte("OK")) {
						firstErr.CompareAndSwap(nil, fmt.Errorf("%s", reply))
						errCount.Add(1)
						continue
					}
					if measuring.Load() {
						local = append(local, time.Since(t))
					}
				}
			}()
			for !stop.Load() {
				if err := conn.Send(req); err != nil {
					break
				}
				// Flush when the pipeline is about to fill or nothing else is queued.
				if len(sent) >= o.depth-1 || len(sent) == 0 {
					if err := conn.Flush(); err != nil {
						break
					}
				}
				select {
				case sent <- time.Now():
				case <-done:
					stop.Store(true)
				}
			}
			conn.Flush()
			close(sent)
			<-done
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	rss := startRSSSampler(o.httpAddr)
	time.Sleep(o.warmup) // warm-up period of a benchmark, not synchronisation
	measuring.Store(true)
	start := time.Now()
	time.Sleep(o.duration) // measured period
	measuring.Store(false)
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()
	peaks := rss.stop()

	if len(lat) == 0 {
		return fmt.Errorf("no PUT was acknowledged (%d errors, first: %v)", errCount.Load(), firstErr.Load())
	}
	printBench(o, first, lat, elapsed, errCount.Load(), firstErr.Load(), peaks)
	return nil
}

// printBench prints a run's report: throughput and latency percentiles over the
// latencies lat (not empty) of the entries acknowledged within elapsed, the errors
// (their count and the first), and each node's peak RSS.
func printBench(o benchOpts, first string, lat []time.Duration, elapsed time.Duration, errs int64, firstErr any, peaks []rssPeak) {
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	n := float64(len(lat))
	fmt.Printf("floe bench: %d connections x %d in flight, %d-byte payloads, topic %q via %s\n", o.conns, o.depth, o.size, o.topic, first)
	fmt.Printf("  acknowledged  %d entries in %.1fs\n", len(lat), elapsed.Seconds())
	fmt.Printf("  throughput    %.0f entries/s, %.1f MB/s\n", n/elapsed.Seconds(), n*float64(o.size)/elapsed.Seconds()/1e6)
	fmt.Printf("  latency       p50 %v  p99 %v  p999 %v  max %v\n", pct(0.50).Round(time.Microsecond),
		pct(0.99).Round(time.Microsecond), pct(0.999).Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))
	if errs > 0 {
		fmt.Printf("  errors        %d (first: %v)\n", errs, firstErr)
	}
	for _, p := range peaks {
		fmt.Printf("  peak RSS      %s: %.1f MiB\n", p.addr, float64(p.bytes)/(1<<20))
	}
}

type rssPeak struct {
	addr  string
	bytes int64
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
			s.peaks = append(s.peaks, rssPeak{addr: a})
		}
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			for i := range s.peaks {
				if v, err := scrapeRSS(s.peaks[i].addr); err == nil && v > s.peaks[i].bytes {
					s.peaks[i].bytes = v
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
