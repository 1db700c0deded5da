package archive_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"floe/archive"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want archive.Location
	}{
		{"file:///var/lib/floe/archive", archive.Location{Scheme: "file", Dir: "/var/lib/floe/archive"}},
		{"file:///var/lib/floe/archive/", archive.Location{Scheme: "file", Dir: "/var/lib/floe/archive"}},
		{"file://localhost/srv/a", archive.Location{Scheme: "file", Dir: "/srv/a"}},
		{"s3://logs", archive.Location{Scheme: "s3", Bucket: "logs"}},
		{"s3://logs/", archive.Location{Scheme: "s3", Bucket: "logs"}},
		{"s3://logs/floe/prod/", archive.Location{Scheme: "s3", Bucket: "logs", Prefix: "floe/prod"}},
		{"minio://my-bucket.1/p", archive.Location{Scheme: "minio", Bucket: "my-bucket.1", Prefix: "p"}},
		{"mem://", archive.Location{Scheme: "mem"}},
		{"mem://x/y", archive.Location{Scheme: "mem", Bucket: "x", Prefix: "y"}},
	} {
		got, err := archive.ParseURL(tc.raw)
		if err != nil || got != tc.want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", tc.raw, got, err, tc.want)
		}
	}
	for _, raw := range []string{
		"", "logs", "/abs/dir", "file://relative/dir", "file:relative", "http://x/y", "gs://bucket",
		"s3://", "s3://AB", "s3://under_score", "s3://b/../x", "s3://b/a//c",
		"s3://AKIA:secret@logs/p", "s3://logs?region=x", "s3://logs#frag", "s3://%zz",
	} {
		if _, err := archive.ParseURL(raw); !errors.Is(err, archive.ErrBadURL) {
			t.Errorf("ParseURL(%q) error = %v; want ErrBadURL", raw, err)
		}
	}
	_, err := archive.ParseURL("s3://AKIA:topsecret@logs/p")
	if err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("error %v repeats the credentials of the URL", err)
	}
}

func TestLocationString(t *testing.T) {
	for raw, want := range map[string]string{
		"file:///a/b":   "file:///a/b",
		"s3://logs/p/q": "s3://logs/p/q",
		"minio://logs":  "minio://logs",
	} {
		loc, err := archive.ParseURL(raw)
		if err != nil || loc.String() != want {
			t.Errorf("ParseURL(%q).String() = %q, %v; want %q", raw, loc.String(), err, want)
		}
	}
}

func TestValidateKey(t *testing.T) {
	for _, key := range []string{"a", "a/b", "topics/t/0001.seg", "with space", "ünï", "a..b", ".hidden", strings.Repeat("k", archive.MaxKeyLen)} {
		if err := archive.ValidateKey(key); err != nil {
			t.Errorf("ValidateKey(%q) = %v; want nil", key, err)
		}
	}
	for _, key := range []string{"", "/a", "a/", "a//b", ".", "..", "a/../b", "./a", "a/.", "\x00", `a\b`, "\xff", strings.Repeat("k", archive.MaxKeyLen+1)} {
		if err := archive.ValidateKey(key); !errors.Is(err, archive.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v; want ErrInvalidKey", key, err)
		}
	}
}

