package rpc

import (
	"fmt"

	"floe/wire"
)

// Append is the body of an OpAppend call: a run of entries for the active segment of
// Topic, and the tag the segment leader uses to keep a stream in order and to answer a
// retry with the first attempt's outcome.
type Append struct {
	Topic    string
	Segment  uint64 // the segment the sender routed to; 0: whichever is active
	ID       uint64 // request id (0: never retried, remember nothing)
	Stream   uint64 // the sender's ordered stream (0: none)
	Seq      uint64 // position in Stream
	Boot     uint64 // boot id of the node the first attempt went to (0: first attempt)
	Base     bool   // Seq starts Stream afresh
	Payloads [][]byte
}

// Encode returns the body: topic, segment, id, stream, seq, boot, base, then the
// payload count and each payload.
func (a *Append) Encode() []byte {
	var e Encoder
	e.Str(a.Topic)
	e.U64(a.Segment)
	e.U64(a.ID)
	e.U64(a.Stream)
	e.U64(a.Seq)
	e.U64(a.Boot)
	e.Bool(a.Base)
	e.U64(uint64(len(a.Payloads)))
	for _, pl := range a.Payloads {
		e.Bytes(pl)
	}
	return e.B
}

// DecodeAppend decodes an OpAppend body; anything malformed (short, trailing bytes, no
// payloads, a count the body cannot hold) is wire.ErrBadRequest. Payloads alias body.
func DecodeAppend(body []byte) (Append, error) {
	d := NewDecoder(body)
	a := Append{Topic: d.Str(), Segment: d.U64(), ID: d.U64(), Stream: d.U64(), Seq: d.U64(), Boot: d.U64(), Base: d.Bool()}
	count := d.U64()
	if d.Err != nil || count == 0 || count > uint64(len(d.B)/4) {
		return Append{}, fmt.Errorf("%w: malformed append", wire.ErrBadRequest)
	}
	a.Payloads = make([][]byte, count)
	for i := range a.Payloads {
		a.Payloads[i] = d.Bytes()
	}
	if d.Err != nil || len(d.B) != 0 {
		return Append{}, fmt.Errorf("%w: malformed append", wire.ErrBadRequest)
	}
	return a, nil
}

// Replicate is the body of an OpReplicate call: records of a replicated active
// segment, sent by its leader to one of its followers, to be appended at index Start
// of the follower's copy. Epoch and Leader name the segment's writer, so that a
// follower refuses a deposed one; Committed is how many entries of the segment a
// majority of its replicas holds (what readers may see). No payloads: a probe, which
// the follower answers with its durable count.
type Replicate struct {
	Topic     string
	Segment   uint64
	Epoch     uint64
	Leader    uint64
	Start     uint64
	Committed uint64
	Payloads  [][]byte
}

// Encode returns the body: topic, segment, epoch, leader, start, committed, then the
// payload count and each payload.
func (r *Replicate) Encode() []byte {
	size := len(r.Topic) + 64
	for _, p := range r.Payloads {
		size += 4 + len(p)
	}
	e := Encoder{B: make([]byte, 0, size)}
	e.Str(r.Topic)
	e.U64(r.Segment)
	e.U64(r.Epoch)
	e.U64(r.Leader)
	e.U64(r.Start)
	e.U64(r.Committed)
	e.U64(uint64(len(r.Payloads)))
	for _, p := range r.Payloads {
		e.Bytes(p)
	}
	return e.B
}

// DecodeReplicate decodes an OpReplicate body; anything malformed (short, trailing
// bytes, an empty payload, a count the body cannot hold) is wire.ErrBadRequest.
// Payloads alias body.
func DecodeReplicate(body []byte) (Replicate, error) {
	d := NewDecoder(body)
	r := Replicate{Topic: d.Str(), Segment: d.U64(), Epoch: d.U64(), Leader: d.U64(), Start: d.U64(), Committed: d.U64()}
	count := d.U64()
	if d.Err != nil || count > uint64(len(d.B)/4) {
		return Replicate{}, fmt.Errorf("%w: malformed replicate", wire.ErrBadRequest)
	}
	if count > 0 {
		r.Payloads = make([][]byte, count)
	}
	for i := range r.Payloads {
		r.Payloads[i] = d.Bytes()
		if len(r.Payloads[i]) == 0 {
			return Replicate{}, fmt.Errorf("%w: malformed replicate: empty payload", wire.ErrBadRequest)
		}
	}
	if d.Err != nil || len(d.B) != 0 {
		return Replicate{}, fmt.Errorf("%w: malformed replicate", wire.ErrBadRequest)
	}
	return r, nil
}

// Get is the body of an OpGet call: a client's GET, forwarded whole to the Raft
// leader, which takes up to Max entries from the topic's shared cursor.
type Get struct {
	Topic string
	Max   int // 1 to wire.MaxReadMax
}

