package testenv

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitForReturnsOnceCondHolds(t *testing.T) {
	var calls atomic.Int32
	WaitFor(t, time.Minute, "the third check", func() bool { return calls.Add(1) == 3 })
	if got := calls.Load(); got != 3 {
		t.Errorf("cond checked %d times, want 3", got)
	}
}

// fatalRecorder records Fatalf instead of ending the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = format
}

func TestWaitForFailsAfterDeadline(t *testing.T) {
	r := &fatalRecorder{TB: t}
	checks := 0
	WaitForEvery(r, 0, time.Millisecond, "never", func() bool { checks++; return checks > 1 })
	if r.msg == "" {
		t.Fatal("WaitFor with a passed deadline did not fail")
	}
}

func TestFreePortsAreDistinct(t *testing.T) {
	ports := FreePorts(t, 8)
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("FreePorts = %v: not distinct positive ports", ports)
		}
		seen[p] = true
	}
}
