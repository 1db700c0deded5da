package localstack

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"floe/archive"
	"floe/archive/open"
	"floe/client"
	"floe/internal/testenv"
	"floe/tiering"
	"floe/topicname"
)

// Settings of the test stack (environment of docker-compose.yml).
const (
	leaseTimeout   = 2 * time.Second // FLOE_LEASE_TIMEOUT
	requestTimeout = 5 * time.Second // FLOE_REQUEST_TIMEOUT: how long a refused PUT retries
	segmentEntries = 1000            // FLOE_MAX_SEGMENT_ENTRIES
	// leaseMargin is the scheduling allowance on top of the lease: no PUT may be
	// acknowledged by a node later than leaseTimeout+leaseMargin after it was cut off.
	// Replies travel through `docker exec`, so this is wider than the loopback tests'.
	leaseMargin = time.Second
	// refuseBound bounds how long the cut-off node may take to answer a PUT it refuses.
	// That should be --request-timeout, but a cut-off Raft leader has been seen to take
	// up to 25 s with a 5 s timeout; the test only requires an answer, and that no
	// acknowledgement comes after the lease.
	refuseBound = time.Minute
	minioUser   = "floetest"
	minioPass   = "floetest-secret"
)

// cluster is the compose stack of docker-compose.yml started by a test, on free host ports.
type cluster struct {
	*stack
	acc     *access   // TLS and the admin token
	secrets string    // the stack's credentials (stack.sh secrets)
	client  [4]string // published client address of node n (index 1..3)
	http    [4]string // base URL of node n's published HTTP API
	minio   string    // published MinIO S3 endpoint
}

func (c *cluster) conn(t *testing.T, n int) *client.Conn { return c.acc.mustDial(t, c.client[n]) }

func (c *cluster) addrs() []string { return []string{c.client[1], c.client[2], c.client[3]} }

// waitReady waits until every node answers /readyz and all three agree on a Raft leader
// with three voters; it returns that leader.
func (c *cluster) waitReady(t *testing.T, timeout time.Duration) int {
	t.Helper()
	var leader uint64
	testenv.WaitForEvery(t, timeout, composePoll, "every node ready (/readyz) and one Raft leader with 3 voters", func() bool {
		for n := 1; n <= 3; n++ {
			if _, err := c.acc.httpGet(c.http[n] + "/readyz"); err != nil {
				return false
			}
		}
		l, ok := c.acc.clusterFormed(c.addrs())
		leader = l
		return ok
	})
	return int(leader)
}

func (c *cluster) state(t *testing.T, n int, topic string) *client.TopicState {
	t.Helper()
	conn, err := c.acc.dial(c.client[n])
	if err != nil {
		t.Fatalf("node %d: %v", n, err)
	}
	defer conn.Close()
	st, err := conn.State(topic)
	if err != nil {
		t.Fatalf("STATE %s through node %d: %v", topic, n, err)
	}
	return st
}

// topicLedBy registers prefix-0, prefix-1, ... through node via until one's active
// segment is led by node leader, and returns its name.
func (c *cluster) topicLedBy(t *testing.T, via int, prefix string, leader int) string {
	t.Helper()
	conn := c.conn(t, via)
	for k := 0; k < 9; k++ {
		name := fmt.Sprintf("%s-%d", prefix, k)
		if err := conn.Register(name); err != nil {
			t.Fatalf("REGISTER %s through node %d: %v", name, via, err)
		}
		st, err := conn.State(name)
		if err != nil {
			t.Fatalf("STATE %s through node %d: %v", name, via, err)
		}
		if int(st.LeaderNode) == leader {
			return name
		}
	}
	t.Fatalf("no topic %s-* led by node %d after 9 REGISTERs", prefix, leader)
	return ""
}

func entry(i int) string { return fmt.Sprintf("entry-%05d", i) }

