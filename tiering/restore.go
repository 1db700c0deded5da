package tiering

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sort"
	"time"

	"floe/archive"
	"floe/archive/seekable"
	"floe/meta"
)

// RestoredTopic says what RebuildState made of one topic.
type RestoredTopic struct {
	Name string `json:"name"`
	// Kept are the segments whose objects the snapshot referenced (and exist);
	// Recovered those archived after the snapshot, found from their objects.
	Kept, Recovered int
	// Expired segments stay expired.
	Expired int
	// Lost is the first segment of the snapshot whose data is nowhere (0: none): its
	// leader's disk held the only copy. The topic ends before it. Dropped are the
	// segments past the end that have objects all the same: they are left out (offsets
	// stay contiguous) and their objects become orphans.
	Lost    uint64   `json:"lost,omitempty"`
	Dropped []uint64 `json:"dropped,omitempty"`
	// Start and End are the offsets kept: [Start, End). New writes go on from End.
	Start, End uint64
	// Cursor is the shared GET cursor (moved back to End if it was past it).
	Cursor uint64
}

// RestoreReport describes a rebuilt state.
type RestoreReport struct {
	Snapshot  string `json:"snapshot"`
	ClusterID string `json:"cluster_id"`
	// Index is the Raft index the rebuilt state starts at: above every Raft index the
	// old cluster used, so new leader terms in object keys never meet old keys.
	Index  uint64          `json:"index"`
	Topics []RestoredTopic `json:"topics"`
}

