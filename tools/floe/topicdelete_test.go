package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mc "github.com/minio/minio-go/v7"
	"golang.org/x/sys/unix"

	"floe/archive"
	"floe/client"
	"floe/tiering"
	"floe/topicname"
)

// Cluster tests of topic deletion (README "Deleting a topic"; docs/ARCHITECTURE.md
// "Deleting a topic"): real floe processes archiving to a real MinIO server.

// topicKey is the key (name and incarnation) of the live topic named name, through
// node id.
func (c *cluster) topicKey(id int, name string) (string, uint64) {
	c.t.Helper()
	st := c.state(id, name)
	return topicname.Key(name, st.ID), st.ID
}

// key is the key of the live topic named topic, asked of a running node.
func (c *cluster) key(topic string) string {
	c.t.Helper()
	key, _ := c.topicKey(c.anyRunning(), topic)
	return key
}

// segmentDir is the directory of the live topic named topic in node's data dir.
func (c *cluster) segmentDir(node int, topic string) string {
	c.t.Helper()
	return filepath.Join(c.node(node).dataDir, "segments", c.key(topic))
}

// localDirs returns the nodes' segment directories of a topic key that exist.
func (c *cluster) localDirs(key string) []string {
	var out []string
	for _, p := range c.nodes {
		for _, dir := range []string{filepath.Join(p.dataDir, "segments", key), filepath.Join(p.dataDir, "abandoned", key)} {
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				out = append(out, dir)
			}
		}
	}
	return out
}

// hasTombstone reports whether the bucket holds the tombstone of a topic key.
func (a *minioArchive) hasTombstone(t *testing.T, key string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := a.srv.Client(t).StatObject(ctx, a.bucket, archivePrefix+"/"+tiering.TombstoneKey(key), mc.StatObjectOptions{})
	return err == nil
}

// pendingDeletions is floe_topic_deletions_pending on node id (-1 if it cannot say).
func (c *cluster) pendingDeletions(id int) float64 {
	m, err := c.scrape(id)
	if err != nil {
		return -1
	}
	v, ok := m["floe_topic_deletions_pending"]
	if !ok {
		return -1
	}
	return v
}

