package localstack

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"floe/client"
)

// Image tags of the tests: their own, so that a test run never replaces the floe:dev and
// floe-minio:dev images a user's stack runs.
const (
	testFloeImage  = "floe:test"
	testMinioImage = "floe-minio:test"
	// projectPrefix names every compose project a test starts: floetest-<pid>-<random>.
	projectPrefix = "floetest-"
)

// requireDocker skips or fails the test according to FLOE_COMPOSE_TEST (see doc.go) and
// returns the compose command to use.
func requireDocker(t *testing.T) []string {
	t.Helper()
	gate := os.Getenv("FLOE_COMPOSE_TEST")
	if gate == "0" {
		t.Skip("FLOE_COMPOSE_TEST=0")
	}
	unusable := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if gate == "1" {
			t.Fatalf("FLOE_COMPOSE_TEST=1 but %s", msg)
		}
		t.Skipf("%s; set FLOE_COMPOSE_TEST=1 to make that a failure (make test-compose does)", msg)
	}
	if gate != "1" && testing.Short() {
		t.Skip("-short: the compose test takes minutes")
	}
	if out, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		unusable("no Docker engine answers: docker info: %v: %s", err, lastLine(out))
	}
	if err := exec.Command("docker", "compose", "version").Run(); err == nil {
		return []string{"docker", "compose"}
	}
	if path, err := exec.LookPath("docker-compose"); err == nil {
		return []string{path}
	}
	unusable("neither `docker compose` nor `docker-compose` is installed")
	return nil
}

var (
	imagesOnce sync.Once
	imagesErr  error
)

// testFloeBin is the floe binary buildImages built (bin/floe-localstack).
var testFloeBin string

// makeSecrets makes a stack's credentials with stack.sh secrets (after buildImages) in a
// new directory, readable by the nodes' uid, and returns it.
func makeSecrets(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "floe-secrets-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cmd := exec.Command(filepath.Join("..", "localstack", "stack.sh"), "secrets", dir)
	cmd.Env = append(os.Environ(), "FLOE_BIN="+testFloeBin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("stack.sh secrets: %v\n%s", err, out)
	}
	return dir
}

// buildImages builds floe from this checkout (static) and both images, once per test
// binary, with localstack/stack.sh: the same path as `make images`.
func buildImages(t *testing.T) {
	t.Helper()
	imagesOnce.Do(func() {
		root, err := filepath.Abs("..")
		if err != nil {
			imagesErr = err
			return
		}
		minio := filepath.Join(root, "bin", "minio")
		if _, err := os.Stat(minio); err != nil {
			imagesErr = fmt.Errorf("%s is missing (run make minio): %v", minio, err)
			return
		}
		dir, err := os.MkdirTemp("", "floe-images-")
		if err != nil {
			imagesErr = err
			return
		}
		defer os.RemoveAll(dir)
		// Kept after the build: stack.sh secrets runs it too.
		floe := filepath.Join(root, "bin", "floe-localstack")
		build := exec.Command("go", "build", "-trimpath", "-o", floe, "./tools/floe")
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			imagesErr = fmt.Errorf("go build ./tools/floe: %v\n%s", err, out)
			return
		}
		// stack.sh deletes its context dir when done; give this build its own, in
		// case a user's `make images` runs at the same time.
		script := filepath.Join(root, "localstack", "stack.sh")
		cmd := exec.Command(script, "images")
		cmd.Env = append(os.Environ(), "FLOE_BIN="+floe, "MINIO_BIN="+minio,
			"FLOE_IMAGE="+testFloeImage, "FLOE_MINIO_IMAGE="+testMinioImage,
			"FLOE_BUILD_DIR="+filepath.Join(dir, "ctx"))
		if out, err := cmd.CombinedOutput(); err != nil {
			imagesErr = fmt.Errorf("stack.sh images: %v\n%s", err, out)
		}
		testFloeBin = floe
	})
	if imagesErr != nil {
		t.Fatal(imagesErr)
	}
}

func projectName() string {
	var b [3]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s%d-%s", projectPrefix, os.Getpid(), hex.EncodeToString(b[:]))
}

var staleProject = regexp.MustCompile(`^` + projectPrefix + `(\d+)-[0-9a-f]+$`)

