// Package archivetest is the acceptance suite that every archive.Bucket backend and
// wrapper must pass. A backend's test calls
//
//	archivetest.Run(t, func(t *testing.T) archive.Bucket { return ...a new, empty bucket... })
//
// Run calls newBucket once per subtest and closes the bucket when the subtest ends.
// The suite uses only keys valid on every backend (archive.ValidateKey, and no key that
// is both an object and a "directory" of other keys, which the fs backend cannot hold).
package archivetest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"floe/archive"
)

// LargeSize is the size of the suite's big object: above the 16 MiB single-PUT limit of
// minio-go and the 8 MiB part size of the s3 backend, so both take the multipart path.
const LargeSize = 17<<20 + 5

// Run runs the whole suite against the buckets newBucket returns.
func Run(t *testing.T, newBucket func(t *testing.T) archive.Bucket) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, archive.Bucket)
	}{
		{"PutGet", testPutGet},
		{"GetRange", testGetRange},
		{"Missing", testMissing},
		{"IfNoneMatch", testIfNoneMatch},
		{"IfNoneMatchLarge", testIfNoneMatchLarge},
		{"ConcurrentIfNoneMatch", testConcurrentIfNoneMatch},
		{"IfMatch", testIfMatch},
		{"IfMatchMissing", testIfMatchMissing},
		{"ConcurrentIfMatch", testConcurrentIfMatch},
		{"Overwrite", testOverwrite},
		{"List", testList},
		{"ListStop", testListStop},
		{"Delete", testDelete},
		{"KeysWithSlashes", testKeysWithSlashes},
		{"InvalidKeys", testInvalidKeys},
		{"SizeMismatch", testSizeMismatch},
		{"ReaderError", testReaderError},
		{"Canceled", testCanceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBucket(t)
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, b)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// content returns n deterministic pseudo-random (incompressible) bytes for seed.
func content(seed uint64, n int) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	binary.LittleEndian.PutUint64(s[8:], uint64(n))
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

func put(t *testing.T, b archive.Bucket, key string, data []byte) {
	t.Helper()
	if err := b.Put(ctx(t), key, bytes.NewReader(data), int64(len(data)), archive.PutOptions{}); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(data), err)
	}
}

func get(t *testing.T, b archive.Bucket, key string) []byte {
	t.Helper()
	rc, err := b.Get(ctx(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): read: %v", key, err)
	}
	return data
}

func stat(t *testing.T, b archive.Bucket, key string) archive.ObjectInfo {
	t.Helper()
	info, err := b.Stat(ctx(t), key)
	if err != nil {
		t.Fatalf("Stat(%q): %v", key, err)
	}
	return info
}

func checkContent(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: got %d bytes, want %d; first difference at byte %d", what, len(got), len(want), i)
	}
}

// CheckObject fails t unless key reads back as data: whole (Get), in a range across
// its middle (GetRange) and with its size (Stat). For backends' own tests, e.g. of an
// option that changes how objects are stored.
func CheckObject(t *testing.T, b archive.Bucket, key string, data []byte) {
	t.Helper()
	checkContent(t, fmt.Sprintf("Get(%q)", key), get(t, b, key), data)
	if info := stat(t, b, key); info.Size != int64(len(data)) {
		t.Fatalf("Stat(%q): size %d; want %d", key, info.Size, len(data))
	}
	if len(data) == 0 {
		return
	}
	off := int64(len(data)) / 3
	n := max(int64(len(data))/3, 1)
	rc, err := b.GetRange(ctx(t), key, off, n)
	if err != nil {
		t.Fatalf("GetRange(%q, %d, %d): %v", key, off, n, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("GetRange(%q, %d, %d): read: %v", key, off, n, err)
	}
	checkContent(t, fmt.Sprintf("GetRange(%q, %d, %d)", key, off, n), got, data[off:off+n])
}

func wantNotFound(t *testing.T, b archive.Bucket, key string) {
	t.Helper()
	c := ctx(t)
	if info, err := b.Stat(c, key); !archive.IsNotFound(err) {
		t.Errorf("Stat(%q) = %+v, %v; want ErrNotFound", key, info, err)
	}
	if rc, err := b.Get(c, key); !archive.IsNotFound(err) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("Get(%q) error = %v; want ErrNotFound", key, err)
	}
	if rc, err := b.GetRange(c, key, 0, 1); !archive.IsNotFound(err) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("GetRange(%q, 0, 1) error = %v; want ErrNotFound", key, err)
	}
}

