// Package logstore keeps the Raft log and the Raft stable state of one floe node in a
// Pebble database. Store implements hashicorp/raft's LogStore and StableStore.
//
// # Durability
//
// Every write (StoreLog, StoreLogs, DeleteRange, Set, SetUint64) is committed with
// pebble.Sync: when the call returns nil, the write is in Pebble's WAL and fsynced.
// StoreLogs writes all its entries in one batch, so after a crash either all of them
// are there or none. A failed WAL fsync cannot be retried safely (the kernel may have
// dropped the dirty pages), so Pebble treats it as fatal and Store turns Pebble's
// fatal log calls into a panic: the node stops rather than acknowledge a write whose
// durability is unknown.
//
// # Key layout
//
// One Pebble keyspace, split by a one-byte prefix. Pebble orders keys bytewise, so
// the big-endian index makes the log's key order its index order, and every log
// iterator is bounded to [0x6c, 0x6d):
//
//	key                                          value
//	+------+------------------------------+
//	| 'l'  | index (uint64, big-endian)   |      encoded raft.Log (below)
//	| 0x6c | 8 bytes                      |
//	+------+------------------------------+
//	+------+------------------------------+
//	| 'm'  | "format"                     |      "floe-logstore/1"
//	| 0x6d |                              |      (written at first Open, checked after)
//	+------+------------------------------+
//	+------+------------------------------+
//	| 's'  | raft's stable key, as given  |      Set: the bytes as given
//	| 0x73 | (e.g. "CurrentTerm")         |      SetUint64: 8 bytes, big-endian
//	+------+------------------------------+
//
// # Log entry encoding (format version 1)
//
// All fields of raft.Log, varint-compressed; Data and Extensions keep the difference
// between nil and empty, AppendedAt the difference between the zero time and any
// other instant (to the nanosecond; location and monotonic reading are not kept):
//
//	+---------+-------+----------+---------+--------+
//	| version | flags | index    | term    | type   |
//	| 1 byte  | 1 byte| uvarint  | uvarint | 1 byte |
//	+---------+-------+----------+---------+--------+
//	+-------------------------+-------------------------+---------------------------+
//	| data (if flags&0x01)    | extensions (if &0x02)   | appended at (if &0x04)    |
//	| uvarint len, len bytes  | uvarint len, len bytes  | varint unix s, uvarint ns |
//	+-------------------------+-------------------------+---------------------------+
//
// The index is stored in the value as well as in the key, and GetLog refuses an entry
// whose two copies differ. Pebble checksums its WAL records and sstable blocks, so
// the encoding carries no checksum of its own.
//
// # Not found
//
// GetLog of an absent index returns raft.ErrLogNotFound itself, never wrapped, because
// raft compares it by identity (replication.go). Get and GetUint64 of an absent key
// return ErrKeyNotFound, whose message is exactly "not found", never wrapped: raft
// v1.8.0 recognises a missing stable key only by err.Error() == "not found"
// (HasExistingState and NewRaft in api.go for CurrentTerm, requestVote in raft.go for
// LastVoteTerm and LastVoteCand), so any other error there, even one that wraps it,
// makes NewRaft fail on a fresh store. Callers in floe use errors.Is(err,
// ErrKeyNotFound).
//
// # Gaps
//
// Entries are found by key, so the log may have gaps: StoreLogs after a snapshot
// install may start past LastIndex+1, and GetLog of an index in a gap returns
// raft.ErrLogNotFound. Store therefore does not implement raft.MonotonicLogStore,
// and raft keeps its gap-based handling after a snapshot restore instead of deleting
// the whole log.
//
// # Memory
//
// Pebble is configured for a small node (150 MiB RSS budget for the whole process):
// a 4 MiB memtable (at most two in memory before writes stall), a 4 MiB block cache
// and a bounded number of open files. Pebble's informational logging goes to the
// slog logger at debug level; its errors at error level, slow disk operations at warn.
package logstore
