// Package tiering moves sealed segments between the tiers: the local disk of the node
// that wrote them and the object store (package archive).
//
//   - Uploader: once Seal has applied, the segment's leader encodes it as a seekable
//     object (package archive/seekable), writes it with If-None-Match: * under a key
//     that carries the leader term, and commits Archived{topic, segment, key, size,
//     checksum} through Raft. Only keys recorded by Archived are ever read. Uploads
//     retry with exponential backoff while the store is down; uploading twice is
//     harmless (an existing object is accepted once it verifies). After the commit
//     the object is checked (HEAD, size) and put back if it vanished, while the local
//     copy exists (ConfirmArchived).
//   - Remote: reads entries of archived segments with ranged GETs: footer and index
//     once per object, then the frame a random read needs, or spans of eight frames
//     per GET for sequential readers, two spans ahead of them, decoded in parallel.
//     Every frame is fetched once however many readers want it at the same time.
//     Decoded frames are kept in a small in-memory LRU; compressed ones in a bounded
//     on-disk cache (LRU, --cache-bytes, one file per fetch).
//   - Retention: --local-retention-bytes evicts the local copies of archived segments,
//     oldest first (EvictLocal through Raft, then the file); reads then come from the
//     archive. Each step waits for ConfirmArchived: no file goes whose object was not
//     just seen in the store.
//   - Sweeper: deletes segment objects no segment records or can still record (a
//     segment that is neither archived nor expired keeps the key of its leader term).
//
// Bucket layout: layout.go draws it and holds every key prefix, builder and parser
// (segment objects under topics/, the cluster claim and the metadata snapshots under
// meta/); no other file of floe spells a key. The leader term in a segment object's
// key is the Raft index of the command that made the node leader of the segment, so a
// deposed leader's late upload lands under another key and is never read.
//
// One prefix belongs to one cluster: a new cluster never starts on a prefix that holds
// segment objects or metadata snapshots (package node), and every snapshot names its
// cluster, so readers (RebuildState, floe archive meta) and the pruning leader take
// only their own cluster's.
//
// On disk, under --data-dir:
//
//	upload/   objects being encoded before upload (removed after)
//	cache/    the remote-read frame cache (emptied at start)
package tiering
