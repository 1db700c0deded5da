package logstore

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/raft"
)

// Key prefixes; see doc.go for the layout.
const (
	logPrefix    byte = 'l'
	metaPrefix   byte = 'm'
	stablePrefix byte = 's'

	logKeyLen = 1 + 8
)

var (
	// logLower and logUpper bound every iterator over the log: [logLower, logUpper).
	logLower = []byte{logPrefix}
	logUpper = []byte{logPrefix + 1}

	formatKey   = append([]byte{metaPrefix}, "format"...)
	formatValue = []byte("floe-logstore/1")
)

// encodeLogKey writes the key of the entry at index into dst, which holds logKeyLen bytes.
func encodeLogKey(dst []byte, index uint64) {
	dst[0] = logPrefix
	binary.BigEndian.PutUint64(dst[1:logKeyLen], index)
}

func logKey(index uint64) []byte {
	k := make([]byte, logKeyLen)
	encodeLogKey(k, index)
	return k
}

// decodeLogKey returns the index in a log key, or an error for a key that is not one.
func decodeLogKey(k []byte) (uint64, error) {
	if len(k) != logKeyLen || k[0] != logPrefix {
		return 0, fmt.Errorf("%w: log key %x is not %d bytes starting with %q", ErrCorrupt, k, logKeyLen, logPrefix)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

// logRangeEnd returns the exclusive end key of a range delete that ends with index
// max inclusive. max+1 would wrap to 0 for math.MaxUint64, so that one ends at the
// log's upper bound instead.
func logRangeEnd(max uint64) []byte {
	if max == math.MaxUint64 {
		return append([]byte(nil), logUpper...)
	}
	return logKey(max + 1)
}

func stableKey(key []byte) []byte {
	k := make([]byte, 1+len(key))
	k[0] = stablePrefix
	copy(k[1:], key)
	return k
}

// Entry encoding, format version 1; see doc.go.
const (
	entryVersion byte = 1

	flagData       byte = 1 << 0
	flagExtensions byte = 1 << 1
	flagAppendedAt byte = 1 << 2
	knownFlags          = flagData | flagExtensions | flagAppendedAt
)

// encodedLen returns the exact number of bytes encodeLog writes for l.
func encodedLen(l *raft.Log) int {
	n := 2 + uvarintLen(l.Index) + uvarintLen(l.Term) + 1
	if l.Data != nil {
		n += uvarintLen(uint64(len(l.Data))) + len(l.Data)
	}
	if l.Extensions != nil {
		n += uvarintLen(uint64(len(l.Extensions))) + len(l.Extensions)
	}
	if !l.AppendedAt.IsZero() {
		n += varintLen(l.AppendedAt.Unix()) + uvarintLen(uint64(l.AppendedAt.Nanosecond()))
	}
	return n
}

// encodeLog writes l into dst, which must hold exactly encodedLen(l) bytes.
func encodeLog(dst []byte, l *raft.Log) {
	var flags byte
	if l.Data != nil {
		flags |= flagData
	}
	if l.Extensions != nil {
		flags |= flagExtensions
	}
	if !l.AppendedAt.IsZero() {
		flags |= flagAppendedAt
	}
	dst[0] = entryVersion
	dst[1] = flags
	n := 2
	n += binary.PutUvarint(dst[n:], l.Index)
	n += binary.PutUvarint(dst[n:], l.Term)
	dst[n] = byte(l.Type)
	n++
	if l.Data != nil {
		n += binary.PutUvarint(dst[n:], uint64(len(l.Data)))
		n += copy(dst[n:], l.Data)
	}
	if l.Extensions != nil {
		n += binary.PutUvarint(dst[n:], uint64(len(l.Extensions)))
		n += copy(dst[n:], l.Extensions)
	}
	if !l.AppendedAt.IsZero() {
		n += binary.PutVarint(dst[n:], l.AppendedAt.Unix())
		n += binary.PutUvarint(dst[n:], uint64(l.AppendedAt.Nanosecond()))
	}
	if n != len(dst) {
		panic(fmt.Sprintf("logstore: encoded %d bytes of a %d-byte entry", n, len(dst)))
	}
}

// decodeLog decodes an entry into l. Data and Extensions alias buf (capacity-limited,
// so appending to one never overwrites the other): pass a buffer the caller owns.
// Every field of l is overwritten.
func decodeLog(buf []byte, l *raft.Log) error {
	d := decoder{buf: buf}
	version := d.byte()
	if d.err == nil && version != entryVersion {
		return fmt.Errorf("%w: entry format version %d, want %d", ErrCorrupt, version, entryVersion)
	}
	flags := d.byte()
	if d.err == nil && flags&^knownFlags != 0 {
		return fmt.Errorf("%w: unknown entry flags %#x", ErrCorrupt, flags)
	}
	out := raft.Log{
		Index: d.uvarint(),
		Term:  d.uvarint(),
		Type:  raft.LogType(d.byte()),
	}
	if flags&flagData != 0 {
		out.Data = d.bytes()
	}
	if flags&flagExtensions != 0 {
		out.Extensions = d.bytes()
	}
	if flags&flagAppendedAt != 0 {
		sec := d.varint()
		nsec := d.uvarint()
		if d.err == nil && nsec >= uint64(time.Second) {
			return fmt.Errorf("%w: appended-at nanoseconds %d out of range", ErrCorrupt, nsec)
		}
		out.AppendedAt = time.Unix(sec, int64(nsec))
		if d.err == nil && out.AppendedAt.IsZero() {
			// The zero time is encoded by leaving the flag unset, never like this.
			return fmt.Errorf("%w: appended-at flag set on the zero time", ErrCorrupt)
		}
	}
	if d.err != nil {
		return d.err
	}
	if d.off != len(buf) {
		return fmt.Errorf("%w: %d trailing bytes after a %d-byte entry", ErrCorrupt, len(buf)-d.off, d.off)
	}
	*l = out
	return nil
}

// decoder reads fields from buf; the first error sticks and later reads return zeros.
type decoder struct {
	buf []byte
	off int
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s at byte %d of a %d-byte entry", ErrCorrupt, what, d.off, len(d.buf))
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.buf) {
		d.fail("byte")
		return 0
	}
	b := d.buf[d.off]
	d.off++
	return b
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf[d.off:])
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf[d.off:])
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.buf)-d.off) {
		d.fail(fmt.Sprintf("length %d", n))
		return nil
	}
	end := d.off + int(n)
	b := d.buf[d.off:end:end]
	d.off = end
	return b
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func varintLen(v int64) int {
	// Zig-zag, as binary.PutVarint does.
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	return uvarintLen(u)
}
