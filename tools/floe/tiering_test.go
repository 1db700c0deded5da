package main

// Cluster tests of tiered storage (docs/ARCHITECTURE.md sections 5 and 6; README "Operations"): real floe
// processes archiving to a real MinIO server (archive/miniotest) or to a file:// archive.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mc "github.com/minio/minio-go/v7"

	"floe/archive"
	"floe/archive/miniotest"
	"floe/archive/open"
	"floe/archive/seekable"
	"floe/client"
	"floe/tiering"
	"floe/topicname"
)

// archivePrefix is the key prefix inside the bucket that the tests' nodes archive under.
const archivePrefix = "floe"

// minioArchive is a private MinIO server with one bucket that a test cluster archives to.
type minioArchive struct {
	srv    *miniotest.Server
	bucket string
}

// startMinIOArchive starts a MinIO server for t (stopped at cleanup), creates a bucket,
// and returns it with the agent flags and environment that point every node at it
// through the s3:// backend (aws-sdk-go-v2 and the standard AWS credential chain).
func startMinIOArchive(t *testing.T) (*minioArchive, clusterOpts) {
	t.Helper()
	return minioArchiveOn(t, miniotest.Start(t))
}

// minioArchiveOn is startMinIOArchive on the server srv.
func minioArchiveOn(t *testing.T, srv *miniotest.Server) (*minioArchive, clusterOpts) {
	t.Helper()
	a := &minioArchive{srv: srv, bucket: srv.NewBucket(t)}
	none := filepath.Join(t.TempDir(), "none")
	return a, clusterOpts{
		args: []string{
			"--archive", "s3://" + a.bucket + "/" + archivePrefix,
			"--s3-endpoint", srv.Endpoint, "--s3-region", srv.Region,
		},
		env: []string{
			"AWS_ACCESS_KEY_ID=" + srv.AccessKey,
			"AWS_SECRET_ACCESS_KEY=" + srv.SecretKey,
			"AWS_SESSION_TOKEN=",
			"AWS_REGION=" + srv.Region,
			"AWS_PROFILE=",
			"AWS_CONFIG_FILE=" + none,
			"AWS_SHARED_CREDENTIALS_FILE=" + none,
			"AWS_EC2_METADATA_DISABLED=true",
		},
	}
}

// open opens the bucket at url (an s3:// URL of a) as the nodes do, for the test's
// own reads and writes; it is closed at cleanup.
func (a *minioArchive) open(t *testing.T, url string) archive.Bucket {
	t.Helper()
	b, err := open.Open(context.Background(), url, archive.Options{Endpoint: a.srv.Endpoint, Region: a.srv.Region})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// with returns o with extra agent flags appended.
func with(o clusterOpts, args ...string) clusterOpts {
	o.args = append(append([]string{}, o.args...), args...)
	return o
}

// objects lists the archived objects of topic in the bucket: segment id -> key. A
// name (not a key) takes the objects of any incarnation of it: the test must have
// one only.
func (a *minioArchive) objects(t *testing.T, topic string) map[uint64]mc.ObjectInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[uint64]mc.ObjectInfo{}
	for o := range a.srv.Client(t).ListObjects(ctx, a.bucket, mc.ListObjectsOptions{Prefix: archivePrefix + "/topics/" + topic, Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("list bucket %s: %v", a.bucket, o.Err)
		}
		key, seg, _, ok := tiering.ParseObjectKey(strings.TrimPrefix(o.Key, archivePrefix+"/"))
		if !ok {
			t.Fatalf("bucket holds %q, which is not a segment object key", o.Key)
		}
		if key != topic && topicname.NameOf(key) != topic {
			continue // another topic whose name starts with this one
		}
		if prev, dup := out[seg]; dup {
			t.Fatalf("two objects for segment %d: %q and %q", seg, prev.Key, o.Key)
		}
		out[seg] = o
	}
	return out
}

// scrape returns the unlabelled samples of node id's Prometheus /metrics.
func (c *cluster) scrape(id int) (map[string]float64, error) {
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://127.0.0.1:" + strconv.Itoa(c.node(id).httpPort) + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics on node %d: %s", id, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || strings.Contains(line, "{") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return nil, fmt.Errorf("node %d: metric line %q: %v", id, line, err)
		}
		out[name] = v
	}
	return out, sc.Err()
}

