package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

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
	key := putSegmentObject(t, b, "t", 1, 4)
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

// putSegmentObject writes a valid object of 300 records for the segment, under its
// key, and returns the key.
func putSegmentObject(t *testing.T, b archive.Bucket, topic string, segment, term uint64) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := seekable.NewWriter(&buf, seekable.Meta{Topic: topic, Segment: segment, Count: 300, LeaderTerm: term}, seekable.WriterOptions{FrameSize: 4096})
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
	key := tiering.ObjectKey(topic, segment, term)
	if err := b.Put(context.Background(), key, bytes.NewReader(buf.Bytes()), sum.Size, archive.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	return key
}

// TestArchiveListAndVerifyByTopic: floe archive ls and verify find a bucket's segment
// objects where the layout puts them, all topics or one (never a topic whose name
// starts with the one asked for), and skip the claim and the metadata snapshots; an
// object under topics/ that is not a segment key is listed with "?" fields.
func TestArchiveListAndVerifyByTopic(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	b, err := open.Open(ctx, "file://"+dir, archive.Options{CreateBucket: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a1 := putSegmentObject(t, b, "a", 1, 4)
	a2 := putSegmentObject(t, b, "a", 2, 9)
	ab := putSegmentObject(t, b, "ab", 1, 5)
	for _, k := range []string{tiering.ClaimKey, tiering.MetaSnapshotKey(7)} {
		if err := b.Put(ctx, k, bytes.NewReader([]byte("{}")), 2, archive.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	stray := tiering.TopicPrefix("z") + "notes.txt"
	if err := b.Put(ctx, stray, bytes.NewReader([]byte("x")), 1, archive.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	url := "file://" + dir

	for _, tc := range []struct {
		args       []string
		want, miss []string
		summary    string
	}{
		{nil, []string{a1, a2, ab, stray}, []string{tiering.ClaimKey, tiering.MetaSnapshotKey(7)}, "4 objects"},
		{[]string{"a"}, []string{a1, a2}, []string{ab, stray}, "2 objects"},
		{[]string{"ab"}, []string{ab}, []string{a1, a2}, "1 objects"},
		{[]string{"none"}, nil, []string{a1, ab}, "0 objects"},
	} {
		out, err := runFloe(t, append([]string{"archive", "ls", "--archive", url}, tc.args...)...)
		if err != nil {
			t.Fatalf("floe archive ls %v: %v\n%s", tc.args, err, out)
		}
		for _, k := range tc.want {
			if !strings.Contains(out, k) {
				t.Errorf("floe archive ls %v does not list %s:\n%s", tc.args, k, out)
			}
		}
		for _, k := range tc.miss {
			if strings.Contains(out, k) {
				t.Errorf("floe archive ls %v lists %s:\n%s", tc.args, k, out)
			}
		}
		if !strings.Contains(out, tc.summary+",") {
			t.Errorf("floe archive ls %v: want %q in\n%s", tc.args, tc.summary, out)
		}
	}
	out, err := runFloe(t, "archive", "ls", "--archive", url, "a")
	if row := regexp.MustCompile(`(?m)^a +2 +9 +\d+ +\S+ +` + regexp.QuoteMeta(a2) + `$`); err != nil || !row.MatchString(out) {
		t.Errorf("floe archive ls a: want a row of topic a, segment 2, term 9 (%v):\n%s", err, out)
	}
	out, err = runFloe(t, "archive", "ls", "--archive", url, "z")
	if row := regexp.MustCompile(`(?m)^\? +\? +\? +1 +\S+ +` + regexp.QuoteMeta(stray) + `$`); err != nil || !row.MatchString(out) {
		t.Errorf("floe archive ls z: want %s with ? fields (%v):\n%s", stray, err, out)
	}

	for _, tc := range []struct {
		args    []string
		summary string
	}{
		{[]string{"a"}, "2 objects checked, 0 damaged"},
		{[]string{"a", ab}, "3 objects checked, 0 damaged"},
		{[]string{a2}, "1 objects checked, 0 damaged"},
	} {
		out, err := runFloe(t, append([]string{"archive", "verify", "-q", "--archive", url}, tc.args...)...)
		if err != nil || !strings.Contains(out, tc.summary) {
			t.Errorf("floe archive verify %v: want %q (%v):\n%s", tc.args, tc.summary, err, out)
		}
	}
}

// TestSSEFlagsRefused: the agent, floe archive and floe restore refuse --s3-sse and
// --s3-sse-kms-key-id (flags or FLOE_ environment) that the archive cannot honour, with
// the flag named and the archive untouched.
func TestSSEFlagsRefused(t *testing.T) {
	dir := t.TempDir()
	archiveDir := filepath.Join(dir, "archive")
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"agent on file://", []string{"agent", "--node-id", "1", "--data-dir", filepath.Join(dir, "data"), "--raft-port", "0", "--client-port", "0", "--http-port", "0",
			"--archive", "file://" + archiveDir, "--s3-create-bucket", "--s3-sse", "AES256"}, nil, "a file:// archive cannot encrypt objects at rest"},
		{"archive ls unknown mode", []string{"archive", "ls", "--archive", "s3://sse-refused/p", "--s3-sse", "aes256"}, nil, `--s3-sse "aes256": want AES256`},
		{"archive verify key without aws:kms", []string{"archive", "verify", "--archive", "s3://sse-refused/p", "--s3-sse", "AES256", "--s3-sse-kms-key-id", "k"}, nil,
			"--s3-sse-kms-key-id needs --s3-sse aws:kms (--s3-sse is AES256)"},
		{"restore from the environment", []string{"restore", "--cluster", "--node-id", "1", "--data-dir", filepath.Join(dir, "restored"), "--archive", "s3://sse-refused/p"},
			[]string{"FLOE_S3_SSE_KMS_KEY_ID=k"}, "--s3-sse-kms-key-id needs --s3-sse aws:kms (--s3-sse is not set)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, floeBin, tc.args...)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("floe %s: %v; want a failure saying %q; output:\n%s", strings.Join(tc.args, " "), err, tc.want, out)
			}
		})
	}
	for _, p := range []string{archiveDir, filepath.Join(dir, "restored")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a refused command created %s: %v", p, err)
		}
	}
}
