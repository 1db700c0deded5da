package segment

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// crashEnv switches the test binary into the appending child of
// TestCrashRecovery; its value is the segment path.
const crashEnv = "FLOE_SEGMENT_CRASH_CHILD"

// crashPayload is the deterministic payload the child appends as entry k of
// writer w in round r, 40 to 1063 bytes long.
func crashPayload(r, w, k int) []byte {
	head := fmt.Sprintf("round %d writer %d entry %d|", r, w, k)
	n := 40 + (r*7919+w*104729+k*31)%1024
	b := bytes.Repeat([]byte{byte('A' + (w+k)%26)}, n)
	copy(b, head)
	return b
}

// TestCrashChild is not a test of its own: it is the child process of
// TestCrashRecovery. It appends from several goroutines forever and prints
// "<index> <round> <writer> <entry>" for every acknowledged append.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper process of TestCrashRecovery")
	}
	var round int
	if _, err := fmt.Sscan(os.Getenv(crashEnv+"_ROUND"), &round); err != nil {
		fmt.Fprintln(os.Stderr, "bad round:", err)
		os.Exit(2)
	}
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	for w := range 8 {
		go func() {
			for k := 0; ; k++ {
				i, err := s.Append(crashPayload(round, w, k))
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "%d %d %d %d\n", i, round, w, k)
				mu.Unlock()
			}
		}()
	}
	// The parent kills this process; never outlive a parent that died.
	<-time.After(2 * time.Minute)
	os.Exit(3)
}

// TestCrashRecovery runs the test binary as a child that appends to a
// segment and reports every acknowledged index, kills it with SIGKILL after
// a number of acknowledgements, reopens the segment and checks that every
// acknowledged entry is there and intact. Three rounds append to the same
// file, so appends after a crash recovery are covered too. (SIGKILL loses
// the process, not the page cache: power loss is covered by the torn-tail
// tests.)
func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("in the child")
	}
	path := filepath.Join(t.TempDir(), "seg.wal")
	const acksPerRound = 1500
	type ack struct{ round, writer, entry int }
	acked := make(map[uint64]ack)

	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+path, fmt.Sprintf("%s_ROUND=%d", crashEnv, round))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		n := 0
		for n < acksPerRound && sc.Scan() {
			var i uint64
			var a ack
			if _, err := fmt.Sscanf(sc.Text(), "%d %d %d %d", &i, &a.round, &a.writer, &a.entry); err != nil {
				continue // not an acknowledgement (test framework output)
			}
			if prev, dup := acked[i]; dup {
				t.Errorf("round %d: index %d acknowledged twice: %+v and %+v", round, i, prev, a)
			}
			acked[i] = a
			n++
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill child: %v", err)
		}
		_ = cmd.Wait()
		if n < acksPerRound {
			t.Fatalf("round %d: child stopped after %d acknowledgements: %v\n%s", round, n, sc.Err(), stderr.String())
		}

		s, err := Open(path, quiet())
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		count := s.Count()
		if count < uint64(len(acked)) {
			t.Errorf("round %d: %d records after the crash, but %d were acknowledged", round, count, len(acked))
		}
		for i, a := range acked {
			got, err := s.Read(i, 1, 0)
			if err != nil {
				t.Fatalf("round %d: acknowledged index %d (%+v): %v", round, i, a, err)
			}
			if want := crashPayload(a.round, a.writer, a.entry); !bytes.Equal(got[0], want) {
				t.Fatalf("round %d: index %d = %.40q..., want %.40q...", round, i, got[0], want)
			}
		}
		checkTotals(t, s, readAll(t, s))
		t.Logf("round %d: %d acknowledged in all, %d records on disk", round, len(acked), count)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
