package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"floe/meta"
	"floe/topicname"
	"floe/wire"
)

// TestErrorCodes: every sentinel of the table crosses the wire as itself, wrapped or
// not, with the message the answering node wrote; the codes are the protocol's.
func TestErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		code Code
		err  error
	}{
		{1, ErrNotSegmentLeader}, {2, ErrUnavailable}, {3, meta.ErrNoTopic}, {4, wire.ErrBadRequest},
		{5, ErrCorrupt}, {6, meta.ErrCursorMoved}, {7, meta.ErrStaleSegment}, {8, topicname.ErrInvalid},
		{9, meta.ErrNotRaftLeader}, {10, ErrSegmentNotFound}, {11, ErrOutcomeUnknown},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			wrapped := fmt.Errorf("%w: segment 3 of %q", tc.err, "t")
			if got := CodeOf(wrapped); got != tc.code {
				t.Fatalf("CodeOf = %d, want %d", got, tc.code)
			}
			if Sentinel(tc.code) != tc.err {
				t.Fatalf("Sentinel(%d) = %v, want %v", tc.code, Sentinel(tc.code), tc.err)
			}
			got := DecodeError(EncodeError(wrapped))
			if !errors.Is(got, tc.err) || got.Error() != wrapped.Error() || !IsRemote(got) {
				t.Fatalf("decoded %q (remote %v), want %q wrapping %v", got, IsRemote(got), wrapped, tc.err)
			}
			if r := Remote(wrapped); !errors.Is(r, tc.err) || r.Error() != wrapped.Error() {
				t.Fatalf("Remote = %v", r)
			}
		})
	}
}

func TestErrorCodeOther(t *testing.T) {
	plain := errors.New("disk on fire")
	if CodeOf(plain) != CodeOther || Sentinel(CodeOther) != nil {
		t.Fatalf("CodeOf(plain) = %d, Sentinel(0) = %v", CodeOf(plain), Sentinel(CodeOther))
	}
	got := DecodeError(EncodeError(plain))
	if got.Error() != "disk on fire" || errors.Unwrap(got) != nil {
		t.Fatalf("decoded %v unwrapping to %v", got, errors.Unwrap(got))
	}
	// A code from a newer node decodes as "other", with its message.
	var e Encoder
	e.U8(200)
	e.Str("new kind")
	if got := DecodeError(e.B); got.Error() != "new kind" || errors.Unwrap(got) != nil {
		t.Fatalf("unknown code decoded as %v unwrapping to %v", got, errors.Unwrap(got))
	}
	// An error reply that does not decode is ErrUnavailable, never a remote answer.
	if got := DecodeError([]byte{1, 9}); !errors.Is(got, ErrUnavailable) || IsRemote(got) {
		t.Fatalf("undecodable reply = %v", got)
	}
	if Remote(nil) != nil {
		t.Fatal("Remote(nil) is not nil")
	}
}

// TestErrorCodeFirstWins: an error wrapping two sentinels gets the code listed first,
// so an ErrUnavailable that wraps a peer's ErrNotSegmentLeader keeps saying "not
// leader" (route afresh).
func TestErrorCodeFirstWins(t *testing.T) {
	both := fmt.Errorf("%w: %w", ErrUnavailable, DecodeError(EncodeError(ErrNotSegmentLeader)))
	if got := CodeOf(both); got != CodeNotLeader {
		t.Fatalf("CodeOf = %d, want CodeNotLeader", got)
	}
}

func TestApplyReplyRoundTrip(t *testing.T) {
	for _, want := range []ApplyReply{
		{Index: 9, Cursor: 4},
		{Index: 10, Err: fmt.Errorf("%w: x", meta.ErrCursorMoved)},
	} {
		got, err := DecodeApplyReply(want.Encode())
		if err != nil || got.Index != want.Index || got.Cursor != want.Cursor {
			t.Fatalf("DecodeApplyReply = %+v, %v; want %+v", got, err, want)
		}
		if (want.Err == nil) != (got.Err == nil) || (want.Err != nil && (!errors.Is(got.Err, meta.ErrCursorMoved) || got.Err.Error() != want.Err.Error())) {
			t.Fatalf("result error %v, want %v", got.Err, want.Err)
		}
	}
	if _, err := DecodeApplyReply([]byte{1}); err == nil {
		t.Fatal("a cut apply reply decoded")
	}
}

// TestUnavailableSaysItOnce: an ErrUnavailable says "unavailable" once however many
// failures it chains (its own, a local one, a peer's answer, a wrapped one), on one
// line, and stays an ErrUnavailable, never the sentinels of its cause. A call to a
// port nobody listens on is one line too, and says it was not sent.
func TestUnavailableSaysItOnce(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := closed.Addr().String()
	closed.Close()
	p := NewPeer(deadAddr, nil)
	defer p.Close()
	_, dialErr := p.Call(context.Background(), OpStatus, nil, 5*time.Second)
	if !errors.Is(dialErr, ErrNotSent) {
		t.Fatalf("call to a closed port: %v, want ErrNotSent", dialErr)
	}

	local := Unavailable("node 2 did not answer", nil)
	peer := DecodeError(EncodeError(Unavailable("node busy", nil)))
	notLeader := DecodeError(EncodeError(fmt.Errorf("%w: segment 3", ErrNotSegmentLeader)))
	for _, tc := range []struct {
		name string
		err  error
		want string // "" to check only the invariants
	}{
		{"alone", local, "unavailable: node 2 did not answer"},
		{"plain cause", Unavailable("call to x", context.DeadlineExceeded), "unavailable: call to x: context deadline exceeded"},
		{"local cause", Unavailable(`append to "t"`, local), `unavailable: append to "t": node 2 did not answer`},
		{"local cause twice", Unavailable("a", Unavailable("b", local)), "unavailable: a: b: node 2 did not answer"},
		{"peer's answer", Unavailable("read from node 2", peer), "read from node 2: unavailable: node busy"},
		{"peer's answer twice", Unavailable("a", Unavailable("b", peer)), "a: b: unavailable: node busy"},
		{"wrapped cause", Unavailable("a", fmt.Errorf("gave up: %w", local)), "a: gave up: unavailable: node 2 did not answer"},
		{"a peer's other sentinel", Unavailable("a", notLeader), "unavailable: a: not the segment leader: segment 3"},
		{"dial failure", dialErr, ""},
		{"dial failure as a cause", Unavailable(`append to "t" not sent`, dialErr), ""},
		{"undecodable reply", DecodeError([]byte{2, 9}), "unavailable: undecodable error reply"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := tc.err.Error()
			if tc.want != "" && msg != tc.want {
				t.Errorf("text %q, want %q", msg, tc.want)
			}
			if n := strings.Count(msg, "unavailable"); n != 1 {
				t.Errorf("%q says unavailable %d times, want once", msg, n)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("%q spans lines", msg)
			}
			if !errors.Is(tc.err, ErrUnavailable) || CodeOf(tc.err) != CodeUnavailable {
				t.Errorf("%q is not an ErrUnavailable (code %d)", msg, CodeOf(tc.err))
			}
			if r := DecodeError(EncodeError(tc.err)); r.Error() != msg || !errors.Is(r, ErrUnavailable) {
				t.Errorf("across the wire: %q (unavailable %v), want %q", r, errors.Is(r, ErrUnavailable), msg)
			}
		})
	}
}
