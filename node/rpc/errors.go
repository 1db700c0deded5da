package rpc

import (
	"errors"
	"fmt"

	"floe/meta"
	"floe/topicname"
	"floe/wire"
)

// The node's errors that cross the wire. They live here because an error reply names
// each by a code (see Code); package node re-exports them. Their texts are part of the
// client protocol: a client's ERR reply is the error's text verbatim, so they carry no
// package prefix and read as what a user is told ("not the segment leader",
// "unavailable"). Retryable ones (ErrNotSegmentLeader, ErrUnavailable) are retried
// within the request deadline before a client ever sees them.
var (
	// ErrNotSegmentLeader: this node does not lead the segment the request needs
	// (the Raft leader's counterpart is meta.ErrNotRaftLeader).
	ErrNotSegmentLeader = errors.New("not the segment leader")
	// ErrUnavailable: a node, or the quorum, cannot be reached right now. Every
	// failure of a call to reach its peer wraps it. Build one with Unavailable, which
	// says "unavailable" once however many failures it chains.
	ErrUnavailable = errors.New("unavailable")
	// ErrCorrupt: stored data failed its checksum; it is never returned as data.
	ErrCorrupt = errors.New("corrupt data")
	// ErrSegmentNotFound: a node was asked for a segment it does not hold.
	ErrSegmentNotFound = errors.New("segment not on this node")
	// ErrOutcomeUnknown: an append may or may not have been written, and nothing can
	// tell any more (the segment leader restarted after the first attempt and forgot
	// it). Final: retrying could write the entry twice.
	ErrOutcomeUnknown = errors.New("outcome unknown")
)

// ErrNotSent marks, inside an ErrUnavailable, a call that never left this node (the
// peer could not be dialled): its request was certainly not served.
var ErrNotSent = errors.New("not sent")

// unavailableError is an ErrUnavailable built by Unavailable. It keeps what it says
// after the word apart (detail), so that an Unavailable wrapping it names the word once.
// said: the detail already holds the word (a cause that says it itself).
type unavailableError struct {
	detail  string
	said    bool
	notSent bool // the call never left this node: it also wraps ErrNotSent
	// unauthorized: the peer refused this node's credentials, or this node the
	// peer's (it also wraps wire.ErrUnauthorized)
	unauthorized bool
}

func (e *unavailableError) Error() string {
	if e.said {
		return e.detail
	}
	return ErrUnavailable.Error() + ": " + e.detail
}

// Unwrap returns ErrUnavailable, ErrNotSent for a call that never left this node, and
// wire.ErrUnauthorized for one refused for its credentials.
// The cause of an Unavailable is in its text only, as with %v: its own sentinels (a
// peer's ErrNotSegmentLeader, say) must not change what the error is.
func (e *unavailableError) Unwrap() []error {
	errs := []error{ErrUnavailable}
	if e.notSent {
		errs = append(errs, ErrNotSent)
	}
	if e.unauthorized {
		errs = append(errs, wire.ErrUnauthorized)
	}
	return errs
}

// Unavailable returns an ErrUnavailable that reads "unavailable: <msg>: <cause>",
// saying "unavailable" once: when cause is itself an Unavailable its detail follows
// msg ("unavailable: append to "t": node 2 did not answer ..."), and when cause
// otherwise says it (a peer's answer, or a wrapped one) the word is left to the cause
// ("read of "t": unavailable: ..."). cause may be nil.
func Unavailable(msg string, cause error) error {
	e := &unavailableError{detail: msg}
	if cause == nil {
		return e
	}
	if u, ok := cause.(*unavailableError); ok && !u.said {
		e.detail = msg + ": " + u.detail
		return e
	}
	e.detail = msg + ": " + cause.Error()
	e.said = errors.Is(cause, ErrUnavailable)
	return e
}

// notSent is the ErrUnavailable of a call that could not be sent: cause says why (a
// dial error, on one line). A connection refused for its credentials (either way)
// also wraps wire.ErrUnauthorized.
func notSent(addr string, cause error) error {
	return &unavailableError{detail: fmt.Sprintf("cannot reach %s, not sent: %v", addr, cause), notSent: true,
		unauthorized: errors.Is(cause, wire.ErrUnauthorized)}
}

