// Package segment is the local write-ahead log of floe: one fsynced,
// append-only file per active segment of the topics a node leads
// (docs/ARCHITECTURE.md, sections 2 and 3), and the Store that keeps those files.
//
// # On-disk layout
//
// A Store keeps one directory per topic and one file per segment:
//
//	<data dir>/<topic>/00000000000000000007.wal         segment 7 of topic
//	<data dir>/<topic>/00000000000000000007.wal.broken  bytes cut by a repair
//
// A segment file is an 8-byte file header followed by records, back to
// back, with no padding, then, in an active segment's file, zeros
// (preallocated space, below). All integers are little-endian.
//
//	offset 0                 8
//	+------------------------+----------+----------+-----+----------+
//	| "FLOEWAL" | version=1  | record 0 | record 1 | ... | record n |
//	+------------------------+----------+----------+-----+----------+
//	 7 bytes      1 byte
//
//	record (encoded and decoded by package record, which the archive's
//	object format, archive/seekable, uses as well):
//	+-------------+-------------+---------------------------+
//	| length  u32 | crc32c  u32 | payload (length bytes)    |
//	+-------------+-------------+---------------------------+
//	 0             4             8                  8+length
//
// length is 1 to MaxPayload (64 MiB): a record is never empty, so zero
// bytes (a torn or zero-filled tail) never decode as a record. crc32c is
// the CRC32C (Castagnoli) of the payload alone. A record's index is its
// position in the file, counting from 0.
//
// The segment checksum reported by Segment.CRC and by Seal is the CRC32C
// of everything after the file header, that is of all records as stored,
// headers included. Segment.Bytes is that length: file size - HeaderSize.
//
// # Durability
//
// Append and AppendBatch return only after an fdatasync that covers their
// records has returned. Each is one WriteAt at the durable end of the file
// (now and then followed by writes of zeros: Preallocation) and one
// fdatasync, made by the calling goroutine; concurrent appends take
// turns. The segment does not batch: the caller's AppendBatch is the group
// commit (in floe, node's appender hands it everything queued while its
// previous batch was written, the one batching stage of the write path).
// A failed write or sync fails every record of its batch, and the file is
// truncated back to its last durable size and that is synced, before the
// append returns, so a failed append can never surface later and its
// indexes are given to the next append. Seal and Close wait for the append
// in progress. Readers see only synced records and never wait for a sync. Files and directory entries are created
// durably: a new file's header is synced and then its directory; .broken
// copies are written to a temporary name, synced, renamed and their
// directory synced before the segment is truncated.
//
// # Preallocation
//
// An fdatasync that has to make a new file size or new extents durable
// costs a journal commit (or, without a journal, a write of the inode and
// its extents); one that only flushes blocks already written does not, and
// on ext4 on this project's test machine takes about 40% less time and CPU
// for a small append. So an append of at most 64 KiB whose records reach
// past the zeros already written writes zeros after them, made durable by
// the same fdatasync, and the appends after it overwrite those zeros: as
// many bytes as the file's records, at least 64 KiB (or Options.Prealloc if
// smaller) and at most Options.Prealloc (1 MiB by default), so that a
// slowly written segment holds few zeros. The zeros are written to the disk
// too, which for a large append costs more than the fixed cost they save
// (on the test machine, an fdatasync of a 512 KiB append takes 20-40% less
// time without them; at 64 KiB, 20% more): a larger append grows the file
// by itself. A segment sealed by another path than Seal (opened
// with OpenSealed after a restart) keeps its zeros until it is removed. A failed extension (ENOSPC) fails no append. Seal
// cuts the zeros off, unsynced: a sealed file ends at its last record, or,
// after a crash, at zeros. The zeros are never mistaken for records, since
// no record has length zero.
//
// # Page cache
//
// An append leaves its records in the page cache, and a segment written fast
// would fill memory with them although few are read again from there: tailing
// readers read the last ones, and a sealed segment is read once more, to be
// uploaded. So once an append's fdatasync has returned, the durable bytes of
// the file before its last Options.CacheWindow (64 MiB by default) are dropped
// from the cache (posix_fadvise POSIX_FADV_DONTNEED, in whole pages, at least
// 8 MiB at a time), and Open of an active segment drops what its recovery scan
// read. The data stays in the file: a read of it goes to the disk (and caches
// it again; appends only drop forward). Nothing is dropped with NoSync.
// Besides bounding the memory a fast writer takes, it keeps the appends
// writing into pages recently freed: on this project's test VM, whose
// hypervisor backs guest memory only when first touched, page-cache writes
// into memory not touched lately cost about ten times the CPU (4 ms against
// 0.3-0.45 ms per MiB in a microbenchmark past 2 GiB written), and three
// nodes replicating one topic at 16 x 32 used 17% less CPU per write.
//
// # Recovery
//
// Open scans the whole file up to the first damaged record (the file ends
// inside it, its length is zero or over MaxPayload, or its CRC does not
// match). If only zeros follow, that is the end of the records: the file's
// preallocated space, or an append torn before any of its bytes reached the
// disk, and nothing changes. Otherwise it searches the rest, at every byte
// offset since the damaged length cannot be trusted, for an intact record
// (a length that fits and a matching CRC).
//
//   - None: a torn tail, all that a crash during an unacknowledged append
//     can leave. Open saves the rest of the file as path.broken, truncates
//     the file at the damage and syncs it (logged at Warn).
//   - One, but the damaged record overlaps a sector (512 bytes) that holds
//     only zeros from the record on, at least a record header's worth, and
//     what is not zero from the damage on fits in one append
//     (MaxTornBytes): the last append, torn by a crash while the disk
//     wrote its sectors out of order over the preallocated zeros (an
//     acknowledged record's sectors are on disk; a flipped bit zeroes no
//     sector). Repaired as a torn tail (logged at Warn).
//   - One: damage followed by valid records, which may have been
//     acknowledged (bit rot, a bad disk, an outside write). Open leaves the
//     file as it is (it is its own copy of the damaged tail), logs it at
//     Error, serves the records before the damage, and refuses Append and
//     Seal with ErrDamaged, on every open, so that no index a possibly
//     acknowledged record had is given to a new one. What to do is the
//     operator's decision (for floe, floe cluster recover-segment). A rest
//     longer than 256 MiB counts as this case without a search: a crash
//     tears at most one group commit.
//
// A crash can still, rarely, leave damage followed by intact records within
// the last, unacknowledged group commit that this rule does not recognise
// (a record header split across two sectors, the first not written); it is
// then taken for damage: the error is on the side of never reusing an
// acknowledged index. The rule's own risk is a damaged record that
// legitimately held a sector of zeros, in the last 64 MiB of the file. OpenSealed, for a file known to be complete, treats
// any damage as an error wrapping ErrCorrupt and changes nothing. A file
// whose header is not a segment header is never modified.
//
// # Open files
//
// A Store is the one owner of open segment files. Callers hold references
// (Create, Acquire, Release); a segment is closed only when no reference
// is held: unsealed ones by Remove or Close, sealed ones once more than
// Options.MaxIdleSealed (8) are idle, least recently released first. A
// removed segment still held is read from its unlinked file until its last
// Release.
//
// Inspect is the same decoder in a mode that keeps going past a damaged
// record where it can, reporting each record's offset, length and CRC
// status, for tools such as a WAL dump.
//
// # Testing seam
//
// All file I/O goes through the FS and File interfaces. OS is the real
// one; FaultFS wraps any FS and fails the next write, sync, truncate or
// read on demand, or holds the next sync, for tests of this package and
// of the packages above it.
package segment
