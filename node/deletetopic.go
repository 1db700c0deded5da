package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"floe/archive"
	"floe/internal/fsutil"
	"floe/meta"
	"floe/node/rpc"
	"floe/tiering"
)

// Deleting a topic (docs/ARCHITECTURE.md, "Deleting a topic"). The deletion is one
// Raft command (meta.OpDeleteTopic, naming the topic's key): once applied the topic
// is gone for every request, whichever node it reaches, since requests carry the key
// they resolved and a deleted key is never live again. The rest is clean-up, each
// part retried until done:
//   - every node lets go of what it holds of a dead key (removeDeletedTopics): the
//     appender and its queued requests, follower copies, fences, segment files and
//     salvage copies. It needs no record of the deletion (meta.State.Dead), so a node
//     that was down, or restored from a snapshot, cleans up too;
//   - the Raft leader writes the topic's tombstone to the archive, deletes its
//     objects, and then commits meta.OpTopicPurged (purgeDeletedTopics). Until then
//     the deletion is recorded in the metadata and counted in
//     floe_topic_deletions_pending; objects it misses (an upload that finished after
//     its listing) are the orphan sweeper's.

// DeleteTopic deletes the live topic named name and returns the record of its
// deletion (its key and when).
func (n *Node) DeleteTopic(ctx context.Context, name string) (meta.Deletion, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	// The name as the leader has it: a node behind could still see an incarnation
	// deleted already, and delete nothing.
	if err := n.syncMeta(ctx); err != nil {
		return meta.Deletion{}, rpc.Unavailable(fmt.Sprintf("cannot check topic %q with the raft leader", name), err)
	}
	t, err := n.topicNamed(ctx, name)
	if err != nil {
		return meta.Deletion{}, err
	}
	if id := n.missingFeature(meta.FeatureTopicIDs); id != 0 {
		return meta.Deletion{}, fmt.Errorf("%w: node %d runs a release without topic deletion (or has not registered since its upgrade): upgrade every node first", ErrBadRequest, id)
	}
	now := time.Now().UnixMilli()
	if _, err := n.propose(ctx, &meta.Command{Op: meta.OpDeleteTopic, Topic: t.Key(), UnixMS: now}); err != nil {
		return meta.Deletion{}, err
	}
	var sealed, archived uint64
	for _, s := range t.Segments {
		if s.State != meta.Active && s.State != meta.Expired {
			sealed++
		}
		if s.ArchiveKey != "" && s.State != meta.Expired {
			archived++
		}
	}
	n.log.Warn("topic deleted", "topic", t.Name, "id", t.ID, "segments", len(t.Segments), "sealed", sealed, "archived", archived,
		"offsets", fmt.Sprintf("[%d, %d)", t.StartOffset(), t.SealedEnd()))
	// A segment leader cut off from the cluster may still acknowledge writes to the
	// topic until its lease runs out: the answer waits for that, so that once it
	// comes no node acknowledges a write to the deleted topic.
	// (From now: the deletion committed before. Not bounded by the request's
	// deadline: the deletion is done, and the wait is.)
	d := meta.Deletion{Name: t.Name, ID: t.ID, DeletedUnixMS: now}
	if err := n.deletionSettled(n.ctx, t.Name, time.Now()); err != nil {
		return d, err
	}
	return d, nil
}

// deletionSettled waits until --lease-timeout has passed since a deletion of the
// topic name committed (at the latest at committed): from then on no node
// acknowledges a write to the deleted topic (a cut-off segment leader stops within
// its lease, and one in touch has applied the deletion). Until then a topic created
// again under its name could see a write meant for it acknowledged into the deleted
// one.
func (n *Node) deletionSettled(ctx context.Context, name string, committed time.Time) error {
	wait := time.Until(committed.Add(n.cfg.LeaseTimeout))
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return rpc.Unavailable(fmt.Sprintf("topic %q was deleted %v ago: wait for --lease-timeout (%v) to pass", name, time.Since(committed).Round(time.Millisecond), n.cfg.LeaseTimeout), ctx.Err())
	}
}

// removeDeletedTopics lets go of everything this node holds of deleted topics: their
// appenders (what is queued for them is answered meta.ErrNoTopic), follower copies
// and fences, segment files and salvage copies. forget are the segment loop's own
// records, cleared of dead keys too. It runs every retentionPeriod; what fails is
// tried again at the next run.
func (n *Node) removeDeletedTopics(forget ...map[segKey]bool) {
	if !n.synced.Load() {
		return // State.Dead holds on a lagging state, but a caught-up one is the safer judge
	}
	dead := map[string]bool{}
	isDead := func(key string) bool {
		d, ok := dead[key]
		if !ok {
			d = n.fsm.Dead(key)
			dead[key] = d
		}
		return d
	}
	for _, key := range n.writer.Keys() {
		if isDead(key) {
			n.writer.Drop(key, n.noTopic(key))
		}
	}
	n.forgetReplicas(isDead)
	for _, m := range forget {
		for k := range m {
			if isDead(k.topic) {
				delete(m, k)
			}
		}
	}
	keys, err := n.store.Keys()
	if err != nil {
		n.log.Warn("cannot list the segment store for deleted topics", "err", err)
	}
	for _, key := range keys {
		if !isDead(key) {
			continue
		}
		if err := n.store.Purge(key); err != nil {
			n.log.Warn("cannot delete the files of a deleted topic; will try again", "topic", key, "err", err)
			continue
		}
		n.log.Info("files of a deleted topic deleted", "topic", key)
	}
	root := filepath.Join(n.cfg.DataDir, "abandoned")
	entries, err := os.ReadDir(root)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		n.log.Warn("cannot list the salvage copies for deleted topics", "dir", root, "err", err)
	}
	removed := false
	for _, e := range entries {
		if !e.IsDir() || !isDead(e.Name()) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
			n.log.Warn("cannot delete the salvage copies of a deleted topic; will try again", "topic", e.Name(), "err", err)
			continue
		}
		removed = true
		n.log.Info("salvage copies of a deleted topic deleted", "topic", e.Name())
	}
	if removed {
		if err := fsutil.SyncDir(root); err != nil {
			n.log.Warn("cannot sync the salvage directory", "dir", root, "err", err)
		}
	}
}

