package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"floe/client"
	"floe/wire"
)

const defaultAddrs = "127.0.0.1:9091,127.0.0.1:9092,127.0.0.1:9093"

func addrFlag(c *cobra.Command, addr *string) {
	def := defaultAddrs
	if v := os.Getenv("FLOE_ADDR"); v != "" {
		def = v
	}
	c.PersistentFlags().StringVar(addr, "addr", def, "node client address(es), comma-separated; the first that answers is used (env FLOE_ADDR)")
}

func clientCmds() []*cobra.Command {
	var addr string
	var sec clientSec
	dial := func() (*client.Conn, error) { return sec.dial(addr) }
	withConn := func(f func(*client.Conn, []string) error) func(*cobra.Command, []string) error {
		return func(_ *cobra.Command, args []string) error {
			c, err := dial()
			if err != nil {
				return err
			}
			defer c.Close()
			return f(c, args)
		}
	}
	register := &cobra.Command{
		Use: "register <topic>", Short: "Create a topic (idempotent)", Args: cobra.ExactArgs(1),
		RunE: withConn(func(c *client.Conn, a []string) error {
			if err := c.Register(a[0]); err != nil {
				return err
			}
			fmt.Println("OK")
			return nil
		}),
	}
	put := &cobra.Command{
		Use: "put <topic> <payload...>", Short: "Append one entry (printed: its offset)", Args: cobra.MinimumNArgs(2),
		RunE: withConn(func(c *client.Conn, a []string) error {
			off, err := c.PutOffset(a[0], []byte(strings.Join(a[1:], " ")))
			if err != nil {
				return err
			}
			fmt.Println("OK", off)
			return nil
		}),
	}
	var getMax int
	get := &cobra.Command{
		Use: "get <topic>", Short: "Take the next entry of the topic's shared cursor", Args: cobra.ExactArgs(1),
		RunE: withConn(func(c *client.Conn, a []string) error {
			return printGet(c, a[0], getMax)
		}),
	}
	get.Flags().IntVarP(&getMax, "max", "n", 0, "take up to this many entries in one cursor advance and print them with their offsets (GET <topic> <max>)")
	var follow bool
	var max int
	read := &cobra.Command{
		Use: "read <topic> [offset]", Short: "Print entries with their offsets, from offset (default 0)", Args: cobra.RangeArgs(1, 2),
		RunE: withConn(func(c *client.Conn, a []string) error {
			var off uint64
			if len(a) == 2 {
				var err error
				if off, err = strconv.ParseUint(a[1], 10, 64); err != nil {
					return fmt.Errorf("offset %q: %w", a[1], err)
				}
			}
			return printEntries(c, a[0], off, max, follow)
		}),
	}
	read.Flags().BoolVarP(&follow, "follow", "f", false, "keep waiting for new entries")
	read.Flags().IntVarP(&max, "max", "n", 0, "stop after this many entries (0: all)")
	var stateJSON, stateMap bool
	state := &cobra.Command{
		Use:   "state <topic>",
		Short: "Show a topic's segments, leaders and tiers: a map of where each segment lives on a terminal, STATE's JSON otherwise",
		Long: "Show a topic's segments, leaders and tiers. On a terminal: the tier map, one cell per segment by where its data\n" +
			"lives, with totals, offsets and the topic's settings (in colour unless NO_COLOR is set). When stdout is not a\n" +
			"terminal (a pipe, a file, a script): STATE's JSON, as before the map existed. --json and --map choose.",
		Args: cobra.ExactArgs(1),
		RunE: withConn(func(c *client.Conn, a []string) error {
			tty, width := stdoutTerminal()
			drawMap, err := stateDrawsMap(stateJSON, stateMap, tty)
			if err != nil {
				return err
			}
			reply, err := c.Do([]byte("STATE " + a[0]))
			if err != nil {
				return err
			}
			if !drawMap {
				return printJSON(reply)
			}
			return printTierMap(os.Stdout, reply, mapOptions{Width: width, Colour: tty && colourAllowed()})
		}),
	}
	state.Flags().BoolVar(&stateJSON, "json", false, "print STATE's JSON (the default when stdout is not a terminal)")
	state.Flags().BoolVar(&stateMap, "map", false, "draw the tier map even when stdout is not a terminal (64 segments a row, no colour)")
	metrics := &cobra.Command{
		Use: "metrics", Short: "Print the Raft view of the node answering (JSON)", Args: cobra.NoArgs,
		RunE: withConn(func(c *client.Conn, a []string) error {
			reply, err := c.Do([]byte("METRICS"))
			if err != nil {
				return err
			}
			return printJSON(reply)
		}),
	}
	cmds := []*cobra.Command{register, put, get, read, state, metrics}
	for _, c := range cmds {
		addrFlag(c, &addr)
		sec.flags(c.PersistentFlags())
	}
	return cmds
}

