// Package miniotest runs a real MinIO server for tests: the binary that `make minio`
// installs into <module root>/bin/minio, on a free loopback port, with a temporary data
// directory and random root credentials.
//
// A missing binary fails the test (t.Fatalf "bin/minio missing: run make minio"); it is
// never skipped, so CI cannot pass without the object-store tests having run.
//
// Two ways to use it:
//
//	srv := miniotest.Start(t)   // a private server, stopped at t.Cleanup; for tests
//	                            // that Kill and Restart it
//
//	func TestMain(m *testing.M) { os.Exit(miniotest.Main(m)) }
//	srv := miniotest.Shared(t)  // one server per test binary, started on first use
//
// Each test then takes a fresh bucket with srv.NewBucket(t).
//
// StartSSE and SharedSSE run a server with MinIO's built-in KMS (MINIO_KMS_SECRET_KEY,
// a random 256-bit key named Server.KMSKey), which is what server-side encryption
// needs: SSE-S3 (AES256) and SSE-KMS naming that key (or none) work, also over plain
// http. The servers of Start and Shared have no KMS and refuse every SSE request, so
// that tests of encryption cannot disturb the others. SharedSSE is a second shared
// server beside Shared's, started on first use and stopped by Main.
package miniotest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mc "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// ReadyTimeout bounds how long Start and Restart wait for the server to answer.
const ReadyTimeout = 60 * time.Second

// Server is a running (or killed) MinIO process. Its address, data and credentials stay
// the same across Kill and Restart.
type Server struct {
	// Endpoint is the S3 API URL, e.g. http://127.0.0.1:41234.
	Endpoint string
	// AccessKey and SecretKey are the root credentials (MINIO_ROOT_USER/PASSWORD).
	AccessKey, SecretKey string
	// Region is the region the server answers for.
	Region string
	// KMSKey names the built-in KMS key of a server from StartSSE or SharedSSE, the
	// only key SSE-KMS requests may name; empty for a server without KMS.
	KMSKey string

	bin, base, addr, consoleAddr string
	kmsSecret                    string // base64 of the KMS key's 32 bytes

	mu     sync.Mutex
	proc   *os.Process
	exited chan struct{} // closed when the current process has been waited for
}

// Binary returns the path of the MinIO server binary, <module root>/bin/minio.
func Binary() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin", "minio"), nil
}

// moduleRoot walks up from the working directory (a test runs in its package's
// directory) to the directory holding go.mod, falling back to `go env GOMOD`.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if gomod := strings.TrimSpace(string(out)); err == nil && gomod != "" && gomod != os.DevNull {
		return filepath.Dir(gomod), nil
	}
	return "", fmt.Errorf("miniotest: no go.mod above %s", dir)
}

// Start runs a private server for t, stopped (and its data removed) at t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	return startFor(t, false)
}

// StartSSE is Start with the built-in KMS configured, for server-side encryption.
func StartSSE(t testing.TB) *Server {
	t.Helper()
	return startFor(t, true)
}

func startFor(t testing.TB, kms bool) *Server {
	t.Helper()
	s, err := start(t.TempDir(), kms)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

var errMissing = errors.New("bin/minio missing: run make minio")

func start(base string, kms bool) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	return startBinary(bin, base, kms)
}

func startBinary(bin, base string, kms bool) (*Server, error) {
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		return nil, fmt.Errorf("%w (looked for %s)", errMissing, bin)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	consoleAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s := &Server{
		Endpoint:    "http://" + addr,
		AccessKey:   "floe" + randHex(8),
		SecretKey:   randHex(20),
		Region:      "us-east-1",
		bin:         bin,
		base:        base,
		addr:        addr,
		consoleAddr: consoleAddr,
	}
	if kms {
		key := make([]byte, 32)
		rand.Read(key)
		s.KMSKey, s.kmsSecret = "floe-test-key", base64.StdEncoding.EncodeToString(key)
	}
	if err := s.run(); err != nil {
		return nil, err
	}
	return s, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) logPath() string { return filepath.Join(s.base, "minio.log") }

// run starts the process and waits until it is ready.
func (s *Server) run() error {
	logf, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, "server", "--quiet", "--address", s.addr, "--console-address", s.consoleAddr, filepath.Join(s.base, "data"))
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_REGION="+s.Region,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=1",
	)
	if s.KMSKey != "" {
		cmd.Env = append(cmd.Env, "MINIO_KMS_SECRET_KEY="+s.KMSKey+":"+s.kmsSecret)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()

	exited := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		// Keep the starting thread alive for the child's lifetime: on Linux the child
		// gets SIGKILL when that thread exits (Pdeathsig), so a crashed or timed-out
		// test binary leaves no MinIO behind.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("miniotest: start %s: %w", s.bin, err)
	}
	s.mu.Lock()
	s.proc, s.exited = cmd.Process, exited
	s.mu.Unlock()
	if err := s.waitReady(exited); err != nil {
		s.Kill()
		return err
	}
	return nil
}

