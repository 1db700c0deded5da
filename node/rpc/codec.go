package rpc

import (
	"encoding/binary"
	"errors"
)

// ErrShort is the error of a Decoder that ran out of bytes.
var ErrShort = errors.New("truncated rpc body")

// Encoder builds a message body: fixed-width little-endian integers and byte strings
// prefixed with their u32 length. The zero Encoder is ready; B is the body so far.
type Encoder struct{ B []byte }

// U8 appends one byte.
func (e *Encoder) U8(v byte) { e.B = append(e.B, v) }

// U64 appends v as 8 bytes, little-endian.
func (e *Encoder) U64(v uint64) { e.B = binary.LittleEndian.AppendUint64(e.B, v) }

// Bool appends 1 for true, 0 for false.
func (e *Encoder) Bool(v bool) {
	if v {
		e.U8(1)
	} else {
		e.U8(0)
	}
}

// Bytes appends p prefixed with its length as a u32.
func (e *Encoder) Bytes(p []byte) {
	e.B = binary.LittleEndian.AppendUint32(e.B, uint32(len(p)))
	e.B = append(e.B, p...)
}

// Str appends s as Bytes does.
func (e *Encoder) Str(s string) {
	e.B = binary.LittleEndian.AppendUint32(e.B, uint32(len(s)))
	e.B = append(e.B, s...)
}

// Decoder reads a body that an Encoder wrote. It records its first error (ErrShort, or
// a bool that is neither 0 nor 1) in Err and returns zero values from then on, so a
// caller decodes every field and checks Err once. Byte strings it returns alias the
// body, with their capacity cut to their length.
type Decoder struct {
	B   []byte // what is left to decode
	Err error
}

// NewDecoder returns a Decoder of body.
func NewDecoder(body []byte) *Decoder { return &Decoder{B: body} }

// U8 decodes one byte.
func (d *Decoder) U8() byte {
	if d.Err != nil || len(d.B) < 1 {
		d.fail(ErrShort)
		return 0
	}
	v := d.B[0]
	d.B = d.B[1:]
	return v
}

// Bool decodes a byte that must be 0 or 1.
func (d *Decoder) Bool() bool {
	switch d.U8() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail(errors.New("rpc bool is neither 0 nor 1"))
	return false
}

// U64 decodes 8 bytes, little-endian.
func (d *Decoder) U64() uint64 {
	if d.Err != nil || len(d.B) < 8 {
		d.fail(ErrShort)
		return 0
	}
	v := binary.LittleEndian.Uint64(d.B)
	d.B = d.B[8:]
	return v
}

// Bytes decodes a length-prefixed byte string.
func (d *Decoder) Bytes() []byte {
	if d.Err != nil || len(d.B) < 4 {
		d.fail(ErrShort)
		return nil
	}
	n := binary.LittleEndian.Uint32(d.B)
	if uint64(n) > uint64(len(d.B)-4) {
		d.fail(ErrShort)
		return nil
	}
	v := d.B[4 : 4+n : 4+n]
	d.B = d.B[4+n:]
	return v
}

// Str decodes a length-prefixed string.
func (d *Decoder) Str() string { return string(d.Bytes()) }

func (d *Decoder) fail(err error) {
	if d.Err == nil {
		d.Err = err
	}
}
