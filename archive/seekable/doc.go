// Package seekable is the object format of a sealed segment in the
// archive (docs/ARCHITECTURE.md, "Tiering"): one object per segment, holding its records
// in independent zstd frames of about 1 MiB, then a skippable frame with
// floe's metadata and entry index, then the seek table of zstd's seekable
// format (facebook/zstd contrib/seekable_format). An object is therefore
// an ordinary zstd stream: `zstd -d` of a whole object, or any streaming
// zstd decoder, yields the segment's records exactly as the WAL stores
// them (decoders skip skippable frames), and seekable-format readers can
// seek in it. A reader of one record fetches the tail of the object
// (footer, seek table, metadata) and then exactly one data frame.
//
// # Object layout
//
// All integers are little-endian.
//
//	+----------------+-----+------------------+----------------+------------------+
//	| data frame 0   | ... | data frame N-1   | metadata frame | seek table frame |
//	| (zstd)         |     | (zstd)           | (skippable)    | (skippable)      |
//	+----------------+-----+------------------+----------------+------------------+
//	 object byte 0                                               last 9 bytes are
//	                                                             the footer
//
// A data frame is one zstd frame (magic 0xFD2FB528) with its
// Frame_Content_Size and the zstd content checksum, no dictionary,
// compressed independently of every other frame. It holds whole records,
// back to back, encoded by package record exactly as in the WAL
// (node/segment):
//
//	+-------------+-------------+---------------------------+
//	| length  u32 | crc32c  u32 | payload (length bytes)    |
//	+-------------+-------------+---------------------------+
//	 0             4             8                  8+length
//
// length is 1 to MaxPayload; crc32c is the CRC32C (Castagnoli) of the
// payload. The writer closes a frame before the record that would take it
// past WriterOptions.FrameSize (1 MiB by default), so a record larger
// than that gets a frame of its own. Every data frame holds at least one
// record. The concatenation of the frames' contents is byte for byte the
// body of the segment's WAL file, so Meta.RecordCRC and Meta.RawBytes
// are the WAL's Segment.CRC and Segment.Bytes.
//
// The metadata frame is a zstd skippable frame with magic 0x184D2A5F
// (MetadataMagic; of the skippable magics 0x184D2A50-5F, 0x184D2A5E is
// the seek table's and 0x184D2A50 is what pzstd writes), so zstd tools
// skip it:
//
//	offset  size  field
//	0       4     skippable magic 0x184D2A5F
//	4       4     frame size: bytes that follow (74 + T + 8N)
//	---- body, from here on offsets are from the start of the body ----
//	0       7     magic "FLOESEG"
//	7       1     format version (Version, 1)
//	8       8     segment id
//	16      8     base offset
//	24      8     count (records)
//	32      8     leader term
//	40      4     record CRC: CRC32C of all records as stored (headers included)
//	44      8     raw bytes: length of all records as stored
//	52      8     created, Unix milliseconds
//	60      4     N: number of data frames
//	64      4     CRC32C of the N data-frame seek-table entries, as stored
//	68      2     T: topic length, 1 to 255
//	70      T     topic
//	70+T    8N    entry index: the first offset of each data frame, relative
//	              to base (so the first is 0); frame i holds offsets
//	              base+index[i] to base+index[i+1]-1 (the last, to base+count-1)
//	70+T+8N 4     CRC32C of the body bytes before it
//
// The seek table frame is exactly the seekable format's:
//
//	+----------------+----------------+-----------------------+---------------------+
//	| magic u32      | frame size u32 | N+1 entries, 12 bytes | footer, 9 bytes     |
//	| 0x184D2A5E     | 12(N+1)+9      | each                  |                     |
//	+----------------+----------------+-----------------------+---------------------+
//
//	entry:  | compressed size u32 | decompressed size u32 | checksum u32 |
//	footer: | number of frames u32 = N+1 | descriptor u8 = 0x80 | 0x8F92EAB1 u32 |
//
// Entry i < N describes data frame i; its checksum is the low 32 bits of
// the XXH64 of the frame's decompressed bytes (the descriptor's
// Checksum_Flag is always set). Entry N describes the metadata frame:
// compressed size = the metadata frame's size, decompressed size 0 and
// the checksum of no bytes (0x51D8E999). The seekable spec requires one
// entry for every frame before the seek table, skippable ones with
// decompressed size 0, because a frame's position is the sum of the
// compressed sizes before it; listing the metadata frame keeps that sum
// equal to the seek table's position, so seekable-format readers (the
// zstd contrib library, SaveTheRbtz/zstd-seekable-format-go, which the
// tests use) accept an object and find the same bytes, and the last
// entry is where Open finds the metadata frame. A segment of 0 records is
// an object of no data frames: the metadata frame and a seek table of
// one entry (it decompresses to nothing).
//
// # Reading
//
// Open reads the last TailReadSize bytes (64 KiB) in one ranged read,
// which holds the footer, seek table and metadata frame of any object of
// up to about 3000 frames, and reads the rest of them in a second read
// for a larger one. It rejects an impossible footer (more than MaxFrames
// frames, or a seek table larger than the object) before it allocates
// for it. Every byte of the tail is checked: the metadata frame by its
// CRC32C, the data-frame seek-table entries by the CRC32C of them stored
// in the metadata, the metadata entry, frame sizes and footer by the
// sums and counts that must agree (compressed sizes add up to the
// metadata frame's position, decompressed sizes to raw bytes). Only the
// descriptor's two unused bits are ignored, as the spec asks.
//
// A data frame is then read with one ranged read and checked by its zstd
// content checksum, its seek-table checksum and size, every record's
// length and CRC32C, and the record count the index gives it. Any
// failure is an error wrapping ErrCorrupt that names the segment, frame,
// offsets and object bytes; no record of a damaged frame is ever
// returned. Verify is the inspect mode of this decoder (STYLE item 12):
// it goes on past damaged frames and records and reports each.
//
// The whole-object CRC32C returned by Writer.Close (Summary.Checksum) is
// for the archive layer to record and check after upload; ranged reads
// rely on the per-frame and per-record checks above instead.
package seekable