// forgetReplicas closes this node's follower copies of dead topics and drops every
// record it keeps of them (the store's files are Purge's). The FSM is asked (dead)
// with no lock of this node's held: its lock comes first (see sealReplicas).
func (n *Node) forgetReplicas(dead func(string) bool) {
	keys := map[string]bool{}
	n.replicas.mu.Lock()
	for _, m := range []map[segKey]bool{n.replicas.sealed, n.replicas.busy, n.replicas.removed, n.replicas.dropped, n.replicas.fenced} {
		for k := range m {
			keys[k.topic] = false
		}
	}
	for k := range n.replicas.open {
		keys[k.topic] = false
	}
	for k := range n.replicas.retryAt {
		keys[k.topic] = false
	}
	for key := range n.replicas.queues {
		keys[key] = false
	}
	n.replicas.mu.Unlock()
	anyDead := false
	for key := range keys {
		keys[key] = dead(key)
		anyDead = anyDead || keys[key]
	}
	if !anyDead {
		return
	}
	n.replicas.mu.Lock()
	var closing []segKey
	for k := range n.replicas.open {
		if keys[k.topic] {
			closing = append(closing, k)
		}
	}
	fences := false
	for k := range n.replicas.fenced {
		if keys[k.topic] {
			delete(n.replicas.fenced, k)
			fences = true
		}
	}
	for _, m := range []map[segKey]bool{n.replicas.sealed, n.replicas.busy, n.replicas.removed, n.replicas.dropped} {
		for k := range m {
			if keys[k.topic] {
				delete(m, k)
			}
		}
	}
	for k := range n.replicas.retryAt {
		if keys[k.topic] {
			delete(n.replicas.retryAt, k)
		}
	}
	for key, q := range n.replicas.queues {
		if keys[key] && !q.running && len(q.work) == 0 {
			delete(n.replicas.queues, key)
		}
	}
	n.replicas.mu.Unlock()
	for _, k := range closing {
		n.closeReplica(k)
	}
	if fences {
		if err := n.saveFences(); err != nil {
			n.log.Warn("cannot record the fences of deleted topics as gone; will try again at the next change", "err", err)
		}
	}
}

// purgeDeletedTopics, on the Raft leader, deletes the archive objects of the deleted
// topics recorded in the metadata: first the tombstone (so that no restore brings the
// topic back, whatever happens next), then every object under the topic's key, then
// it commits OpTopicPurged. A topic it cannot finish stays recorded (pending) and is
// tried again at the next run. Without an archive there is nothing to delete.
func (n *Node) purgeDeletedTopics() {
	dels := n.fsm.Deletions()
	if len(dels) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
	defer cancel()
	if n.bucket != nil {
		if err := n.archiveWritable(ctx); err != nil {
			n.log.Warn("the objects of deleted topics are kept for now: the archive cannot be written", "pending", len(dels), "err", err)
			return
		}
	}
	for _, d := range dels {
		if time.Since(n.fsm.DeletionCommitted(d)) < n.cfg.LeaseTimeout {
			continue // its record tells Register to wait (deletionSettled); the next pass
		}
		if n.bucket != nil {
			deleted, err := n.purgeObjects(ctx, d)
			if err != nil {
				n.log.Warn("cannot delete the objects of a deleted topic; will try again", "topic", d.Key(), "deleted", deleted, "err", err)
				continue
			}
			n.log.Info("objects of a deleted topic deleted", "topic", d.Key(), "objects", deleted)
		}
		if _, err := n.propose(ctx, &meta.Command{Op: meta.OpTopicPurged, Topic: d.Key()}); err != nil {
			n.log.Warn("cannot record that a deleted topic's objects are gone; will try again", "topic", d.Key(), "err", err)
		}
	}
}

// purgeObjects writes d's tombstone, then deletes every segment object under its
// key, and returns how many it deleted.
func (n *Node) purgeObjects(ctx context.Context, d meta.Deletion) (int, error) {
	key := d.Key()
	b, err := json.Marshal(tiering.Tombstone{Topic: key, Name: d.Name, ID: d.ID, DeletedUnixMS: d.DeletedUnixMS, Index: d.Index, ClusterID: n.fsm.ClusterID()})
	if err != nil {
		return 0, err
	}
	if err := n.bucket.Put(ctx, tiering.TombstoneKey(key), bytes.NewReader(b), int64(len(b)), archive.PutOptions{}); err != nil {
		return 0, fmt.Errorf("cannot write the tombstone: %w", err)
	}
	var objs []string
	if err := n.bucket.List(ctx, tiering.TopicPrefix(key), func(o archive.ObjectInfo) error {
		if _, _, _, ok := tiering.ParseObjectKey(o.Key); ok {
			objs = append(objs, o.Key)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	for i, o := range objs {
		if err := n.bucket.Delete(ctx, o); err != nil {
			return i, err
		}
	}
	return len(objs), nil
}
