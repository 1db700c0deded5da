package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"floe/wire"
)

// fakePutServer speaks floe's framing on loopback: REGISTER is answered at once, each
// PUT with OK delay after it was read, in order. It records, per connection, the most
// PUTs read and not yet answered: what a node would see of the client's pipeline; and
// the topics PUT to, and how many connections it had open when it read the last PUT.
type fakePutServer struct {
	ln    net.Listener
	delay time.Duration

	mu        sync.Mutex
	maxOpen   []int // per connection, in accept order
	answered  int
	putTopics map[string]int
	conns     int // open now
	lastConns int // open when the latest PUT was read; 0 before any
	wg        sync.WaitGroup
}

func startFakePutServer(t *testing.T, delay time.Duration) *fakePutServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakePutServer{ln: ln, delay: delay, putTopics: map[string]int{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.maxOpen = append(s.maxOpen, 0)
			i := len(s.maxOpen) - 1
			s.conns++
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c, i)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

// serve reads requests on c and hands each PUT's reply time to a writer that answers
// them in order; open counts the PUTs read and not yet answered.
func (s *fakePutServer) serve(c net.Conn, i int) {
	defer func() {
		c.Close()
		s.mu.Lock()
		s.conns--
		s.mu.Unlock()
	}()
	due := make(chan time.Time, 1<<16)
	var open int
	done := make(chan struct{})
	go func() {
		defer close(done)
		w := bufio.NewWriter(c)
		for d := range due {
			if d.IsZero() { // REGISTER
				wire.WriteFrame(w, []byte("OK"))
			} else {
				time.Sleep(time.Until(d)) // the node's service time, not synchronisation
				wire.WriteFrame(w, []byte("OK"))
				s.mu.Lock()
				open--
				s.answered++
				s.mu.Unlock()
			}
			if w.Flush() != nil { // each reply leaves when it is due, not with a later one
				return
			}
		}
	}()
	r := bufio.NewReader(c)
	for {
		req, err := wire.ReadFrame(r, wire.MaxRequest)
		if err != nil {
			break
		}
		if !bytes.HasPrefix(req, []byte("PUT ")) {
			due <- time.Time{}
			continue
		}
		topic, _, _ := strings.Cut(string(req[len("PUT "):]), " ")
		s.mu.Lock()
		open++
		s.maxOpen[i] = max(s.maxOpen[i], open)
		s.putTopics[topic]++
		s.lastConns = s.conns
		s.mu.Unlock()
		due <- time.Now().Add(s.delay)
	}
	close(due)
	<-done
}

// TestBenchIsClosedLoop runs floe bench against the fake node, whose every PUT takes a
// known time, and checks what the issue found broken: with --pipeline N the node never
// sees more than N PUTs of a connection unanswered (N=1 is request/response), no latency
// is shorter than the node's service time (the clock starts before the write), every
// acknowledged PUT is counted, and the report's Little's law check holds.
func TestBenchIsClosedLoop(t *testing.T) {
	const delay = 20 * time.Millisecond
	for _, depth := range []int{1, 8} {
		s := startFakePutServer(t, delay)
		var out bytes.Buffer
		o := benchOpts{addr: s.ln.Addr().String(), topic: "t", conns: 4, size: 100, depth: depth,
			duration: time.Second, warmup: 100 * time.Millisecond}
		if err := runBench(&out, o, true); err != nil {
			t.Fatal(err)
		}
		var r benchReport
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("%v in %s", err, out.String())
		}
		s.mu.Lock()
		maxOpen, answered := s.maxOpen[1:], s.answered // [0] registered the topic
		s.mu.Unlock()
		if len(maxOpen) != 4 {
			t.Fatalf("pipeline %d: %d bench connections, want 4", depth, len(maxOpen))
		}
		for i, m := range maxOpen {
			if m != depth {
				t.Errorf("pipeline %d: connection %d had at most %d PUTs unanswered, want %d", depth, i, m, depth)
			}
		}
		if r.P50US < float64(delay.Microseconds()) || r.MeanUS < float64(delay.Microseconds()) {
			t.Errorf("pipeline %d: p50 %.0fus, mean %.0fus: below the node's %v per PUT", depth, r.P50US, r.MeanUS, delay)
		}
		if r.AckedTotal != int64(answered) || r.Errors != 0 {
			t.Errorf("pipeline %d: %d acknowledged, %d errors; the node answered %d", depth, r.AckedTotal, r.Errors, answered)
		}
		if r.InFlight != 4*depth || r.LittleRatio < 0.8 || r.LittleRatio > 1.1 {
			t.Errorf("pipeline %d: in flight %d, throughput x mean latency %.2f (ratio %.3f), want %d and a ratio near 1",
				depth, r.InFlight, r.LittleInFlight, r.LittleRatio, 4*depth)
		}
	}
}

// TestBenchTextReport: the text report carries the figures the README quotes.
func TestBenchTextReport(t *testing.T) {
	s := startFakePutServer(t, time.Millisecond)
	var out bytes.Buffer
	o := benchOpts{addr: s.ln.Addr().String(), topic: "t", conns: 2, size: 10, depth: 2, duration: time.Second}
	if err := runBench(&out, o, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2 connections x 2 in flight", "entries/s", "p50", "p90", "p99", "p999", "max", "mean", "Little's law  in flight 4", "topics        1", "idle conns    0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestBenchTopicsAndIdleConnections: --topics 5 writes every one of the 5 topics (each
// connection starts at a different one), and --idle-connections 20 keeps 20 connections
// open beside the 4 writing ones for as long as PUTs arrive, then closes them.
func TestBenchTopicsAndIdleConnections(t *testing.T) {
	s := startFakePutServer(t, time.Millisecond)
	var out bytes.Buffer
	o := benchOpts{addr: s.ln.Addr().String(), topic: "t", conns: 4, size: 10, depth: 2,
		duration: time.Second, topics: 5, idle: 20, reads: 1}
	if err := runBench(&out, o, true); err != nil {
		t.Fatal(err)
	}
	var r benchReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	if r.Topics != 5 || r.IdleConnections != 20 {
		t.Errorf("report: %d topics, %d idle connections; want 5 and 20", r.Topics, r.IdleConnections)
	}
	s.mu.Lock()
	topics, lastConns := s.putTopics, s.lastConns
	s.mu.Unlock()
	for i := range 5 {
		if n := topics["t-"+strconv.Itoa(i)]; n == 0 {
			t.Errorf("no PUT to t-%d; PUTs per topic: %v", i, topics)
		}
	}
	if len(topics) != 5 {
		t.Errorf("PUTs to %d topics, want 5: %v", len(topics), topics)
	}
	// Counted at the last PUT, not as the fewest over the run: the client's dial returns once
	// the kernel has the connection, and the first PUTs can be read before the server's
	// Accept has returned for the last writer.
	if lastConns < 4+20 {
		t.Errorf("%d connections open when the last PUT arrived, want the 4 writing and the 20 idle", lastConns)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		n := s.conns
		s.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open 10 s after the run", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