// mustScrape is scrape that fails the test.
func (c *cluster) mustScrape(id int) map[string]float64 {
	c.t.Helper()
	m, err := c.scrape(id)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

// sealedTiers returns the tier of every sealed (or archived) segment in STATE of topic
// through node id, and the number of segments in STATE.
func (c *cluster) sealedTiers(id int, topic string) (map[uint64]string, int, error) {
	st, err := c.tryState(id, topic)
	if err != nil {
		return nil, 0, err
	}
	out := map[uint64]string{}
	for _, s := range st.Segments {
		if s.State != "active" {
			out[s.ID] = s.Tier
		}
	}
	return out, len(st.Segments), nil
}

// waitTiers waits until STATE of topic through node id shows at least minSealed sealed
// segments and every one of them is in tier want ("both" once archived, "remote" once
// the local copy is evicted too).
func (c *cluster) waitTiers(id int, topic string, minSealed int, want string, within time.Duration) {
	c.t.Helper()
	var last string
	deadline := time.Now().Add(within)
	for {
		tiers, _, err := c.sealedTiers(id, topic)
		if err == nil {
			ok := len(tiers) >= minSealed
			for _, tier := range tiers {
				ok = ok && tier == want
			}
			if ok {
				return
			}
			last = fmt.Sprint(tiers)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %d+ sealed segments of %q in tier %s; last STATE through node %d: %s",
				within, minSealed, topic, want, id, last)
		}
		time.Sleep(50 * time.Millisecond) // poll interval of a condition wait
	}
}

// tierPayload is the i-th entry of the tiering tests: recognisable, about 200 bytes.
func tierPayload(i int) string {
	return fmt.Sprintf(`{"seq":%d,"kind":"tiering-test","body":"%s"}`, i, strings.Repeat(strconv.Itoa(i%10), 150))
}

// jsonLogEntry is a JSON-like log event of about 1 KiB, reproducible from i: fixed
// field names and a small vocabulary, plus random ids, as real logs compress.
func jsonLogEntry(i int) []byte {
	rng := rand.New(rand.NewPCG(uint64(i), 42))
	levels := []string{"debug", "info", "info", "info", "warn", "error"}
	services := []string{"checkout", "payments", "inventory", "search", "auth", "gateway"}
	words := []string{"request", "completed", "user", "order", "cache", "miss", "retry", "upstream",
		"timeout", "latency", "ok", "queued", "shard", "replica", "session", "token", "refreshed"}
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"seq":%d,"ts":"2026-03-01T12:%02d:%02d.%06dZ","level":%q,"service":%q,"host":"node-%02d",`,
		i, (i/60)%60, i%60, rng.IntN(1000000), levels[rng.IntN(len(levels))], services[rng.IntN(len(services))], rng.IntN(32))
	fmt.Fprintf(&b, `"trace_id":"%016x%016x","span_id":"%016x","status":%d,"duration_ms":%d,"msg":"`,
		rng.Uint64(), rng.Uint64(), rng.Uint64(), []int{200, 200, 200, 201, 404, 500}[rng.IntN(6)], rng.IntN(5000))
	for b.Len() < 960 {
		b.WriteString(words[rng.IntN(len(words))])
		b.WriteByte(' ')
	}
	b.WriteString(`"}`)
	return b.Bytes()
}

// putBatches appends payloads to topic through conn in batches of batch.
func putBatches(t *testing.T, conn *client.Conn, topic string, payloads [][]byte, batch int) {
	t.Helper()
	for i := 0; i < len(payloads); i += batch {
		j := min(i+batch, len(payloads))
		if _, err := conn.PutBatch(topic, payloads[i:j]); err != nil {
			t.Fatalf("batch append of entries %d-%d to %s: %v", i, j-1, topic, err)
		}
	}
}

// checkEntries fails unless got holds exactly want, in order, from offset 0.
func checkEntries(t *testing.T, what string, got []client.Entry, want func(i int) string, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%s: got %d entries, want %d", what, len(got), n)
	}
	for i, e := range got {
		if e.Offset != uint64(i) || string(e.Payload) != want(i) {
			t.Fatalf("%s: entry %d is offset %d %.60q, want offset %d %.60q", what, i, e.Offset, e.Payload, i, want(i))
		}
	}
}