// putRange appends entry(from) .. entry(to-1) to topic with the Walrus protocol's PUT,
// in pipelined batches of 100, each batch through the next of addrs, one batch after the
// other: entry(i) lands at offset i of a topic that was empty.
func (c *cluster) putRange(t *testing.T, topic string, from, to int) {
	t.Helper()
	const batch = 100
	addrs := c.addrs()
	for i, k := from, 0; i < to; i, k = i+batch, k+1 {
		addr := addrs[k%len(addrs)]
		n := min(batch, to-i)
		if err := c.pipelinePuts(addr, topic, i, n); err != nil {
			t.Fatalf("PUT %s %s..%s through %s: %v", topic, entry(i), entry(i+n-1), addr, err)
		}
	}
}

func (c *cluster) pipelinePuts(addr, topic string, from, n int) error {
	conn, err := c.acc.dial(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	for j := 0; j < n; j++ {
		if err := conn.Send([]byte("PUT " + topic + " " + entry(from+j))); err != nil {
			return err
		}
	}
	if err := conn.Flush(); err != nil {
		return err
	}
	for j := 0; j < n; j++ {
		reply, err := conn.Recv()
		if err != nil {
			return err
		}
		if string(reply) != "OK" {
			return fmt.Errorf("%s: %q", entry(from+j), reply)
		}
	}
	return nil
}

// checkEntries reads topic [0, end) through node n and compares with entry(i) at offset i.
func (c *cluster) checkEntries(t *testing.T, n int, topic string, end int) error {
	conn, err := c.acc.dial(c.client[n])
	if err != nil {
		return err
	}
	defer conn.Close()
	es, err := readAll(conn, topic, uint64(end))
	if err != nil {
		return err
	}
	for i, e := range es {
		if e.Offset != uint64(i) || string(e.Payload) != entry(i) {
			t.Fatalf("READ %s through node %d: offset %d holds %q at index %d, want %q at offset %d",
				topic, n, e.Offset, e.Payload, i, entry(i), i)
		}
	}
	if len(es) != end {
		return fmt.Errorf("READ %s through node %d: %d entries, want %d", topic, n, len(es), end)
	}
	return nil
}

func (c *cluster) remoteReads(t *testing.T, n int) float64 {
	t.Helper()
	page, err := c.acc.httpGet(c.http[n] + "/metrics")
	if err != nil {
		t.Fatalf("node %d /metrics: %v", n, err)
	}
	v, ok := promValue(page, "floe_remote_reads_total")
	if !ok {
		t.Fatalf("node %d /metrics has no floe_remote_reads_total", n)
	}
	return v
}

// waitCaughtUp waits until a REGISTER through node n succeeds. /readyz only says that
// the node sees a leader and is a member: a node just restarted after a kill may not have
// received the latest log entries yet (the leader backs off from a peer it failed to
// reach), and a metadata request through it waits for them, up to --request-timeout.
func (c *cluster) waitCaughtUp(t *testing.T, n int) {
	t.Helper()
	k := 0
	waitNoErr(t, 2*time.Minute, fmt.Sprintf("a REGISTER through node %d", n), func() error {
		conn, err := c.acc.dial(c.client[n])
		if err != nil {
			return err
		}
		defer conn.Close()
		k++
		return conn.Register(fmt.Sprintf("sync-%d-%d", n, k))
	})
	if k > 1 {
		t.Logf("node %d: %d REGISTERs until one went through", n, k)
	}
}

func containerRunning(t *testing.T, id string) bool {
	return docker(t, "inspect", "-f", "{{.State.Running}}", id) == "true"
}

// TestComposeStack runs localstack/docker-compose.yml as a user would (images built from
// this checkout, host ports from the environment) and puts it through a node loss, a
// network partition and a full stop and start, through the published ports.
func TestComposeStack(t *testing.T) {
	compose := requireDocker(t)
	sweepStale(t)
	began := time.Now()
	buildImages(t)
	t.Logf("images built in %v", time.Since(began).Round(time.Millisecond))

	p := testenv.FreePorts(t, 8)
	c := &cluster{minio: fmt.Sprintf("http://127.0.0.1:%d", p[6]), secrets: makeSecrets(t)}
	c.acc = secure(t, c.secrets)
	env := []string{
		"FLOE_SECRETS_DIR=" + c.secrets,
		"FLOE_IMAGE=" + testFloeImage, "FLOE_MINIO_IMAGE=" + testMinioImage,
		"FLOE_HOST_IP=127.0.0.1",
		"FLOE_MINIO_API_PORT=" + strconv.Itoa(p[6]), "FLOE_MINIO_CONSOLE_PORT=" + strconv.Itoa(p[7]),
		"MINIO_ROOT_USER=" + minioUser, "MINIO_ROOT_PASSWORD=" + minioPass,
		"FLOE_LEASE_TIMEOUT=" + leaseTimeout.String(), "FLOE_REQUEST_TIMEOUT=" + requestTimeout.String(),
		"FLOE_MAX_SEGMENT_ENTRIES=" + strconv.Itoa(segmentEntries), "FLOE_MAX_SEGMENT_AGE=30s",
		"FLOE_LOG_LEVEL=info",
	}
	for n := 1; n <= 3; n++ {
		c.client[n] = fmt.Sprintf("127.0.0.1:%d", p[n-1])
		c.http[n] = fmt.Sprintf("https://127.0.0.1:%d", p[n+2])
		env = append(env, fmt.Sprintf("FLOE_NODE%d_CLIENT_PORT=%d", n, p[n-1]), fmt.Sprintf("FLOE_NODE%d_HTTP_PORT=%d", n, p[n+2]))
	}
	file, err := filepath.Abs("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	c.stack = newStack(t, compose, file, env...)

	phase := time.Now()
	c.must(5*time.Minute, "up", "-d")
	c.waitReady(t, 3*time.Minute)
	t.Logf("stack %s up and ready in %v", c.project, time.Since(phase).Round(time.Millisecond))

	c.refusesStrangers(t)
	total := c.nodeLoss(t)
	c.partition(t)
	c.stopStart(t, total)
	c.logsHoldNoSecret(t)

	// Tear down explicitly and check that nothing of the project is left, volumes
	// included. (The cleanup does the same when the test fails before this point.)
	phase = time.Now()
	c.must(3*time.Minute, "down", "-v", "--remove-orphans", "-t", "5")
	label := "label=com.docker.compose.project=" + c.project
	for _, kind := range [][]string{{"ps", "-a"}, {"volume", "ls"}, {"network", "ls"}} {
		if left := docker(t, append(kind, "-q", "--filter", label)...); left != "" {
			t.Errorf("after compose down -v, docker %s still lists %s", strings.Join(kind, " "), left)
		}
	}
	t.Logf("down -v in %v; whole test %v", time.Since(phase).Round(time.Millisecond), time.Since(began).Round(time.Second))
}

// nodeLoss writes through the published client ports until sealed segments are archived
// in MinIO, kills (docker kill) the node that led the first of them, and reads every
// sealed entry through the two others: the killed node's segments come from MinIO. It
// restarts the node and returns how many entries the topic holds.
func (c *cluster) nodeLoss(t *testing.T) int {
	phase := time.Now()
	const topic = "archived"
	const total = 2*segmentEntries + segmentEntries/2 // two sealed segments and half an active one
	if err := c.conn(t, 1).Register(topic); err != nil {
		t.Fatalf("REGISTER %s: %v", topic, err)
	}
	c.putRange(t, topic, 0, total)

	// Wait until every sealed segment is archived: in MinIO and still local (tier both).
	var st *client.TopicState
	testenv.WaitForEvery(t, 90*time.Second, composePoll, "every sealed segment of "+topic+" archived (tier both)", func() bool {
		st = c.state(t, 1, topic)
		sealed := 0
		for _, s := range st.Segments {
			if s.State == "active" {
				continue
			}
			if s.State != "archived" || s.Tier != "both" {
				return false
			}
			sealed++
		}
		return sealed >= 2
	})
	sealedEnd := 0
	for _, s := range st.Segments {
		if s.State != "active" {
			sealedEnd = max(sealedEnd, int(s.Base+s.Count))
		}
	}
	victim := int(st.Segments[0].Leader)
	t.Logf("%d entries written; segments %s; node %d led segment 1", total, st.Raw, victim)

	// The objects are in MinIO, seen from outside floe.
	t.Setenv("AWS_ACCESS_KEY_ID", minioUser)
	t.Setenv("AWS_SECRET_ACCESS_KEY", minioPass)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bucket, err := open.Open(ctx, "s3://floe/cluster", archive.Options{Endpoint: c.minio, Region: "us-east-1"})
	if err != nil {
		t.Fatalf("open the MinIO bucket: %v", err)
	}
	defer bucket.Close()
	keys := map[string]bool{}
	key := topicname.Key(topic, st.ID) // the objects are under the topic's key
	if err := bucket.List(ctx, tiering.TopicPrefix(key), func(o archive.ObjectInfo) error {
		keys[o.Key] = true
		return nil
	}); err != nil {
		t.Fatalf("list the MinIO bucket: %v", err)
	}
	for _, s := range st.Segments {
		if s.State == "active" {
			continue
		}
		found := false
		for k := range keys {
			kt, seg, _, ok := tiering.ParseObjectKey(k)
			found = found || ok && kt == key && seg == s.ID
		}
		if !found {
			t.Errorf("no object of %s segment %d in MinIO bucket floe/cluster (objects: %v)", topic, s.ID, keys)
		}
	}

	id := c.container(fmt.Sprintf("node%d", victim))
	docker(t, "kill", id)
	killed := time.Now()
	var others []int
	for n := 1; n <= 3; n++ {
		if n != victim {
			others = append(others, n)
		}
	}
	before := map[int]float64{}
	for _, n := range others {
		before[n] = c.remoteReads(t, n)
	}
	for _, n := range others {
		waitNoErr(t, 90*time.Second, fmt.Sprintf("every sealed entry [0, %d) of %s read through node %d with node %d killed", sealedEnd, topic, n, victim), func() error {
			return c.checkEntries(t, n, topic, sealedEnd)
		})
		if got := c.remoteReads(t, n); got <= before[n] {
			t.Errorf("node %d: floe_remote_reads_total %v -> %v: the killed node's segments were not read from the archive", n, before[n], got)
		}
	}
	if containerRunning(t, id) {
		t.Fatalf("node %d's container runs again: the reads above may not have come from MinIO", victim)
	}
	t.Logf("node %d killed: %d sealed entries read through nodes %v from MinIO in %v", victim, sealedEnd, others, time.Since(killed).Round(time.Millisecond))

	docker(t, "start", id)
	restarted := time.Now()
	c.waitReady(t, 2*time.Minute)
	c.waitCaughtUp(t, victim)
	t.Logf("node %d restarted, ready and caught up in %v", victim, time.Since(restarted).Round(time.Millisecond))
	waitNoErr(t, time.Minute, fmt.Sprintf("all %d entries of %s readable through node %d after its restart", total, topic, victim), func() error {
		return c.checkEntries(t, victim, topic, total)
	})
	t.Logf("node loss phase: %v", time.Since(phase).Round(time.Millisecond))
	return total
}

// canaryToken is a wrong token the test presents, to check that no refusal logs it.
const canaryToken = "canary-token-7f1d3c9a5e0b2468"

// refusesStrangers checks the stack's security from the host: a client without the
// token, or with a wrong one, is refused, one without TLS is told the port takes TLS
// only, and the HTTP API wants the token.
func (c *cluster) refusesStrangers(t *testing.T) {
	t.Helper()
	noToken := *c.acc
	noToken.dialer.Token = ""
	conn := noToken.mustDial(t, c.client[1])
	if err := conn.Put("stranger", []byte("x")); err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("PUT without a token: %v, want unauthorized", err)
	}
	if err := conn.Auth(canaryToken); err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("AUTH with a wrong token: %v, want unauthorized", err)
	}
	wrong := &access{http: &http.Client{Timeout: 5 * time.Second, Transport: bearer{canaryToken, c.acc.http.Transport.(bearer).next}}}
	if _, err := wrong.httpGet(c.http[1] + "/v1/cluster"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("GET /v1/cluster with a wrong token: %v, want 401", err)
	}
	raw := plain.mustDial(t, c.client[1])
	if reply, err := raw.Do([]byte("METRICS")); err != nil || !strings.HasPrefix(string(reply), "ERR unauthorized") {
		t.Fatalf("a plain client: %q, %v; want ERR unauthorized", reply, err)
	}
	noToken.http = &http.Client{Timeout: 5 * time.Second, Transport: c.acc.http.Transport.(bearer).next}
	if _, err := noToken.httpGet(c.http[1] + "/v1/cluster"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("GET /v1/cluster without a token: %v, want 401", err)
	}
}

