package rpc

import (
	"bytes"
	"errors"
	"testing"

	"floe/wire"
)

func TestCodecRoundTrip(t *testing.T) {
	var e Encoder
	e.U8(7)
	e.U64(1<<63 + 5)
	e.Bool(true)
	e.Bool(false)
	e.Bytes([]byte("payload"))
	e.Bytes(nil)
	e.Str("topic")
	d := NewDecoder(e.B)
	if got := d.U8(); got != 7 {
		t.Fatalf("U8 = %d, want 7", got)
	}
	if got := d.U64(); got != 1<<63+5 {
		t.Fatalf("U64 = %d, want %d", got, uint64(1<<63+5))
	}
	if !d.Bool() || d.Bool() {
		t.Fatal("Bool did not give back true, false")
	}
	if got := d.Bytes(); string(got) != "payload" || cap(got) != len(got) {
		t.Fatalf("Bytes = %q (cap %d), want \"payload\" with its capacity cut", got, cap(got))
	}
	if got := d.Bytes(); len(got) != 0 {
		t.Fatalf("empty Bytes = %q", got)
	}
	if got := d.Str(); got != "topic" {
		t.Fatalf("Str = %q, want \"topic\"", got)
	}
	if d.Err != nil || len(d.B) != 0 {
		t.Fatalf("after decoding everything: err %v, %d bytes left", d.Err, len(d.B))
	}
}

func TestDecoderErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		body []byte
		read func(d *Decoder)
		want error
	}{
		{"empty u8", nil, func(d *Decoder) { d.U8() }, ErrShort},
		{"short u64", []byte{1, 2, 3}, func(d *Decoder) { d.U64() }, ErrShort},
		{"short length", []byte{1, 0}, func(d *Decoder) { d.Bytes() }, ErrShort},
		{"length past the end", []byte{5, 0, 0, 0, 'a'}, func(d *Decoder) { d.Bytes() }, ErrShort},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff}, func(d *Decoder) { d.Str() }, ErrShort},
		{"bool 2", []byte{2}, func(d *Decoder) { d.Bool() }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(tc.body)
			tc.read(d)
			if d.Err == nil || (tc.want != nil && !errors.Is(d.Err, tc.want)) {
				t.Fatalf("err = %v, want %v", d.Err, tc.want)
			}
			first := d.Err
			if v := d.U64(); v != 0 || d.Err != first {
				t.Fatalf("after an error: U64 = %d, err %v; want 0 and the first error kept", v, d.Err)
			}
		})
	}
}

func TestAppendBodyRoundTrip(t *testing.T) {
	a := Append{Topic: "orders", Segment: 4, ID: 7, Stream: 9, Seq: 3, Boot: 11, Base: true,
		Payloads: [][]byte{[]byte("a"), {}, []byte("ccc")}}
	body := a.Encode()
	got, err := DecodeAppend(body)
	if err != nil || got.Topic != "orders" || got.Segment != 4 || got.ID != 7 || got.Stream != 9 || got.Seq != 3 ||
		got.Boot != 11 || !got.Base || len(got.Payloads) != 3 || string(got.Payloads[2]) != "ccc" {
		t.Fatalf("DecodeAppend = %+v, %v", got, err)
	}
	none := (&Append{Topic: "t"}).Encode()
	for _, bad := range [][]byte{nil, body[:len(body)-1], append(bytes.Clone(body), 0), none} {
		if _, err := DecodeAppend(bad); !errors.Is(err, wire.ErrBadRequest) {
			t.Fatalf("DecodeAppend of %d bytes: %v, want ErrBadRequest", len(bad), err)
		}
	}
}

func TestStatusRoundTrip(t *testing.T) {
	st := Status{Applied: 3, LastIndex: 4, State: "Leader", Boot: 99}
	got, err := DecodeStatus(st.Encode())
	if err != nil || got != st {
		t.Fatalf("DecodeStatus = %+v, %v; want %+v", got, err, st)
	}
	if _, err := DecodeStatus(st.Encode()[:10]); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a cut status reply: %v, want ErrUnavailable", err)
	}
}

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	buf.Write(AppendFrame(nil, 1, byte(OpRead), []byte("one")))
	buf.Write(AppendFrame(nil, 2, StatusErr, nil))
	for _, want := range []struct {
		id   uint64
		kind byte
		body string
	}{{1, byte(OpRead), "one"}, {2, StatusErr, ""}} {
		id, kind, body, err := ReadFrame(&buf)
		if err != nil || id != want.id || kind != want.kind || string(body) != want.body {
			t.Fatalf("ReadFrame = %d %d %q %v, want %d %d %q", id, kind, body, err, want.id, want.kind, want.body)
		}
	}
	for _, n := range []uint32{0, 8, MaxFrame + 1} {
		hdr := []byte{byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24)}
		if _, _, _, err := ReadFrame(bytes.NewReader(hdr)); err == nil {
			t.Fatalf("a length field of %d was accepted", n)
		}
	}
}
