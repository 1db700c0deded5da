package main

import (
	"fmt"
	"testing"
)

// TestSmoke: PUT through one node, GET and READ through others, in order.
func TestSmoke(t *testing.T) {
	c := startCluster(t, clusterOpts{})
	w := c.conn(1)
	mustOK(t, w.Register("smoke"), "REGISTER")
	mustOK(t, w.Register("smoke"), "REGISTER again (idempotent)")
	const n = 50
	for i := 0; i < n; i++ {
		mustOK(t, w.Put("smoke", []byte(fmt.Sprintf("entry %d", i))), "PUT %d", i)
	}
	r := c.conn(2)
	for i := 0; i < n; i++ {
		p, ok, err := r.Get("smoke")
		mustOK(t, err, "GET %d", i)
		if want := fmt.Sprintf("entry %d", i); !ok || string(p) != want {
			t.Fatalf("GET %d = %q, %v; want %q", i, p, ok, want)
		}
	}
	if _, ok, err := c.conn(3).Get("smoke"); err != nil || ok {
		t.Fatalf("GET past the end = ok %v, err %v; want EMPTY", ok, err)
	}
	entries := c.readAll(3, "smoke")
	if len(entries) != n {
		t.Fatalf("READ returned %d entries, want %d", len(entries), n)
	}
	for i, e := range entries {
		if e.Offset != uint64(i) || string(e.Payload) != fmt.Sprintf("entry %d", i) {
			t.Fatalf("entry %d = %d %q", i, e.Offset, e.Payload)
		}
	}
}