// RebuildState rebuilds a cluster's metadata from its bucket alone (floe restore
// --cluster): the newest metadata snapshot, then the segment objects written after it.
// Every segment's data is in the archive afterwards, or the topic ends before it (the
// data of an active segment, and of a sealed one not yet archived, was on its
// leader's disk only). Each topic gets a new active segment led by nodeID, where its
// kept entries end.
func RebuildState(ctx context.Context, b archive.Bucket, nodeID uint64, now time.Time) (*meta.State, *RestoreReport, error) {
	var newest string
	if err := b.List(ctx, MetaSnapshotPrefix, func(o archive.ObjectInfo) error {
		if _, ok := ParseMetaSnapshotKey(o.Key); ok {
			newest = o.Key // key order: the last is the newest
		}
		return nil
	}); err != nil {
		return nil, nil, err
	}
	if newest == "" {
		return nil, nil, fmt.Errorf("tiering: no metadata snapshot in the archive (%s*): nothing to restore the cluster from", MetaSnapshotPrefix)
	}
	rc, err := b.Get(ctx, newest)
	if err != nil {
		return nil, nil, err
	}
	var snap MetaSnapshot
	err = json.NewDecoder(rc).Decode(&snap)
	rc.Close()
	if err != nil || snap.Format != MetaSnapshotFormat {
		return nil, nil, fmt.Errorf("tiering: %s is not a floe metadata snapshot of format %d: %v", newest, MetaSnapshotFormat, err)
	}
	st := &meta.State{}
	if err := json.Unmarshal(snap.State, st); err != nil {
		return nil, nil, fmt.Errorf("tiering: %s: %w", newest, err)
	}
	if st.Topics == nil {
		st.Topics = map[string]*meta.Topic{}
	}
	if st.Nodes == nil {
		st.Nodes = map[uint64]*meta.NodeInfo{}
	}

	// Every segment object in the bucket, by topic and segment, newest term first.
	objects := map[string]map[uint64][]archive.ObjectInfo{}
	index := snap.RaftIndex
	if err := b.List(ctx, "topics/", func(o archive.ObjectInfo) error {
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
	index++ // above every index the old cluster used
	rep := &RestoreReport{Snapshot: newest, ClusterID: snap.ClusterID, Index: index}

	names := slices.Collect(func(yield func(string) bool) {
		for n := range st.Topics {
			if !yield(n) {
				return
			}
		}
		for n := range objects {
			if _, ok := st.Topics[n]; !ok && !yield(n) {
				return
			}
		}
	})
	sort.Strings(names)
	for _, name := range names {
		t := st.Topics[name]
		if t == nil { // created after the snapshot: only its objects tell of it
			t = &meta.Topic{Name: name}
			st.Topics[name] = t
		}
		rt, err := rebuildTopic(ctx, b, t, objects[name], nodeID, index, now)
		if err != nil {
			return nil, nil, err
		}
		rep.Topics = append(rep.Topics, rt)
	}
	return st, rep, nil
}

// rebuildTopic replaces t's segments by what the bucket holds, then a new active one.
func rebuildTopic(ctx context.Context, b archive.Bucket, t *meta.Topic, objs map[uint64][]archive.ObjectInfo, nodeID, index uint64, now time.Time) (RestoredTopic, error) {
	rt := RestoredTopic{Name: t.Name}
	var kept []*meta.Segment
	nextID, nextBase := uint64(1), uint64(0)
	exists := func(key string) bool {
		for _, os := range objs {
			for _, o := range os {
				if o.Key == key {
					return true
				}
			}
		}
		return false
	}
	// find looks for a valid object of segment id starting at base.
	find := func(id, base uint64) (*meta.Segment, error) {
		for _, o := range objs[id] {
			s, err := recoverSegment(ctx, b, t.Name, id, base, o)
			if err != nil {
				return nil, err
			}
			if s != nil {
				return s, nil
			}
		}
		return nil, nil
	}
	for _, s := range t.Segments {
		if rt.Lost != 0 {
			break
		}
		switch {
		case s.State == meta.Expired:
			rt.Expired++
		case s.Abandoned: // sealed empty by recover-segment: nothing to find
		case s.ArchiveKey != "" && exists(s.ArchiveKey):
			s.State, s.LocalEvicted = meta.Archived, true
			rt.Kept++
		default:
			r, err := find(s.ID, s.Base)
			if err != nil {
				return rt, err
			}
			if r == nil {
				rt.Lost = s.ID
				continue
			}
			s = r
			rt.Recovered++
		}
		kept = append(kept, s)
		nextID, nextBase = s.ID+1, s.End()
	}
	// Segments sealed and archived after the snapshot.
	for rt.Lost == 0 {
		r, err := find(nextID, nextBase)
		if err != nil {
			return rt, err
		}
		if r == nil {
			break
		}
		kept = append(kept, r)
		rt.Recovered++
		nextID, nextBase = r.ID+1, r.End()
	}
	for id := range objs { // objects past the end: orphans from now on
		if id >= nextID && id != rt.Lost {
			rt.Dropped = append(rt.Dropped, id)
		}
	}
	slices.Sort(rt.Dropped)
	t.Segments = append(kept, &meta.Segment{ID: nextID, Leader: nodeID, Base: nextBase, State: meta.Active,
		LeaderIndex: index, CreatedUnixMS: now.UnixMilli()})
	t.Cursor = min(t.Cursor, nextBase)
	rt.Start, rt.End, rt.Cursor = t.StartOffset(), nextBase, t.Cursor
	return rt, nil
}

// recoverSegment rebuilds the record of segment id of topic from its object, if the
// object is intact and holds that segment from base on; nil if not. A store that
// cannot be read is an error (the restore stops rather than cut a topic short).
func recoverSegment(ctx context.Context, b archive.Bucket, topic string, id, base uint64, o archive.ObjectInfo) (*meta.Segment, error) {
	damaged := false
	m, err := seekable.Verify(ctx, ObjectSource(b, o.Key, o.Size), func(r seekable.FrameReport) {
		damaged = damaged || r.Err != nil
	})
	switch {
	case errors.Is(err, seekable.ErrCorrupt), errors.Is(err, seekable.ErrFormat), errors.Is(err, seekable.ErrVersion):
		return nil, nil // not a usable copy of the segment
	case err != nil:
		return nil, fmt.Errorf("tiering: cannot read %s: %w", o.Key, err)
	case damaged || m.Topic != topic || m.Segment != id || m.Base != base || m.Count == 0:
		return nil, nil
	}
	rc, err := b.Get(ctx, o.Key)
	if err != nil {
		return nil, err
	}
	h := crc32.New(castagnoli)
	size, err := io.Copy(h, rc)
	rc.Close()
	if err != nil {
		return nil, archive.Error("read", o.Key, "archive", err)
	}
	// The leader is unknown (the object does not name it) and irrelevant: the segment
	// is read from the archive only.
	return &meta.Segment{
		ID: id, Base: base, State: meta.Archived, LeaderIndex: m.LeaderTerm,
		CreatedUnixMS: m.CreatedUnixMS, Count: m.Count, Bytes: m.RawBytes, CRC: m.RecordCRC, SealedUnixMS: m.CreatedUnixMS,
		ArchiveKey: o.Key, ArchiveSize: size, ArchiveChecksum: h.Sum32(), ArchivedUnixMS: o.LastModified.UnixMilli(),
		LocalEvicted: true,
	}, nil
}