// Encode returns the body: topic, max.
func (g Get) Encode() []byte {
	var e Encoder
	e.Str(g.Topic)
	e.U64(uint64(g.Max))
	return e.B
}

// DecodeGet decodes an OpGet body; anything malformed (short, trailing bytes, a max
// out of range) is wire.ErrBadRequest.
func DecodeGet(body []byte) (Get, error) {
	d := NewDecoder(body)
	topic, max := d.Str(), d.U64()
	if d.Err != nil || len(d.B) != 0 || max < 1 || max > wire.MaxReadMax {
		return Get{}, fmt.Errorf("%w: malformed get", wire.ErrBadRequest)
	}
	return Get{Topic: topic, Max: int(max)}, nil
}

// GetReply is the reply to OpGet: the entries the leader's cursor advance handed out,
// and the index of the last command the leader's FSM had applied once that advance
// applied (a command index: the sender's FSM reaches it too), so that the sender
// waits for its own metadata to reach it before it answers its client (a STATE through
// the same node then shows the cursor moved, as after a GET the node served itself).
type GetReply struct {
	Applied uint64
	Entries []wire.Entry
}

// Encode writes the applied index, the count, then each entry as its offset and its
// payload.
func (g GetReply) Encode() []byte {
	size := 16
	for _, en := range g.Entries {
		size += 12 + len(en.Payload)
	}
	e := Encoder{B: make([]byte, 0, size)}
	e.U64(g.Applied)
	e.U64(uint64(len(g.Entries)))
	for _, en := range g.Entries {
		e.U64(en.Offset)
		e.Bytes(en.Payload)
	}
	return e.B
}

// DecodeGetReply decodes an OpGet reply; a malformed one (short, trailing bytes, a
// count the body cannot hold) is an ErrUnavailable: the peer's answer is lost.
// Payloads alias body.
func DecodeGetReply(body []byte) (GetReply, error) {
	d := NewDecoder(body)
	applied := d.U64()
	count := d.U64()
	if d.Err != nil || count > uint64(len(d.B)/12) {
		return GetReply{}, fmt.Errorf("%w: malformed get reply", ErrUnavailable)
	}
	entries := make([]wire.Entry, count)
	for i := range entries {
		entries[i] = wire.Entry{Offset: d.U64(), Payload: d.Bytes()}
	}
	if d.Err != nil || len(d.B) != 0 {
		return GetReply{}, fmt.Errorf("%w: malformed get reply", ErrUnavailable)
	}
	return GetReply{Applied: applied, Entries: entries}, nil
}

// Status is the reply to OpStatus, also read by the handshake of every new
// connection (which is how a Peer learns the boot id).
type Status struct {
	Applied   uint64 // Raft's applied index
	LastIndex uint64 // Raft's last log index
	State     string // Raft state: "Leader", "Follower", ...
	Boot      uint64 // random per process start: tells a restart from a slow answer
}

// Encode returns the reply body.
func (s Status) Encode() []byte {
	var e Encoder
	e.U64(s.Applied)
	e.U64(s.LastIndex)
	e.Str(s.State)
	e.U64(s.Boot)
	return e.B
}

// DecodeStatus decodes an OpStatus reply.
func DecodeStatus(body []byte) (Status, error) {
	d := NewDecoder(body)
	s := Status{Applied: d.U64(), LastIndex: d.U64(), State: d.Str(), Boot: d.U64()}
	if d.Err != nil {
		return Status{}, Unavailable("bad status reply", d.Err)
	}
	return s, nil
}

// noResultErr is the code byte of an apply reply whose command returned no error.
const noResultErr = 255

// ApplyReply is the reply to OpApply: where the command was committed, and the
// command's own result (meta.Result's Cursor and Err).
type ApplyReply struct {
	Index  uint64
	Cursor uint64
	Err    error // on decoding: a *RemoteError, so errors.Is sees the sentinel
}

// Encode returns the body: index, cursor, then the result error as a code (255: none)
// and a message.
func (r ApplyReply) Encode() []byte {
	var e Encoder
	e.U64(r.Index)
	e.U64(r.Cursor)
	if r.Err != nil {
		e.U8(byte(CodeOf(r.Err)))
		e.Str(r.Err.Error())
	} else {
		e.U8(noResultErr)
		e.Str("")
	}
	return e.B
}

// DecodeApplyReply decodes an OpApply reply.
func DecodeApplyReply(body []byte) (ApplyReply, error) {
	d := NewDecoder(body)
	r := ApplyReply{Index: d.U64(), Cursor: d.U64()}
	code, msg := d.U8(), d.Str()
	if d.Err != nil {
		return ApplyReply{}, d.Err
	}
	if code != noResultErr {
		r.Err = &RemoteError{Code: Code(code), Msg: msg}
	}
	return r, nil
}
