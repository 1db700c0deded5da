package tiering

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"sort"
	"time"

	"floe/archive"
	"floe/archive/seekable"
	"floe/meta"
	"floe/topicname"
)

// RestoredTopic says what RebuildState made of one topic.
type RestoredTopic struct {
	Name string `json:"name"`
	// ID is the topic's incarnation id (kept from the old cluster).
	ID uint64 `json:"id"`
	// Kept are the segments whose objects the snapshot referenced (and exist);
	// Recovered those found from their objects alone (archived after the snapshot).
	Kept      int `json:"kept"`
	Recovered int `json:"recovered"`
	// Expired counts the segments that end up expired: those the snapshot had
	// expired, and those with no object before every kept segment (Skipped says why).
	Expired int `json:"expired"`
	// Lost counts the segments with no copy anywhere after a kept segment: their
	// offsets stay part of the topic (later offsets keep their values, new entries
	// never take them) but cannot be read; GET moves past them.
	Lost int `json:"lost"`
	// Skipped lists every segment the restore could not keep, and every object it
	// did not use, with the reason.
	Skipped []SkippedSegment `json:"skipped,omitempty"`
	// Start and End are the offsets kept: [Start, End). New writes go on from End.
	Start uint64 `json:"start"`
	End   uint64 `json:"end"`
	// Cursor is the shared GET cursor: moved past expired and lost segments, and back
	// to End if it was past it.
	Cursor uint64 `json:"cursor"`
}

// SkippedSegment is a segment (or one of its objects) that a restore did not keep.
type SkippedSegment struct {
	Segment uint64 `json:"segment"`
	// Key is the object skipped, if the reason is about one object.
	Key    string `json:"key,omitempty"`
	Reason string `json:"reason"`
}

// Reasons a restore skips a segment. A segment whose object is present, verifies and
// continues the topic's offsets is never skipped.
const (
	SkipExpired   = "no object, before every kept segment: expired by retention after the snapshot; the start offset moves past it"
	SkipGoneFront = "no copy anywhere (its leader's disk held the only one), before every kept segment: the start offset moves past it"
	SkipLost      = "no copy anywhere (its leader's disk held the only one), after a kept segment: its offsets stay in the topic, unreadable"
	SkipAbandoned = "no object, and the next segment starts at its base: recover-segment abandoned it after the snapshot (sealed empty)"
	SkipTail      = "no copy anywhere (active on its leader's disk, its extent unknown): the topic ends before it and new writes take its offsets"
	SkipBadObject = "object unusable for this segment"
)

// RestoreReport describes a rebuilt state.
type RestoreReport struct {
	Snapshot  string `json:"snapshot"`
	ClusterID string `json:"cluster_id"`
	// Index is the Raft index the rebuilt state starts at: above every Raft index the
	// old cluster used, so new leader terms in object keys never meet old keys.
	Index  uint64          `json:"index"`
	Topics []RestoredTopic `json:"topics"`
	// Deleted are the topics the bucket holds objects of, or the snapshot names,
	// that the restore did not bring back because they were deleted.
	Deleted []DeletedTopic `json:"deleted,omitempty"`
}

// DeletedTopic is a topic (one incarnation, by key) a restore left out as deleted.
type DeletedTopic struct {
	Topic  string `json:"topic"`
	Reason string `json:"reason"`
}

// Reasons a restore leaves a topic out.
const (
	DropTombstone  = "deleted: its tombstone is in the bucket"
	DropRecorded   = "deleted before the snapshot"
	DropSuperseded = "deleted: a later topic of the same name has objects in the bucket"
)

// listTombstones returns the tombstones in the bucket, by topic key. A tombstone
// that does not decode still counts: its key says which topic was deleted.
func listTombstones(ctx context.Context, b archive.Bucket) (map[string]Tombstone, error) {
	out := map[string]Tombstone{}
	err := b.List(ctx, TombstonePrefix, func(o archive.ObjectInfo) error {
		key, ok := ParseTombstoneKey(o.Key)
		if !ok {
			return nil
		}
		name, id, _ := topicname.SplitKey(key)
		t := Tombstone{Topic: key, Name: name, ID: id}
		if rc, err := b.Get(ctx, o.Key); err == nil {
			var got Tombstone
			if json.NewDecoder(io.LimitReader(rc, 1<<16)).Decode(&got) == nil && got.Topic == key {
				t = got
			}
			rc.Close()
		} else if !errors.Is(err, archive.ErrNotFound) {
			return err
		}
		out[key] = t
		return nil
	})
	return out, err
}