// TestTieringNodeLossReadsFromArchive: with 8 sealed segments archived to MinIO, the
// node that led segments 1, 4 and 7 is killed with SIGKILL and its data dir wiped; the
// two survivors still read every entry, in order, with READ and with the shared GET
// cursor, the sealed segments of the lost node coming from the archive. Writes go on
// meanwhile, including a roll-over while the node is down, and the new sealed segment
// is archived too.
func TestTieringNodeLossReadsFromArchive(t *testing.T) {
	const (
		perSegment = 50
		topic      = "tiered"
		first      = 8*perSegment + 20 // 8 sealed segments and 20 entries in the active 9th
		total      = first + 60        // 60 more after the loss: segment 9 seals, 10 is active
	)
	_, o := startMinIOArchive(t)
	c := startCluster(t, with(o, "--max-segment-entries", strconv.Itoa(perSegment), "--request-timeout", "5s"))

	conn := c.conn(1)
	mustOK(t, conn.Register(topic), "REGISTER %s", topic)
	c.waitTopic(topic)
	for i := 0; i < first; i++ {
		mustOK(t, conn.Put(topic, []byte(tierPayload(i))), "PUT %d", i)
	}
	c.waitTiers(1, topic, 8, "both", 30*time.Second)

	st := c.state(1, topic)
	if len(st.Segments) != 9 {
		t.Fatalf("STATE has %d segments, want 9: %s", len(st.Segments), st.Raw)
	}
	// Segments are led round-robin, so the leader of segment 1 also leads 4 and 7 and
	// not the active segment 9.
	victim := int(st.Segments[0].Leader)
	var owned []uint64
	for _, s := range st.Segments {
		if int(s.Leader) == victim {
			owned = append(owned, s.ID)
		}
	}
	if fmt.Sprint(owned) != "[1 4 7]" {
		t.Fatalf("node %d leads segments %v, want [1 4 7] (round-robin): %s", victim, owned, st.Raw)
	}
	if int(st.Segments[8].Leader) == victim {
		t.Fatalf("node %d leads the active segment too: %s", victim, st.Raw)
	}
	c.kill(victim)
	c.wipe(victim)
	live := []int{c.anyRunning(victim)}
	live = append(live, c.anyRunning(victim, live[0]))
	c.waitFor(20*time.Second, "a raft leader among the survivors", func() bool {
		l := c.raftLeader()
		return l != 0 && l != victim
	})

	// Writes go on, through both survivors, across a roll-over that must skip the dead node.
	conns := []*client.Conn{c.conn(live[0]), c.conn(live[1])}
	for i := first; i < total; i++ {
		mustOK(t, conns[i%2].Put(topic, []byte(tierPayload(i))), "PUT %d through node %d with node %d down", i, live[i%2], victim)
	}
	c.waitTiers(live[0], topic, 9, "both", 30*time.Second)

	for _, id := range live {
		checkEntries(t, fmt.Sprintf("READ through node %d with node %d lost", id, victim), c.readAll(id, topic), tierPayload, total)
	}
	// The shared cursor hands out every entry once, alternating between the survivors.
	for i := 0; i < total; i++ {
		p, ok, err := conns[i%2].Get(topic)
		mustOK(t, err, "GET %d through node %d", i, live[i%2])
		if want := tierPayload(i); !ok || string(p) != want {
			t.Fatalf("GET %d through node %d = %.60q (ok %v), want %.60q", i, live[i%2], p, ok, want)
		}
	}
	if p, ok, err := conns[0].Get(topic); err != nil || ok {
		t.Fatalf("GET past the end = %.60q, ok %v, err %v; want EMPTY", p, ok, err)
	}
	// Segments 1, 4 and 7 exist nowhere but in the archive: the survivors must have read them there.
	for _, id := range live {
		if n := c.mustScrape(id)["floe_remote_reads_total"]; n == 0 {
			t.Errorf("node %d: floe_remote_reads_total = 0, want reads served from the archive", id)
		}
	}
}