func testPutGet(t *testing.T, b archive.Bucket) {
	for _, size := range []int{0, 1, 1000, 1<<20 + 7, LargeSize} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			key := fmt.Sprintf("obj/%d.bin", size)
			want := content(1, size)
			before := time.Now().Add(-time.Hour) // generous: the store's clock is not ours
			put(t, b, key, want)
			checkContent(t, "Get", get(t, b, key), want)
			info, err := b.Stat(ctx(t), key)
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			if info.Key != key || info.Size != int64(size) {
				t.Errorf("Stat = %+v; want key %q, size %d", info, key, size)
			}
			if info.ETag == "" {
				t.Errorf("Stat: empty ETag")
			}
			if info.LastModified.Before(before) || info.LastModified.After(time.Now().Add(time.Hour)) {
				t.Errorf("Stat: LastModified %v, want about now", info.LastModified)
			}
		})
	}
}

func testGetRange(t *testing.T, b archive.Bucket) {
	const size = 3<<20 + 11
	data := content(2, size)
	put(t, b, "range", data)
	for _, tc := range []struct {
		name        string
		off, length int64
	}{
		{"start", 0, 10},
		{"first byte", 0, 1},
		{"middle", 1<<20 + 3, 1 << 20},
		{"end", size - 100, 100},
		{"last byte", size - 1, 1},
		{"whole", 0, size},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := b.GetRange(ctx(t), "range", tc.off, tc.length)
			if err != nil {
				t.Fatalf("GetRange(%d, %d): %v", tc.off, tc.length, err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatalf("GetRange(%d, %d): read: %v", tc.off, tc.length, err)
			}
			checkContent(t, fmt.Sprintf("GetRange(%d, %d)", tc.off, tc.length), got, data[tc.off:tc.off+tc.length])
		})
	}
	for _, tc := range []struct {
		name        string
		off, length int64
	}{
		{"at end", size, 1},
		{"past end", size + 100, 10},
		{"overlapping end", size - 5, 10},
		{"negative offset", -1, 10},
		{"zero length", 0, 0},
		{"negative length", 10, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := b.GetRange(ctx(t), "range", tc.off, tc.length)
			if err == nil {
				rc.Close()
			}
			if !errors.Is(err, archive.ErrInvalidRange) {
				t.Fatalf("GetRange(%d, %d) error = %v; want ErrInvalidRange", tc.off, tc.length, err)
			}
		})
	}
	t.Run("empty object", func(t *testing.T) {
		put(t, b, "empty", nil)
		rc, err := b.GetRange(ctx(t), "empty", 0, 1)
		if err == nil {
			rc.Close()
		}
		if !errors.Is(err, archive.ErrInvalidRange) {
			t.Fatalf("GetRange of empty object error = %v; want ErrInvalidRange", err)
		}
	})
}

func testMissing(t *testing.T, b archive.Bucket) {
	wantNotFound(t, b, "missing")
	wantNotFound(t, b, "missing/deeper/key")
	put(t, b, "dir/present", []byte("x"))
	wantNotFound(t, b, "dir") // a "directory" is not an object
	wantNotFound(t, b, "dir/present/below")
}

