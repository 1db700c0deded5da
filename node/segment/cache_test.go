package segment

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
)

// bigPayload is payload i of cacheBatch's appends: 4 KiB, distinct per i.
func bigPayload(i int) []byte {
	b := bytes.Repeat([]byte{byte(i)}, 4096)
	copy(b, fmt.Sprintf("entry %d:", i))
	return b
}

// cacheBatch appends entries [from, from+n) as one batch.
func cacheBatch(t *testing.T, s *Segment, from, n int) {
	t.Helper()
	batch := make([][]byte, n)
	for i := range batch {
		batch[i] = bigPayload(from + i)
	}
	if _, err := s.AppendBatch(batch); err != nil {
		t.Fatal(err)
	}
}

// TestCacheWindowDropsDurableBytes: as a segment grows, what lies before its last
// CacheWindow bytes is dropped from the page cache, once it is durable, in whole
// pages, at least dropStep at a time and contiguously from the start of the file;
// every record still reads back, also after a reopen.
func TestCacheWindowDropsDurableBytes(t *testing.T) {
	ffs := &FaultFS{}
	opts := quiet()
	opts.FS, opts.CacheWindow = ffs, 1<<20
	path := filepath.Join(t.TempDir(), "seg.wal")
	s := openT(t, path, opts)
	const perBatch, batches = 64, 80 // 20 MiB of records
	for b := range batches {
		cacheBatch(t, s, b*perBatch, perBatch)
		end := HeaderSize + s.Bytes()
		var next int64
		for _, d := range ffs.Drops() {
			switch {
			case d.Off != next:
				t.Fatalf("after %d batches: drop at %d, want %d (contiguous from 0): %v", b+1, d.Off, next, ffs.Drops())
			case d.Unsynced:
				t.Fatalf("after %d batches: drop %+v came after a write no sync covered", b+1, d)
			case d.Len < dropStep || (d.Off+d.Len)%pageSize != 0:
				t.Fatalf("after %d batches: drop %+v: want at least %d bytes, ending on a page boundary", b+1, d, dropStep)
			}
			next = d.Off + d.Len
		}
		if next > max(0, end-opts.CacheWindow) {
			t.Fatalf("after %d batches: dropped up to %d, but the last %d bytes before the end %d must stay", b+1, next, opts.CacheWindow, end)
		}
		if next < end-opts.CacheWindow-dropStep-pageSize {
			t.Fatalf("after %d batches: dropped only up to %d of %d", b+1, next, end-opts.CacheWindow)
		}
	}
	check := func(s *Segment) {
		t.Helper()
		for i := 0; i < perBatch*batches; i += perBatch {
			got, err := s.Read(uint64(i), perBatch, 0)
			if err != nil {
				t.Fatal(err)
			}
			for j, p := range got {
				if !bytes.Equal(p, bigPayload(i+j)) {
					t.Fatalf("entry %d reads back as %q..., want %q...", i+j, p[:16], bigPayload(i + j)[:16])
				}
			}
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Open drops what its scan read, not the first append after it.
	ffs2 := &FaultFS{}
	opts.FS = ffs2
	s2 := openT(t, path, opts)
	end := HeaderSize + s2.Bytes()
	if d := ffs2.Drops(); len(d) != 1 || d[0].Off != 0 || d[0].Len != (end-opts.CacheWindow)&^(pageSize-1) {
		t.Errorf("reopen of a %d-byte segment dropped %v, want [0, %d)", end, d, (end-opts.CacheWindow)&^(pageSize-1))
	}
	check(s2)
}

// TestCacheWindowNotAfterFailedSync: an append whose fdatasync fails drops nothing
// (what it wrote is truncated away, and nothing it covered is known durable), and
// the next append that succeeds drops what is due.
func TestCacheWindowNotAfterFailedSync(t *testing.T) {
	ffs := &FaultFS{}
	opts := quiet()
	opts.FS, opts.CacheWindow = ffs, 1<<20
	s := openT(t, filepath.Join(t.TempDir(), "seg.wal"), opts)
	for b := range 35 { // 35 x 256 KiB: just short of dropStep past the window
		cacheBatch(t, s, b*64, 64)
	}
	if d := ffs.Drops(); len(d) != 0 {
		t.Fatalf("dropped %v before %d bytes were past the window", d, dropStep)
	}
	ffs.FailNextSync(errors.New("injected fdatasync failure"))
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = bigPayload(35*64 + i)
	}
	if _, err := s.AppendBatch(batch); err == nil {
		t.Fatal("append with a failing fdatasync succeeded")
	}
	if d := ffs.Drops(); len(d) != 0 {
		t.Fatalf("dropped %v after a failed fdatasync", d)
	}
	cacheBatch(t, s, 35*64, 64) // the 36th batch, again: now a drop is due
	if d := ffs.Drops(); len(d) != 1 || d[0].Unsynced {
		t.Fatalf("after the next append: drops %v, want one of synced bytes", d)
	}
}

// TestCacheWindowOff: a negative CacheWindow drops nothing, and neither does an
// append that was not synced (NoSync: its pages are dirty, the kernel would keep them).
func TestCacheWindowOff(t *testing.T) {
	for _, c := range []struct {
		name   string
		window int64
		noSync bool
	}{{"negative window", -1, false}, {"no sync", 1 << 20, true}} {
		t.Run(c.name, func(t *testing.T) {
			ffs := &FaultFS{}
			opts := quiet()
			opts.FS, opts.CacheWindow, opts.NoSync = ffs, c.window, c.noSync
			s := openT(t, filepath.Join(t.TempDir(), "seg.wal"), opts)
			for b := range 48 { // 12 MiB
				cacheBatch(t, s, b*64, 64)
			}
			if d := ffs.Drops(); len(d) != 0 {
				t.Errorf("dropped %v, want nothing", d)
			}
		})
	}
}
