package main

// The cluster test harness: real `floe agent` processes on loopback, started, killed
// with SIGKILL, restarted and wiped by the tests. Waits are on conditions with
// deadlines, never on fixed sleeps.

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"floe/client"
	"floe/internal/testenv"
)

var floeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "floe-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	floeBin = filepath.Join(dir, "floe")
	build := exec.Command("go", "build", "-o", floeBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "cannot build floe:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one floe agent process of a test cluster.
type proc struct {
	id                             int
	raftPort, clientPort, httpPort int
	dataDir                        string
	logPath                        string
	joinVia                        int      // node whose raft address --join names (0: node 1; none for node 1)
	args                           []string // agent flags of this node only, after the cluster's

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	paused bool // frozen with SIGSTOP
}

func (p *proc) clientAddr() string { return "127.0.0.1:" + strconv.Itoa(p.clientPort) }
func (p *proc) raftAddr() string   { return "127.0.0.1:" + strconv.Itoa(p.raftPort) }

// running reports whether the process is alive and not frozen by pause.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.paused {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// cluster is a test cluster of floe agents.
type cluster struct {
	t     *testing.T
	dir   string
	args  []string
	env   []string
	nodes []*proc // index i is node id i+1
	// dialer connects the test's clients (TLS when the cluster's client port takes
	// it); httpc and scheme reach the HTTP API.
	dialer client.Dialer
	httpc  *http.Client
	scheme string
}

// clusterOpts tune a test cluster.
type clusterOpts struct {
	nodes int
	args  []string // extra agent flags for every node
	env   []string
	// clientTLS: the client and HTTP ports take TLS, and the test's clients dial
	// with this configuration.
	clientTLS *tls.Config
	// token: the nodes check tokens; the test's clients present this one.
	token string
}

// fastArgs shrink Raft, lease and retry timeouts so failover tests run quickly.
var fastArgs = []string{"--raft-heartbeat-timeout", "500ms", "--lease-timeout", "1s", "--request-timeout", "10s"}

// startCluster starts a cluster (node 1 bootstraps, the others join through it) and
// waits until every node sees all voters and a leader.
func startCluster(t *testing.T, o clusterOpts) *cluster {
	t.Helper()
	c := newCluster(t, o)
	for i := range c.nodes {
		c.start(i + 1)
	}
	c.waitMembers(len(c.nodes), 30*time.Second)
	c.waitReady(30 * time.Second)
	return c
}

// newCluster sets up the nodes of a cluster (ports, data dirs, logs) and starts none.
func newCluster(t *testing.T, o clusterOpts) *cluster {
	t.Helper()
	if o.nodes == 0 {
		o.nodes = 3
	}
	c := &cluster{t: t, dir: t.TempDir(), args: append(append([]string{}, fastArgs...), o.args...), env: o.env,
		dialer: client.Dialer{TLS: o.clientTLS, Token: o.token}, scheme: "http"}
	tr := &http.Transport{TLSClientConfig: o.clientTLS}
	if o.clientTLS != nil {
		c.scheme = "https"
	}
	c.httpc = &http.Client{Timeout: 2 * time.Second, Transport: bearer{token: o.token, next: tr}}
	ports := testenv.FreePorts(t, 3*o.nodes)
	for i := 0; i < o.nodes; i++ {
		c.nodes = append(c.nodes, &proc{
			id: i + 1, raftPort: ports[3*i], clientPort: ports[3*i+1], httpPort: ports[3*i+2],
			dataDir: filepath.Join(c.dir, fmt.Sprintf("node%d", i+1)),
			logPath: filepath.Join(c.dir, fmt.Sprintf("node%d.log", i+1)),
		})
	}
	t.Cleanup(c.shutdown)
	return c
}

// waitReady waits until every running node answers /readyz (it knows a leader and has
// registered its addresses, so REGISTER and roll-overs can pick it as a leader).
func (c *cluster) waitReady(within time.Duration) {
	c.t.Helper()
	c.waitFor(within, "/readyz on every running node", func() bool {
		for _, p := range c.nodes {
			if !p.running() {
				continue
			}
			resp, err := c.httpc.Get(c.scheme + "://127.0.0.1:" + strconv.Itoa(p.httpPort) + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return false
			}
		}
		return true
	})
}

func (c *cluster) node(id int) *proc { return c.nodes[id-1] }

// agentArgs are the flags node id is started with (start adds nothing else).
func (c *cluster) agentArgs(id int) []string {
	p := c.node(id)
	args := []string{"agent",
		"--node-id", strconv.Itoa(id), "--data-dir", p.dataDir,
		"--raft-port", strconv.Itoa(p.raftPort), "--client-port", strconv.Itoa(p.clientPort),
		"--http-port", strconv.Itoa(p.httpPort), "--log-level", "info",
	}
	if via := p.joinVia; via != 0 {
		args = append(args, "--join", c.node(via).raftAddr())
	} else if id != 1 {
		args = append(args, "--join", c.node(1).raftAddr())
	}
	return append(append(args, c.args...), p.args...)
}

// start launches node id (joining through node 1, or the node addNode named, unless
// it is node 1). Like an operator's unit file, the flags are the same on every start:
// a node that already has Raft state gets --join too and must just restart.
func (c *cluster) start(id int) {
	c.t.Helper()
	p := c.node(id)
	args := c.agentArgs(id)
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(floeBin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), c.env...)
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("cannot start node %d: %v", id, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(exited)
	}()
	p.mu.Lock()
	p.cmd, p.exited, p.paused = cmd, exited, false
	p.mu.Unlock()
	c.waitFor(10*time.Second, fmt.Sprintf("node %d client port", id), func() bool {
		conn, err := net.DialTimeout("tcp", p.clientAddr(), 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return true
		}
		select {
		case <-exited:
			c.t.Fatalf("node %d exited at start:\n%s", id, tail(p.logPath, 30))
		default:
		}
		return false
	})
}