// TestTieringObjectStoreOutage: MinIO is killed while entries are written. Every PUT is
// still acknowledged, the upload backlog metric rises above zero, and once MinIO is back
// the backlog drains to zero and every sealed segment is archived.
func TestTieringObjectStoreOutage(t *testing.T) {
	const (
		perSegment = 50
		topic      = "outage"
		before     = 2 * perSegment
		total      = 8*perSegment + 10
	)
	a, o := startMinIOArchive(t)
	c := startCluster(t, with(o, "--max-segment-entries", strconv.Itoa(perSegment), "--upload-max-backoff", "500ms"))

	conn := c.conn(1)
	mustOK(t, conn.Register(topic), "REGISTER %s", topic)
	c.waitTopic(topic)
	for i := 0; i < before; i++ {
		mustOK(t, conn.Put(topic, []byte(tierPayload(i))), "PUT %d", i)
	}
	c.waitTiers(1, topic, 2, "both", 30*time.Second)

	a.srv.Kill()
	for i := before; i < total; i++ {
		mustOK(t, conn.Put(topic, []byte(tierPayload(i))), "PUT %d with MinIO down", i)
	}
	backlog := func() (segs, bytes float64) {
		for id := 1; id <= 3; id++ {
			m, err := c.scrape(id)
			if err != nil {
				t.Fatalf("scrape node %d: %v", id, err)
			}
			segs += m["floe_archive_backlog_segments"]
			bytes += m["floe_archive_backlog_bytes"]
		}
		return segs, bytes
	}
	// Segments 3 to 8 sealed while MinIO was down: they cannot be archived until it is back.
	c.waitFor(10*time.Second, "an upload backlog of 6 segments", func() bool {
		s, b := backlog()
		return s == 6 && b > 0
	})
	tiers, _, err := c.sealedTiers(1, topic)
	mustOK(t, err, "STATE")
	for id := uint64(3); id <= 8; id++ {
		if tiers[id] != "local" {
			t.Errorf("segment %d is in tier %q with MinIO down, want local", id, tiers[id])
		}
	}
	// Local reads are not affected by the outage.
	checkEntries(t, "READ with MinIO down", c.readAll(2, topic), tierPayload, total)

	a.srv.Restart(t)
	c.waitTiers(1, topic, 8, "both", 30*time.Second)
	c.waitFor(10*time.Second, "the upload backlog to drain", func() bool {
		s, b := backlog()
		return s == 0 && b == 0
	})
	if objs := a.objects(t, topic); len(objs) != 8 {
		t.Errorf("bucket holds %d objects of %s, want 8", len(objs), topic)
	}
	var uploads float64
	for id := 1; id <= 3; id++ {
		uploads += c.mustScrape(id)["floe_archive_uploads_total"]
	}
	if uploads != 8 {
		t.Errorf("floe_archive_uploads_total sums to %v over the nodes, want 8", uploads)
	}
}

