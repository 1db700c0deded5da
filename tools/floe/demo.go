package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"floe/client"
	"floe/node"
)

// demoOpts are floe demo's flags.
type demoOpts struct {
	dataDir string
	ports   devPorts
	entries int  // entries written
	segment int  // entries per segment
	exit    bool // exit when the story is told, instead of waiting for Ctrl-C
	within  time.Duration
}

func demoCmd() *cobra.Command {
	var o demoOpts
	c := &cobra.Command{
		Use:   "demo",
		Short: "Tell floe's story in a minute: write, archive, lose a node's disk, read everything back from the bucket, bring the node back",
		Long: `demo starts the embedded 3-node cluster of floe dev (a file archive, nothing to
install) on a fresh data dir, writes a topic until segments are sealed and archived,
stops the node that led one of them and deletes its data dir, reads every sealed entry
back through the others (from the archive), and brings the node back with an empty disk.
It says what it does at each step; the web console (printed at the start) shows it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd.OutOrStdout(), o) },
	}
	fs := c.Flags()
	fs.StringVar(&o.dataDir, "data-dir", "./data/demo", "the demo's state (emptied at start)")
	fs.IntVar(&o.ports.client, "client-port", 9091, "client port of node 1 (nodes 2 and 3 take the next ones)")
	fs.IntVar(&o.ports.raft, "raft-port", 6001, "raft port of node 1")
	fs.IntVar(&o.ports.http, "http-port", 9181, "HTTP port of node 1")
	fs.IntVar(&o.entries, "entries", 350, "entries to write")
	fs.IntVar(&o.segment, "segment-entries", 100, "entries per segment")
	fs.BoolVar(&o.exit, "exit", false, "exit when the story is told (default: keep the cluster up until Ctrl-C)")
	fs.DurationVar(&o.within, "step-timeout", time.Minute, "how long a step may take")
	return c
}

// demoMarker is the file that says a directory is the demo's own, to empty at start.
const demoMarker = ".floe-demo"

// claimDemoDir empties dir for a new demo, if it is missing, empty or the demo's own
// (it holds demoMarker), and marks it; it refuses any other directory: --data-dir
// must never be something of the user's that the demo deletes.
func claimDemoDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(dir, demoMarker)); err != nil {
			return fmt.Errorf("demo: %s is not empty and not a demo's data dir (no %s): give another --data-dir", dir, demoMarker)
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, demoMarker), []byte("floe demo data: emptied by the next floe demo\n"), 0o644)
}

// demo is a running demo: its nodes by id (nil while one is down).
type demo struct {
	o     demoOpts
	out   io.Writer
	dir   string
	nodes map[int]*node.Node
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, "==> "+format+"\n", args...) }

// start starts node id; join, if not 0, is the member it joins through (a node back
// with an empty disk joins, whichever id it has).
func (d *demo) start(id, join int) error {
	cfg := d.o.ports.config(d.dir, id, nil)
	if join != 0 {
		cfg.Join = d.nodes[join].RaftAddr()
	}
	log, _ := newLogger("error", "text")
	// The story is told here; the nodes' own logs (and Raft's complaints as nodes
	// stop) would drown it.
	cfg.Logger, cfg.RaftLogLevel, cfg.MaxSegmentEntries = log, "off", uint64(d.o.segment)
	n, err := node.Start(cfg)
	if err != nil {
		return fmt.Errorf("node %d: %w", id, err)
	}
	d.nodes[id] = n
	return nil
}

func (d *demo) close() {
	for _, n := range d.nodes {
		if n != nil {
			n.Close()
		}
	}
}

// wait polls cond until it holds or the step timeout passes.
func (d *demo) wait(what string, cond func() bool) error {
	deadline := time.Now().Add(d.o.within)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: %s: not within %v", what, d.o.within)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
	return nil
}

func (d *demo) conn(id int) (*client.Conn, error) { return client.Dial(d.nodes[id].ClientAddr()) }

func runDemo(out io.Writer, o demoOpts) error {
	if o.entries < 2*o.segment || o.segment < 1 {
		return errors.New("--entries must be at least twice --segment-entries: the story needs sealed segments")
	}
	dir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return err
	}
	if err := claimDemoDir(dir); err != nil {
		return err
	}
	d := &demo{o: o, out: out, dir: dir, nodes: map[int]*node.Node{}}
	defer d.close()

	d.say("starting three nodes in this process; state in %s, the archive (the bucket) in %s", dir, filepath.Join(dir, "archive"))
	for id := 1; id <= 3; id++ {
		if err := d.start(id, 0); err != nil {
			return err
		}
	}
	if err := waitMembers([]*node.Node{d.nodes[1], d.nodes[2], d.nodes[3]}, o.within); err != nil {
		return err
	}
	d.say("the cluster is up. Open the console to watch it: http://%s/", d.nodes[1].HTTPAddr())

	const topic = "demo"
	conn, err := d.conn(1)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Register(topic); err != nil {
		return err
	}
	d.say("writing %d entries to topic %q; a segment is sealed every %d, and its leader uploads it to the bucket", o.entries, topic, o.segment)
	for i := range o.entries {
		if err := conn.Put(topic, []byte(fmt.Sprintf("entry %d", i))); err != nil {
			return fmt.Errorf("demo: PUT %d: %w", i, err)
		}
	}
	var st *node.TopicState
	sealedArchived := func() bool {
		st, err = d.nodes[1].State(context.Background(), topic)
		if err != nil {
			return false
		}
		sealed := 0
		for _, s := range st.Segments {
			if s.State == "active" {
				continue
			}
			if s.State != "archived" {
				return false
			}
			sealed++
		}
		return sealed >= 2
	}
	if err := d.wait("every sealed segment archived", sealedArchived); err != nil {
		return err
	}
	var active uint64
	leaders := map[int][]uint64{}
	for _, s := range st.Segments {
		if s.State == "active" {
			active = s.Leader
		} else {
			leaders[int(s.Leader)] = append(leaders[int(s.Leader)], s.ID)
		}
	}
	sealedEnd := st.LastSealedEntryOffset
	d.say("%d segments sealed and archived (entries 0-%d), in the bucket and on their leaders' disks; the active one is on node %d",
		len(st.Segments)-1, sealedEnd-1, active)

	// The victim: a node that led a sealed segment, leads neither the active segment
	// (whose entries are on its disk only, at replication factor 1) nor Raft.
	raftLeader := 0
	if err := d.wait("a Raft leader", func() bool {
		for id, n := range d.nodes {
			if m, err := n.Metrics(); err == nil && m.State == "Leader" {
				raftLeader = id
				return true
			}
		}
		return false
	}); err != nil {
		return err
	}
	victim := 0
	for _, id := range slices.Sorted(func(yield func(int) bool) {
		for id := range leaders {
			if !yield(id) {
				return
			}
		}
	}) {
		if uint64(id) != active && id != raftLeader {
			victim = id
			break
		}
	}
	if victim == 0 {
		return errors.New("demo: no node leads a sealed segment without leading the active one or Raft; run it again")
	}
	d.say("stopping node %d, which led segments %v, and deleting its data dir: its disk is gone", victim, leaders[victim])
	d.nodes[victim].Close()
	d.nodes[victim] = nil
	if err := os.RemoveAll(filepath.Join(dir, fmt.Sprintf("node%d", victim))); err != nil {
		return err
	}

	reader := raftLeader
	d.say("reading entries 0-%d through node %d: node %d's segments come from the bucket", sealedEnd-1, reader, victim)
	rc, err := d.conn(reader)
	if err != nil {
		return err
	}
	defer rc.Close()
	read := 0
	for off := uint64(0); off < sealedEnd; {
		es, next, err := rc.Read(topic, off, 1000)
		if err != nil {
			return fmt.Errorf("demo: READ at %d: %w", off, err)
		}
		for _, e := range es {
			if e.Offset >= sealedEnd {
				break
			}
			if want := fmt.Sprintf("entry %d", e.Offset); string(e.Payload) != want || e.Offset != uint64(read) {
				return fmt.Errorf("demo: offset %d holds %q, want %q at offset %d", e.Offset, e.Payload, want, read)
			}
			read++
		}
		if next <= off {
			return fmt.Errorf("demo: READ at %d made no progress", off)
		}
		off = next
	}
	d.say("read all %d sealed entries, in order, none missing: sealed data is never single-copy", read)

	d.say("bringing node %d back with an empty disk: removing it from the Raft group, then it joins again", victim)
	if err := d.nodes[raftLeader].RemoveMember(context.Background(), uint64(victim)); err != nil {
		return fmt.Errorf("demo: remove node %d: %w", victim, err)
	}
	if err := d.start(victim, raftLeader); err != nil {
		return err
	}
	if err := waitMembers([]*node.Node{d.nodes[1], d.nodes[2], d.nodes[3]}, o.within); err != nil {
		return err
	}
	vc, err := d.conn(victim)
	if err != nil {
		return err
	}
	defer vc.Close()
	es, _, err := vc.Read(topic, 0, 1)
	if err != nil || len(es) != 1 || string(es[0].Payload) != "entry 0" {
		return fmt.Errorf("demo: READ through the returned node %d: %v, %v", victim, es, err)
	}
	d.say("node %d is back and serves the topic (its old segments from the bucket). That is floe.", victim)
	if o.exit {
		return nil
	}
	d.say("the cluster stays up for you: http://%s/ ; Ctrl-C stops it", d.nodes[raftLeader].HTTPAddr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}
