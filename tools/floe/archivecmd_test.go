package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"floe/archive"
	"floe/archive/open"
	"floe/archive/seekable"
	"floe/tiering"
)

// TestArchiveVerify: verify passes an intact object and reports a flipped bit.
func TestArchiveVerify(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	b, err := open.Open(ctx, "file://"+dir, archive.Options{CreateBucket: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var buf bytes.Buffer
	w, err := seekable.NewWriter(&buf, seekable.Meta{Topic: "t", Segment: 1, Count: 300, LeaderTerm: 4}, seekable.WriterOptions{FrameSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		if err := w.Append(bytes.Repeat([]byte{byte(i)}, 100)); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	key := tiering.ObjectKey("t", 1, 4)
	if err := b.Put(ctx, key, bytes.NewReader(buf.Bytes()), sum.Size, archive.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if !verifyObject(ctx, b, key, true) {
		t.Fatal("an intact object failed verify")
	}
	path := filepath.Join(dir, filepath.FromSlash(key))
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/3] ^= 0x10
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if verifyObject(ctx, b, key, true) {
		t.Fatal("verify passed an object with a flipped bit")
	}
}