// TestDeleteTopicLive deletes a topic with archived, sealed and active segments while
// a writer and a GET reader run on other nodes: both get a clear "no such topic"
// error, every node's files, every object and the pending count go, a tombstone
// stays; the topic created again under its name starts at offset 0 with its own key
// and never returns an entry of the old one.
func TestDeleteTopicLive(t *testing.T) {
	a, o := startMinIOArchive(t)
	c := startCluster(t, with(o, "--max-segment-entries", "20"))
	http3 := "127.0.0.1:" + strconv.Itoa(c.node(3).httpPort)
	w := c.conn(1)
	mustOK(t, w.Register("doomed"), "REGISTER")
	c.waitTopic("doomed")
	key, id := c.topicKey(1, "doomed")
	if id == 0 {
		t.Fatal("a topic created now has no incarnation id")
	}
	for i := range 70 { // segments 1-3 sealed, 4 active with 10
		mustOK(t, w.Put("doomed", []byte(fmt.Sprintf("old-%d", i))), "PUT %d", i)
	}
	c.waitTiers(1, "doomed", 3, "both", 30*time.Second)
	if len(a.objects(t, key)) != 3 || len(c.localDirs(key)) == 0 {
		t.Fatalf("before the delete: %d objects, local dirs %v", len(a.objects(t, key)), c.localDirs(key))
	}

	// A writer (through node 2) and a GET reader (through node 3) run until the
	// topic goes under them.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wrote, took atomic.Int64
	writerErr, readerErr := make(chan error, 1), make(chan error, 1)
	run := func(id int, errc chan<- error, op func(*client.Conn) error) {
		conn, err := c.dial(id, 10*time.Second)
		if err != nil {
			errc <- err
			return
		}
		defer conn.Close()
		for ctx.Err() == nil {
			if err := op(conn); err != nil {
				errc <- err
				return
			}
		}
		errc <- ctx.Err()
	}
	go run(2, writerErr, func(conn *client.Conn) error {
		n := wrote.Add(1)
		return conn.Put("doomed", []byte(fmt.Sprintf("old-live-%d", n)))
	})
	go run(3, readerErr, func(conn *client.Conn) error {
		_, ok, err := conn.Get("doomed")
		if ok {
			took.Add(1)
		}
		return err
	})
	c.waitFor(30*time.Second, "the writer and the reader under way", func() bool { return wrote.Load() > 20 && took.Load() > 20 })

	// Without --yes and without a terminal to ask on, nothing is deleted.
	if out, err := runFloe(t, "topic", "delete", "doomed", "--http", http3); err == nil || !strings.Contains(out, "--yes") {
		t.Fatalf("floe topic delete without --yes: %v\n%s", err, out)
	}
	if _, err := c.conn(1).State("doomed"); err != nil {
		t.Fatalf("the topic went without a confirmation: %v", err)
	}
	out, err := runFloe(t, "topic", "delete", "doomed", "--yes", "--http", http3)
	if err != nil || !strings.Contains(out, fmt.Sprintf("deleted topic doomed (id %d)", id)) {
		t.Fatalf("floe topic delete --yes: %v\n%s", err, out)
	}
	for what, errc := range map[string]chan error{"writer": writerErr, "reader": readerErr} {
		select {
		case err := <-errc:
			if err == nil || !strings.Contains(err.Error(), "no such topic") {
				t.Fatalf("the %s in flight got %v, want a no such topic error", what, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("the %s in flight got no error within 30 s of the deletion", what)
		}
	}
	for id := 1; id <= 3; id++ {
		if _, err := c.conn(id).State("doomed"); err == nil || !strings.Contains(err.Error(), "no such topic") {
			t.Fatalf("STATE through node %d after the delete: %v", id, err)
		}
		if _, _, err := c.conn(id).Read("doomed", 0, 10); err == nil || !strings.Contains(err.Error(), "no such topic") {
			t.Fatalf("READ through node %d after the delete: %v", id, err)
		}
	}
	c.waitFor(60*time.Second, "every node's files, every object and the pending deletion gone", func() bool {
		return len(c.localDirs(key)) == 0 && len(a.objects(t, key)) == 0 &&
			c.pendingDeletions(1) == 0 && c.pendingDeletions(2) == 0 && c.pendingDeletions(3) == 0
	})
	if !a.hasTombstone(t, key) {
		t.Fatalf("no tombstone for %s in the bucket", key)
	}

	// Created again: a new topic under the old name.
	mustOK(t, c.conn(2).Register("doomed"), "REGISTER again")
	c.waitTopic("doomed")
	key2, id2 := c.topicKey(3, "doomed")
	if id2 <= id {
		t.Fatalf("re-created topic has id %d, the deleted one had %d", id2, id)
	}
	if st := c.state(1, "doomed"); st.Cursor != 0 || st.StartOffset != 0 || len(st.Segments) != 1 || st.Segments[0].Base != 0 {
		t.Fatalf("re-created topic's STATE: %s", st.Raw)
	}
	if ls, err := runFloe(t, "topic", "ls", "--http", http3); err != nil || !regexp.MustCompile(fmt.Sprintf(`(?m)^doomed +%d +`, id2)).MatchString(ls) {
		t.Fatalf("floe topic ls does not show the re-created topic's id %d: %v\n%s", id2, err, ls)
	}
	newEntry := func(i int) string { return fmt.Sprintf("new-%d", i) }
	for i := range 45 {
		off, err := c.conn(3).PutOffset("doomed", []byte(newEntry(i)))
		if err != nil || off != uint64(i) {
			t.Fatalf("PUT %d into the re-created topic: offset %d, %v", i, off, err)
		}
	}
	c.waitTiers(1, "doomed", 2, "both", 30*time.Second)
	for id := 1; id <= 3; id++ {
		checkEntries(t, fmt.Sprintf("READ of the re-created topic through node %d", id), c.readAll(id, "doomed"), newEntry, 45)
	}
	if p, ok, err := c.conn(2).Get("doomed"); err != nil || !ok || string(p) != newEntry(0) {
		t.Fatalf("first GET of the re-created topic = %q %v %v, want %s", p, ok, err, newEntry(0))
	}
	if len(a.objects(t, key2)) != 2 || len(a.objects(t, key)) != 0 {
		t.Fatalf("objects: %d of %s, %d of %s", len(a.objects(t, key2)), key2, len(a.objects(t, key)), key)
	}
}

// TestDeleteTopicArchiveDown: a topic deleted while the archive is down is gone for
// clients and from the nodes' disks at once, counted as pending on every node (and in
// the archive summary) while its objects cannot be deleted; a node that was down
// through the deletion deletes its own files when it returns; the Raft leader dies
// while the deletion is pending, and the next one purges the objects once the
// archive is back.
func TestDeleteTopicArchiveDown(t *testing.T) {
	a, o := startMinIOArchive(t)
	// Three replicas: every node holds a copy of the active segment.
	c := startCluster(t, with(o, "--max-segment-entries", "10", "--default-replication-factor", "3"))
	w := c.conn(1)
	mustOK(t, w.Register("later"), "REGISTER")
	c.waitTopic("later")
	key, _ := c.topicKey(1, "later")
	for i := range 35 {
		mustOK(t, w.Put("later", []byte(fmt.Sprintf("e-%d", i))), "PUT %d", i)
	}
	c.waitTiers(2, "later", 3, "both", 30*time.Second)
	away := 1 // a node that is not the Raft leader is down through the deletion
	if away == c.raftLeader() {
		away = 2
	}
	if dirs := c.localDirs(key); len(dirs) != 3 {
		t.Fatalf("the topic's files are on %v, want every node", dirs)
	}
	c.kill(away)
	a.srv.Stop()

	up := 3
	if up == away {
		up = 2
	}
	httpUp := "127.0.0.1:" + strconv.Itoa(c.node(up).httpPort)
	if out, err := runFloe(t, "topic", "delete", "later", "--yes", "--http", httpUp); err != nil {
		t.Fatalf("floe topic delete with the archive down: %v\n%s", err, out)
	}
	if _, err := c.conn(up).State("later"); err == nil || !strings.Contains(err.Error(), "no such topic") {
		t.Fatalf("STATE after the delete: %v", err)
	}
	c.waitFor(30*time.Second, "the deletion pending on the live nodes, their files gone", func() bool {
		for id := 1; id <= 3; id++ {
			if id != away && c.pendingDeletions(id) != 1 {
				return false
			}
		}
		for _, dir := range c.localDirs(key) {
			if !strings.HasPrefix(dir, c.node(away).dataDir) {
				return false
			}
		}
		return true
	})

	var summary struct {
		PendingDeletions []string `json:"pending_deletions"`
	}
	resp, err := c.httpc.Get(c.scheme + "://" + httpUp + "/v1/archive/summary")
	mustOK(t, err, "GET /v1/archive/summary")
	mustOK(t, json.NewDecoder(resp.Body).Decode(&summary), "decode the archive summary")
	resp.Body.Close()
	if len(summary.PendingDeletions) != 1 || summary.PendingDeletions[0] != key {
		t.Fatalf("archive summary's pending deletions %v, want [%s]", summary.PendingDeletions, key)
	}

	// The node that was down returns while the deletion is pending: it never saw the
	// topic's deletion happen, and deletes its files of it.
	c.start(away)
	c.waitFor(60*time.Second, "the returning node's files of the deleted topic gone, the deletion pending there too", func() bool {
		return len(c.localDirs(key)) == 0 && c.pendingDeletions(away) == 1
	})
	if _, err := c.conn(away).State("later"); err == nil || !strings.Contains(err.Error(), "no such topic") {
		t.Fatalf("STATE through the returned node: %v", err)
	}
	// The Raft leader dies in the middle of the pending deletion: the next one
	// finishes it once the archive is back.
	old := c.raftLeader()
	c.kill(old)
	c.waitFor(30*time.Second, "a new raft leader", func() bool { l := c.raftLeader(); return l != 0 && l != old })
	a.srv.Restart(t)
	c.waitFor(60*time.Second, "the objects deleted and the deletion done once the archive is back", func() bool {
		for id := 1; id <= 3; id++ {
			if id != old && c.pendingDeletions(id) != 0 {
				return false
			}
		}
		return len(a.objects(t, key)) == 0
	})
	if !a.hasTombstone(t, key) {
		t.Fatalf("no tombstone for %s", key)
	}
	c.start(old)
	c.waitFor(30*time.Second, "the old leader back, with nothing pending", func() bool { return c.pendingDeletions(old) == 0 })
}

// TestRestoreClusterAfterDelete: floe restore --cluster from a snapshot taken before
// a topic was deleted does not bring the topic back (its tombstone is in the bucket),
// and a topic created again under the name after that snapshot comes back with its
// own entries only; ids given after the restore are above every id the bucket names.
func TestRestoreClusterAfterDelete(t *testing.T) {
	a, o := startMinIOArchive(t)
	a.srv.SetEnv(t) // for this process's bucket access and the floe commands it runs
	url := "s3://" + a.bucket + "/" + archivePrefix
	c := startCluster(t, with(o, "--max-segment-entries", "10", "--meta-snapshot-interval", "100ms"))
	ctx := context.Background()
	b := a.open(t, url)
	entry := func(prefix string) func(int) string {
		return func(i int) string { return fmt.Sprintf("%s-%d", prefix, i) }
	}
	w := c.conn(1)
	for _, topic := range []string{"keep", "gone"} {
		mustOK(t, w.Register(topic), "REGISTER %s", topic)
		c.waitTopic(topic)
		for i := range 25 { // segments 1-2 sealed, 3 active with 5
			mustOK(t, w.Put(topic, []byte(entry(topic)(i))), "PUT %s %d", topic, i)
		}
		c.waitTiers(1, topic, 2, "both", 30*time.Second)
	}
	var stale string
	c.waitFor(30*time.Second, "a metadata snapshot with both topics archived", func() bool {
		stale = ""
		b.List(ctx, tiering.MetaSnapshotPrefix, func(oi archive.ObjectInfo) error {
			if snapHas(ctx, b, oi.Key, "keep", 3, 0) && snapHas(ctx, b, oi.Key, "gone", 3, 0) {
				stale = oi.Key
			}
			return nil
		})
		return stale != ""
	})
	gone, goneID := c.topicKey(1, "gone")
	http1 := "127.0.0.1:" + strconv.Itoa(c.node(1).httpPort)
	if out, err := runFloe(t, "topic", "delete", "gone", "--yes", "--http", http1); err != nil {
		t.Fatalf("floe topic delete: %v\n%s", err, out)
	}
	c.waitFor(60*time.Second, "the deleted topic's objects gone", func() bool {
		return len(a.objects(t, gone)) == 0 && c.pendingDeletions(1) == 0
	})
	// Created again after the snapshot: only its objects tell of it.
	mustOK(t, w.Register("gone"), "REGISTER gone again")
	c.waitTopic("gone")
	for i := range 15 { // segment 1 sealed, 2 active with 5
		mustOK(t, w.Put("gone", []byte(entry("again")(i))), "PUT again %d", i)
	}
	c.waitTiers(1, "gone", 1, "both", 30*time.Second)
	again, againID := c.topicKey(1, "gone")

	// Every disk is lost, and the snapshots after the stale one with them.
	for id := 1; id <= 3; id++ {
		c.kill(id)
		c.wipe(id)
	}
	b.List(ctx, tiering.MetaSnapshotPrefix, func(oi archive.ObjectInfo) error {
		if oi.Key > stale {
			return b.Delete(ctx, oi.Key)
		}
		return nil
	})
	p := c.node(1)
	out, err := runFloe(t, "restore", "--cluster", "--archive", url, "--s3-endpoint", a.srv.Endpoint, "--s3-region", a.srv.Region,
		"--node-id", "1", "--data-dir", p.dataDir, "--raft-port", strconv.Itoa(p.raftPort))
	if err != nil || !strings.Contains(out, "seeded") || !strings.Contains(out, gone+"  "+tiering.DropTombstone) {
		t.Fatalf("floe restore --cluster: %v\n%s", err, out)
	}
	t.Logf("floe restore --cluster:\n%s", out)
	for id := 1; id <= 3; id++ {
		c.start(id)
	}
	c.waitMembers(3, 30*time.Second)
	checkEntries(t, "keep after the restore", c.readAll(2, "keep"), entry("keep"), 20)
	checkEntries(t, "gone after the restore", c.readAll(3, "gone"), entry("again"), 10)
	if key, id := c.topicKey(2, "gone"); key != again || id != againID || id <= goneID {
		t.Fatalf("restored gone is %s, want %s", key, again)
	}
	mustOK(t, c.conn(1).Register("later"), "REGISTER later")
	if _, id := c.topicKey(1, "later"); id <= againID {
		t.Fatalf("a topic created after the restore got id %d, not above %d", id, againID)
	}
	if len(a.objects(t, gone)) != 0 {
		t.Fatalf("objects of the deleted %s came back", gone)
	}
}

// openPTY opens a pseudo-terminal: the controlling side, and the terminal a child
// process takes as its stdin.
func openPTY(t *testing.T) (ctl, tty *os.File) {
	t.Helper()
	ctl, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { ctl.Close() })
	if err := unix.IoctlSetPointerInt(int(ctl.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock the pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(ctl.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the pty: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	return ctl, tty
}

// TestTopicDeleteAsksOnTerminal: on a terminal, floe topic delete asks for the
// topic's name and deletes nothing unless it is typed.
func TestTopicDeleteAsksOnTerminal(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 1})
	mustOK(t, c.conn(1).Register("asked"), "REGISTER")
	http1 := "127.0.0.1:" + strconv.Itoa(c.node(1).httpPort)
	run := func(typed string) (string, error) {
		t.Helper()
		ctl, tty := openPTY(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, floeBin, "topic", "delete", "asked", "--http", http1)
		var out strings.Builder
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := ctl.WriteString(typed + "\n"); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		return out.String(), err
	}
	out, err := run("asked-not")
	if err == nil || !strings.Contains(out, "Type the topic's name to confirm") || !strings.Contains(out, "nothing deleted") {
		t.Fatalf("a wrong name typed: %v\n%s", err, out)
	}
	if _, err := c.conn(1).State("asked"); err != nil {
		t.Fatalf("the topic went without its name typed: %v", err)
	}
	if out, err := run("asked"); err != nil || !strings.Contains(out, "deleted topic asked") {
		t.Fatalf("the name typed: %v\n%s", err, out)
	}
	if _, err := c.conn(1).State("asked"); err == nil || !strings.Contains(err.Error(), "no such topic") {
		t.Fatalf("STATE after the confirmed delete: %v", err)
	}
}
