package node

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"

	"floe/wire"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func frame(payload []byte) []byte {
	var b bytes.Buffer
	if err := wire.WriteFrame(&b, payload); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// TestConnReaderLendsItsBuffer: a socket's reader holds a read buffer only while
// bytes are waiting: none after a frame that emptied it, one while pipelined frames
// remain; every frame comes out whole and in order, those larger than the buffer
// and those split over several writes too, and the end of the connection is io.EOF.
func TestConnReaderLendsItsBuffer(t *testing.T) {
	client, server := tcpPair(t)
	r := newConnReader(server)
	if r.raw == nil {
		t.Fatal("a TCP connection has no raw conn")
	}
	defer r.release()

	want := [][]byte{[]byte("PUT t one")}
	client.Write(frame(want[0]))
	got, err := r.next(wire.MaxRequest)
	if err != nil || !bytes.Equal(got, want[0]) {
		t.Fatalf("first frame %q, %v", got, err)
	}
	if r.br != nil {
		t.Fatal("the reader kept its buffer after a frame that emptied it")
	}

	// Pipelined: three frames in one write, a large one, then one split in two writes.
	big := bytes.Repeat([]byte("x"), 3*requestBufferSize)
	batch := append(append(frame([]byte("a")), frame([]byte("b"))...), frame([]byte("c"))...)
	client.Write(batch)
	for _, w := range []string{"a", "b"} {
		got, err := r.next(wire.MaxRequest)
		if err != nil || string(got) != w {
			t.Fatalf("pipelined frame %q, %v; want %q", got, err, w)
		}
		if r.br == nil {
			t.Fatalf("after frame %q the reader gave back its buffer with a frame still in it", w)
		}
	}
	if got, err := r.next(wire.MaxRequest); err != nil || string(got) != "c" {
		t.Fatalf("pipelined frame %q, %v; want c", got, err)
	}
	go client.Write(frame(big))
	if got, err := r.next(len(big)); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("large frame: %d bytes, %v; want %d", len(got), err, len(big))
	}
	split := frame([]byte("split frame"))
	client.Write(split[:6])
	go client.Write(split[6:])
	if got, err := r.next(wire.MaxRequest); err != nil || string(got) != "split frame" {
		t.Fatalf("split frame %q, %v", got, err)
	}
	client.Close()
	if got, err := r.next(wire.MaxRequest); !errors.Is(err, io.EOF) {
		t.Fatalf("after the client closed: %q, %v; want io.EOF", got, err)
	}
}

// TestConnReaderClosedUnderneath: closing the connection while the reader waits
// for bytes ends the wait with an error.
func TestConnReaderClosedUnderneath(t *testing.T) {
	_, server := tcpPair(t)
	r := newConnReader(server)
	done := make(chan error, 1)
	go func() {
		_, err := r.next(wire.MaxRequest)
		done <- err
	}()
	server.Close()
	if err := <-done; err == nil {
		t.Fatal("next returned no error on a closed connection")
	}
}

// TestConnReaderPipe: a connection that is not a socket keeps one buffer and reads
// frames as usual.
func TestConnReaderPipe(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	r := newConnReader(server)
	if r.raw != nil {
		t.Fatal("net.Pipe has a raw conn")
	}
	go client.Write(frame([]byte("hello")))
	if got, err := r.next(wire.MaxRequest); err != nil || string(got) != "hello" {
		t.Fatalf("%q, %v", got, err)
	}
	r.release()
}