func TestExactReader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		data    string
		size    int64
		wantErr bool
	}{
		{"exact", "hello", 5, false},
		{"empty", "", 0, false},
		{"short", "hel", 5, true},
		{"long", "hello!", 5, true},
		{"long empty", "x", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := io.ReadAll(archive.ExactReader(strings.NewReader(tc.data), tc.size))
			if tc.wantErr {
				if !errors.Is(err, archive.ErrSizeMismatch) {
					t.Fatalf("error = %v; want ErrSizeMismatch", err)
				}
				if int64(len(got)) >= tc.size && tc.size > 0 && len(tc.data) > int(tc.size) {
					t.Fatalf("delivered all %d bytes of a long body before failing", len(got))
				}
				return
			}
			if err != nil || string(got) != tc.data {
				t.Fatalf("ReadAll = %q, %v; want %q", got, err, tc.data)
			}
		})
	}
	// A reader's own error passes through.
	boom := errors.New("boom")
	_, err := io.ReadAll(archive.ExactReader(io.MultiReader(strings.NewReader("ab"), errReader{boom}), 5))
	if !errors.Is(err, boom) {
		t.Fatalf("error = %v; want the reader's", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestCheckRange(t *testing.T) {
	for _, tc := range []struct {
		off, length int64
		ok          bool
	}{{0, 1, true}, {5, 10, true}, {-1, 1, false}, {0, 0, false}, {0, -5, false}, {1 << 62, 1 << 62, false}} {
		if err := archive.CheckRange(tc.off, tc.length); (err == nil) != tc.ok {
			t.Errorf("CheckRange(%d, %d) = %v; want ok %v", tc.off, tc.length, err, tc.ok)
		}
	}
}

// TestS3PutSentinel: the refusal of a Put with IfMatch is ErrPreconditionFailed, by
// code or by status, whether the object was replaced (412) or is gone (404, as MinIO
// and AWS answer); other Puts keep S3Sentinel's answers.
func TestS3PutSentinel(t *testing.T) {
	ifMatch := archive.PutOptions{IfMatch: "abc"}
	for _, tc := range []struct {
		code   string
		status int
		opts   archive.PutOptions
		want   error
	}{
		{"PreconditionFailed", 412, ifMatch, archive.ErrPreconditionFailed},
		{"", 412, ifMatch, archive.ErrPreconditionFailed},
		{"NoSuchKey", 404, ifMatch, archive.ErrPreconditionFailed},
		{"", 404, ifMatch, archive.ErrPreconditionFailed},
		{"NoSuchBucket", 404, ifMatch, archive.ErrBucketNotFound},
		{"ConditionalRequestConflict", 409, ifMatch, nil},
		{"PreconditionFailed", 412, archive.PutOptions{IfNoneMatch: true}, archive.ErrExists},
		{"NoSuchKey", 404, archive.PutOptions{}, archive.ErrNotFound},
	} {
		if got := archive.S3PutSentinel(tc.code, tc.status, tc.opts); got != tc.want {
			t.Errorf("S3PutSentinel(%q, %d, %+v) = %v; want %v", tc.code, tc.status, tc.opts, got, tc.want)
		}
	}
}

func TestValidateSSE(t *testing.T) {
	for _, tc := range []struct {
		opts archive.Options
		flag string // named by the error; "" for none
	}{
		{archive.Options{}, ""},
		{archive.Options{SSE: archive.SSES3}, ""},
		{archive.Options{SSE: archive.SSEKMS}, ""},
		{archive.Options{SSE: archive.SSEKMS, SSEKMSKeyID: "arn:aws:kms:eu-west-1:111122223333:key/k"}, ""},
		{archive.Options{SSE: "aes256"}, "--s3-sse "},
		{archive.Options{SSE: "SSE-S3"}, "--s3-sse "},
		{archive.Options{SSE: "aws:kms:dsse"}, "--s3-sse "},
		{archive.Options{SSEKMSKeyID: "k"}, "--s3-sse-kms-key-id"},
		{archive.Options{SSE: archive.SSES3, SSEKMSKeyID: "k"}, "--s3-sse-kms-key-id"},
	} {
		err := tc.opts.ValidateSSE()
		switch {
		case tc.flag == "" && err != nil:
			t.Errorf("ValidateSSE(%q, %q) = %v; want nil", tc.opts.SSE, tc.opts.SSEKMSKeyID, err)
		case tc.flag != "" && (!errors.Is(err, archive.ErrBadSSE) || !strings.Contains(err.Error(), tc.flag)):
			t.Errorf("ValidateSSE(%q, %q) = %v; want ErrBadSSE naming %s", tc.opts.SSE, tc.opts.SSEKMSKeyID, err, tc.flag)
		}
	}
}