func testIfNoneMatch(t *testing.T, b archive.Bucket) {
	c := ctx(t)
	first, second := []byte("first version"), []byte("second, longer version")
	if err := b.Put(c, "cond", bytes.NewReader(first), int64(len(first)), archive.PutOptions{IfNoneMatch: true}); err != nil {
		t.Fatalf("Put(IfNoneMatch) of a new key: %v", err)
	}
	err := b.Put(c, "cond", bytes.NewReader(second), int64(len(second)), archive.PutOptions{IfNoneMatch: true})
	if !archive.IsExists(err) {
		t.Fatalf("Put(IfNoneMatch) over an existing key: error %v; want ErrExists", err)
	}
	if archive.IsNotFound(err) {
		t.Errorf("ErrExists error also matches ErrNotFound: %v", err)
	}
	if !strings.Contains(err.Error(), "cond") {
		t.Errorf("error %q does not name the key", err)
	}
	checkContent(t, "content after refused Put", get(t, b, "cond"), first)
	if info, err := b.Stat(c, "cond"); err != nil || info.Size != int64(len(first)) {
		t.Fatalf("Stat after refused Put = %+v, %v; want size %d", info, err, len(first))
	}
	// The empty object counts as existing too.
	put(t, b, "cond-empty", nil)
	if err := b.Put(c, "cond-empty", bytes.NewReader(first), int64(len(first)), archive.PutOptions{IfNoneMatch: true}); !archive.IsExists(err) {
		t.Fatalf("Put(IfNoneMatch) over an empty object: error %v; want ErrExists", err)
	}
}

func testIfNoneMatchLarge(t *testing.T, b archive.Bucket) {
	c := ctx(t)
	first, second := content(3, LargeSize), content(4, LargeSize)
	if err := b.Put(c, "big", bytes.NewReader(first), LargeSize, archive.PutOptions{IfNoneMatch: true}); err != nil {
		t.Fatalf("Put(IfNoneMatch) of a new large key: %v", err)
	}
	if err := b.Put(c, "big", bytes.NewReader(second), LargeSize, archive.PutOptions{IfNoneMatch: true}); !archive.IsExists(err) {
		t.Fatalf("Put(IfNoneMatch) of a large object over an existing key: error %v; want ErrExists", err)
	}
	checkContent(t, "content after refused Put", get(t, b, "big"), first)
}

func testConcurrentIfNoneMatch(t *testing.T, b archive.Bucket) {
	const writers = 8
	c := ctx(t)
	datas := make([][]byte, writers)
	for i := range writers {
		datas[i] = content(uint64(100+i), 64<<10+i)
	}
	oneWriterWins(t, c, b, "race", datas, archive.PutOptions{IfNoneMatch: true}, archive.IsExists, "ErrExists")
}

// oneWriterWins puts datas[i] under key from one goroutine each, all at once, with
// opts, and checks that exactly one Put succeeded, that every other failed with the
// error lost reports (named want), and that the object holds the winner's bytes.
func oneWriterWins(t *testing.T, c context.Context, b archive.Bucket, key string, datas [][]byte, opts archive.PutOptions, lost func(error) bool, want string) {
	t.Helper()
	errs := make([]error, len(datas))
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range datas {
		wg.Go(func() {
			start.Wait()
			errs[i] = b.Put(c, key, bytes.NewReader(datas[i]), int64(len(datas[i])), opts)
		})
	}
	start.Done()
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("writers %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !lost(err):
			t.Errorf("writer %d: error %v; want %s", i, err, want)
		}
	}
	if winner < 0 {
		t.Fatalf("no writer succeeded: %v", errs)
	}
	checkContent(t, fmt.Sprintf("content (winner %d)", winner), get(t, b, key), datas[winner])
}

