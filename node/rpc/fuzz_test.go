package rpc

import (
	"bytes"
	"errors"
	"testing"

	"floe/wire"
)

// FuzzDecodeAppend: the node-to-node append decoder never panics, and whatever it
// accepts encodes back to exactly the same bytes (one encoding per append).
func FuzzDecodeAppend(f *testing.F) {
	f.Add((&Append{Topic: "t", Segment: 1, Payloads: [][]byte{[]byte("x")}}).Encode())
	f.Add((&Append{Topic: "orders.eu", Segment: 1 << 40, ID: 1, Stream: 2, Seq: 3, Boot: 4, Base: true, Payloads: [][]byte{[]byte("a"), []byte("bb")}}).Encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := DecodeAppend(body)
		if err != nil {
			if !errors.Is(err, wire.ErrBadRequest) {
				t.Fatalf("error %v is not ErrBadRequest", err)
			}
			return
		}
		if again := a.Encode(); !bytes.Equal(again, body) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, body)
		}
	})
}

// FuzzDecodeGet: the forwarded GET decoder never panics, accepts only a max of 1 to
// wire.MaxReadMax, and whatever it accepts encodes back to the same bytes.
func FuzzDecodeGet(f *testing.F) {
	f.Add(Get{Topic: "t", Max: 1}.Encode())
	f.Add(Get{Topic: "orders.eu", Max: wire.MaxReadMax}.Encode())
	f.Add(Get{Topic: "t", Max: 0}.Encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		g, err := DecodeGet(body)
		if err != nil {
			if !errors.Is(err, wire.ErrBadRequest) {
				t.Fatalf("error %v is not ErrBadRequest", err)
			}
			return
		}
		if g.Max < 1 || g.Max > wire.MaxReadMax {
			t.Fatalf("accepted max %d", g.Max)
		}
		if again := g.Encode(); !bytes.Equal(again, body) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, body)
		}
	})
}

// FuzzDecodeGetReply: the reply of a forwarded GET decodes without panicking or
// allocating past what its body holds, and whatever decodes encodes back to the same
// bytes; anything else is ErrUnavailable.
func FuzzDecodeGetReply(f *testing.F) {
	f.Add(GetReply{}.Encode())
	f.Add(GetReply{Applied: 42, Entries: []wire.Entry{{Offset: 7, Payload: []byte("a")}, {Offset: 8, Payload: []byte("bb")}}}.Encode())
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		g, err := DecodeGetReply(body)
		if err != nil {
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("error %v is not ErrUnavailable", err)
			}
			return
		}
		if again := g.Encode(); !bytes.Equal(again, body) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, body)
		}
	})
}

// FuzzReadFrame: the RPC frame reader never panics or allocates past its bound, and a
// frame it accepts is exactly what AppendFrame writes for its parts.
func FuzzReadFrame(f *testing.F) {
	f.Add(AppendFrame(nil, 42, byte(OpRead), []byte("body")))
	f.Add(AppendFrame(nil, 0, 0, nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		id, kind, body, err := ReadFrame(bytes.NewReader(data))
		if err != nil {
			return
		}
		want := AppendFrame(nil, id, kind, body)
		if !bytes.HasPrefix(data, want) {
			t.Fatalf("frame %x re-encodes as %x", data[:min(len(data), len(want))], want)
		}
	})
}

// FuzzDecodeError: an error reply from a peer decodes to an error, never a panic, and
// EncodeError's replies keep their message.
func FuzzDecodeError(f *testing.F) {
	f.Add(EncodeError(ErrNotSegmentLeader))
	f.Add(EncodeError(errors.New("x")))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, body []byte) {
		if err := DecodeError(body); err == nil {
			t.Fatal("nil error")
		}
		e := errors.New(string(body))
		if got := DecodeError(EncodeError(e)); got.Error() != e.Error() {
			t.Fatalf("round trip of %q: %q", e.Error(), got.Error())
		}
	})
}

// FuzzDecodeReplicate: the replication decoder never panics, accepts no empty
// payload, and whatever it accepts encodes back to exactly the same bytes.
func FuzzDecodeReplicate(f *testing.F) {
	f.Add((&Replicate{Topic: "t", Segment: 1, Epoch: 7, Leader: 2, Payloads: [][]byte{[]byte("x")}}).Encode())
	f.Add((&Replicate{Topic: "orders.eu", Segment: 3, Epoch: 1 << 40, Leader: 1, Start: 10, Committed: 9}).Encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeReplicate(body)
		if err != nil {
			if !errors.Is(err, wire.ErrBadRequest) {
				t.Fatalf("error %v is not ErrBadRequest", err)
			}
			return
		}
		for i, p := range r.Payloads {
			if len(p) == 0 {
				t.Fatalf("payload %d is empty", i)
			}
		}
		if again := r.Encode(); !bytes.Equal(again, body) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, body)
		}
	})
}
