package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"floe/auth"
	"floe/client"
	"floe/internal/certs"
	"floe/meta"
	"floe/node/rpc"
	"floe/wire"
)

// testPKI is a CA with a node key pair in a directory, as floe certs writes them.
type testPKI struct {
	ca  *certs.CA
	dir string
}

func newTestPKI(t *testing.T, name string) *testPKI {
	t.Helper()
	ca, err := certs.NewCA(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{ca: ca, dir: t.TempDir()}
	if err := os.WriteFile(p.caPath(), ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	p.issue(t)
	return p
}

// issue writes a new node key pair (for 127.0.0.1), replacing the one there.
func (p *testPKI) issue(t *testing.T) {
	t.Helper()
	cert, key, err := p.ca.Issue(certs.Request{CommonName: "node", Hosts: []string{"127.0.0.1"}, ValidFor: time.Hour, Client: true, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WritePair(p.dir, "node", cert, key); err != nil {
		t.Fatal(err)
	}
}

func (p *testPKI) caPath() string { return filepath.Join(p.dir, "ca.crt") }

// clusterArgs are the agent flags of mutual TLS on the cluster port with this PKI.
func (p *testPKI) clusterArgs() []string {
	return []string{"--cluster-tls-cert", certs.CertPath(p.dir, "node"), "--cluster-tls-key", certs.KeyPath(p.dir, "node"),
		"--cluster-tls-ca", p.caPath()}
}

// clientArgs are the agent flags of TLS on the client and HTTP ports.
func (p *testPKI) clientArgs() []string {
	return []string{"--tls-cert", certs.CertPath(p.dir, "node"), "--tls-key", certs.KeyPath(p.dir, "node")}
}

// clientTLS is what a client trusting this CA dials with.
func (p *testPKI) clientTLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.Certificate())
	return &tls.Config{RootCAs: pool}
}

// counter returns the value of the series named exactly series (name and labels) on
// node id's /metrics, -1 if it is absent or the node does not answer.
func (c *cluster) counter(id int, series string) float64 {
	resp, err := c.httpc.Get(c.scheme + "://127.0.0.1:" + strconv.Itoa(c.node(id).httpPort) + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// logsContain reports whether node id's log holds s.
func (c *cluster) logContains(id int, s string) bool {
	b, _ := os.ReadFile(c.node(id).logPath)
	return strings.Contains(string(b), s)
}

// rawApply sends, on a plain connection to node id's cluster port, what a node
// without credentials would: the RPC mux byte and an apply of cmd. It returns the
// reply's error (nil: the command was applied).
func (c *cluster) rawApply(id int, cmd *meta.Command) error {
	c.t.Helper()
	conn, err := net.DialTimeout("tcp", c.node(id).raftAddr(), 2*time.Second)
	if err != nil {
		c.t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(append([]byte{rpc.MuxRPC}, rpc.AppendFrame(nil, 1, byte(rpc.OpApply), cmd.Encode())...)); err != nil {
		c.t.Fatal(err)
	}
	_, status, body, err := rpc.ReadFrame(conn)
	if err != nil {
		return fmt.Errorf("no reply: %w", err)
	}
	if status == rpc.StatusErr {
		return rpc.DecodeError(body)
	}
	return nil
}

// checkStrangers runs what every secured cluster must refuse, against c (3 voters):
// a node joining with the flags of stranger cannot join and changes nothing; a raw
// apply on the cluster port is refused and creates nothing.
func checkStrangers(t *testing.T, c *cluster, strangers map[string][]string) {
	t.Helper()
	for name, args := range strangers {
		id := c.addNodeWith(1, args)
		c.waitFor(30*time.Second, name+": the refused node says so", func() bool {
			return c.logContains(id, "the cluster refused this node")
		})
		c.kill(id)
		c.waitMembers(3, 10*time.Second)
	}
	leader := c.raftLeader()
	if err := c.rawApply(leader, &meta.Command{Op: meta.OpCreateTopic, Topic: "intruder"}); !errors.Is(err, wire.ErrUnauthorized) {
		t.Fatalf("raw apply on the cluster port = %v, want unauthorized", err)
	}
	if _, err := c.conn(1).State("intruder"); err == nil || !strings.Contains(err.Error(), "no such topic") {
		t.Fatalf("STATE of the topic the raw apply named: %v, want no such topic", err)
	}
	if n := c.counter(leader, `floe_unauthorized_total{listener="cluster"}`); n < 1 {
		t.Fatalf("floe_unauthorized_total{listener=\"cluster\"} = %v on node %d, want the refusals counted", n, leader)
	}
}

// benchThrough runs floe bench briefly against node 1 with the credentials of sec, its
// CPU read from node 1's /metrics: every PUT acknowledged and the CPU reported.
func benchThrough(t *testing.T, c *cluster, sec clientSec) {
	t.Helper()
	var out bytes.Buffer
	o := benchOpts{addr: c.node(1).clientAddr(), topic: "bench-secured", conns: 2, size: 10, depth: 2,
		duration: 500 * time.Millisecond, reads: 1, httpAddr: fmt.Sprintf("127.0.0.1:%d", c.node(1).httpPort), sec: sec}
	if err := runBench(&out, o, true); err != nil {
		t.Fatalf("floe bench: %v", err)
	}
	var r benchReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	if sec.token != "" && strings.Contains(out.String(), sec.token) {
		t.Fatal("floe bench printed the token")
	}
	o.idle = 1
	if err := runBench(&out, o, true); err == nil || !strings.Contains(err.Error(), "--idle-connections") {
		t.Fatalf("floe bench --idle-connections with credentials: %v, want it refused", err)
	}
	if r.AckedTotal == 0 || r.Errors != 0 || len(r.CPU) != 1 || len(r.PeakRSS) != 1 || r.PeakRSS[0].Bytes == 0 {
		t.Fatalf("floe bench: %d acknowledged, %d errors, CPU %v, RSS %v; want PUTs acknowledged and node 1's CPU and RSS",
			r.AckedTotal, r.Errors, r.CPU, r.PeakRSS)
	}
}

// writeThroughFollower writes n entries to topic through a node that is not the Raft
// leader (forwarded over the cluster port) and reads them back in order.
func writeThroughFollower(t *testing.T, c *cluster, topic string, n int) {
	t.Helper()
	via := 1
	if c.raftLeader() == 1 {
		via = 2
	}
	conn := c.conn(via)
	mustOK(t, conn.Register(topic), "REGISTER %s", topic)
	for i := range n {
		mustOK(t, conn.Put(topic, []byte(fmt.Sprintf("entry-%d", i))), "PUT %d", i)
	}
	got := c.readAll(via%3+1, topic)
	if len(got) != n {
		t.Fatalf("read %d entries of %s, want %d", len(got), topic, n)
	}
	for i, e := range got {
		if want := fmt.Sprintf("entry-%d", i); string(e.Payload) != want {
			t.Fatalf("entry %d = %q, want %q", i, e.Payload, want)
		}
	}
}

// TestTLSCluster: a cluster with mutual TLS between its nodes and TLS on its client
// and HTTP ports forms and serves the Walrus protocol over TLS; a plain client is told
// what the port wants; a node with a certificate of another CA, or with none, cannot
// join; a raw apply on the cluster port is refused; a renewed certificate is taken
// on SIGHUP while connections made before keep working.
func TestTLSCluster(t *testing.T) {
	pki := newTestPKI(t, "floe test CA")
	c := startCluster(t, clusterOpts{args: append(pki.clusterArgs(), pki.clientArgs()...), clientTLS: pki.clientTLS()})

	writeThroughFollower(t, c, "tls", 20)
	old := c.conn(2)
	mustOK(t, old.Put("tls", []byte("before rotation")), "PUT before rotation")

	plain, err := client.Dial(c.node(1).clientAddr())
	if err != nil {
		t.Fatal(err)
	}
	reply, err := plain.Do([]byte("REGISTER plain"))
	plain.Close()
	if err != nil || !strings.HasPrefix(string(reply), "ERR unauthorized: this port takes TLS connections only") {
		t.Fatalf("a plain client's REGISTER = %q, %v; want ERR unauthorized", reply, err)
	}

	// A client that does not trust the nodes' CA fails its handshake with the HTTP
	// port, which counts it.
	if _, err := http.Get(fmt.Sprintf("https://127.0.0.1:%d/healthz", c.node(1).httpPort)); err == nil {
		t.Fatal("an HTTPS client without the CA was served")
	}
	c.waitFor(10*time.Second, "the failed HTTP handshake counted", func() bool {
		return c.counter(1, `floe_unauthorized_total{listener="http"}`) >= 1
	})

	foreign := newTestPKI(t, "another CA")
	checkStrangers(t, c, map[string][]string{
		"another CA": append(foreign.clusterArgs(), foreign.clientArgs()...),
		// The cluster's flags come first: empty ones after them turn TLS off.
		"no cluster TLS": append(pki.clientArgs(), "--cluster-tls-cert", "", "--cluster-tls-key", "", "--cluster-tls-ca", ""),
	})

	// Renewal: a new key pair from the same CA, taken on SIGHUP.
	serial := func(id int) string {
		conn, err := tls.Dial("tcp", c.node(id).clientAddr(), pki.clientTLS())
		if err != nil {
			return err.Error()
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial(1)
	pki.issue(t)
	for id := 1; id <= 3; id++ {
		c.hup(id)
	}
	for id := 1; id <= 3; id++ {
		c.waitFor(10*time.Second, fmt.Sprintf("node %d presents the renewed certificate", id), func() bool {
			s := serial(id)
			return s != before && !strings.Contains(s, " ")
		})
	}
	mustOK(t, old.Put("tls", []byte("after rotation")), "PUT on a connection made before the rotation")
	benchThrough(t, c, clientSec{ca: pki.caPath()})
	writeThroughFollower(t, c, "tls-after", 5)
	for _, p := range c.nodes {
		if c.logContains(p.id, "PRIVATE KEY") {
			t.Fatalf("node %d logged key material", p.id)
		}
	}
}

// TestClusterSecret: a cluster whose nodes prove a shared secret on every connection
// forms and serves; nodes with another secret, or none, cannot join; a raw apply is
// refused; no log line holds the secret.
func TestClusterSecret(t *testing.T) {
	dir := t.TempDir()
	secret := "s3cret-random-0123456789-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-do-not-log"
	path := filepath.Join(dir, "secret")
	mustOK(t, os.WriteFile(path, []byte(secret+"\n"), 0o600), "write secret")
	other := filepath.Join(dir, "other")
	mustOK(t, os.WriteFile(other, []byte("another-secret-of-enough-length-for-the-check\n"), 0o600), "write other secret")

	c := startCluster(t, clusterOpts{args: []string{"--cluster-secret-file", path}})
	writeThroughFollower(t, c, "secret", 20)
	checkStrangers(t, c, map[string][]string{
		"another secret": {"--cluster-secret-file", other},
		// A node without the flag still gets the cluster's: the cluster's args come
		// first, so override it with an empty one.
		"no secret": {"--cluster-secret-file", ""},
	})
	// A reload of the unchanged secret keeps the cluster working.
	for id := 1; id <= 3; id++ {
		c.hup(id)
	}
	c.waitFor(10*time.Second, "the reload logged", func() bool { return c.logContains(1, "credentials reloaded") })
	writeThroughFollower(t, c, "secret-after", 5)
	for _, p := range c.nodes {
		b, err := os.ReadFile(p.logPath)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), secret) {
			t.Fatalf("node %d logged the cluster secret", p.id)
		}
	}
}

// TestAuthTokens: with --auth-file, every request is checked against the token its
// connection presented: none or an unknown one is refused, a read token cannot PUT,
// a write token limited to a prefix writes only there and cannot remove a member, an
// admin token can; a token taken out of the file is refused on SIGHUP, also on a
// connection it authenticated before; no token reaches a log.
func TestAuthTokens(t *testing.T) {
	dir := t.TempDir()
	tokens := map[string]string{}
	var lines []string
	for _, g := range []struct {
		name   string
		role   auth.Role
		prefix string
	}{{"admin", auth.Admin, ""}, {"writer", auth.Write, "orders."}, {"reader", auth.Read, ""}} {
		tok := "tok-" + g.name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		line, err := auth.Line(tok, g.role, g.prefix)
		mustOK(t, err, "auth line")
		tokens[g.name] = tok
		lines = append(lines, line)
	}
	path := filepath.Join(dir, "tokens")
	mustOK(t, os.WriteFile(path, []byte("# test tokens\n"+strings.Join(lines, "\n")+"\n"), 0o600), "write tokens")
	c := startCluster(t, clusterOpts{args: []string{"--auth-file", path}, token: tokens["admin"]})

	admin := c.conn(1)
	mustOK(t, admin.Register("orders.eu"), "admin REGISTER")
	mustOK(t, admin.Register("other"), "admin REGISTER")
	mustOK(t, admin.Put("orders.eu", []byte("by admin")), "admin PUT")

	dialAs := func(token string) *client.Conn {
		t.Helper()
		conn, err := client.Dialer{Token: token}.Dial(c.node(2).clientAddr())
		if err != nil {
			t.Fatalf("dial with a token: %v", err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	refused := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "unauthorized") {
			t.Fatalf("%s: %v, want unauthorized", what, err)
		}
	}
	refused("PUT without AUTH", dialAs("").Put("orders.eu", []byte("x")))
	refused("METRICS without AUTH", func() error { _, err := dialAs("").Metrics(); return err }())
	_, err := client.Dialer{Token: "not-a-token"}.Dial(c.node(2).clientAddr())
	refused("AUTH with an unknown token", err)

	reader := dialAs(tokens["reader"])
	if _, err := reader.State("orders.eu"); err != nil {
		t.Fatalf("STATE with a read token: %v", err)
	}
	refused("PUT with a read token", reader.Put("orders.eu", []byte("x")))
	writer := dialAs(tokens["writer"])
	mustOK(t, writer.Put("orders.eu", []byte("by writer")), "PUT in the writer's prefix")
	refused("PUT outside the writer's prefix", writer.Put("other", []byte("x")))
	refused("REGISTER outside the writer's prefix", writer.Register("other2"))

	// Membership needs admin: a write token gets 403, no token 401.
	remove := func(token string) int {
		req, err := http.NewRequest(http.MethodDelete, fmt.Sprintf("http://127.0.0.1:%d/v1/cluster/members/3", c.node(1).httpPort), nil)
		mustOK(t, err, "request")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		mustOK(t, err, "DELETE member")
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := remove(tokens["writer"]); got != http.StatusForbidden {
		t.Fatalf("DELETE member with a write token: %d, want 403", got)
	}
	if got := remove(""); got != http.StatusUnauthorized {
		t.Fatalf("DELETE member without a token: %d, want 401", got)
	}
	// The console asks /v1/whoami whether to show its admin actions.
	whoami := func(token string) (valid, admin bool) {
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/v1/whoami", c.node(1).httpPort), nil)
		mustOK(t, err, "request")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		mustOK(t, err, "GET /v1/whoami")
		defer resp.Body.Close()
		var v struct {
			Auth, Valid bool
			Admin       bool `json:"cluster_admin"`
		}
		mustOK(t, json.NewDecoder(resp.Body).Decode(&v), "decode whoami")
		if !v.Auth {
			t.Fatal("whoami: auth false on a node with --auth-file")
		}
		return v.Valid, v.Admin
	}
	for _, tc := range []struct {
		token        string
		valid, admin bool
	}{{tokens["admin"], true, true}, {tokens["writer"], true, false}, {"nope", false, false}, {"", false, false}} {
		if v, a := whoami(tc.token); v != tc.valid || a != tc.admin {
			t.Fatalf("whoami: valid %v, admin %v; want %v, %v", v, a, tc.valid, tc.admin)
		}
	}
	c.waitMembers(3, 10*time.Second)
	// The CLI sends FLOE_TOKEN as a Bearer token.
	status := exec.Command(floeBin, "cluster", "status", "--http", fmt.Sprintf("127.0.0.1:%d", c.node(1).httpPort))
	status.Env = append(os.Environ(), "FLOE_TOKEN="+tokens["admin"])
	if out, err := status.CombinedOutput(); err != nil {
		t.Fatalf("floe cluster status with the admin token: %v\n%s", err, out)
	}
	status = exec.Command(floeBin, "cluster", "status", "--http", fmt.Sprintf("127.0.0.1:%d", c.node(1).httpPort))
	status.Env = append(os.Environ(), "FLOE_TOKEN=")
	if out, err := status.CombinedOutput(); err == nil || !strings.Contains(string(out), "401") {
		t.Fatalf("floe cluster status without a token: %v\n%s; want a 401", err, out)
	}
	// floe top reads every member's /metrics with the token too.
	top := exec.Command(floeBin, "top", "--once", "--interval", "200ms", "--http", fmt.Sprintf("127.0.0.1:%d", c.node(2).httpPort))
	top.Env = append(os.Environ(), "FLOE_TOKEN="+tokens["admin"])
	if out, err := top.CombinedOutput(); err != nil || strings.Contains(string(out), "no answer") || strings.Count(string(out), "follower") != 2 {
		t.Fatalf("floe top with the admin token: want a row for each of the 3 nodes, 2 followers; got %v\n%s", err, out)
	}

	// Revoke the read token: its connection is refused from the next request on.
	mustOK(t, os.WriteFile(path, []byte(lines[0]+"\n"+lines[1]+"\n"), 0o600), "rewrite tokens")
	for id := 1; id <= 3; id++ {
		c.hup(id)
	}
	c.waitFor(10*time.Second, "the read token refused after the reload", func() bool {
		_, err := reader.State("orders.eu")
		return err != nil && strings.Contains(err.Error(), "unauthorized")
	})
	mustOK(t, writer.Put("orders.eu", []byte("after reload")), "PUT with a token still listed")
	benchThrough(t, c, clientSec{token: tokens["admin"]})
	if n := c.counter(2, `floe_unauthorized_total{listener="client"}`); n < 1 {
		t.Fatalf("client refusals counted: %v", n)
	}
	if n := c.counter(1, `floe_unauthorized_total{listener="http"}`); n < 1 {
		t.Fatalf("http refusals counted: %v", n)
	}
	for _, p := range c.nodes {
		b, err := os.ReadFile(p.logPath)
		mustOK(t, err, "read log")
		for name, tok := range tokens {
			if strings.Contains(string(b), tok) {
				t.Fatalf("node %d logged the %s token", p.id, name)
			}
		}
	}
}
