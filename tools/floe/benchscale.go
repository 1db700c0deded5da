package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"floe/client"
	"floe/wire"
)

// setupWorkers bounds the connections floe bench opens at once to register topics and
// open idle connections: enough to hide a Raft round trip, few enough not to be the load.
const setupWorkers = 16

// benchTopics names the topics a run writes: just topic, or topic-0 .. topic-<n-1>.
func benchTopics(topic string, n int) []string {
	if n == 1 {
		return []string{topic}
	}
	ts := make([]string, n)
	for i := range ts {
		ts[i] = topic + "-" + strconv.Itoa(i)
	}
	return ts
}

// forEachBounded runs f(0..n-1) on at most workers goroutines, each given its own worker
// index, and returns the first error (the others still run to the end).
func forEachBounded(n, workers int, f func(worker, i int) error) error {
	workers = min(workers, n)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(w, i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// registerTopics registers every topic before the run, so that the measured window has
// no registration in it; each worker registers its share over one connection.
func (b *benchNodes) registerTopics(addr string, topics []string) error {
	conns := make([]*client.Conn, min(setupWorkers, len(topics)))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	return forEachBounded(len(topics), setupWorkers, func(w, i int) error {
		if conns[w] == nil {
			c, err := b.dial(addr)
			if err != nil {
				return err
			}
			conns[w] = c
		}
		if err := conns[w].Register(topics[i]); err != nil {
			return fmt.Errorf("register %s: %w", topics[i], err)
		}
		return nil
	})
}

// localTopics registers <prefix>-0, <prefix>-1, ... until n of them have their active
// segment led by the node at addr, and returns those n. The node places a new topic
// round-robin over the voters, so about a third of the names on each of three nodes.
func (b *benchNodes) localTopics(addr, prefix string, n int) ([]string, error) {
	c, err := b.dial(addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	m, err := c.Metrics()
	if err != nil {
		return nil, err
	}
	var local []string
	for next := 0; len(local) < n; {
		if next > 100*n {
			return nil, fmt.Errorf("%d topics registered and only %d led by node %d at %s", next, len(local), m.ID, addr)
		}
		batch := benchTopics(prefix, next+max(3*(n-len(local)), setupWorkers))[next:]
		next += len(batch)
		if err := b.registerTopics(addr, batch); err != nil {
			return nil, err
		}
		for _, t := range batch {
			st, err := c.State(t)
			if err != nil {
				return nil, fmt.Errorf("state %s: %w", t, err)
			}
			if st.LeaderNode == m.ID && len(local) < n {
				local = append(local, t)
			}
		}
	}
	return local, nil
}

// openIdle opens n connections that each register one of the topics (so the node has
// read from the connection and answered on it, as for any client that spoke once) and
// then stay silent. They are bare sockets rather than client.Conns: a client.Conn's
// 128 KiB of buffers times thousands would make the bench the memory hog it measures.
// On an error it returns the connections opened so far, for closeIdle.
func openIdle(addr string, topics []string, n int) ([]net.Conn, error) {
	idle := make([]net.Conn, n)
	err := forEachBounded(n, setupWorkers, func(_, i int) error {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return fmt.Errorf("idle connection %d: %w", i, err)
		}
		idle[i] = c
		var frame bytes.Buffer
		wire.WriteFrame(&frame, []byte("REGISTER "+topics[i%len(topics)]))
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write(frame.Bytes()); err != nil {
			return fmt.Errorf("idle connection %d: %w", i, err)
		}
		reply, err := wire.ReadFrame(c, wire.MaxReply)
		if err != nil {
			return fmt.Errorf("idle connection %d: %w", i, err)
		}
		if !bytes.HasPrefix(reply, []byte("OK")) {
			return fmt.Errorf("idle connection %d: %.200s", i, reply)
		}
		c.SetDeadline(time.Time{})
		return nil
	})
	return idle, err
}

func closeIdle(idle []net.Conn) {
	for _, c := range idle {
		if c != nil {
			c.Close()
		}
	}
}

// nodeCPU is a node's CPU seconds (process_cpu_seconds_total) over a run, warm-up included.
type nodeCPU struct {
	Addr    string  `json:"addr"`
	Seconds float64 `json:"seconds"`
}

type cpuMeter struct {
	nodes  *benchNodes
	before []nodeCPU
}

// startCPU reads each node's CPU seconds; a node whose /metrics does not answer is left
// out of the report rather than reported as idle.
func (b *benchNodes) startCPU(addrs string) *cpuMeter {
	m := &cpuMeter{nodes: b}
	for _, a := range strings.Split(addrs, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if v, err := b.scrapeMetric(a, "process_cpu_seconds_total"); err == nil {
			m.before = append(m.before, nodeCPU{a, v})
		}
	}
	return m
}

func (m *cpuMeter) stop() []nodeCPU {
	var out []nodeCPU
	for _, b := range m.before {
		if v, err := m.nodes.scrapeMetric(b.Addr, "process_cpu_seconds_total"); err == nil {
			out = append(out, nodeCPU{b.Addr, v - b.Seconds})
		}
	}
	return out
}

// readTiming is --read-offsets' report for one offset: the first READ (cold caches, an
// index still to load) apart, and the median and max of them all.
type readTiming struct {
	Offset   uint64  `json:"offset"`
	Reads    int     `json:"reads"`
	FirstUS  float64 `json:"first_us"`
	MedianUS float64 `json:"median_us"`
	MaxUS    float64 `json:"max_us"`
}

// runReadBench times READs of one entry at each of --read-offsets over one connection,
// one at a time: what finding an offset costs the node, whatever segment it is in.
func runReadBench(out io.Writer, addr string, o benchOpts, jsonOut bool) error {
	if o.reads < 1 {
		return errors.New("--reads must be positive")
	}
	var offsets []uint64
	for _, s := range strings.Split(o.readOffsets, ",") {
		off, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return fmt.Errorf("--read-offsets: %w", err)
		}
		offsets = append(offsets, off)
	}
	c, err := o.nodes.dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	var res []readTiming
	for _, off := range offsets {
		lat := make([]time.Duration, 0, o.reads)
		for range o.reads {
			start := time.Now()
			entries, _, err := c.Read(o.topic, off, 1)
			d := time.Since(start)
			if err != nil {
				return fmt.Errorf("READ %s %d: %w", o.topic, off, err)
			}
			if len(entries) != 1 || entries[0].Offset != off {
				return fmt.Errorf("READ %s %d: %d entries, not the one at that offset", o.topic, off, len(entries))
			}
			lat = append(lat, d)
		}
		t := readTiming{Offset: off, Reads: len(lat), FirstUS: us(lat[0])}
		slices.Sort(lat)
		t.MedianUS, t.MaxUS = us(lat[len(lat)/2]), us(lat[len(lat)-1])
		res = append(res, t)
	}
	if jsonOut {
		b, err := json.MarshalIndent(map[string]any{"topic": o.topic, "addr": addr, "reads": res}, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	}
	fmt.Fprintf(out, "floe bench --read-offsets, topic %q via %s, READ of one entry\n", o.topic, addr)
	for _, t := range res {
		fmt.Fprintf(out, "  offset %d: %d reads, first %.0f us, median %.0f us, max %.0f us\n",
			t.Offset, t.Reads, t.FirstUS, t.MedianUS, t.MaxUS)
	}
	return nil
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
