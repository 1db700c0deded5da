package tiering

import (
	"bytes"
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"floe/archive"
	"floe/archive/fs"
	"floe/topicname"
)

// The layout is an external contract: these are the literal keys operators see and
// floe restore reads. A change here needs a migration, not a test update.
func TestLayoutKeys(t *testing.T) {
	for _, tc := range []struct {
		name, got, want string
	}{
		{"topics prefix", TopicsPrefix, "topics/"},
		{"claim", ClaimKey, "meta/cluster.json"},
		{"snapshots prefix", MetaSnapshotPrefix, "meta/snapshots/"},
		{"every topic", TopicPrefix(""), "topics/"},
		{"one topic", TopicPrefix("orders.eu"), "topics/orders.eu/"},
		{"object", ObjectKey("orders.eu", 12, 345), "topics/orders.eu/00000000000000000012-00000000000000000345.seg"},
		{"object zero", ObjectKey("t", 0, 0), "topics/t/00000000000000000000-00000000000000000000.seg"},
		{"object max", ObjectKey("t", math.MaxUint64, math.MaxUint64), "topics/t/18446744073709551615-18446744073709551615.seg"},
		{"snapshot", MetaSnapshotKey(1001), "meta/snapshots/00000000000000001001.json"},
		{"snapshot zero", MetaSnapshotKey(0), "meta/snapshots/00000000000000000000.json"},
		{"snapshot max", MetaSnapshotKey(math.MaxUint64), "meta/snapshots/18446744073709551615.json"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestObjectKeyRoundTrip(t *testing.T) {
	k := ObjectKey("orders.eu", 12, 345)
	if k != "topics/orders.eu/00000000000000000012-00000000000000000345.seg" {
		t.Fatalf("key %q", k)
	}
	topic, seg, term, ok := ParseObjectKey(k)
	if !ok || topic != "orders.eu" || seg != 12 || term != 345 {
		t.Fatalf("parse = %q %d %d %v", topic, seg, term, ok)
	}
	for _, bad := range []string{"", "topics/", "topics/t/1.seg", "meta/x", "topics/t/00000000000000000012-0000000000000000034x.seg"} {
		if _, _, _, ok := ParseObjectKey(bad); ok {
			t.Errorf("ParseObjectKey(%q) ok", bad)
		}
	}
}

// Every key the builders make parses back to what built it, lies under its prefix,
// and is refused by the other parser.
func TestLayoutRoundTrip(t *testing.T) {
	longest := strings.Repeat("x", topicname.MaxLen)
	if err := topicname.Validate(longest); err != nil {
		t.Fatal(err)
	}
	nums := []uint64{0, 1, 9, 10, 12345, 1 << 32, math.MaxInt64, math.MaxUint64 - 1, math.MaxUint64}
	for _, topic := range []string{"t", "orders.eu", "A-z_0.9", "..x", longest} {
		for _, seg := range nums {
			for _, term := range nums {
				k := ObjectKey(topic, seg, term)
				gt, gs, gr, ok := ParseObjectKey(k)
				if !ok || gt != topic || gs != seg || gr != term {
					t.Fatalf("ParseObjectKey(ObjectKey(%q, %d, %d) = %q) = %q, %d, %d, %v", topic, seg, term, k, gt, gs, gr, ok)
				}
				if !strings.HasPrefix(k, TopicPrefix(topic)) || !strings.HasPrefix(k, TopicsPrefix) || !HasObjectSuffix(k) {
					t.Fatalf("%q: not under %q, or no object suffix", k, TopicPrefix(topic))
				}
				if _, ok := ParseMetaSnapshotKey(k); ok {
					t.Fatalf("ParseMetaSnapshotKey(%q) ok", k)
				}
			}
		}
	}
	for _, index := range nums {
		k := MetaSnapshotKey(index)
		got, ok := ParseMetaSnapshotKey(k)
		if !ok || got != index {
			t.Fatalf("ParseMetaSnapshotKey(MetaSnapshotKey(%d) = %q) = %d, %v", index, k, got, ok)
		}
		if !strings.HasPrefix(k, MetaSnapshotPrefix) {
			t.Fatalf("%q not under %q", k, MetaSnapshotPrefix)
		}
		if _, _, _, ok := ParseObjectKey(k); ok {
			t.Fatalf("ParseObjectKey(%q) ok", k)
		}
	}
	if _, _, _, ok := ParseObjectKey(ClaimKey); ok {
		t.Errorf("ParseObjectKey(%q) ok", ClaimKey)
	}
	if _, ok := ParseMetaSnapshotKey(ClaimKey); ok {
		t.Errorf("ParseMetaSnapshotKey(%q) ok", ClaimKey)
	}
}

// Keys list (byte-wise, as every archive backend lists them) in the order of their
// numbers: a topic's objects by segment id, then term; snapshots by Raft index. The
// restore and the snapshot pruning rely on it.
func TestLayoutKeysSortAsNumbers(t *testing.T) {
	type st struct{ seg, term uint64 }
	ordered := []st{{0, 0}, {0, 7}, {1, 0}, {9, 100}, {10, 2}, {100, 1}, {1 << 40, 0}, {math.MaxUint64, 0}, {math.MaxUint64, math.MaxUint64}}
	var objs, snaps []string
	for _, o := range ordered {
		objs = append(objs, ObjectKey("t", o.seg, o.term))
		snaps = append(snaps, MetaSnapshotKey(o.seg))
	}
	if !slices.IsSorted(objs) {
		t.Errorf("object keys not in byte order of (segment, term): %q", objs)
	}
	if !slices.IsSorted(snaps) {
		t.Errorf("snapshot keys not in byte order of index: %q", snaps)
	}
}

func TestParseObjectKeyRejects(t *testing.T) {
	const d20 = "00000000000000000001"
	for _, tc := range []struct{ name, key string }{
		{"empty", ""},
		{"prefix only", "topics/"},
		{"topic only", "topics/t/"},
		{"empty topic", "topics//" + d20 + "-" + d20 + ".seg"},
		{"short numbers", "topics/t/1-1.seg"},
		{"one number", "topics/t/" + d20 + ".seg"},
		{"no suffix", "topics/t/" + d20 + "-" + d20},
		{"other suffix", "topics/t/" + d20 + "-" + d20 + ".json"},
		{"trailing text", "topics/t/" + d20 + "-" + d20 + ".seg.tmp"},
		{"bad separator", "topics/t/" + d20 + "_" + d20 + ".seg"},
		{"letter in term", "topics/t/" + d20 + "-0000000000000000034x.seg"},
		{"sign", "topics/t/+0000000000000000001-" + d20 + ".seg"},
		{"space", "topics/t/ 0000000000000000001-" + d20 + ".seg"},
		{"segment overflow", "topics/t/18446744073709551616-" + d20 + ".seg"},
		{"term overflow", "topics/t/" + d20 + "-99999999999999999999.seg"},
		{"nested directory", "topics/t/u/" + d20 + "-" + d20 + ".seg"},
		{"leading slash", "/topics/t/" + d20 + "-" + d20 + ".seg"},
		{"with the bucket prefix", "floe/topics/t/" + d20 + "-" + d20 + ".seg"},
		{"upper case", "TOPICS/t/" + d20 + "-" + d20 + ".seg"},
		{"claim", ClaimKey},
		{"snapshot", MetaSnapshotKey(1)},
		{"not ours", "meta/x"},
	} {
		if topic, seg, term, ok := ParseObjectKey(tc.key); ok {
			t.Errorf("%s: ParseObjectKey(%q) = %q, %d, %d, ok", tc.name, tc.key, topic, seg, term)
		}
	}
}

func TestParseMetaSnapshotKeyRejects(t *testing.T) {
	for _, tc := range []struct{ name, key string }{
		{"empty", ""},
		{"prefix only", MetaSnapshotPrefix},
		{"short index", "meta/snapshots/1.json"},
		{"long index", "meta/snapshots/000000000000000000001.json"},
		{"no suffix", "meta/snapshots/00000000000000000001"},
		{"other suffix", "meta/snapshots/00000000000000000001.jsn0"},
		{"trailing text", "meta/snapshots/00000000000000000001.json.tmp"},
		{"letter", "meta/snapshots/0000000000000000000x.json"},
		{"sign", "meta/snapshots/+0000000000000000001.json"},
		{"overflow", "meta/snapshots/18446744073709551616.json"},
		{"other directory", "meta/snapshot/00000000000000000001.json"},
		{"leading slash", "/meta/snapshots/00000000000000000001.json"},
		{"with the bucket prefix", "floe/meta/snapshots/00000000000000000001.json"},
		{"claim", ClaimKey},
		{"object", ObjectKey("t", 1, 1)},
	} {
		if index, ok := ParseMetaSnapshotKey(tc.key); ok {
			t.Errorf("%s: ParseMetaSnapshotKey(%q) = %d, ok", tc.name, tc.key, index)
		}
	}
}

// ParseObjectKey accepts exactly the keys ObjectKey builds: whatever it accepts is
// rebuilt byte for byte from what it returned.
func FuzzParseObjectKey(f *testing.F) {
	for _, k := range []string{
		ObjectKey("orders.eu", 12, 345), ObjectKey("t", 0, 0), ObjectKey("t", math.MaxUint64, math.MaxUint64),
		"topics/t/18446744073709551616-00000000000000000001.seg", "topics//00000000000000000001-00000000000000000001.seg",
		TopicsPrefix, ClaimKey, MetaSnapshotKey(7), "",
	} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		topic, seg, term, ok := ParseObjectKey(key)
		if !ok {
			if topic != "" || seg != 0 || term != 0 {
				t.Fatalf("ParseObjectKey(%q) refused but returned %q, %d, %d", key, topic, seg, term)
			}
			return
		}
		if topic == "" || strings.Contains(topic, "/") {
			t.Fatalf("ParseObjectKey(%q): topic %q", key, topic)
		}
		if got := ObjectKey(topic, seg, term); got != key {
			t.Fatalf("ParseObjectKey(%q) = %q, %d, %d, which builds %q", key, topic, seg, term, got)
		}
		if _, ok := ParseMetaSnapshotKey(key); ok {
			t.Fatalf("%q parses as both an object and a snapshot key", key)
		}
	})
}

// ParseMetaSnapshotKey accepts exactly the keys MetaSnapshotKey builds.
func FuzzParseMetaSnapshotKey(f *testing.F) {
	for _, k := range []string{
		MetaSnapshotKey(0), MetaSnapshotKey(1001), MetaSnapshotKey(math.MaxUint64),
		"meta/snapshots/18446744073709551616.json", "meta/snapshots/1.json",
		MetaSnapshotPrefix, ClaimKey, ObjectKey("t", 1, 2), "",
	} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		index, ok := ParseMetaSnapshotKey(key)
		if !ok {
			if index != 0 {
				t.Fatalf("ParseMetaSnapshotKey(%q) refused but returned %d", key, index)
			}
			return
		}
		if got := MetaSnapshotKey(index); got != key {
			t.Fatalf("ParseMetaSnapshotKey(%q) = %d, which builds %q", key, index, got)
		}
	})
}