// waitReady polls the liveness and readiness endpoints until both answer 200.
func (s *Server) waitReady(exited <-chan struct{}) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(ReadyTimeout)
	for {
		if s.healthy(client, "/minio/health/live") && s.healthy(client, "/minio/health/ready") {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("miniotest: minio exited before it was ready; log:\n%s", s.logTail())
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("miniotest: minio not ready at %s after %v; log:\n%s", s.Endpoint, ReadyTimeout, s.logTail())
		}
	}
}

func (s *Server) healthy(client *http.Client, path string) bool {
	resp, err := client.Get(s.Endpoint + path)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logPath())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}

// Kill stops the server with SIGKILL, as a crash would, and waits until it is gone.
// Requests fail (connection refused) until Restart. Killing a stopped server is a no-op.
func (s *Server) Kill() { s.signal(syscall.SIGKILL, 0) }

// Stop shuts the server down gracefully (SIGTERM, then SIGKILL after 10 s).
func (s *Server) Stop() { s.signal(syscall.SIGTERM, 10*time.Second) }

func (s *Server) signal(sig syscall.Signal, grace time.Duration) {
	s.mu.Lock()
	proc, exited := s.proc, s.exited
	s.proc = nil
	s.mu.Unlock()
	if proc == nil {
		return
	}
	proc.Signal(sig)
	if grace > 0 {
		select {
		case <-exited:
			return
		case <-time.After(grace):
			proc.Kill()
		}
	}
	<-exited
}

// Restart starts the server again after Kill or Stop, on the same address, data and
// credentials, and waits until it is ready. Restarting a running server kills it first.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	if err := s.run(); err != nil {
		t.Fatalf("miniotest: restart: %v", err)
	}
}

// Client returns a minio-go client with the root credentials.
func (s *Server) Client(t testing.TB) *mc.Client {
	t.Helper()
	c, err := mc.New(s.addr, &mc.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Region: s.Region})
	if err != nil {
		t.Fatalf("miniotest: client: %v", err)
	}
	return c
}

// CreateBucket creates the bucket name.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, name, mc.MakeBucketOptions{Region: s.Region}); err != nil {
		t.Fatalf("miniotest: create bucket %q: %v", name, err)
	}
}

// NewBucket creates a bucket with a fresh random name and returns the name.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := "t-" + randHex(8)
	s.CreateBucket(t, name)
	return name
}

// OnDisk reports whether the files in which the server keeps the object bucket/key
// hold b verbatim: true for an object stored in the clear (MinIO does not compress
// unless told to), false once it is encrypted at rest. Use a b of random bytes, long
// enough not to occur by chance.
func (s *Server) OnDisk(t testing.TB, bucket, key string, b []byte) bool {
	t.Helper()
	dir := filepath.Join(s.base, "data", bucket, filepath.FromSlash(key))
	found, n := false, 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || found {
			return err
		}
		n++
		data, err := os.ReadFile(p)
		found = bytes.Contains(data, b)
		return err
	})
	if err != nil || n == 0 {
		t.Fatalf("miniotest: no files of %s/%s under %s: %v", bucket, key, dir, err)
	}
	return found
}

// SetEnv points the standard AWS environment at this server for the rest of t:
// credentials, region, and no shared config files or instance metadata. Tests using it
// cannot be parallel (t.Setenv).
func (s *Server) SetEnv(t testing.TB) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", s.Region)
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// sharedServer is one of the test binary's shared servers, started on first use.
type sharedServer struct {
	srv *Server
	err error
	dir string
}

var shared struct {
	sync.Mutex
	main       bool
	plain, sse sharedServer
}

// Main runs the tests of a package that uses Shared or SharedSSE, then stops the shared
// servers and removes their data. Call it from TestMain: os.Exit(miniotest.Main(m)).
func Main(m *testing.M) int {
	shared.Lock()
	shared.main = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	defer shared.Unlock()
	for _, s := range []*sharedServer{&shared.plain, &shared.sse} {
		if s.srv != nil {
			s.srv.Stop()
		}
		if s.dir != "" {
			os.RemoveAll(s.dir)
		}
	}
	return code
}

// Shared returns the test binary's shared server, starting it on first use. The package
// must call Main from TestMain. If the server cannot start, every caller fails.
func Shared(t testing.TB) *Server {
	t.Helper()
	return sharedFor(t, &shared.plain, false)
}

// SharedSSE is Shared for the test binary's shared server with the built-in KMS (see
// StartSSE): a second server, so that buckets of encryption tests never meet others.
func SharedSSE(t testing.TB) *Server {
	t.Helper()
	return sharedFor(t, &shared.sse, true)
}

func sharedFor(t testing.TB, s *sharedServer, kms bool) *Server {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if !shared.main {
		t.Fatalf("miniotest.Shared and SharedSSE need TestMain to call miniotest.Main")
	}
	if s.srv == nil && s.err == nil {
		s.dir, s.err = os.MkdirTemp("", "miniotest-")
		if s.err == nil {
			s.srv, s.err = start(s.dir, kms)
		}
	}
	if s.err != nil {
		t.Fatalf("%v", s.err)
	}
	return s.srv
}
