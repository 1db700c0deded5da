package node

import (
	"bytes"
	"errors"
	"testing"
)

func TestAppendBodyRoundTrip(t *testing.T) {
	tag := appendTag{id: 7, stream: 9, seq: 3, boot: 11, base: true}
	body := encodeAppend("orders", 4, tag, [][]byte{[]byte("a"), {}, []byte("ccc")})
	topic, seg, got, payloads, err := decodeAppend(body)
	if err != nil || topic != "orders" || seg != 4 || got != tag || len(payloads) != 3 || string(payloads[2]) != "ccc" {
		t.Fatalf("decodeAppend = %q %d %+v %q %v", topic, seg, got, payloads, err)
	}
	for _, bad := range [][]byte{nil, body[:len(body)-1], append(bytes.Clone(body), 0)} {
		if _, _, _, _, err := decodeAppend(bad); !errors.Is(err, ErrBadRequest) {
			t.Fatalf("decodeAppend of %d bytes: %v, want ErrBadRequest", len(bad), err)
		}
	}
}

// FuzzDecodeAppend: the node-to-node append decoder never panics, and whatever it
// accepts encodes back to exactly the same bytes (one encoding per append).
func FuzzDecodeAppend(f *testing.F) {
	f.Add(encodeAppend("t", 1, appendTag{}, [][]byte{[]byte("x")}))
	f.Add(encodeAppend("orders.eu", 1<<40, appendTag{id: 1, stream: 2, seq: 3, boot: 4, base: true}, [][]byte{[]byte("a"), []byte("bb")}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		topic, seg, tag, payloads, err := decodeAppend(body)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v is not ErrBadRequest", err)
			}
			return
		}
		if again := encodeAppend(topic, seg, tag, payloads); !bytes.Equal(again, body) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, body)
		}
	})
}

// FuzzReadMsg: the RPC frame reader never panics or allocates past its bound, and a
// frame it accepts is exactly what appendMsg writes for its parts.
func FuzzReadMsg(f *testing.F) {
	f.Add(appendMsg(nil, 42, opRead, []byte("body")))
	f.Add(appendMsg(nil, 0, 0, nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		id, kind, body, err := readMsg(bytes.NewReader(data))
		if err != nil {
			return
		}
		want := appendMsg(nil, id, kind, body)
		if !bytes.HasPrefix(data, want) {
			t.Fatalf("frame %x re-encodes as %x", data[:min(len(data), len(want))], want)
		}
	})
}

// FuzzDecodeErr: an error reply from a peer decodes to an error, never a panic, and
// encodeErr's replies keep their message.
func FuzzDecodeErr(f *testing.F) {
	f.Add(encodeErr(ErrNotLeader))
	f.Add(encodeErr(errors.New("x")))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, body []byte) {
		if err := decodeErr(body); err == nil {
			t.Fatal("nil error")
		}
		e := errors.New(string(body))
		if got := decodeErr(encodeErr(e)); got.Error() != e.Error() {
			t.Fatalf("round trip of %q: %q", e.Error(), got.Error())
		}
	})
}