// printGet takes the next entry of topic's shared cursor and prints it, or with max > 0
// up to max entries with their offsets (GET <topic> <max>); EMPTY when there is none.
func printGet(c *client.Conn, topic string, max int) error {
	if max > 0 {
		entries, err := c.GetBatch(topic, max)
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			fmt.Println("EMPTY")
		}
		for _, e := range entries {
			fmt.Printf("%d\t%s\n", e.Offset, e.Payload)
		}
		return nil
	}
	p, ok, err := c.Get(topic)
	if err != nil {
		return err
	}
	if !ok {
		fmt.Println("EMPTY")
		return nil
	}
	fmt.Printf("%s\n", p)
	return nil
}

// printEntries prints topic's entries with their offsets from off, at most limit of
// them (limit <= 0: all); with follow it waits for new ones instead of stopping at the
// end.
func printEntries(c *client.Conn, topic string, off uint64, limit int, follow bool) error {
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	printed := 0
	for limit <= 0 || printed < limit {
		n := 1000
		if limit > 0 {
			n = min(n, limit-printed)
		}
		var entries []client.Entry
		var next uint64
		var err error
		if follow {
			entries, next, err = c.Tail(topic, off, n, 10*time.Second)
		} else {
			entries, next, err = c.Read(topic, off, n)
		}
		if err != nil {
			return err
		}
		for _, e := range entries {
			fmt.Fprintf(w, "%d\t%s\n", e.Offset, e.Payload)
		}
		printed += len(entries)
		off = next
		if len(entries) == 0 && !follow {
			return nil
		}
		w.Flush()
	}
	return nil
}

// stateDrawsMap says whether floe state draws the tier map (or prints JSON): as
// --json or --map ask, else the map on a terminal only, so that scripts reading
// floe state's output keep getting JSON.
func stateDrawsMap(asJSON, asMap, tty bool) (bool, error) {
	switch {
	case asJSON && asMap:
		return false, errors.New("--json and --map exclude each other")
	case asJSON:
		return false, nil
	case asMap:
		return true, nil
	}
	return tty, nil
}

// printTierMap draws the tier map of a STATE reply on w.
func printTierMap(w io.Writer, reply []byte, opt mapOptions) error {
	if bytes.HasPrefix(reply, []byte("ERR")) {
		return fmt.Errorf("%s", reply) // as printJSON says it
	}
	var st wire.TopicState
	if err := json.Unmarshal(reply, &st); err != nil {
		return fmt.Errorf("%w: %v", wire.ErrBadReply, err)
	}
	_, err := io.WriteString(w, renderTierMap(&st, opt))
	return err
}

func printJSON(reply []byte) error {
	if bytes.HasPrefix(reply, []byte("ERR")) {
		return fmt.Errorf("%s", reply)
	}
	var v any
	if err := json.Unmarshal(reply, &v); err != nil {
		_, err := os.Stdout.Write(append(reply, '\n'))
		return err
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	fmt.Println(string(out))
	return nil
}

func shellCmd() *cobra.Command {
	var addr string
	var sec clientSec
	c := &cobra.Command{
		Use:   "shell",
		Short: "Interactive shell, like walrus-cli: type protocol requests (REGISTER, PUT, GET, STATE, METRICS, READ, ...)",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			conn, err := sec.dial(addr)
			if err != nil {
				return err
			}
			defer conn.Close()
			return runShell(conn, os.Stdin, os.Stdout)
		},
	}
	addrFlag(c, &addr)
	sec.flags(c.PersistentFlags())
	return c
}

// runShell reads one request per line and prints each reply. The first word may be in
// any case; "help" and "exit" are local.
func runShell(conn *client.Conn, in io.Reader, out io.Writer) error {
	fmt.Fprintf(out, "connected to %s; type help\n", conn.RemoteAddr())
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, wire.MaxRequest)
	for {
		fmt.Fprint(out, "floe> ")
		if !sc.Scan() {
			fmt.Fprintln(out)
			return sc.Err()
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		cmd, rest, _ := strings.Cut(line, " ")
		cmd = strings.ToUpper(cmd)
		switch cmd {
		case "EXIT", "QUIT":
			return nil
		case "HELP":
			fmt.Fprintln(out, "REGISTER <topic> | PUT <topic> <payload> | PUTOFF <topic> <payload> | GET <topic> [max]\n"+
				"STATE <topic> | METRICS | READ <topic> <offset> [max] | TAIL <topic> <offset> [max] [wait_ms] | EXIT")
			continue
		}
		req := cmd
		if rest != "" {
			req += " " + rest
		}
		reply, err := conn.Do([]byte(req))
		if err != nil {
			return err
		}
		batchGet := cmd == "GET" && strings.Contains(rest, " ") // GET <topic> <max>
		if (cmd == "READ" || cmd == "TAIL" || batchGet) && string(reply) != "EMPTY" {
			entries, next, err := wire.DecodeEntries(reply)
			if err != nil {
				fmt.Fprintln(out, err)
				continue
			}
			for _, e := range entries {
				fmt.Fprintf(out, "%d\t%s\n", e.Offset, e.Payload)
			}
			fmt.Fprintf(out, "(%d entries, next %d)\n", len(entries), next)
			continue
		}
		fmt.Fprintf(out, "%s\n", reply)
	}
}
