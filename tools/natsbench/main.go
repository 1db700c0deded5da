// Command natsbench is floe bench's client pattern against NATS JetStream, for the side
// by side comparison in tools/floe/bench-cluster.sh: --connections connections, each
// with at most --pipeline publishes unanswered, to a file-backed R1 stream, reported in
// floe bench's format (internal/closedloop, the same driver). With --pipeline 1 each
// connection publishes with the synchronous js.Publish; above it with js.PublishAsync.
//
// Whether the server fsyncs each message before acknowledging it is the server's own
// setting (jetstream { sync_interval: always } in its configuration), not the stream's,
// so the script that starts nats-server chooses it. This tool lives in a module of its
// own so that floe's go.mod does not depend on the NATS client.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"floe/internal/closedloop"
)

func main() {
	var o opts
	flag.StringVar(&o.url, "url", nats.DefaultURL, "NATS server URL")
	flag.StringVar(&o.stream, "stream", "bench", "stream to publish to (created with -replicas, file storage, if missing)")
	flag.IntVar(&o.replicas, "replicas", 1, "replicas of the stream it creates (R3 needs a 3-server cluster)")
	flag.IntVar(&o.conns, "connections", 16, "concurrent connections")
	flag.IntVar(&o.size, "size", 1024, "payload bytes")
	flag.IntVar(&o.depth, "pipeline", 32, "most publishes unanswered per connection (1 = synchronous js.Publish)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured run time")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured run time before it")
	flag.StringVar(&o.note, "note", "", "added to the report's title (for example the server's sync setting)")
	flag.BoolVar(&o.json, "json", false, "print the report as JSON")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "natsbench:", err)
		os.Exit(1)
	}
}

type opts struct {
	url, stream, note  string
	conns, size, depth int
	replicas           int
	duration, warmup   time.Duration
	json               bool
}

func run(o opts) error {
	if o.conns < 1 || o.size < 1 || o.depth < 1 {
		return errors.New("-connections, -size and -pipeline must be positive")
	}
	subject := o.stream
	if err := ensureStream(o.url, o.stream, subject, o.replicas); err != nil {
		return err
	}
	payload := []byte(strings.Repeat("x", o.size))
	conns := make([]closedloop.Conn, 0, o.conns)
	for range o.conns {
		p, err := dialPublisher(o.url, subject, payload, o.depth)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return err
		}
		conns = append(conns, p)
	}
	lo := closedloop.Options{Pipeline: o.depth, Warmup: o.warmup, Duration: o.duration}
	res, err := closedloop.Run(conns, lo)
	if err != nil {
		return err
	}
	title := fmt.Sprintf("JetStream bench, stream %q (R%d, file) via %s", o.stream, o.replicas, o.url)
	if o.note != "" {
		title += ", " + o.note
	}
	r, err := closedloop.NewReport(title, o.conns, o.size, lo, res)
	if err != nil {
		return err
	}
	if o.json {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		fmt.Printf("%s\n", b)
		return nil
	}
	r.Print(os.Stdout)
	return nil
}

// ensureStream creates the stream (replicas, file storage, the one subject) unless
// it exists.
func ensureStream(url, stream, subject string, replicas int) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return fmt.Errorf("cannot connect to %s: %w", url, err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		return err
	}
	if _, err := js.StreamInfo(stream); err == nil {
		return nil
	} else if !errors.Is(err, nats.ErrStreamNotFound) {
		return fmt.Errorf("cannot look up stream %q at %s: %w", stream, url, err)
	}
	_, err = js.AddStream(&nats.StreamConfig{
		Name: stream, Subjects: []string{subject}, Storage: nats.FileStorage, Replicas: replicas,
	})
	if err != nil {
		return fmt.Errorf("cannot create stream %q at %s: %w", stream, url, err)
	}
	return nil
}