// testIfMatch: a Put with the current ETag replaces the object; one with an ETag the
// object no longer has fails with ErrPreconditionFailed and changes nothing.
func testIfMatch(t *testing.T, b archive.Bucket) {
	c := ctx(t)
	first, second, third := []byte("first claim"), []byte("second claim"), []byte("a third, longer claim")
	put(t, b, "cas", first)
	old := stat(t, b, "cas")
	if err := b.Put(c, "cas", bytes.NewReader(second), int64(len(second)), archive.PutOptions{IfMatch: old.ETag}); err != nil {
		t.Fatalf("Put(IfMatch) with the current ETag: %v", err)
	}
	checkContent(t, "content after Put(IfMatch)", get(t, b, "cas"), second)
	cur := stat(t, b, "cas")
	if cur.ETag == old.ETag {
		t.Fatalf("ETag %q did not change when the object was replaced", cur.ETag)
	}
	err := b.Put(c, "cas", bytes.NewReader(third), int64(len(third)), archive.PutOptions{IfMatch: old.ETag})
	if !archive.IsPreconditionFailed(err) {
		t.Fatalf("Put(IfMatch) with a stale ETag: error %v; want ErrPreconditionFailed", err)
	}
	if archive.IsExists(err) || archive.IsNotFound(err) {
		t.Errorf("ErrPreconditionFailed error also matches ErrExists or ErrNotFound: %v", err)
	}
	if !strings.Contains(err.Error(), "cas") {
		t.Errorf("error %q does not name the key", err)
	}
	checkContent(t, "content after refused Put(IfMatch)", get(t, b, "cas"), second)
	if after := stat(t, b, "cas"); after.ETag != cur.ETag || after.Size != int64(len(second)) {
		t.Fatalf("Stat after refused Put(IfMatch) = %+v; want ETag %q, size %d", after, cur.ETag, len(second))
	}
	if err := b.Put(c, "cas", bytes.NewReader(third), int64(len(third)), archive.PutOptions{IfMatch: cur.ETag, IfNoneMatch: true}); err == nil {
		t.Fatalf("Put with both IfMatch and IfNoneMatch succeeded")
	}
	checkContent(t, "content after Put with both conditions", get(t, b, "cas"), second)
}

// testIfMatchMissing: a Put with IfMatch never creates an object that is gone.
func testIfMatchMissing(t *testing.T, b archive.Bucket) {
	c := ctx(t)
	data := []byte("resurrected")
	put(t, b, "gone", []byte("short-lived"))
	info := stat(t, b, "gone")
	if err := b.Delete(c, "gone"); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"gone", "never/there"} {
		err := b.Put(c, key, bytes.NewReader(data), int64(len(data)), archive.PutOptions{IfMatch: info.ETag})
		if !archive.IsPreconditionFailed(err) {
			t.Fatalf("Put(IfMatch) of missing key %q: error %v; want ErrPreconditionFailed", key, err)
		}
		wantNotFound(t, b, key)
	}
}

// testConcurrentIfMatch: of writers that all name the object's current ETag, exactly
// one replaces it; the others fail and the object holds the winner's bytes.
func testConcurrentIfMatch(t *testing.T, b archive.Bucket) {
	const writers = 8
	c := ctx(t)
	put(t, b, "cas-race", []byte("the claim everyone read"))
	etag := stat(t, b, "cas-race").ETag
	datas := make([][]byte, writers)
	for i := range writers {
		datas[i] = content(uint64(200+i), 1<<10) // one size: only the ETag tells them apart
	}
	oneWriterWins(t, c, b, "cas-race", datas, archive.PutOptions{IfMatch: etag}, archive.IsPreconditionFailed, "ErrPreconditionFailed")
}

func testOverwrite(t *testing.T, b archive.Bucket) {
	put(t, b, "over", []byte("old"))
	old, err := b.Stat(ctx(t), "over")
	if err != nil {
		t.Fatal(err)
	}
	put(t, b, "over", []byte("new and different"))
	checkContent(t, "after overwrite", get(t, b, "over"), []byte("new and different"))
	now, err := b.Stat(ctx(t), "over")
	if err != nil {
		t.Fatal(err)
	}
	if now.ETag == old.ETag {
		t.Errorf("ETag %q unchanged by an overwrite", now.ETag)
	}
}