// ParseTombstoneKey accepts exactly the keys TombstoneKey builds of valid topic keys.
func FuzzParseTombstoneKey(f *testing.F) {
	for _, k := range []string{
		TombstoneKey("orders"), TombstoneKey("orders@12"), "meta/tombstones/a@0", "meta/tombstones/", "meta/tombstones/a.json",
		"meta/tombstones/a/b", TombstonePrefix, ClaimKey, ObjectKey("t", 1, 2), "",
	} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		topic, ok := ParseTombstoneKey(key)
		if !ok {
			return
		}
		if got := TombstoneKey(topic); got != key {
			t.Fatalf("ParseTombstoneKey(%q) = %q, which builds %q", key, topic, got)
		}
		if _, _, _, isObject := ParseObjectKey(key); isObject {
			t.Fatalf("%q parses as a tombstone and as a segment object", key)
		}
	})
}

// TestLongestKeyFitsAFileSystem: the longest topic key (a name of topicname.MaxLen
// characters, an id of 5 digits) names a directory, a segment object and a tombstone
// on a file:// archive, whose path elements are file names.
func TestLongestKeyFitsAFileSystem(t *testing.T) {
	key := topicname.Key(strings.Repeat("a", topicname.MaxLen), 99999)
	if len(key) != topicname.MaxKeyLen || topicname.ValidateKey(key) != nil {
		t.Fatalf("the longest key is %d bytes (valid: %v), want %d", len(key), topicname.ValidateKey(key), topicname.MaxKeyLen)
	}
	if err := topicname.ValidateKey(key + "0"); err == nil {
		t.Fatal("a key over MaxKeyLen is valid")
	}
	b, err := fs.Open(t.TempDir(), archive.Options{CreateBucket: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, k := range []string{ObjectKey(key, 1, 7), TombstoneKey(key)} {
		if err := b.Put(ctx, k, bytes.NewReader([]byte("x")), 1, archive.PutOptions{}); err != nil {
			t.Fatalf("put %d-byte key: %v", len(k), err)
		}
	}
	if got, ok := ParseTombstoneKey(TombstoneKey(key)); !ok || got != key {
		t.Fatalf("ParseTombstoneKey of the longest key = %q, %v", got, ok)
	}
}