// TestTieringCorruptObjectIsAnError flips one bit in three archived objects (in a data
// frame, in the metadata frame and in the seek table) after every node has evicted its
// local copies: READ of those segments answers ERR naming the segment, never data, and
// the other segments still read correctly.
func TestTieringCorruptObjectIsAnError(t *testing.T) {
	const (
		perSegment = 50
		topic      = "bitrot"
		total      = 6*perSegment + 10
	)
	a, o := startMinIOArchive(t)
	c := startCluster(t, with(o, "--max-segment-entries", strconv.Itoa(perSegment), "--local-retention-bytes", "1", "--request-timeout", "5s"))

	conn := c.conn(1)
	mustOK(t, conn.Register(topic), "REGISTER %s", topic)
	c.waitTopic(topic)
	for i := 0; i < total; i++ {
		mustOK(t, conn.Put(topic, []byte(tierPayload(i))), "PUT %d", i)
	}
	c.waitTiers(1, topic, 6, "remote", 30*time.Second)

	objs := a.objects(t, topic)
	if len(objs) != 6 {
		t.Fatalf("bucket holds %d objects of %s, want 6", len(objs), topic)
	}
	mcl := a.srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// where returns the byte to damage in an object.
	where := map[uint64]struct {
		part string
		at   func(r *seekable.Reader, size int) int
	}{
		2: {"a data frame", func(r *seekable.Reader, _ int) int { _, _, off, size := r.FrameRange(0); return int(off + size/2) }},
		4: {"the metadata frame", func(r *seekable.Reader, _ int) int {
			_, _, off, size := r.FrameRange(r.NumFrames() - 1)
			return int(off+size) + 12
		}},
		5: {"the seek table", func(r *seekable.Reader, size int) int { return size - 9 - 12*(r.NumFrames()+1) }}, // frame 0's compressed size
	}
	for _, seg := range []uint64{2, 4, 5} {
		w := where[seg]
		key := objs[seg].Key
		obj, err := mcl.GetObject(ctx, a.bucket, key, mc.GetObjectOptions{})
		mustOK(t, err, "GET %s", key)
		body, err := io.ReadAll(obj)
		obj.Close()
		mustOK(t, err, "read %s", key)
		r, err := seekable.Open(ctx, seekable.BytesSource(body))
		mustOK(t, err, "open %s before damaging it", key)
		at := w.at(r, len(body))
		body[at] ^= 0x10
		if _, err := seekable.Verify(ctx, seekable.BytesSource(body), func(seekable.FrameReport) {}); err == nil {
			// Not fatal here: the node must still refuse the object; this only explains a failure below.
			t.Logf("segment %d: seekable.Verify accepts the object with bit 4 of byte %d (in %s) flipped", seg, at, w.part)
		}
		_, err = mcl.PutObject(ctx, a.bucket, key, bytes.NewReader(body), int64(len(body)), mc.PutObjectOptions{})
		mustOK(t, err, "re-put damaged %s", key)
		t.Logf("segment %d: flipped bit 4 of byte %d of %d (in %s) of %s", seg, at, len(body), w.part, key)
	}

	segName := regexp.MustCompile(`segment (\d+)\b`)
	for id := 1; id <= 3; id++ {
		r := c.conn(id)
		for seg := uint64(1); seg <= 6; seg++ {
			base := (seg - 1) * perSegment
			for _, off := range []uint64{base, base + perSegment/2, base + perSegment - 1} {
				entries, _, err := r.Read(topic, off, perSegment)
				if _, bad := where[seg]; !bad {
					mustOK(t, err, "READ %d (segment %d, intact) through node %d", off, seg, id)
					if len(entries) == 0 || len(entries) > perSegment {
						t.Fatalf("READ %d through node %d returned %d entries", off, id, len(entries))
					}
					for k, e := range entries {
						if want := tierPayload(int(off) + k); e.Offset != off+uint64(k) || string(e.Payload) != want {
							t.Fatalf("READ %d through node %d: entry %d is offset %d %.60q, want %d %.60q", off, id, k, e.Offset, e.Payload, off+uint64(k), want)
						}
					}
					continue
				}
				if err == nil {
					t.Errorf("READ %d (segment %d, damaged in %s) through node %d returned %d entries, want an error", off, seg, where[seg].part, id, len(entries))
					continue
				}
				var se *client.ServerError
				m := segName.FindStringSubmatch(err.Error())
				if id == 1 && off == base {
					t.Logf("READ %d (segment %d, damaged in %s): %v", off, seg, where[seg].part, err)
				}
				if !errors.As(err, &se) || m == nil || m[1] != strconv.FormatUint(seg, 10) {
					t.Errorf("READ %d (segment %d, damaged in %s) through node %d: error %q, want ERR naming segment %d", off, seg, where[seg].part, id, err, seg)
				}
			}
		}
	}
	// GET stops at the damaged segment 2 with an error, after handing out segment 1.
	for i := 0; i < perSegment; i++ {
		p, ok, err := conn.Get(topic)
		if err != nil || !ok || string(p) != tierPayload(i) {
			t.Fatalf("GET %d = %.60q, ok %v, err %v; want %.60q", i, p, ok, err, tierPayload(i))
		}
	}
	if p, ok, err := conn.Get(topic); err == nil {
		t.Errorf("GET at offset %d (segment 2, damaged) = %.60q, ok %v; want an error", perSegment, p, ok)
	} else if !strings.Contains(err.Error(), "segment 2") {
		t.Errorf("GET at offset %d (segment 2, damaged): error %q, want it to name segment 2", perSegment, err)
	}
}

// dirBytes sums the sizes of the regular files under dir (0 if it does not exist).
func dirBytes(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return nil // a file removed while walking
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	return total
}

