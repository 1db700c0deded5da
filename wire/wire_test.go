package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	for _, p := range []string{"a", "PUT t hello", string(make([]byte, MaxRequest))} {
		if err := WriteFrame(&buf, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []int{1, 11, MaxRequest} {
		b, err := ReadFrame(&buf, MaxRequest)
		if err != nil || len(b) != want {
			t.Fatalf("ReadFrame = %d bytes, %v; want %d", len(b), err, want)
		}
	}
	if _, err := ReadFrame(&buf, MaxRequest); !errors.Is(err, io.EOF) {
		t.Fatalf("at end: %v, want EOF", err)
	}
}

func TestReadFrameSkipsBadFrames(t *testing.T) {
	var buf bytes.Buffer
	buf.Write([]byte{0, 0, 0, 0}) // length 0
	big := make([]byte, MaxRequest+1)
	WriteFrame(&buf, big) // too large: body must be skipped
	WriteFrame(&buf, []byte("GET t"))
	if _, err := ReadFrame(&buf, MaxRequest); !errors.Is(err, ErrEmptyFrame) {
		t.Fatalf("empty frame: %v", err)
	}
	if _, err := ReadFrame(&buf, MaxRequest); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("big frame: %v", err)
	}
	b, err := ReadFrame(&buf, MaxRequest)
	if err != nil || string(b) != "GET t" {
		t.Fatalf("frame after bad ones = %q, %v; stream out of step", b, err)
	}
}

func TestEntriesRoundTrip(t *testing.T) {
	in := []Entry{{Offset: 5, Payload: []byte("x")}, {Offset: 6, Payload: []byte{0, 0xff, '\n'}}}
	got, next, err := DecodeEntries(EncodeEntries(in, 7))
	if err != nil || next != 7 || !reflect.DeepEqual(got, in) {
		t.Fatalf("got %v %d %v", got, next, err)
	}
	got, next, err = DecodeEntries(EncodeEntries(nil, 3))
	if err != nil || next != 3 || len(got) != 0 {
		t.Fatalf("empty: got %v %d %v", got, next, err)
	}
	var se *ServerError
	if _, _, err := DecodeEntries([]byte("ERR no such topic")); !errors.As(err, &se) || se.Reason != "no such topic" {
		t.Fatalf("ERR reply: %v", err)
	}
	good := EncodeEntries(in, 7)
	for name, b := range map[string][]byte{
		"no header":       []byte("OK"),
		"bad count":       []byte("OK x 1\n"),
		"negative":        []byte("OK -1 1\n"),
		"truncated":       good[:len(good)-1],
		"trailing":        append(append([]byte{}, good...), 1),
		"count too large": []byte("OK 9 1\n" + string(make([]byte, 12))),
	} {
		if _, _, err := DecodeEntries(b); !errors.Is(err, ErrBadReply) {
			t.Errorf("%s: %v, want ErrBadReply", name, err)
		}
	}
}

func FuzzDecodeEntries(f *testing.F) {
	f.Add(EncodeEntries([]Entry{{1, []byte("a")}, {2, []byte("bc")}}, 3))
	f.Add([]byte("OK 0 0\n"))
	f.Add([]byte("ERR x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, next, err := DecodeEntries(b)
		if err != nil {
			return
		}
		// Anything decoded re-encodes to the same bytes' meaning.
		again, next2, err := DecodeEntries(EncodeEntries(entries, next))
		if err != nil || next2 != next || len(again) != len(entries) {
			t.Fatalf("re-decode: %v %d %d", err, len(again), len(entries))
		}
	})
}

func FuzzDecodeBatchBody(f *testing.F) {
	f.Add(EncodeBatch("t", [][]byte{{1}, {2, 3}})[len("PUTBATCH t\n"):])
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := DecodeBatchBody(b)
		if err != nil {
			return
		}
		total := 0
		for _, p := range ps {
			if len(p) == 0 {
				t.Fatal("empty payload accepted")
			}
			total += 4 + len(p)
		}
		if total != len(b) {
			t.Fatalf("decoded %d bytes of %d", total, len(b))
		}
		_ = binary.LittleEndian
	})
}
