package rpc

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Op names the call a request makes. See doc.go for each op's body and reply.
type Op byte

// The ops. Their numbers are the protocol: never renumber one.
const (
	OpAppend   Op = 1 // topic, segment (0 = active), tag, payloads -> first offset, segment
	OpRead     Op = 2 // topic, segment, offset, max, maxBytes[, copy] -> entries
	OpApply    Op = 3 // command -> index, cursor, result error (at the Raft leader)
	OpJoin     Op = 4 // id, raft address -> ok (at the Raft leader)
	OpStatus   Op = 5 // -> applied index, last index, raft state, boot id
	OpCount    Op = 6 // topic, segment -> count, bytes, sealed of a local segment
	OpSync     Op = 7 // (at the Raft leader) barrier -> FSM applied index
	OpUnsealed Op = 8 // -> Unix ms of the oldest entry in an active segment led (0: none)
	OpGet      Op = 9 // topic, max -> entries taken from the shared cursor (at the Raft leader)
	// OpReplicate: topic, segment, epoch, leader, start, committed, payloads -> the
	// follower's durable count of the segment (at a follower of a replicated segment)
	OpReplicate Op = 10
	// OpFence: topic, segment, epoch -> count, bytes, crc of the follower's copy, which
	// takes no more appends from that segment's leader (at a follower, by the Raft
	// leader failing the segment over)
	OpFence Op = 11
	// OpReport: -> the node's report for the console (JSON; node.Report)
	OpReport Op = 12
)

// The status byte of a response.
const (
	StatusOK  byte = 0 // body: the op's reply
	StatusErr byte = 1 // body: an error reply (EncodeError)
)

// MaxFrame bounds a frame's length field (id, kind and body): ReadFrame refuses more
// before it allocates.
const MaxFrame = 80 << 20

// frameHeader is the length of the length, id and kind fields.
const frameHeader = 4 + 8 + 1

// ReadFrame reads one frame. kind is the op of a request or the status of a response.
// A length field under 9 or over MaxFrame is an error; so is a frame cut short.
func ReadFrame(r io.Reader) (id uint64, kind byte, body []byte, err error) {
	var hdr [4]byte
	if _, err = io.ReadFull(r, hdr[:]); err != nil {
		return
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n < 9 || n > MaxFrame {
		return 0, 0, nil, fmt.Errorf("rpc frame of %d bytes", n)
	}
	buf := make([]byte, n)
	if _, err = io.ReadFull(r, buf); err != nil {
		return
	}
	return binary.LittleEndian.Uint64(buf), buf[8], buf[9:], nil
}

// putHeader fills hdr with the frame header of a body of n bytes.
func putHeader(hdr *[frameHeader]byte, id uint64, kind byte, n int) {
	binary.LittleEndian.PutUint32(hdr[:], uint32(9+n))
	binary.LittleEndian.PutUint64(hdr[4:], id)
	hdr[12] = kind
}

// AppendFrame appends the frame of id, kind and body to dst.
func AppendFrame(dst []byte, id uint64, kind byte, body []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(9+len(body)))
	dst = binary.LittleEndian.AppendUint64(dst, id)
	dst = append(dst, kind)
	return append(dst, body...)
}
