package main

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"floe/tiering"
)

// upgradeFixture is a one-node data dir and file bucket written by the previous
// release (testdata/upgrade/README.md says what it holds and how it was made).
const upgradeFixture = "testdata/upgrade/prev-release.tar.gz"

// extractTarGz unpacks the tar.gz at path into dst (regular files and directories).
func extractTarGz(t *testing.T, path, dst string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(dst, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(name, filepath.Clean(dst)+string(os.PathSeparator)) {
			t.Fatalf("%s: entry %q leaves the directory", path, h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(name, 0o700); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
				t.Fatal(err)
			}
			out, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o777|0o600)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(out, tr); err != nil {
				t.Fatal(err)
			}
			if err := out.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// TestUpgradeFromPreviousRelease starts this release on a data dir and a bucket the
// previous release wrote (topics of incarnation 0: directories and objects named by
// the bare name): every entry, archived or active, reads back, the shared cursor is
// kept; a topic created now gets an incarnation id; an old topic deleted goes with
// its files and objects (a tombstone stays) and, created again, starts at offset 0
// without an old entry, across a restart too. Then floe restore --cluster rebuilds a
// cluster from the previous release's bucket alone.
func TestUpgradeFromPreviousRelease(t *testing.T) {
	dir := t.TempDir()
	extractTarGz(t, upgradeFixture, dir)
	bucket := filepath.Join(dir, "bucket")
	// The fixture's active segments are older than any age limit: a huge one keeps
	// them active (the age limit is not what is tested here).
	c := newCluster(t, clusterOpts{nodes: 1, args: []string{"--archive", "file://" + bucket, "--max-segment-age", "876000h"}})
	c.node(1).dataDir = filepath.Join(dir, "data")
	c.start(1)
	c.waitReady(30 * time.Second)

	orders := func(i int) string { return fmt.Sprintf("orders-%d", i) }
	keep := func(i int) string { return fmt.Sprintf("keep-%d", i) }
	checkEntries(t, "orders after the upgrade", c.readAll(1, "orders"), orders, 350)
	checkEntries(t, "keep after the upgrade", c.readAll(1, "keep"), keep, 20)
	st := c.state(1, "orders")
	if st.ID != 0 || len(st.Segments) != 4 || st.Segments[2].Tier != "both" || st.Cursor != 5 {
		t.Fatalf("orders after the upgrade: %s", st.Raw)
	}
	if p, ok, err := c.conn(1).Get("orders"); err != nil || !ok || string(p) != orders(5) {
		t.Fatalf("GET after the upgrade = %q %v %v, want %s (the cursor kept)", p, ok, err, orders(5))
	}
	if off, err := c.conn(1).PutOffset("keep", []byte(keep(20))); err != nil || off != 20 {
		t.Fatalf("PUT to keep after the upgrade: offset %d, %v", off, err)
	}

	// A topic created now has an incarnation id, which names its directory.
	conn := c.conn(1)
	mustOK(t, conn.Register("fresh"), "REGISTER fresh")
	mustOK(t, conn.Put("fresh", []byte("f-0")), "PUT fresh")
	fresh, id := c.topicKey(1, "fresh")
	if id == 0 || !exists(filepath.Join(c.node(1).dataDir, "segments", fresh)) {
		t.Fatalf("new topic: id %d, directory %s exists %v", id, fresh, exists(filepath.Join(c.node(1).dataDir, "segments", fresh)))
	}

	// An old topic deleted: its directory, its objects go; its tombstone stays.
	oldDir := filepath.Join(c.node(1).dataDir, "segments", "orders")
	oldObjects := filepath.Join(bucket, tiering.TopicPrefix("orders"))
	if !exists(oldDir) || !exists(oldObjects) {
		t.Fatal("the fixture has no orders directory or objects")
	}
	http1 := "127.0.0.1:" + strconv.Itoa(c.node(1).httpPort)
	if out, err := runFloe(t, "topic", "delete", "orders", "--yes", "--http", http1); err != nil {
		t.Fatalf("floe topic delete orders: %v\n%s", err, out)
	}
	c.waitFor(30*time.Second, "the old topic's files and objects gone, nothing pending", func() bool {
		objs, _ := os.ReadDir(oldObjects)
		segs := 0
		for _, o := range objs {
			if tiering.HasObjectSuffix(o.Name()) {
				segs++
			}
		}
		return !exists(oldDir) && segs == 0 && c.pendingDeletions(1) == 0
	})
	if !exists(filepath.Join(bucket, tiering.TombstoneKey("orders"))) {
		t.Fatal("no tombstone for orders")
	}
	mustOK(t, conn.Register("orders"), "REGISTER orders again")
	if off, err := conn.PutOffset("orders", []byte("again-0")); err != nil || off != 0 {
		t.Fatalf("PUT to the re-created orders: offset %d, %v", off, err)
	}
	again := func(i int) string { return fmt.Sprintf("again-%d", i) }
	checkEntries(t, "the re-created orders", c.readAll(1, "orders"), again, 1)

	// A restart replays it all the same.
	c.stop(1)
	c.start(1)
	c.waitReady(30 * time.Second)
	checkEntries(t, "the re-created orders after a restart", c.readAll(1, "orders"), again, 1)
	checkEntries(t, "keep after a restart", c.readAll(1, "keep"), keep, 21)
	if exists(oldDir) {
		t.Fatal("the old orders directory came back")
	}

	// floe restore --cluster from the previous release's bucket alone: the archived
	// segments of orders come back with the cursor; keep had nothing archived.
	dir2 := t.TempDir()
	extractTarGz(t, upgradeFixture, dir2)
	r := newCluster(t, clusterOpts{nodes: 1, args: []string{"--archive", "file://" + filepath.Join(dir2, "bucket")}})
	p := r.node(1)
	out, err := runFloe(t, "restore", "--cluster", "--archive", "file://"+filepath.Join(dir2, "bucket"), "--node-id", "1",
		"--data-dir", p.dataDir, "--raft-port", strconv.Itoa(p.raftPort))
	if err != nil || !strings.Contains(out, "seeded") {
		t.Fatalf("floe restore --cluster from the previous release's bucket: %v\n%s", err, out)
	}
	r.start(1)
	r.waitReady(30 * time.Second)
	checkEntries(t, "orders restored from the previous release's bucket", r.readAll(1, "orders"), orders, 300)
	if p, ok, err := r.conn(1).Get("orders"); err != nil || !ok || string(p) != orders(5) {
		t.Fatalf("GET after the restore = %q %v %v, want %s", p, ok, err, orders(5))
	}
	if off, err := r.conn(1).PutOffset("orders", []byte("x")); err != nil || off != 300 {
		t.Fatalf("PUT after the restore: offset %d, %v", off, err)
	}
}