// addNode adds a node with a fresh data dir to the running cluster, starts it with
// --join pointing at node via, and returns its id. It does not wait for the join.
func (c *cluster) addNode(via int) int {
	c.t.Helper()
	return c.addNodeWith(via, nil)
}

// addNodeWith is addNode with agent flags for the new node only.
func (c *cluster) addNodeWith(via int, args []string) int {
	c.t.Helper()
	ports := testenv.FreePorts(c.t, 3)
	id := len(c.nodes) + 1
	c.nodes = append(c.nodes, &proc{
		id: id, raftPort: ports[0], clientPort: ports[1], httpPort: ports[2], joinVia: via, args: args,
		dataDir: filepath.Join(c.dir, fmt.Sprintf("node%d", id)),
		logPath: filepath.Join(c.dir, fmt.Sprintf("node%d.log", id)),
	})
	c.start(id)
	return id
}

// pause freezes node id with SIGSTOP: its sockets stay open but it answers nothing,
// which cuts it off from the cluster on loopback without any privileges.
func (c *cluster) pause(id int) { c.notify(id, syscall.SIGSTOP, true) }

// resume thaws a node frozen by pause with SIGCONT.
func (c *cluster) resume(id int) { c.notify(id, syscall.SIGCONT, false) }

// hup sends SIGHUP to node id (the agent reloads its credentials).
func (c *cluster) hup(id int) {
	p := c.node(id)
	p.mu.Lock()
	paused := p.paused
	p.mu.Unlock()
	c.notify(id, syscall.SIGHUP, paused)
}

// notify sends sig to the running node id without waiting, and records whether it is
// paused now.
func (c *cluster) notify(id int, sig syscall.Signal, paused bool) {
	c.t.Helper()
	p := c.node(id)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		c.t.Fatalf("%v: node %d is not running", sig, id)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("%v to node %d: %v", sig, id, err)
	}
	p.paused = paused
}

// kill sends SIGKILL to node id and waits for it to die.
func (c *cluster) kill(id int) { c.signal(id, syscall.SIGKILL) }

// stop sends SIGTERM to node id and waits for a clean exit.
func (c *cluster) stop(id int) { c.signal(id, syscall.SIGTERM) }

func (c *cluster) signal(id int, sig syscall.Signal) {
	c.t.Helper()
	p := c.node(id)
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	if sig != syscall.SIGKILL {
		cmd.Process.Signal(syscall.SIGCONT) // a paused node must run to handle SIGTERM
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exited
		c.t.Errorf("node %d did not exit on %v", id, sig)
	}
	p.mu.Lock()
	p.cmd, p.paused = nil, false
	p.mu.Unlock()
}