// dropDeleted takes out of the rebuild (st's topics, and the objects found) every
// topic that was deleted: those with a tombstone, those the snapshot records as
// deleted or knows to be dead (meta.State.Dead), and each incarnation of a name
// below the highest one found (a name has one live incarnation at a time, and ids
// grow). Each is recorded as a deletion in st, so that the restored cluster's
// leader deletes what is left of its objects (and writes its tombstone), and
// LastTopicID is raised above every id seen, so that no id is given again.
func dropDeleted(st *meta.State, objects map[string]map[uint64][]archive.ObjectInfo, tombs map[string]Tombstone, index uint64, now time.Time) []DeletedTopic {
	var out []DeletedTopic
	newest := map[string]uint64{} // name -> highest incarnation id not deleted
	// The ids seen raise LastTopicID once every key is judged: State.Dead, which
	// judges them, takes an id above it for one created after the snapshot.
	maxID := st.LastTopicID
	defer func() { st.LastTopicID = maxID }()
	seen := func(key string) {
		name, id, err := topicname.SplitKey(key)
		if err != nil {
			return
		}
		maxID = max(maxID, id)
		if _, gone := tombs[key]; gone {
			return
		}
		if cur, ok := newest[name]; !ok || id > cur {
			newest[name] = id
		}
	}
	for key := range st.Topics {
		seen(key)
	}
	for key := range objects {
		if _, ok := st.Topics[key]; !ok && !st.Dead(key) && st.Deleted[key] == nil {
			seen(key)
		}
	}
	for key := range tombs {
		seen(key)
	}
	tombstoned := func(key string) bool {
		_, ok := tombs[key]
		return ok
	}
	drop := func(key, reason string) {
		name, id, _ := topicname.SplitKey(key)
		delete(st.Topics, key)
		delete(objects, key)
		if d := st.Deleted[key]; d == nil || d.Purged {
			st.Deleted[key] = &meta.Deletion{Name: name, ID: id, DeletedUnixMS: now.UnixMilli(), Index: index}
		}
		out = append(out, DeletedTopic{Topic: key, Reason: reason})
	}
	for key := range objects {
		name, id, err := topicname.SplitKey(key)
		switch {
		case err != nil:
			delete(objects, key) // not a topic key: not ours to restore
		case tombstoned(key):
			drop(key, DropTombstone)
		case st.Topics[key] == nil && (st.Dead(key) || st.Deleted[key] != nil):
			drop(key, DropRecorded)
		case id < newest[name]:
			drop(key, DropSuperseded)
		}
	}
	for key, t := range st.Topics {
		switch {
		case tombstoned(key):
			drop(key, DropTombstone)
		case t.ID < newest[t.Name]:
			drop(key, DropSuperseded)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out
}

// RebuildState rebuilds a cluster's metadata from its bucket alone (floe restore
// --cluster): the newest metadata snapshot of clusterID (of the only cluster whose
// snapshots the bucket holds, if clusterID is empty), then the segment objects
// written after it.
//
// Every segment whose object is present, verifies and continues its topic's offsets
// is kept. A segment with no copy anywhere is expired if no kept segment precedes it
// (retention deleted its object after the snapshot, or it was lost: the start offset
// moves past it either way), and marked Lost after a kept segment (its offsets stay,
// so later offsets keep their values and are never given to new entries). The topic
// ends before the first segment with no copy whose extent is unknown (the snapshot's
// active segment: its data was on its leader's disk only). Each topic gets a new
// active segment led by nodeID, where its entries end. Every segment not kept is in
// the report with its reason.
func RebuildState(ctx context.Context, b archive.Bucket, clusterID string, nodeID uint64, now time.Time) (*meta.State, *RestoreReport, error) {
	return RebuildStateProgress(ctx, b, clusterID, nodeID, now, nil)
}

// RestoreProgress is told how far a rebuild is: of the segment objects the bucket
// holds (and their bytes), those of the topics rebuilt so far.
type RestoreProgress func(doneObjects, totalObjects int, doneBytes, totalBytes int64)

// RebuildStateProgress is RebuildState telling progress (may be nil) after the
// listing and after each topic.
func RebuildStateProgress(ctx context.Context, b archive.Bucket, clusterID string, nodeID uint64, now time.Time, progress RestoreProgress) (*meta.State, *RestoreReport, error) {
	if progress == nil {
		progress = func(int, int, int64, int64) {}
	}
	newest, snap, err := NewestMetaSnapshot(ctx, b, clusterID)
	if err != nil {
		return nil, nil, err
	}
	st, err := meta.DecodeState(snap.State)
	if err != nil {
		return nil, nil, fmt.Errorf("tiering: %s: %w", newest, err)
	}
	// Every node comes back with a new data dir: none of the earlier ones is
	// compared with (an incarnation would make the restored segments lost on the seed).
	for _, n := range st.Nodes {
		n.Incarnation, n.Incarnated = 0, 0
	}

	// Every segment object in the bucket, by topic and segment, newest term first.
	objects := map[string]map[uint64][]archive.ObjectInfo{}
	index := snap.RaftIndex
	if err := b.List(ctx, TopicsPrefix, func(o archive.ObjectInfo) error {
		topic, seg, term, ok := ParseObjectKey(o.Key)
		if !ok {
			return nil
		}
		if objects[topic] == nil {
			objects[topic] = map[uint64][]archive.ObjectInfo{}
		}
		objects[topic][seg] = append(objects[topic][seg], o)
		index = max(index, term)
		return nil
	}); err != nil {
		return nil, nil, err
	}
	for _, segs := range objects {
		for _, os := range segs {
			sort.Slice(os, func(i, j int) bool { return os[i].Key > os[j].Key })
		}
	}
	tombs, err := listTombstones(ctx, b)
	if err != nil {
		return nil, nil, err
	}
	index++ // above every index the old cluster used
	rep := &RestoreReport{Snapshot: newest, ClusterID: snap.ClusterID, Index: index}
	rep.Deleted = dropDeleted(st, objects, tombs, index, now)
	var totalObjs, doneObjs int
	var totalBytes, doneBytes int64
	for _, segs := range objects {
		for _, os := range segs {
			for _, o := range os {
				totalObjs++
				totalBytes += o.Size
			}
		}
	}
	progress(0, totalObjs, 0, totalBytes)

	keys := slices.Collect(func(yield func(string) bool) {
		for k := range st.Topics {
			if !yield(k) {
				return
			}
		}
		for k := range objects {
			if _, ok := st.Topics[k]; !ok && !yield(k) {
				return
			}
		}
	})
	sort.Strings(keys)
	for _, key := range keys {
		t := st.Topics[key]
		if t == nil { // created after the snapshot: only its objects tell of it
			name, id, _ := topicname.SplitKey(key) // dropDeleted kept valid keys only
			t = &meta.Topic{Name: name, ID: id}
			st.Topics[key] = t
		}
		rt, err := rebuildTopic(ctx, b, t, objects[key], nodeID, index, now)
		if err != nil {
			return nil, nil, err
		}
		rep.Topics = append(rep.Topics, rt)
		for _, os := range objects[key] {
			for _, o := range os {
				doneObjs++
				doneBytes += o.Size
			}
		}
		progress(doneObjs, totalObjs, doneBytes, totalBytes)
	}
	return st, rep, nil
}

// rebuildTopic replaces t's segments by what the bucket holds, then a new active one.
// Segment ids stay 1, 2, 3, ... (meta.Topic.Segment indexes by id). It is one walk
// over the segment ids (rebuild.segment), in order; a run of segments whose data is
// not found waits in rebuild.missing until the next found segment says where the run
// ends (settle), or the walk does (finish).
func rebuildTopic(ctx context.Context, b archive.Bucket, t *meta.Topic, objs map[uint64][]archive.ObjectInfo, nodeID, index uint64, now time.Time) (RestoredTopic, error) {
	r := &rebuild{ctx: ctx, b: b, t: t, objs: objs, now: now, rt: RestoredTopic{Name: t.Name, ID: t.ID}}
	last := uint64(len(t.Segments))
	for id := range objs {
		last = max(last, id)
	}
	for id := uint64(1); id <= last; id++ {
		var s *meta.Segment
		if id <= uint64(len(t.Segments)) && t.Segments[id-1].ID == id {
			s = t.Segments[id-1]
		}
		if err := r.segment(id, s); err != nil {
			return r.rt, err
		}
	}
	r.finish()
	end := r.end
	nextID := uint64(len(r.out)) + 1
	t.Segments = append(r.out, &meta.Segment{ID: nextID, Leader: nodeID, Base: end, State: meta.Active,
		LeaderIndex: index, CreatedUnixMS: now.UnixMilli()})
	// The cursor never points into what is gone, nor past the end.
	t.Cursor = min(t.Cursor, end)
	for _, s := range t.Segments {
		if s.State == meta.Expired && t.Cursor >= s.Base && t.Cursor < s.End() {
			t.Cursor = s.End()
		}
	}
	r.rt.Start, r.rt.End, r.rt.Cursor = t.StartOffset(), end, t.Cursor
	return r.rt, nil
}

// rebuild is rebuildTopic's state as it walks a topic's segment ids in order.
type rebuild struct {
	ctx  context.Context
	b    archive.Bucket
	t    *meta.Topic
	objs map[uint64][]archive.ObjectInfo
	now  time.Time

	rt      RestoredTopic
	out     []*meta.Segment // the rebuilt segments, ids 1..len(out)
	missing []*meta.Segment // the run of segments with no data since the last known one
	end     uint64          // where the last segment of known extent ends
	keptAny bool            // a segment with data is kept before the missing run
}

func (r *rebuild) skip(id uint64, key, reason string) {
	r.rt.Skipped = append(r.rt.Skipped, SkippedSegment{Segment: id, Key: key, Reason: reason})
}

// segment rebuilds segment id; s is its record in the snapshot, nil if none.
func (r *rebuild) segment(id uint64, s *meta.Segment) error {
	switch {
	case s != nil && s.State == meta.Expired: // expired (or lost) in the snapshot already
		r.settle(s.Base)
		r.out = append(r.out, s)
		r.end = s.End()
		if s.Lost {
			r.rt.Lost++
		} else {
			r.rt.Expired++
		}
		return nil
	case s != nil && s.Abandoned: // sealed empty by recover-segment: nothing to find
		r.settle(s.Base)
		r.out = append(r.out, s)
		r.end = s.Base
		return nil
	case s != nil && s.ArchiveKey != "" && hasObject(r.objs[id], s.ArchiveKey):
		r.settle(s.Base)
		s.State, s.LocalEvicted = meta.Archived, true
		r.out = append(r.out, s)
		r.end, r.keptAny = s.End(), true
		r.rt.Kept++
		return nil
	}
	base := uint64(unknownBase)
	if s != nil {
		base = s.Base
	}
	found, err := r.find(id, base)
	if err != nil {
		return err
	}
	if found == nil {
		m := &meta.Segment{ID: id}
		if s != nil {
			c := *s
			m = &c
		}
		r.missing = append(r.missing, m)
		return nil
	}
	r.settle(found.Base)
	r.out = append(r.out, found)
	r.end, r.keptAny = found.End(), true
	r.rt.Recovered++
	return nil
}

// settle gives the missing run its extent [end, base) now that the next segment is
// known to start at base, and says what became of each.
func (r *rebuild) settle(base uint64) {
	if len(r.missing) == 0 {
		return
	}
	base = max(base, r.end)
	at := r.end
	for i, m := range r.missing {
		count := uint64(0)
		switch {
		case i == len(r.missing)-1:
			count = base - at
		case (m.State == meta.Sealed || m.State == meta.Archived) && m.Count > 0 && at+m.Count <= base: // from the snapshot
			count = m.Count
		}
		bytes, crc := m.Bytes, m.CRC
		if count != m.Count {
			bytes, crc = 0, 0
		}
		*m = meta.Segment{ID: m.ID, Base: at, Count: count, Bytes: bytes, CRC: crc, LeaderIndex: m.LeaderIndex,
			CreatedUnixMS: m.CreatedUnixMS, SealedUnixMS: m.SealedUnixMS}
		at += count
		switch {
		case base == r.end:
			m.State, m.Abandoned, m.Bytes, m.CRC = meta.Sealed, true, 0, 0
			r.skip(m.ID, "", SkipAbandoned)
		case !r.keptAny:
			m.State, m.ExpiredUnixMS, m.LocalEvicted = meta.Expired, r.now.UnixMilli(), true
			r.rt.Expired++
			if r.t.Config.RetentionBytes > 0 || r.t.Config.RetentionMS > 0 {
				r.skip(m.ID, "", SkipExpired)
			} else {
				m.Lost = true
				r.skip(m.ID, "", SkipGoneFront)
			}
		default:
			m.State, m.ExpiredUnixMS, m.LocalEvicted, m.Lost = meta.Expired, r.now.UnixMilli(), true, true
			r.rt.Lost++
			r.skip(m.ID, "", fmt.Sprintf("%s: [%d, %d)", SkipLost, m.Base, m.End()))
		}
	}
	r.out = append(r.out, r.missing...)
	r.missing = nil
}

// find returns the record of segment id from its newest verified object that starts
// at base (if base is unknownBase: that continues the kept segments, or starts after
// the missing run), and reports the objects of the segment it passes over.
func (r *rebuild) find(id, base uint64) (*meta.Segment, error) {
	for _, o := range r.objs[id] {
		s, why, err := recoverSegment(r.ctx, r.b, r.t.Key(), id, o)
		if err != nil {
			return nil, err
		}
		switch {
		case s == nil:
		case base != unknownBase && s.Base != base:
			why = fmt.Sprintf("it starts at offset %d, the metadata at %d", s.Base, base)
		case base == unknownBase && len(r.missing) == 0 && s.Base != r.end:
			why = fmt.Sprintf("it starts at offset %d, the previous segment ends at %d", s.Base, r.end)
		case base == unknownBase && s.Base < r.end:
			why = fmt.Sprintf("it starts at offset %d, below the end %d of the segments before it", s.Base, r.end)
		default:
			return s, nil
		}
		r.skip(id, o.Key, SkipBadObject+": "+why)
	}
	return nil, nil
}

// finish settles what is still missing after the last segment: it had its data on
// its leader's disk only, or retention deleted its object after the snapshot. Sealed
// segments of the snapshot keep their offsets, expired or lost as in settle (offsets
// a client may have seen are never given to new entries); from the first segment
// whose extent is unknown (the snapshot's active one) on, the topic ends and the new
// active segment takes over.
func (r *rebuild) finish() {
	known := 0
	for known < len(r.missing) && (r.missing[known].State == meta.Sealed || r.missing[known].State == meta.Archived) && r.missing[known].Count > 0 {
		known++
	}
	if known > 0 {
		tail, base := r.missing[known:], r.end
		for _, m := range r.missing[:known] {
			base += m.Count
		}
		r.missing = r.missing[:known]
		r.settle(base)
		r.end, r.missing = base, tail
	}
	for _, m := range r.missing {
		r.skip(m.ID, "", SkipTail)
	}
}

// unknownBase stands for "the segment's base offset is not known yet" in rebuildTopic.
const unknownBase = math.MaxUint64

func hasObject(os []archive.ObjectInfo, key string) bool {
	for _, o := range os {
		if o.Key == key {
			return true
		}
	}
	return false
}

// recoverSegment rebuilds the record of segment id of topic from its object, if the
// object is intact and holds that segment; nil and why not if not. A store that cannot
// be read is an error (the restore stops rather than cut a topic short).
func recoverSegment(ctx context.Context, b archive.Bucket, topic string, id uint64, o archive.ObjectInfo) (*meta.Segment, string, error) {
	damaged := false
	m, err := seekable.Verify(ctx, ObjectSource(b, o.Key, o.Size), func(r seekable.FrameReport) {
		damaged = damaged || r.Err != nil
	})
	switch {
	case errors.Is(err, seekable.ErrCorrupt), errors.Is(err, seekable.ErrFormat), errors.Is(err, seekable.ErrVersion):
		return nil, err.Error(), nil // not a usable copy of the segment
	case err != nil:
		return nil, "", fmt.Errorf("tiering: cannot read %s: %w", o.Key, err)
	case damaged:
		return nil, "damaged frames (floe archive verify shows them)", nil
	case m.Topic != topic || m.Segment != id:
		return nil, fmt.Sprintf("it holds segment %d of %q", m.Segment, m.Topic), nil
	case m.Count == 0:
		return nil, "it holds no entries", nil
	}
	rc, err := b.Get(ctx, o.Key)
	if err != nil {
		return nil, "", err
	}
	h := crc32.New(castagnoli)
	size, err := io.Copy(h, rc)
	rc.Close()
	if err != nil {
		return nil, "", archive.Error("read", o.Key, "archive", err)
	}
	// The leader is unknown (the object does not name it) and irrelevant: the segment
	// is read from the archive only.
	return &meta.Segment{
		ID: id, Base: m.Base, State: meta.Archived, LeaderIndex: m.LeaderTerm,
		CreatedUnixMS: m.CreatedUnixMS, Count: m.Count, Bytes: m.RawBytes, CRC: m.RecordCRC, SealedUnixMS: m.CreatedUnixMS,
		ArchiveKey: o.Key, ArchiveSize: size, ArchiveChecksum: h.Sum32(), ArchivedUnixMS: o.LastModified.UnixMilli(),
		LocalEvicted: true,
	}, "", nil
}