// Code names a sentinel error in an error reply, so that the caller's errors.Is sees
// the sentinel the peer returned. The numbers are the protocol: never renumber one.
type Code byte

// The codes. CodeOther is any error without a sentinel of its own.
const (
	CodeOther          Code = 0
	CodeNotLeader      Code = 1 // ErrNotSegmentLeader
	CodeUnavailable    Code = 2 // ErrUnavailable
	CodeNoTopic        Code = 3 // meta.ErrNoTopic
	CodeBadRequest     Code = 4 // wire.ErrBadRequest
	CodeCorrupt        Code = 5 // ErrCorrupt
	CodeCursorMoved    Code = 6 // meta.ErrCursorMoved
	CodeStaleSegment   Code = 7 // meta.ErrStaleSegment
	CodeBadTopic       Code = 8 // topicname.ErrInvalid
	CodeRaftNotLeader  Code = 9 // meta.ErrNotRaftLeader
	CodeNotFound       Code = 10
	CodeOutcomeUnknown Code = 11
	CodeUnauthorized   Code = 12 // wire.ErrUnauthorized
)

// sentinels is the code table, in the order CodeOf tries it.
var sentinels = []struct {
	code Code
	err  error
}{
	{CodeNotLeader, ErrNotSegmentLeader},
	{CodeUnavailable, ErrUnavailable},
	{CodeNoTopic, meta.ErrNoTopic},
	{CodeBadRequest, wire.ErrBadRequest},
	{CodeCorrupt, ErrCorrupt},
	{CodeCursorMoved, meta.ErrCursorMoved},
	{CodeStaleSegment, meta.ErrStaleSegment},
	{CodeBadTopic, topicname.ErrInvalid},
	{CodeRaftNotLeader, meta.ErrNotRaftLeader},
	{CodeNotFound, ErrSegmentNotFound},
	{CodeOutcomeUnknown, ErrOutcomeUnknown},
	{CodeUnauthorized, wire.ErrUnauthorized},
}

// CodeOf returns the code of the first sentinel in the table that err wraps, or
// CodeOther. An error wrapping two (ErrUnavailable around a remote ErrNotSegmentLeader,
// say) gets the one listed first.
func CodeOf(err error) Code {
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return s.code
		}
	}
	return CodeOther
}

// Sentinel returns the sentinel of code, or nil (CodeOther or a code this node does
// not know).
func Sentinel(code Code) error {
	for _, s := range sentinels {
		if s.code == code {
			return s.err
		}
	}
	return nil
}

// RemoteError is an error a peer answered with: its message as the peer wrote it, and
// the sentinel its code names (nil for CodeOther), which errors.Is sees.
type RemoteError struct {
	Code Code
	Msg  string
}

func (e *RemoteError) Error() string { return e.Msg }

// Unwrap returns the sentinel of the error's code.
func (e *RemoteError) Unwrap() error { return Sentinel(e.Code) }

// IsRemote reports whether err is, or wraps, an answer from the peer (as opposed to a
// failure to reach it or a timeout, after which the request may or may not have been
// served).
func IsRemote(err error) bool {
	var re *RemoteError
	return errors.As(err, &re)
}

// Remote returns err as a peer that answered with it would see it: a *RemoteError
// with err's code and message (nil for nil).
func Remote(err error) error {
	if err == nil {
		return nil
	}
	return &RemoteError{Code: CodeOf(err), Msg: err.Error()}
}

// EncodeError is the body of an error reply: [u8 code][u32 len][message].
func EncodeError(err error) []byte {
	var e Encoder
	e.U8(byte(CodeOf(err)))
	e.Str(err.Error())
	return e.B
}

// DecodeError decodes an error reply into a *RemoteError. A body that does not decode
// is an ErrUnavailable: the peer's answer is lost.
func DecodeError(body []byte) error {
	d := NewDecoder(body)
	code := Code(d.U8())
	msg := d.Str()
	if d.Err != nil {
		return Unavailable("undecodable error reply", nil)
	}
	return &RemoteError{Code: code, Msg: msg}
}
