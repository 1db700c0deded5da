package tiering

import (
	"fmt"
	"strconv"
	"strings"
)

// The bucket layout. Every key floe writes to or reads from the archive is built and
// parsed here, and nowhere else; the layout is an external contract (operators list
// and copy these keys, floe restore rebuilds a cluster from them), so it changes only
// with a migration. Keys are relative to the archive's prefix (archive.WithPrefix):
//
//	<prefix>/
//	  topics/                                                   TopicsPrefix
//	    <topic>/                                                TopicPrefix(topic)
//	      <segment id, 20 digits>-<leader term, 20 digits>.seg  ObjectKey, ParseObjectKey
//	  meta/
//	    cluster.json                                            ClaimKey
//	    snapshots/                                              MetaSnapshotPrefix
//	      <raft index, 20 digits>.json                          MetaSnapshotKey, ParseMetaSnapshotKey
//
//   - Segment objects: one per sealed segment, in the seekable format (package
//     archive/seekable), written by the Uploader. The leader term is the Raft index of
//     the command that made the node leader of the segment, so a deposed leader's late
//     upload lands under another key and is never read. Numbers are zero-padded to 20
//     digits (the width of the largest uint64), so keys sort as their numbers do: a
//     topic's objects list by segment id, then term.
//   - The claim: the cluster that archives under this prefix (package node).
//   - Metadata snapshots: the whole metadata state, written by the Raft leader (package
//     node) and read back by RebuildState; each names its cluster.
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

	// objectSuffix ends every segment object's key.
	objectSuffix = ".seg"
	// metaSnapshotSuffix ends every metadata snapshot's key.
	metaSnapshotSuffix = ".json"
	// keyDigits is the width every number in a key is zero-padded to.
	keyDigits = 20
)

// TopicPrefix is the prefix of a topic's segment objects, ending in "/"; with topic
// empty, TopicsPrefix (every topic's). It does not validate topic.
func TopicPrefix(topic string) string {
	if topic == "" {
		return TopicsPrefix
	}
	return TopicsPrefix + topic + "/"
}

// ObjectKey is the key of a sealed segment's object. topic must be a valid topic name
// (topicname.Validate): non-empty, without "/".
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
// == key whenever ok is true. The topic is only checked to be non-empty.
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
