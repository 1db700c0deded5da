package tiering

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"floe/archive"
	"floe/topicname"
)

// The bucket layout. Every key floe writes to or reads from the archive is built and
// parsed here, and nowhere else; the layout is an external contract (operators list
// and copy these keys, floe restore rebuilds a cluster from them), so it changes only
// with a migration. Keys are relative to the archive's prefix (archive.WithPrefix):
//
//	<prefix>/
//	  topics/                                                   TopicsPrefix
//	    <topic key>/                                            TopicPrefix(key)
//	      <segment id, 20 digits>-<leader term, 20 digits>.seg  ObjectKey, ParseObjectKey
//	  meta/
//	    cluster.json                                            ClaimKey
//	    snapshots/                                              MetaSnapshotPrefix
//	      <raft index, 20 digits>.json                          MetaSnapshotKey, ParseMetaSnapshotKey
//	    tombstones/                                             TombstonePrefix
//	      <topic key>                                           TombstoneKey, ParseTombstoneKey (JSON)
//
//   - Topic keys: a topic's objects are under its key (topicname.Key), which names
//     one incarnation of it: "<name>@<id>", or the bare name for the topics created
//     before incarnation ids (incarnation 0). A topic deleted and created again
//     under its name writes under another key, so nothing of the old one is read
//     as the new one's.
//   - Segment objects: one per sealed segment, in the seekable format (package
//     archive/seekable), written by the Uploader. The leader term is the Raft index of
//     the command that made the node leader of the segment, so a deposed leader's late
//     upload lands under another key and is never read. Numbers are zero-padded to 20
//     digits (the width of the largest uint64), so keys sort as their numbers do: a
//     topic's objects list by segment id, then term.
//   - The claim: the cluster that archives under this prefix (package node).
//   - Metadata snapshots: the whole metadata state, written by the Raft leader (package
//     node) and read back by RebuildState; each names its cluster.
//   - Tombstones: one per deleted topic (Tombstone), written by the Raft leader
//     before it deletes the topic's objects, and kept: a restore from a snapshot
//     taken before the deletion does not bring the topic back.
//
// The sweeper, restore and the archive commands list TopicsPrefix and skip every key
// ParseObjectKey refuses: other objects under the prefix are never read nor deleted.

const (
	// TopicsPrefix is where the segment objects are, one directory per topic.
	TopicsPrefix = "topics/"
	// ClaimKey is the claim of the cluster that archives under the prefix.
	ClaimKey = "meta/cluster.json"
	// MetaSnapshotPrefix is where the metadata snapshots are: MetaSnapshotKey.
	MetaSnapshotPrefix = "meta/snapshots/"
	// TombstonePrefix is where the tombstones of deleted topics are: TombstoneKey.
	TombstonePrefix = "meta/tombstones/"

	// objectSuffix ends every segment object's key.
	objectSuffix = ".seg"
	// metaSnapshotSuffix ends every metadata snapshot's key.
	metaSnapshotSuffix = ".json"
	// keyDigits is the width every number in a key is zero-padded to.
	keyDigits = 20
)

// TopicPrefix is the prefix of the segment objects of a topic key, ending in "/";
// with key empty, TopicsPrefix (every topic's). It does not validate key.
func TopicPrefix(key string) string {
	if key == "" {
		return TopicsPrefix
	}
	return TopicsPrefix + key + "/"
}

// ObjectKey is the key of a sealed segment's object. topic must be a valid topic key
// (topicname.ValidateKey): non-empty, without "/".
func ObjectKey(topic string, segment, term uint64) string {
	return fmt.Sprintf("%s%s/%0*d-%0*d%s", TopicsPrefix, topic, keyDigits, segment, keyDigits, term, objectSuffix)
}

// HasObjectSuffix reports whether s ends like a segment object's key (".seg"): how
// commands that take a key or a topic tell them apart. It checks nothing else.
func HasObjectSuffix(s string) bool {
	return strings.HasSuffix(s, objectSuffix)
}