// logsHoldNoSecret checks that no container logged the admin token, the wrong token
// refusesStrangers presented, or the nodes' key.
func (c *cluster) logsHoldNoSecret(t *testing.T) {
	t.Helper()
	logs := c.must(2*time.Minute, "logs", "--no-color")
	key, err := os.ReadFile(filepath.Join(c.secrets, "certs", "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	keyLines := strings.Split(strings.TrimSpace(string(key)), "\n")
	for what, secret := range map[string]string{
		"the admin token": c.acc.dialer.Token, "a refused token": canaryToken,
		"key material": "PRIVATE KEY", "the nodes' key": keyLines[1],
	} {
		if strings.Contains(logs, secret) {
			t.Fatalf("a container logged %s", what)
		}
	}
}

// partition cuts the Raft leader off the compose network (docker network disconnect):
// it must stop acknowledging writes within the lease, while the two others elect a
// leader and go on taking writes; then it is reconnected and everything acknowledged is
// there exactly once.
func (c *cluster) partition(t *testing.T) {
	phase := time.Now()
	x := c.waitReady(t, time.Minute) // the node to cut off: the Raft leader
	m := x%3 + 1                     // a majority node
	minTopic := c.topicLedBy(t, m, "cut", x)
	majTopic := c.topicLedBy(t, m, "majority", m)
	t.Logf("cutting off node %d (the Raft leader); %s is led by it, %s by node %d (topics found in %v)",
		x, minTopic, majTopic, m, time.Since(phase).Round(time.Millisecond))

	id := c.container(fmt.Sprintf("node%d", x))
	// The cut-off node is reached through its own loopback, inside its container.
	sh := startShell(t, id, fmt.Sprintf("127.0.0.1:909%d", x), "FLOE_TOKEN="+c.acc.dialer.Token)
	acked := map[string]map[string]bool{minTopic: {}, majTopic: {}}
	seq := 0
	putMin := func() string {
		p := fmt.Sprintf("min-%d", seq)
		seq++
		reply := sh.do("PUT "+minTopic+" "+p, refuseBound)
		if reply == "OK" {
			acked[minTopic][p] = true
		}
		return reply
	}
	maj := c.conn(t, m)
	maj.Timeout = requestTimeout + 10*time.Second
	putMaj := func() error {
		p := fmt.Sprintf("maj-%d", seq)
		seq++
		err := maj.Put(majTopic, []byte(p))
		if err == nil {
			acked[majTopic][p] = true
		}
		return err
	}
	for i := 0; i < 5; i++ {
		if r := putMin(); r != "OK" {
			t.Fatalf("PUT %s through node %d before the cut: %q", minTopic, x, r)
		}
		if err := putMaj(); err != nil {
			t.Fatalf("PUT %s through node %d before the cut: %v", majTopic, m, err)
		}
	}

	var network string
	var aliases []string
	{
		var nets map[string]struct{ Aliases []string }
		if err := decodeJSON([]byte(docker(t, "inspect", "-f", "{{json .NetworkSettings.Networks}}", id)), &nets); err != nil {
			t.Fatal(err)
		}
		if len(nets) != 1 {
			t.Fatalf("node %d's container is on %d networks, want 1: %v", x, len(nets), nets)
		}
		for name, n := range nets {
			network, aliases = name, n.Aliases
		}
	}
	sent := time.Now()
	docker(t, "network", "disconnect", network, id)
	cut := time.Now()
	deadline := cut.Add(leaseTimeout + leaseMargin)
	t.Logf("node %d disconnected from %s (the command took %v)", x, network, cut.Sub(sent).Round(time.Millisecond))

	// The minority: write until a PUT sent after the deadline has been refused; none
	// may be acknowledged after the deadline.
	var lastOK time.Time
	var slowest time.Duration // of the refused PUTs
	for refusedAfter := false; !refusedAfter; {
		if time.Since(cut) > 2*refuseBound {
			t.Fatalf("node %d still acknowledges writes %v after it was cut off (lease %v)", x, time.Since(cut), leaseTimeout)
		}
		put := time.Now()
		reply := putMin()
		done := time.Now()
		switch {
		case reply == "OK":
			lastOK = done
			if done.After(deadline) {
				t.Errorf("node %d acknowledged a PUT %v after it was cut off from the quorum; want none later than the lease %v + %v",
					x, done.Sub(cut).Round(time.Millisecond), leaseTimeout, leaseMargin)
			}
		case strings.HasPrefix(reply, "ERR"):
			slowest = max(slowest, done.Sub(put))
			refusedAfter = put.After(deadline)
			if refusedAfter {
				t.Logf("node %d refuses writes: %s", x, reply)
			}
		default:
			t.Fatalf("PUT through the cut-off node %d: %q, want OK or ERR", x, reply)
		}
	}
	if !lastOK.IsZero() {
		t.Logf("node %d: last PUT acknowledged %v after the cut", x, lastOK.Sub(cut).Round(time.Millisecond))
	}
	t.Logf("node %d refused a PUT sent after the lease; %v after the cut (the slowest refusal took %v)",
		x, time.Since(cut).Round(time.Millisecond), slowest.Round(time.Millisecond))

	// The majority: elects a leader among itself and goes on.
	testenv.WaitForEvery(t, 60*time.Second, composePoll, fmt.Sprintf("nodes %d and the other majority node to elect a leader other than %d", m, x), func() bool {
		mm := c.acc.metrics(c.client[m])
		return mm != nil && mm.CurrentLeader != nil && int(*mm.CurrentLeader) != x
	})
	testenv.WaitForEvery(t, 60*time.Second, composePoll, fmt.Sprintf("PUT %s through node %d while node %d is cut off", majTopic, m, x), func() bool {
		return putMaj() == nil
	})
	for i := 0; i < 20; i++ {
		if err := putMaj(); err != nil {
			t.Fatalf("PUT %s through node %d while node %d is cut off: %v", majTopic, m, x, err)
		}
	}
	t.Logf("majority took writes for %s during the partition (%v after the cut)", majTopic, time.Since(cut).Round(time.Millisecond))

	// Heal: reconnect with the service's aliases, so that node%d resolves again.
	args := []string{"network", "connect"}
	for _, a := range aliases {
		args = append(args, "--alias", a)
	}
	docker(t, append(args, network, id)...)
	healed := time.Now()
	c.waitReady(t, 2*time.Minute)
	testenv.WaitForEvery(t, 60*time.Second, composePoll, fmt.Sprintf("node %d takes writes for %s again", x, minTopic), func() bool {
		return putMin() == "OK"
	})
	xc := c.conn(t, x) // and through its published port
	for i := 0; i < 5; i++ {
		p := fmt.Sprintf("min-%d", seq)
		seq++
		if err := xc.Put(minTopic, []byte(p)); err != nil {
			t.Fatalf("PUT %s through node %d's published port after the partition: %v", minTopic, x, err)
		}
		acked[minTopic][p] = true
	}
	t.Logf("partition healed; node %d took writes again after %v", x, time.Since(healed).Round(time.Millisecond))

	// Every acknowledged entry is there exactly once, through every node.
	checked := time.Now()
	for n := 1; n <= 3; n++ {
		for topic, want := range acked {
			st := c.state(t, n, topic)
			if st.EndOffset == nil {
				t.Fatalf("STATE %s through node %d has no end_offset", topic, n)
			}
			conn := c.conn(t, n)
			es, err := readAll(conn, topic, *st.EndOffset)
			if err != nil {
				t.Fatalf("node %d: %v", n, err)
			}
			count := map[string]int{}
			for _, e := range es {
				count[string(e.Payload)]++
			}
			for p, k := range count {
				if k > 1 {
					t.Errorf("READ %s through node %d: %q appears %d times", topic, n, p, k)
				}
			}
			for p := range want {
				if count[p] != 1 {
					t.Errorf("READ %s through node %d: acknowledged %q appears %d times, want 1", topic, n, p, count[p])
				}
			}
		}
	}
	t.Logf("acknowledged entries checked through every node in %v; partition phase: %v", time.Since(checked).Round(time.Millisecond), time.Since(phase).Round(time.Millisecond))
}

// stopStart stops and starts the whole stack (compose stop / start): the entries of the
// first phase and a topic's shared cursor survive.
func (c *cluster) stopStart(t *testing.T, total int) {
	phase := time.Now()
	const topic = "cursor"
	if err := c.conn(t, 1).Register(topic); err != nil {
		t.Fatalf("REGISTER %s: %v", topic, err)
	}
	c.putRange(t, topic, 0, 50)
	conns := []*client.Conn{nil, c.conn(t, 1), c.conn(t, 2), c.conn(t, 3)}
	for i := 0; i < 20; i++ {
		n := i%3 + 1
		p, ok, err := conns[n].Get(topic)
		if err != nil || !ok || string(p) != entry(i) {
			t.Fatalf("GET %s through node %d: %q %v %v, want %q", topic, n, p, ok, err, entry(i))
		}
	}

	c.must(3*time.Minute, "stop", "-t", "10")
	stopped := time.Now()
	c.must(3*time.Minute, "start")
	c.waitReady(t, 3*time.Minute)
	t.Logf("stack stopped in %v, started and ready in %v", stopped.Sub(phase).Round(time.Millisecond), time.Since(stopped).Round(time.Millisecond))

	for n := 1; n <= 3; n++ {
		waitNoErr(t, time.Minute, fmt.Sprintf("all %d entries of archived through node %d after the restart", total, n), func() error {
			return c.checkEntries(t, n, "archived", total)
		})
		if err := c.checkEntries(t, n, topic, 50); err != nil {
			t.Fatalf("after the restart: %v", err)
		}
	}
	// The shared cursor went on from where it was, on every node.
	for i := 20; i < 26; i++ {
		n := i%3 + 1
		var p []byte
		var ok bool
		waitNoErr(t, time.Minute, fmt.Sprintf("GET %s through node %d after the restart", topic, n), func() error {
			conn, err := c.acc.dial(c.client[n])
			if err != nil {
				return err
			}
			defer conn.Close()
			p, ok, err = conn.Get(topic)
			return err
		})
		if !ok || string(p) != entry(i) {
			t.Fatalf("GET %s through node %d after the restart: %q (ok %v), want %q: the shared cursor moved", topic, n, p, ok, entry(i))
		}
	}
	if st := c.state(t, 2, topic); st.Cursor != 26 {
		t.Errorf("STATE %s cursor = %d after 26 GETs, want 26", topic, st.Cursor)
	}
	t.Logf("stop/start phase: %v", time.Since(phase).Round(time.Millisecond))
}
