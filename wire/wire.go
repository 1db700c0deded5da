package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Wire limits of the Walrus protocol.
const (
	// MaxRequest is the largest request frame a node accepts (64 KiB).
	MaxRequest = 64 << 10
	// MaxReply is the largest reply frame a client accepts.
	MaxReply = 64 << 20
)

// Sentinel errors of the codec. Their texts are part of the protocol (a node answers
// a bad frame with the error's text verbatim), so they carry no package prefix.
var (
	// ErrFrameTooLarge: a frame's length prefix is over the limit.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrEmptyFrame: a frame's length prefix is 0.
	ErrEmptyFrame = errors.New("empty frame")
	// ErrBadReply: a reply does not follow the protocol.
	ErrBadReply = errors.New("malformed reply")
	// ErrBadBatch: a PUTBATCH body does not follow its encoding.
	ErrBadBatch = errors.New("malformed batch")
)

// WriteFrame writes one frame: a 4-byte little-endian length, then b.
func WriteFrame(w io.Writer, b []byte) error {
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

// AppendFrame appends one frame (WriteFrame's bytes) to dst and returns it.
func AppendFrame(dst, b []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

// ReadFrame reads one frame of at most max bytes. A frame of length 0 or over max has
// its body skipped (so the stream stays in step) and returns ErrEmptyFrame or
// ErrFrameTooLarge; other errors are the reader's.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n == 0 {
		return nil, ErrEmptyFrame
	}
	if int64(n) > int64(max) {
		if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// Entry is one entry of a topic with its offset.
type Entry struct {
	Offset  uint64
	Payload []byte
}

// EncodeEntries builds the binary-safe reply of READ and TAIL:
//
//	"OK <count> <next>\n" then count records of [u64 offset LE][u32 length LE][payload]
//
// where next is the offset to read from next.
func EncodeEntries(entries []Entry, next uint64) []byte {
	size := 32
	for _, e := range entries {
		size += 12 + len(e.Payload)
	}
	b := make([]byte, 0, size)
	b = append(b, "OK "...)
	b = strconv.AppendInt(b, int64(len(entries)), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, next, 10)
	b = append(b, '\n')
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint64(b, e.Offset)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e.Payload)))
		b = append(b, e.Payload...)
	}
	return b
}

// DecodeEntries parses a READ or TAIL reply built by EncodeEntries. A reply starting
// with "ERR " is returned as an error carrying the node's reason.
func DecodeEntries(reply []byte) ([]Entry, uint64, error) {
	if err := ReplyError(reply); err != nil {
		return nil, 0, err
	}
	nl := bytes.IndexByte(reply, '\n')
	if nl < 0 || !bytes.HasPrefix(reply, []byte("OK ")) {
		return nil, 0, fmt.Errorf("%w: no entries header", ErrBadReply)
	}
	var count int
	var next uint64
	if _, err := fmt.Sscanf(string(reply[3:nl]), "%d %d", &count, &next); err != nil || count < 0 {
		return nil, 0, fmt.Errorf("%w: header %q", ErrBadReply, reply[:nl])
	}
	body := reply[nl+1:]
	if count > len(body)/12 {
		return nil, 0, fmt.Errorf("%w: %d entries in %d bytes", ErrBadReply, count, len(body))
	}
	entries := make([]Entry, 0, count)
	for i := 0; i < count; i++ {
		if len(body) < 12 {
			return nil, 0, fmt.Errorf("%w: entry %d truncated", ErrBadReply, i)
		}
		off := binary.LittleEndian.Uint64(body)
		n := binary.LittleEndian.Uint32(body[8:])
		body = body[12:]
		if uint64(n) > uint64(len(body)) {
			return nil, 0, fmt.Errorf("%w: entry %d says %d bytes, %d left", ErrBadReply, i, n, len(body))
		}
		entries = append(entries, Entry{Offset: off, Payload: body[:n:n]})
		body = body[n:]
	}
	if len(body) != 0 {
		return nil, 0, fmt.Errorf("%w: %d trailing bytes", ErrBadReply, len(body))
	}
	return entries, next, nil
}

// EncodeBatch builds a PUTBATCH request: "PUTBATCH <topic>\n" then records of
// [u32 length LE][payload]. Payloads may hold any bytes.
func EncodeBatch(topic string, payloads [][]byte) []byte {
	size := 16 + len(topic)
	for _, p := range payloads {
		size += 4 + len(p)
	}
	b := make([]byte, 0, size)
	b = append(b, "PUTBATCH "...)
	b = append(b, topic...)
	b = append(b, '\n')
	for _, p := range payloads {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

// DecodeBatchBody splits the body of a PUTBATCH request (after its header line).
func DecodeBatchBody(body []byte) ([][]byte, error) {
	var out [][]byte
	for len(body) > 0 {
		if len(body) < 4 {
			return nil, fmt.Errorf("%w: batch record %d truncated", ErrBadBatch, len(out))
		}
		n := binary.LittleEndian.Uint32(body)
		body = body[4:]
		if uint64(n) > uint64(len(body)) {
			return nil, fmt.Errorf("%w: batch record %d says %d bytes, %d left", ErrBadBatch, len(out), n, len(body))
		}
		if n == 0 {
			return nil, fmt.Errorf("%w: batch record %d is empty", ErrBadBatch, len(out))
		}
		out = append(out, body[:n:n])
		body = body[n:]
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: empty batch", ErrBadBatch)
	}
	return out, nil
}

// ServerError is an "ERR <reason>" reply, as a client sees it.
type ServerError struct{ Reason string }

func (e *ServerError) Error() string { return "floe: " + e.Reason }

// ErrorReply builds the reply "ERR <reason>": the request changed nothing,
// or its outcome is unknown, as reason says.
func ErrorReply(reason string) []byte { return []byte("ERR " + reason) }

// ReplyError returns the *ServerError of an "ERR <reason>" reply, and nil
// for any other reply.
func ReplyError(reply []byte) error {
	if bytes.HasPrefix(reply, []byte("ERR")) {
		return &ServerError{Reason: string(bytes.TrimSpace(bytes.TrimPrefix(reply, []byte("ERR"))))}
	}
	return nil
}