// sweepStale removes what earlier test runs left behind when they were killed before
// their cleanup ran (a go test timeout, Ctrl-C): the containers, networks and volumes
// of compose projects named floetest-<pid>-... whose process is gone.
func sweepStale(t *testing.T) {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-a", "--filter", "label=com.docker.compose.project",
		"--format", `{{.Label "com.docker.compose.project"}}`).Output()
	if err != nil {
		return
	}
	seen := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		m := staleProject.FindStringSubmatch(p)
		if m == nil || seen[p] {
			continue
		}
		seen[p] = true
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || alive(pid) {
			continue // still running (or this process)
		}
		t.Logf("removing the leftovers of compose project %s (process %d is gone)", p, pid)
		removeProject(p)
	}
}

// alive reports whether process pid exists (signal 0 checks without sending).
func alive(pid int) bool {
	p, err := os.FindProcess(pid)
	return err == nil && p.Signal(syscall.Signal(0)) == nil
}

// removeProject removes every container, network and volume labelled with project p.
func removeProject(p string) {
	label := "label=com.docker.compose.project=" + p
	ids := func(args ...string) []string {
		out, _ := exec.Command("docker", append(args, "--filter", label, "-q")...).Output()
		return strings.Fields(string(out))
	}
	if c := ids("ps", "-a"); len(c) > 0 {
		exec.Command("docker", append([]string{"rm", "-f", "-v"}, c...)...).Run()
	}
	if n := ids("network", "ls"); len(n) > 0 {
		exec.Command("docker", append([]string{"network", "rm"}, n...)...).Run()
	}
	if v := ids("volume", "ls"); len(v) > 0 {
		exec.Command("docker", append([]string{"volume", "rm", "-f"}, v...)...).Run()
	}
}

// stack is one compose project started by a test.
type stack struct {
	t       *testing.T
	compose []string
	project string
	file    string
	env     []string
}

// newStack prepares a compose project for file with extra environment; Cleanup takes it
// down with its volumes whatever happens to the test (printing the logs first if the
// test failed).
func newStack(t *testing.T, compose []string, file string, env ...string) *stack {
	t.Helper()
	s := &stack{t: t, compose: compose, project: projectName(), file: file,
		env: append(os.Environ(), env...)}
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := s.run(2*time.Minute, "logs", "--no-color", "--tail", "80"); err == nil {
				t.Logf("logs of compose project %s:\n%s", s.project, out)
			}
		}
		if out, err := s.run(3*time.Minute, "down", "-v", "--remove-orphans", "-t", "5"); err != nil {
			t.Errorf("compose down -v: %v\n%s", err, out)
		}
		removeProject(s.project) // a belt to down's braces
	})
	return s
}