// ParseObjectKey is the inverse of ObjectKey: ok is false for any key ObjectKey does
// not build (another object under the prefix), and ObjectKey(topic, segment, term)
// == key whenever ok is true. The topic (a topic key) is only checked to be non-empty.
func ParseObjectKey(key string) (topic string, segment, term uint64, ok bool) {
	rest, found := strings.CutPrefix(key, TopicsPrefix)
	if !found {
		return "", 0, 0, false
	}
	topic, name, found := strings.Cut(rest, "/")
	if !found || topic == "" {
		return "", 0, 0, false
	}
	name, found = strings.CutSuffix(name, objectSuffix)
	if !found || len(name) != 2*keyDigits+1 || name[keyDigits] != '-' {
		return "", 0, 0, false
	}
	seg, err1 := strconv.ParseUint(name[:keyDigits], 10, 64)
	trm, err2 := strconv.ParseUint(name[keyDigits+1:], 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, 0, false
	}
	return topic, seg, trm, true
}

// MetaSnapshotKey is the key of the metadata snapshot at a Raft index.
func MetaSnapshotKey(index uint64) string {
	return fmt.Sprintf("%s%0*d%s", MetaSnapshotPrefix, keyDigits, index, metaSnapshotSuffix)
}

// ParseMetaSnapshotKey is the inverse of MetaSnapshotKey: it returns the Raft index of
// a snapshot key, and ok false for any key MetaSnapshotKey does not build.
func ParseMetaSnapshotKey(key string) (index uint64, ok bool) {
	name, found := strings.CutPrefix(key, MetaSnapshotPrefix)
	if !found || len(name) != keyDigits+len(metaSnapshotSuffix) || !strings.HasSuffix(name, metaSnapshotSuffix) {
		return 0, false
	}
	i, err := strconv.ParseUint(name[:keyDigits], 10, 64)
	if err != nil {
		return 0, false
	}
	return i, true
}

// TombstoneKey is the key of the tombstone of a deleted topic key: the key itself
// under TombstonePrefix, with no suffix, so that the longest topic key
// (topicname.MaxKeyLen) is still one path element a file system takes.
func TombstoneKey(topic string) string {
	return TombstonePrefix + topic
}

// ParseTombstoneKey is the inverse of TombstoneKey: the topic key a tombstone's key
// names, and ok false for any key that is not a tombstone's of a valid topic key.
func ParseTombstoneKey(key string) (topic string, ok bool) {
	name, found := strings.CutPrefix(key, TombstonePrefix)
	if !found {
		return "", false
	}
	if topicname.ValidateKey(name) != nil {
		return "", false
	}
	return name, true
}

// Tombstone is the content of a deleted topic's tombstone object: JSON, for
// operators as much as for floe restore.
type Tombstone struct {
	// Topic is the deleted topic's key; Name and ID its parts.
	Topic string `json:"topic"`
	Name  string `json:"name"`
	ID    uint64 `json:"id"`
	// DeletedUnixMS is when it was deleted, Index the Raft index of the deletion,
	// ClusterID the cluster it was deleted in.
	DeletedUnixMS int64  `json:"deleted_unix_ms"`
	Index         uint64 `json:"index"`
	ClusterID     string `json:"cluster_id"`
}

// ListTopicObjects calls fn for the objects under TopicsPrefix that belong to topic:
// with topic empty, every object there; with a key that names an incarnation
// ("orders@7"), every object under that incarnation's prefix; with a bare name, every
// object under the prefix of any incarnation of that name (the live one, deleted ones
// not purged yet, and incarnation 0), in key order. Objects that are not segment
// objects are passed too: whoever lists a topic sees what else is in its place. An
// invalid topic is an error wrapping topicname.ErrInvalid.
func ListTopicObjects(ctx context.Context, b archive.Bucket, topic string, fn func(archive.ObjectInfo) error) error {
	if topic == "" {
		return b.List(ctx, TopicsPrefix, fn)
	}
	name, id, err := topicname.SplitKey(topic)
	if err != nil {
		return err
	}
	if id != 0 {
		return b.List(ctx, TopicPrefix(topic), fn)
	}
	return b.List(ctx, TopicsPrefix+name, func(o archive.ObjectInfo) error {
		dir, _, found := strings.Cut(strings.TrimPrefix(o.Key, TopicsPrefix), "/")
		if !found || topicname.ValidateKey(dir) != nil || topicname.NameOf(dir) != name {
			return nil // another topic, whose name starts with name
		}
		return fn(o)
	})
}
