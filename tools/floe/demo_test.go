package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"floe/internal/testenv"
)

// TestDemo runs floe demo to its end: it must tell every step, read every sealed entry
// back with the node that led some of them gone with its disk, and bring that node back.
func TestDemo(t *testing.T) {
	// Node i takes base+i-1: the three bases start runs of three free ports.
	bases := consecutiveBases(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, floeBin, "demo", "--exit", "--data-dir", t.TempDir(),
		"--client-port", strconv.Itoa(bases[0]), "--raft-port", strconv.Itoa(bases[1]), "--http-port", strconv.Itoa(bases[2]))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("floe demo: %v\n%s", err, out)
	}
	// A directory of the user's is never emptied.
	mine := t.TempDir()
	mustOK(t, os.WriteFile(filepath.Join(mine, "precious"), []byte("x"), 0o644), "write")
	refused, err := exec.CommandContext(ctx, floeBin, "demo", "--exit", "--data-dir", mine).CombinedOutput()
	if err == nil || !strings.Contains(string(refused), "not a demo's data dir") {
		t.Fatalf("floe demo on a directory of the user's: %v\n%s", err, refused)
	}
	if _, err := os.Stat(filepath.Join(mine, "precious")); err != nil {
		t.Fatalf("the user's file is gone: %v", err)
	}
	for _, want := range []string{
		"the cluster is up", "sealed and archived", "deleting its data dir",
		"segments come from the bucket", "in order, none missing", "is back and serves the topic",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the demo did not say %q:\n%s", want, out)
		}
	}
}

// consecutiveBases returns n ports p such that p, p+1 and p+2 were free.
func consecutiveBases(t *testing.T, n int) []int {
	t.Helper()
	var bases []int
	taken := map[int]bool{}
	for attempt := 0; len(bases) < n && attempt < 100; attempt++ {
		p := testenv.FreePort(t)
		ok := !taken[p] && !taken[p+1] && !taken[p+2]
		for i := 1; ok && i < 3; i++ {
			ok = portFree(p + i)
		}
		if ok {
			bases = append(bases, p)
			taken[p], taken[p+1], taken[p+2] = true, true, true
		}
	}
	if len(bases) < n {
		t.Fatal("no runs of three free ports")
	}
	return bases
}

// portFree reports whether a TCP port on loopback can be bound now.
func portFree(p int) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