func list(t *testing.T, b archive.Bucket, prefix string) []archive.ObjectInfo {
	t.Helper()
	var got []archive.ObjectInfo
	if err := b.List(ctx(t), prefix, func(info archive.ObjectInfo) error {
		got = append(got, info)
		return nil
	}); err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return got
}

func keys(infos []archive.ObjectInfo) []string {
	ks := make([]string, len(infos))
	for i, info := range infos {
		ks[i] = info.Key
	}
	return ks
}

func testList(t *testing.T, b archive.Bucket) {
	all := []string{ // in byte-wise order: '.' < '/' < 'b'
		"list/a.c",
		"list/a/b",
		"list/a/c/d",
		"list/ab",
		"list/b",
		"other/x",
	}
	for i, k := range []int{3, 0, 5, 2, 4, 1} { // put out of order
		put(t, b, all[k], content(uint64(i), 10+k))
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", all},
		{"list/", all[:5]},
		{"list", all[:5]},
		{"list/a", all[:4]},
		{"list/a/", all[1:3]},
		{"list/a/c/d", all[2:3]},
		{"list/b", all[4:5]},
		{"nothing", nil},
		{"lis/", nil},
	} {
		t.Run(strings.ReplaceAll(tc.prefix, "/", "_"), func(t *testing.T) {
			got := list(t, b, tc.prefix)
			if strings.Join(keys(got), " ") != strings.Join(tc.want, " ") {
				t.Fatalf("List(%q) = %q; want %q", tc.prefix, keys(got), tc.want)
			}
			for _, info := range got {
				var idx int
				for i, a := range all {
					if a == info.Key {
						idx = i
					}
				}
				if info.Size != int64(10+idx) {
					t.Errorf("List: %s has size %d; want %d", info.Key, info.Size, 10+idx)
				}
				if info.ETag == "" || info.LastModified.IsZero() {
					t.Errorf("List: %s lacks ETag or LastModified: %+v", info.Key, info)
				}
			}
		})
	}
}

func testListStop(t *testing.T, b archive.Bucket) {
	for i := range 5 {
		put(t, b, fmt.Sprintf("stop/%d", i), []byte{byte(i)})
	}
	stop := errors.New("enough")
	calls := 0
	err := b.List(ctx(t), "stop/", func(archive.ObjectInfo) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("List error = %v; want the callback's error", err)
	}
	if calls != 2 {
		t.Fatalf("callback ran %d times after returning an error on call 2", calls)
	}
}

