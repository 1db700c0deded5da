package localstack

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"floe/internal/testenv"
)

// TestWalrusDropIn runs Distributed Walrus's own compose layout (walrus/docker-compose.yml:
// its flags, hostnames as advertise addresses, the join through node1) with floe's image,
// and talks the Walrus protocol to it. The test runs a copy of the file in a temporary
// directory (the layout bind-mounts ./test_data) and changes only what would collide
// with a user's stacks on this host: the image tag (the test's own build), the fixed
// container names and the host side of the published ports.
func TestWalrusDropIn(t *testing.T) {
	compose := requireDocker(t)
	sweepStale(t)
	buildImages(t)

	src, err := os.ReadFile(filepath.Join("walrus", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "floe-walrus-")
	if err != nil {
		t.Fatal(err)
	}
	// The nodes write test_data as uid 65532; removal is best effort for a non-root user.
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("leaving %s: %v", dir, err)
		}
	})
	for n := 1; n <= 3; n++ {
		d := filepath.Join(dir, "test_data", fmt.Sprintf("node%d", n))
		if err := os.MkdirAll(d, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o777); err != nil { // past the umask: the image's user writes here
			t.Fatal(err)
		}
	}

	project := projectName()
	ports := testenv.FreePorts(t, 3)
	text := string(src)
	edits := 0
	replace := func(re, repl string) {
		t.Helper()
		r := regexp.MustCompile(re)
		k := len(r.FindAllStringIndex(text, -1))
		if k == 0 {
			t.Fatalf("walrus/docker-compose.yml: no match for %s", re)
		}
		edits += k
		text = r.ReplaceAllString(text, repl)
	}
	replace(`(?m)^(\s+image:) floe:dev$`, "${1} "+testFloeImage)
	replace(`(?m)^(\s+container_name:) (walrus-\d)$`, "${1} "+project+"-${2}")
	for n := 1; n <= 3; n++ {
		replace(fmt.Sprintf(`"909%d:909%d"`, n, n), fmt.Sprintf(`"127.0.0.1:%d:909%d"`, ports[n-1], n))
	}
	// Nothing else differs from the committed file.
	if strings.Count(text, "\n") != strings.Count(string(src), "\n") || edits != 4+4+3 {
		t.Fatalf("unexpected edits of walrus/docker-compose.yml (%d)", edits)
	}
	file := filepath.Join(dir, "docker-compose.yml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newStack(t, compose, file)
	s.project = project

	began := time.Now()
	s.must(5*time.Minute, "up", "-d")
	addrs := make([]string, 3)
	for n := range addrs {
		addrs[n] = fmt.Sprintf("127.0.0.1:%d", ports[n])
	}
	var leader uint64
	testenv.WaitForEvery(t, 2*time.Minute, composePoll, "the Walrus-layout cluster to form (3 voters, one leader)", func() bool {
		l, ok := plain.clusterFormed(addrs)
		leader = l
		return ok
	})
	m := plain.metrics(addrs[0])
	for id, addr := range m.MembershipConfig.Membership.Nodes {
		if want := "node" + id + ":600" + id; addr != want {
			t.Errorf("METRICS: node %s advertises %q, want %q (the hostname, as in Walrus)", id, addr, want)
		}
	}
	t.Logf("Walrus layout up in %v, Raft leader node %d", time.Since(began).Round(time.Millisecond), leader)

	// The Walrus protocol, each request through another node.
	const topic = "walrus-logs"
	c1, c2, c3 := plain.mustDial(t, addrs[0]), plain.mustDial(t, addrs[1]), plain.mustDial(t, addrs[2])
	if err := c2.Register(topic); err != nil {
		t.Fatalf("REGISTER through node 2: %v", err)
	}
	want := []string{"hello from node1", "hello from node2", "hello from node3"}
	for i, c := range []interface{ Put(string, []byte) error }{c1, c2, c3} {
		if err := c.Put(topic, []byte(want[i])); err != nil {
			t.Fatalf("PUT through node %d: %v", i+1, err)
		}
	}
	for i, c := range []interface {
		Get(string) ([]byte, bool, error)
	}{c3, c1, c2} {
		p, ok, err := c.Get(topic)
		if err != nil || !ok || string(p) != want[i] {
			t.Fatalf("GET #%d: %q %v %v, want %q", i+1, p, ok, err, want[i])
		}
	}
	if _, ok, err := c1.Get(topic); err != nil || ok {
		t.Fatalf("GET after the last entry: ok %v err %v, want EMPTY", ok, err)
	}
	st, err := c3.State(topic)
	if err != nil {
		t.Fatalf("STATE: %v", err)
	}
	if st.EndOffset == nil || *st.EndOffset != 3 || st.LeaderNode == 0 {
		t.Fatalf("STATE %s: %s", topic, st.Raw)
	}
}