// wipe deletes node id's data dir (the node must be down).
func (c *cluster) wipe(id int) {
	if err := os.RemoveAll(c.node(id).dataDir); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) shutdown() {
	for _, p := range c.nodes {
		p.mu.Lock()
		cmd, exited := p.cmd, p.exited
		p.mu.Unlock()
		if cmd != nil {
			cmd.Process.Kill()
			<-exited
		}
	}
	if c.t.Failed() {
		for _, p := range c.nodes {
			c.t.Logf("---- node %d log (tail) ----\n%s", p.id, tail(p.logPath, 60))
		}
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitFor checks cond every 20ms (it usually asks the nodes) until it holds, and
// fails the test after within.
func (c *cluster) waitFor(within time.Duration, what string, cond func() bool) {
	c.t.Helper()
	testenv.WaitForEvery(c.t, within, 20*time.Millisecond, what, cond)
}

// conn dials node id; the connection is closed at the end of the test.
func (c *cluster) conn(id int) *client.Conn {
	c.t.Helper()
	conn, err := c.dialer.Dial(c.node(id).clientAddr())
	if err != nil {
		c.t.Fatalf("dial node %d: %v", id, err)
	}
	c.t.Cleanup(func() { conn.Close() })
	return conn
}

// dial connects to node id with a per-call timeout; the caller closes the connection.
// It is for polls and for goroutines, which must not fail the test.
func (c *cluster) dial(id int, timeout time.Duration) (*client.Conn, error) {
	conn, err := c.dialer.Dial(c.node(id).clientAddr())
	if err != nil {
		return nil, err
	}
	conn.Timeout = timeout
	return conn, nil
}

// tryState returns STATE of topic through node id, or the error (for polls).
func (c *cluster) tryState(id int, topic string) (*client.TopicState, error) {
	conn, err := c.dial(id, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.State(topic)
}

// waitTopic waits until every running node knows topic (has applied its REGISTER).
// TestRegisterVisibleEverywhere checks that clients need not do this.
func (c *cluster) waitTopic(topic string) {
	c.t.Helper()
	c.waitFor(10*time.Second, fmt.Sprintf("topic %q on every running node", topic), func() bool {
		for _, p := range c.nodes {
			if !p.running() {
				continue
			}
			if _, err := c.tryState(p.id, topic); err != nil {
				return false
			}
		}
		return true
	})
}

// topicLedBy registers topics named prefix-0, prefix-1, ... through node via until one
// has its active segment on node leader (REGISTER picks leaders round-robin), and
// returns its name. Every node knows the topic when it returns.
func (c *cluster) topicLedBy(via int, prefix string, leader int) string {
	c.t.Helper()
	conn := c.conn(via)
	for k := 0; k < 6; k++ {
		name := fmt.Sprintf("%s-%d", prefix, k)
		mustOK(c.t, conn.Register(name), "REGISTER %s through node %d", name, via)
		c.waitTopic(name)
		if int(c.state(via, name).LeaderNode) == leader {
			return name
		}
	}
	c.t.Fatalf("no topic %s-* led by node %d after 6 REGISTERs", prefix, leader)
	return ""
}

// anyRunning returns the id of a running node other than the ones in except (0 if none).
func (c *cluster) anyRunning(except ...int) int {
next:
	for _, p := range c.nodes {
		for _, e := range except {
			if p.id == e {
				continue next
			}
		}
		if p.running() {
			return p.id
		}
	}
	return 0
}

// metrics asks node id for METRICS, nil if it does not answer.
func (c *cluster) metrics(id int) *client.Metrics {
	conn, err := c.dialer.Dial(c.node(id).clientAddr())
	if err != nil {
		return nil
	}
	defer conn.Close()
	conn.Timeout = 2 * time.Second
	m, err := conn.Metrics()
	if err != nil {
		return nil
	}
	return m
}

// waitMembers waits until every running node sees n voters and the same leader.
func (c *cluster) waitMembers(n int, within time.Duration) {
	c.t.Helper()
	c.waitFor(within, fmt.Sprintf("%d voters and a leader on every running node", n), func() bool {
		var leader uint64
		for _, p := range c.nodes {
			if !p.running() {
				continue
			}
			m := c.metrics(p.id)
			if m == nil || m.CurrentLeader == nil || len(m.MembershipConfig.Membership.Configs) == 0 ||
				len(m.MembershipConfig.Membership.Configs[0]) != n {
				return false
			}
			if leader != 0 && *m.CurrentLeader != leader {
				return false
			}
			leader = *m.CurrentLeader
		}
		return leader != 0
	})
}

// raftLeader returns the id of the Raft leader as seen by a running node (0 if none).
func (c *cluster) raftLeader() int {
	for _, p := range c.nodes {
		if !p.running() {
			continue
		}
		if m := c.metrics(p.id); m != nil && m.CurrentLeader != nil {
			return int(*m.CurrentLeader)
		}
	}
	return 0
}

// state returns STATE of topic through node id.
func (c *cluster) state(id int, topic string) *client.TopicState {
	c.t.Helper()
	st, err := c.conn(id).State(topic)
	if err != nil {
		c.t.Fatalf("STATE %s on node %d: %v", topic, id, err)
	}
	return st
}

// readAll reads every entry of topic through node id with READ.
func (c *cluster) readAll(id int, topic string) []client.Entry {
	c.t.Helper()
	conn := c.conn(id)
	var out []client.Entry
	var off uint64
	for {
		entries, next, err := conn.Read(topic, off, 1000)
		if err != nil {
			c.t.Fatalf("READ %s %d on node %d: %v", topic, off, id, err)
		}
		if len(entries) == 0 {
			return out
		}
		out = append(out, entries...)
		off = next
	}
}

// mustOK fails the test unless err is nil.
func mustOK(t *testing.T, err error, what string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(what, args...), err)
	}
}