func testDelete(t *testing.T, b archive.Bucket) {
	c := ctx(t)
	put(t, b, "del/a/b", []byte("x"))
	put(t, b, "del/keep", []byte("y"))
	if err := b.Delete(c, "del/a/b"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantNotFound(t, b, "del/a/b")
	if err := b.Delete(c, "del/a/b"); err != nil {
		t.Fatalf("Delete again: %v; want success (idempotent)", err)
	}
	if err := b.Delete(c, "never/was"); err != nil {
		t.Fatalf("Delete of a key never written: %v; want success", err)
	}
	if got := keys(list(t, b, "del/")); len(got) != 1 || got[0] != "del/keep" {
		t.Fatalf("List after Delete = %q; want [del/keep]", got)
	}
	// The key can be written again, also conditionally.
	if err := b.Put(c, "del/a/b", strings.NewReader("z"), 1, archive.PutOptions{IfNoneMatch: true}); err != nil {
		t.Fatalf("Put(IfNoneMatch) after Delete: %v", err)
	}
	checkContent(t, "after re-Put", get(t, b, "del/a/b"), []byte("z"))
}

func testKeysWithSlashes(t *testing.T, b archive.Bucket) {
	key := "topics/orders.v2/00000000000000000042.seg"
	data := content(5, 4096)
	put(t, b, key, data)
	checkContent(t, "Get", get(t, b, key), data)
	info, err := b.Stat(ctx(t), key)
	if err != nil || info.Key != key {
		t.Fatalf("Stat = %+v, %v; want key %q", info, err, key)
	}
	if got := keys(list(t, b, "topics/")); len(got) != 1 || got[0] != key {
		t.Fatalf("List = %q; want [%q]", got, key)
	}
}

func testInvalidKeys(t *testing.T, b archive.Bucket) {
	c := ctx(t)
	for _, key := range []string{"", "/abs", "trailing/", "a//b", "../up", "a/../b", "./a", "a/.", "nul\x00", `back\slash`} {
		err := b.Put(c, key, strings.NewReader("x"), 1, archive.PutOptions{})
		if !errors.Is(err, archive.ErrInvalidKey) {
			t.Errorf("Put(%q) error = %v; want ErrInvalidKey", key, err)
		}
		if _, err := b.Stat(c, key); !errors.Is(err, archive.ErrInvalidKey) {
			t.Errorf("Stat(%q) error = %v; want ErrInvalidKey", key, err)
		}
	}
	if got := list(t, b, ""); len(got) != 0 {
		t.Fatalf("invalid keys stored something: %q", keys(got))
	}
}

// errReader fails after n bytes.
type errReader struct {
	r   io.Reader
	n   int
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, e.err
	}
	if len(p) > e.n {
		p = p[:e.n]
	}
	n, err := e.r.Read(p)
	e.n -= n
	return n, err
}

// onlyReader hides any io.Seeker or io.ReaderAt, so backends cannot look ahead.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func testSizeMismatch(t *testing.T, b archive.Bucket) {
	for _, tc := range []struct {
		name     string
		announce int64
		actual   int
	}{
		{"short", 100, 50},
		{"long", 50, 100},
		{"empty announced", 0, 10},
		{"short large", LargeSize, 9 << 20},
		{"long large", LargeSize, LargeSize + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, cond := range []bool{false, true} {
				key := fmt.Sprintf("mismatch-%s-%v", strings.ReplaceAll(tc.name, " ", "-"), cond)
				data := content(6, tc.actual)
				err := b.Put(ctx(t), key, onlyReader{bytes.NewReader(data)}, tc.announce, archive.PutOptions{IfNoneMatch: cond})
				if !errors.Is(err, archive.ErrSizeMismatch) {
					t.Fatalf("Put of %d bytes announced as %d (IfNoneMatch %v): error %v; want ErrSizeMismatch", tc.actual, tc.announce, cond, err)
				}
				wantNotFound(t, b, key)
			}
		})
	}
}

func testReaderError(t *testing.T, b archive.Bucket) {
	boom := errors.New("disk on fire")
	for _, size := range []int{1000, LargeSize} {
		key := fmt.Sprintf("broken-%d", size)
		r := &errReader{r: bytes.NewReader(content(7, size)), n: size / 2, err: boom}
		err := b.Put(ctx(t), key, r, int64(size), archive.PutOptions{})
		if !errors.Is(err, boom) {
			t.Fatalf("Put from a failing reader (%d bytes): error %v; want the reader's error", size, err)
		}
		wantNotFound(t, b, key)
	}
}

func testCanceled(t *testing.T, b archive.Bucket) {
	put(t, b, "present", []byte("x"))
	c, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.Put(c, "canceled", strings.NewReader("x"), 1, archive.PutOptions{}); err == nil {
		t.Errorf("Put with a canceled context succeeded")
	}
	if rc, err := b.Get(c, "present"); err == nil {
		rc.Close()
		t.Errorf("Get with a canceled context succeeded")
	}
	if _, err := b.Stat(c, "present"); err == nil {
		t.Errorf("Stat with a canceled context succeeded")
	}
	if err := b.List(c, "", func(archive.ObjectInfo) error { return nil }); err == nil {
		t.Errorf("List with a canceled context succeeded")
	}
	wantNotFound(t, b, "canceled")
}