// run runs one compose command of the project and returns its combined output.
func (s *stack) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append(append([]string{}, s.compose[1:]...), "-p", s.project, "-f", s.file)
	cmd := exec.CommandContext(ctx, s.compose[0], append(full, args...)...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *stack) must(timeout time.Duration, args ...string) string {
	s.t.Helper()
	out, err := s.run(timeout, args...)
	if err != nil {
		s.t.Fatalf("compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// container returns the id of service svc's container.
func (s *stack) container(svc string) string {
	s.t.Helper()
	id := strings.TrimSpace(s.must(time.Minute, "ps", "-q", svc))
	if id == "" || strings.Contains(id, "\n") {
		s.t.Fatalf("compose ps -q %s: %q, want one container id", svc, id)
	}
	return id
}

// docker runs a docker command and returns its trimmed output.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// composePoll is how often the tests check a condition on the compose stack
// (HTTP calls through published ports, docker commands).
const composePoll = 200 * time.Millisecond

// waitNoErr polls fn until it returns nil or timeout passes, then fails with its last error.
func waitNoErr(t *testing.T, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// access is how a test reaches a stack's published ports: plainly (the Walrus layout,
// plain), or over TLS with a token (the localstack stack, see secure).
type access struct {
	dialer client.Dialer
	http   *http.Client
}

// plain reaches a stack without TLS or tokens.
var plain = &access{http: &http.Client{Timeout: 5 * time.Second}}

// secure reaches a stack whose credentials stack.sh secrets made in dir: TLS trusting
// its CA, and its admin token (on the Walrus protocol and as a Bearer token).
func secure(t *testing.T, dir string) *access {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(dir, "certs", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s/certs/ca.crt", dir)
	}
	token, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := &tls.Config{RootCAs: pool}
	tok := strings.TrimSpace(string(token))
	return &access{
		dialer: client.Dialer{TLS: tlsCfg, Token: tok},
		http:   &http.Client{Timeout: 5 * time.Second, Transport: bearer{tok, &http.Transport{TLSClientConfig: tlsCfg}}},
	}
}

// bearer adds the token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// dial connects to one node's published client port.
func (a *access) dial(addr string) (*client.Conn, error) {
	c, err := a.dialer.Dial(addr)
	if err != nil {
		return nil, err
	}
	c.Timeout = 30 * time.Second
	return c, nil
}

func (a *access) mustDial(t *testing.T, addr string) *client.Conn {
	t.Helper()
	c, err := a.dial(addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// metrics returns METRICS from addr, nil if it does not answer.
func (a *access) metrics(addr string) *client.Metrics {
	c, err := a.dial(addr)
	if err != nil {
		return nil
	}
	defer c.Close()
	c.Timeout = 3 * time.Second
	m, err := c.Metrics()
	if err != nil {
		return nil
	}
	return m
}

// clusterFormed reports whether every addr sees the same Raft leader and three voters.
func (a *access) clusterFormed(addrs []string) (leader uint64, ok bool) {
	for _, addr := range addrs {
		m := a.metrics(addr)
		if m == nil || m.CurrentLeader == nil {
			return 0, false
		}
		if leader != 0 && *m.CurrentLeader != leader {
			return 0, false
		}
		leader = *m.CurrentLeader
		cfg := m.MembershipConfig.Membership.Configs
		if len(cfg) == 0 || len(cfg[len(cfg)-1]) != 3 {
			return 0, false
		}
	}
	return leader, true
}

// httpGet returns the body of a 200 reply, or an error.
func (a *access) httpGet(url string) ([]byte, error) {
	resp, err := a.http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

// promValue returns the value of an unlabelled Prometheus sample in a /metrics page.
func promValue(page []byte, name string) (float64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(page))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

func decodeJSON(b []byte, v any) error { return json.Unmarshal(b, v) }

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// readAll reads every entry of topic from offset 0 to end through conn.
func readAll(conn *client.Conn, topic string, end uint64) ([]client.Entry, error) {
	var all []client.Entry
	for off := uint64(0); off < end; {
		max := 1000
		if rest := end - off; rest < uint64(max) {
			max = int(rest)
		}
		es, next, err := conn.Read(topic, off, max)
		if err != nil {
			return all, fmt.Errorf("READ %s %d: %w", topic, off, err)
		}
		if len(es) == 0 {
			return all, fmt.Errorf("READ %s %d: no entries, want up to offset %d", topic, off, end)
		}
		all = append(all, es...)
		off = next
	}
	return all, nil
}

// shell is `floe shell` running inside a container (docker exec -i) on the node's own
// client port over its loopback: it reaches the node even when the node is cut off from
// every network, published ports included.
type shell struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

// env holds NAME=value settings for the shell's process in the container (its token).
func startShell(t *testing.T, container, addr string, env ...string) *shell {
	t.Helper()
	args := []string{"exec", "-i"}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	args = append(args, container, "/usr/local/bin/floe", "shell", "--addr", addr)
	cmd := exec.Command("docker", args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sh := &shell{t: t, cmd: cmd, in: in, lines: make(chan string, 64)}
	go func() {
		defer close(sh.lines)
		br := bufio.NewReader(out)
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				// The prompt has no newline: a reply line reads "floe> <reply>".
				for strings.HasPrefix(line, "floe> ") {
					line = line[len("floe> "):]
				}
				sh.lines <- strings.TrimRight(line, "\n")
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		in.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	if banner, ok := sh.next(30 * time.Second); !ok || !strings.HasPrefix(banner, "connected to") {
		t.Fatalf("floe shell in %s: %q (stderr %q)", container, banner, stderr.String())
	}
	return sh
}

func (sh *shell) next(timeout time.Duration) (string, bool) {
	select {
	case l, ok := <-sh.lines:
		return l, ok
	case <-time.After(timeout):
		return "", false
	}
}

// do sends one request line and returns the reply line.
func (sh *shell) do(req string, timeout time.Duration) string {
	sh.t.Helper()
	if _, err := io.WriteString(sh.in, req+"\n"); err != nil {
		sh.t.Fatalf("floe shell: write %q: %v", req, err)
	}
	reply, ok := sh.next(timeout)
	if !ok {
		sh.t.Fatalf("floe shell: no reply to %q within %v", req, timeout)
	}
	return reply
}