// TestTieringCacheStaysWithinBound archives several MiB of 1 KiB JSON-like entries,
// evicts every local copy, and reads everything back through one node whose frame
// cache holds 256 KiB: every entry reads correctly, and neither the floe_cache_bytes
// gauge nor the cache directory on disk ever exceeds the bound while reading.
func TestTieringCacheStaysWithinBound(t *testing.T) {
	const (
		perSegment = 2000 // about 2 MiB: two or three frames per object
		topic      = "cached"
		total      = 6*perSegment + 100
		cacheBytes = 256 << 10
		reader     = 1
	)
	a, o := startMinIOArchive(t)
	c := startCluster(t, with(o, "--max-segment-entries", strconv.Itoa(perSegment), "--local-retention-bytes", "1",
		"--cache-bytes", strconv.Itoa(cacheBytes)))

	conn := c.conn(reader)
	mustOK(t, conn.Register(topic), "REGISTER %s", topic)
	c.waitTopic(topic)
	payloads := make([][]byte, total)
	for i := range payloads {
		payloads[i] = jsonLogEntry(i)
	}
	putBatches(t, conn, topic, payloads, 50) // a request is at most 64 KiB
	c.waitTiers(reader, topic, 6, "remote", 45*time.Second)

	var archived int64
	for _, o := range a.objects(t, topic) {
		archived += o.Size
	}
	if archived < 4*cacheBytes {
		t.Fatalf("archived %d bytes, want well over the cache bound %d for this test to mean anything", archived, cacheBytes)
	}
	cacheDir := filepath.Join(c.node(reader).dataDir, "cache")
	m0 := c.mustScrape(reader)
	if lim := m0["floe_cache_limit_bytes"]; lim != cacheBytes {
		t.Fatalf("floe_cache_limit_bytes = %v, want %d", lim, cacheBytes)
	}

	// Sample the gauge and the directory while reading.
	var (
		mu                         sync.Mutex
		maxGauge, samples          float64
		maxDisk                    int64
		overGauge, overDisk, scErr string
	)
	sample := func() {
		m, err := c.scrape(reader)
		d := dirBytes(cacheDir)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			scErr = err.Error()
			return
		}
		samples++
		g := m["floe_cache_bytes"]
		maxGauge = max(maxGauge, g)
		maxDisk = max(maxDisk, d)
		if g > m["floe_cache_limit_bytes"] && overGauge == "" {
			overGauge = fmt.Sprintf("floe_cache_bytes %v > floe_cache_limit_bytes %v", g, m["floe_cache_limit_bytes"])
		}
		if d > cacheBytes && overDisk == "" {
			overDisk = fmt.Sprintf("%s holds %d bytes > %d", cacheDir, d, cacheBytes)
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	// Read everything twice: the second pass finds the first frames evicted.
	for pass := 1; pass <= 2; pass++ {
		r := c.conn(reader)
		var off uint64
		for int(off) < total {
			entries, next, err := r.Read(topic, off, 500)
			mustOK(t, err, "READ %d (pass %d)", off, pass)
			if len(entries) == 0 {
				t.Fatalf("READ %d (pass %d) returned no entries, want up to %d", off, pass, total)
			}
			for k, e := range entries {
				if e.Offset != off+uint64(k) || !bytes.Equal(e.Payload, payloads[off+uint64(k)]) {
					t.Fatalf("READ %d (pass %d): entry %d is offset %d %.60q, want %d %.60q", off, pass, k, e.Offset, e.Payload, off+uint64(k), payloads[off+uint64(k)])
				}
			}
			off = next
			sample()
		}
	}
	close(stop)
	<-done
	sample()

	m := c.mustScrape(reader)
	t.Logf("archived %d bytes in %d objects; %v samples: max floe_cache_bytes %v, max cache dir %d bytes; misses %v, hits %v, remote reads %v",
		archived, len(a.objects(t, topic)), samples, maxGauge, maxDisk, m["floe_cache_misses_total"], m["floe_cache_hits_total"], m["floe_remote_reads_total"])
	if scErr != "" {
		t.Errorf("scraping /metrics while reading: %s", scErr)
	}
	if overGauge != "" {
		t.Errorf("cache over its bound: %s", overGauge)
	}
	if overDisk != "" {
		t.Errorf("cache over its bound on disk: %s", overDisk)
	}
	if maxGauge == 0 || maxDisk == 0 {
		t.Errorf("the cache never held anything (max gauge %v, max dir %d): frames of %d archived bytes did not go through it", maxGauge, maxDisk, archived)
	}
	if m["floe_remote_reads_total"] == 0 {
		t.Errorf("floe_remote_reads_total = 0: the reads were not served from the archive")
	}
	if d := dirBytes(cacheDir); d > cacheBytes {
		t.Errorf("%s holds %d bytes after reading, want at most %d", cacheDir, d, cacheBytes)
	}
}

// TestTieringFileArchive: a cluster with --archive file://<dir>, as `floe dev` runs,
// archives every sealed segment as an object under <dir>/topics/<topic>/ that verifies
// as that segment.
func TestTieringFileArchive(t *testing.T) {
	const (
		perSegment = 40
		topic      = "filed"
		total      = 3*perSegment + 5
	)
	dir := t.TempDir()
	c := startCluster(t, clusterOpts{args: []string{"--archive", "file://" + dir, "--max-segment-entries", strconv.Itoa(perSegment)}})
	conn := c.conn(2)
	mustOK(t, conn.Register(topic), "REGISTER %s", topic)
	c.waitTopic(topic)
	for i := 0; i < total; i++ {
		mustOK(t, conn.Put(topic, []byte(tierPayload(i))), "PUT %d", i)
	}
	c.waitTiers(2, topic, 3, "both", 30*time.Second)

	key := c.key(topic)
	topicDir := filepath.Join(dir, "topics", key)
	files, err := os.ReadDir(topicDir)
	mustOK(t, err, "list %s", topicDir)
	seen := map[uint64]bool{}
	for _, f := range files {
		_, seg, _, ok := tiering.ParseObjectKey(tiering.TopicPrefix(key) + f.Name())
		if !ok {
			t.Errorf("%s holds %q, not a segment object", topicDir, f.Name())
			continue
		}
		body, err := os.ReadFile(filepath.Join(topicDir, f.Name()))
		mustOK(t, err, "read %s", f.Name())
		m, err := seekable.Verify(context.Background(), seekable.BytesSource(body), func(r seekable.FrameReport) {
			if r.Err != nil {
				t.Errorf("%s: frame %d: %v", f.Name(), r.Frame, r.Err)
			}
		})
		mustOK(t, err, "verify %s", f.Name())
		if m.Topic != key || m.Segment != seg || m.Base != (seg-1)*perSegment || m.Count != perSegment {
			t.Errorf("%s holds topic %q segment %d base %d count %d, want %q (the topic's key) segment %d base %d count %d",
				f.Name(), m.Topic, m.Segment, m.Base, m.Count, key, seg, (seg-1)*perSegment, perSegment)
		}
		seen[seg] = true
	}
	if len(seen) != 3 || !seen[1] || !seen[2] || !seen[3] {
		t.Errorf("%s holds objects of segments %v, want 1, 2 and 3", topicDir, seen)
	}

	// GET /v1/archive/objects lists the same objects, of the topic or of every topic
	// (here the claim and the metadata snapshots are not segment objects), and
	// refuses an invalid topic name.
	objects := func(query string) (int, []string) {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(c.node(1).httpPort) + "/v1/archive/objects" + query)
		mustOK(t, err, "GET /v1/archive/objects%s", query)
		defer resp.Body.Close()
		var body struct{ Objects []struct{ Key string } }
		if resp.StatusCode == http.StatusOK {
			mustOK(t, json.NewDecoder(resp.Body).Decode(&body), "decode /v1/archive/objects%s", query)
		}
		var keys []string
		for _, o := range body.Objects {
			keys = append(keys, o.Key)
		}
		return resp.StatusCode, keys
	}
	var want []string
	for _, f := range files {
		want = append(want, tiering.TopicPrefix(key)+f.Name())
	}
	for _, q := range []string{"?topic=" + topic, ""} {
		if code, keys := objects(q); code != http.StatusOK || fmt.Sprint(keys) != fmt.Sprint(want) {
			t.Errorf("GET /v1/archive/objects%s: %d %q, want 200 %q", q, code, keys, want)
		}
	}
	if code, keys := objects("?topic=fil"); code != http.StatusOK || len(keys) != 0 {
		t.Errorf("GET /v1/archive/objects?topic=fil: %d %q, want 200 and none of topic %s's objects", code, keys, topic)
	}
	if code, _ := objects("?topic=a/b"); code != http.StatusBadRequest {
		t.Errorf("GET /v1/archive/objects?topic=a/b: %d, want 400", code)
	}
}
