package minio

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	mc "github.com/minio/minio-go/v7"

	"floe/archive"
	"floe/archive/archivetest"
	"floe/archive/miniotest"
)

func TestMain(m *testing.M) { os.Exit(miniotest.Main(m)) }

// open returns the backend for a fresh bucket on the shared MinIO, with credentials
// from the environment (set by SetEnv) as in production.
func open(t *testing.T, srv *miniotest.Server) *Bucket {
	t.Helper()
	b, err := Open(t.Context(), srv.NewBucket(t), archive.Options{Endpoint: srv.Endpoint, Region: srv.Region})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAcceptance(t *testing.T) {
	srv := miniotest.Shared(t)
	srv.SetEnv(t)
	archivetest.Run(t, func(t *testing.T) archive.Bucket { return open(t, srv) })
}

func TestOpen(t *testing.T) {
	srv := miniotest.Shared(t)
	srv.SetEnv(t)
	ctx := t.Context()
	for _, ep := range []string{"ftp://x", "http://", "http://host/path"} {
		if _, err := Open(ctx, "bucket", archive.Options{Endpoint: ep}); !errors.Is(err, archive.ErrBadURL) {
			t.Errorf("Open with endpoint %q: error %v; want ErrBadURL", ep, err)
		}
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	if _, err := Open(ctx, "bucket", archive.Options{Endpoint: srv.Endpoint}); err == nil {
		t.Errorf("Open without credentials in the environment succeeded")
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)

	opts := archive.Options{Endpoint: srv.Endpoint, Region: srv.Region}
	b, err := Open(ctx, "no-such-bucket", opts)
	if err != nil {
		t.Fatalf("Open without CreateBucket must not contact the store: %v", err)
	}
	if _, err := b.Get(ctx, "k"); !errors.Is(err, archive.ErrBucketNotFound) || archive.IsNotFound(err) {
		t.Fatalf("Get in a missing bucket: error %v; want ErrBucketNotFound (and not ErrNotFound)", err)
	}
	opts.CreateBucket = true
	for i := range 2 { // the second time the bucket exists and is ours
		b, err := Open(ctx, "made-by-test", opts)
		if err != nil {
			t.Fatalf("Open with CreateBucket (%d): %v", i, err)
		}
		if err := b.Put(ctx, "k", strings.NewReader("v"), 1, archive.PutOptions{}); err != nil {
			t.Fatalf("Put into the created bucket: %v", err)
		}
	}
}

// TestClassifyFromMinIO provokes each classified condition on a real MinIO with plain
// minio-go calls and checks the code MinIO sends and the sentinel classify maps it to.
func TestClassifyFromMinIO(t *testing.T) {
	srv := miniotest.Shared(t)
	srv.SetEnv(t)
	b := open(t, srv)
	ctx := t.Context()
	if err := b.Put(ctx, "exists", strings.NewReader("x"), 1, archive.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	ifNoneMatch := mc.PutObjectOptions{}
	ifNoneMatch.SetMatchETagExcept("*")
	stale := archive.PutOptions{IfMatch: "0123456789abcdef0123456789abcdef"}
	ifMatch := mc.PutObjectOptions{}
	ifMatch.SetMatchETag(stale.IfMatch)
	big := bytes.Repeat([]byte("m"), 17<<20) // over minio-go's 16 MiB single-PUT limit: multipart
	for _, tc := range []struct {
		name       string
		call       func() error
		wantCode   string
		wantStatus int
		want       error
		put        archive.PutOptions // the Put's options, for a PutObject
	}{
		{"StatObject missing", func() error {
			_, err := b.client.StatObject(ctx, b.bucket, "missing", mc.StatObjectOptions{})
			return err
		}, "NoSuchKey", http.StatusNotFound, archive.ErrNotFound, archive.PutOptions{}},
		{"GetObject missing", func() error {
			_, _, _, err := b.core.GetObject(ctx, b.bucket, "missing", mc.GetObjectOptions{})
			return err
		}, "NoSuchKey", http.StatusNotFound, archive.ErrNotFound, archive.PutOptions{}},
		{"GetObject missing bucket", func() error {
			_, _, _, err := b.core.GetObject(ctx, "no-such-bucket", "k", mc.GetObjectOptions{})
			return err
		}, "NoSuchBucket", http.StatusNotFound, archive.ErrBucketNotFound, archive.PutOptions{}},
		{"PutObject If-None-Match over existing", func() error {
			_, err := b.client.PutObject(ctx, b.bucket, "exists", strings.NewReader("z"), 1, ifNoneMatch)
			return err
		}, "PreconditionFailed", http.StatusPreconditionFailed, archive.ErrExists, archive.PutOptions{IfNoneMatch: true}},
		{"multipart PutObject If-None-Match over existing", func() error {
			_, err := b.client.PutObject(ctx, b.bucket, "exists", io.MultiReader(bytes.NewReader(big)), int64(len(big)), ifNoneMatch)
			return err
		}, "PreconditionFailed", http.StatusPreconditionFailed, archive.ErrExists, archive.PutOptions{IfNoneMatch: true}},
		{"PutObject If-Match over another version", func() error {
			_, err := b.client.PutObject(ctx, b.bucket, "exists", strings.NewReader("z"), 1, ifMatch)
			return err
		}, "PreconditionFailed", http.StatusPreconditionFailed, archive.ErrPreconditionFailed, stale},
		{"PutObject If-Match of a missing key", func() error {
			_, err := b.client.PutObject(ctx, b.bucket, "missing", strings.NewReader("z"), 1, ifMatch)
			return err
		}, "NoSuchKey", http.StatusNotFound, archive.ErrPreconditionFailed, stale},
		{"multipart PutObject If-Match over another version", func() error {
			_, err := b.client.PutObject(ctx, b.bucket, "exists", io.MultiReader(bytes.NewReader(big)), int64(len(big)), ifMatch)
			return err
		}, "PreconditionFailed", http.StatusPreconditionFailed, archive.ErrPreconditionFailed, stale},
		{"GetObject range past the end", func() error {
			var o mc.GetObjectOptions
			o.SetRange(5, 9)
			_, _, _, err := b.core.GetObject(ctx, b.bucket, "exists", o)
			return err
		}, "InvalidRange", http.StatusRequestedRangeNotSatisfiable, archive.ErrInvalidRange, archive.PutOptions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var er mc.ErrorResponse
			if !errors.As(err, &er) {
				t.Fatalf("error %v (%T) is no minio.ErrorResponse", err, err)
			}
			t.Logf("MinIO answered %d %s", er.StatusCode, er.Code)
			if er.Code != tc.wantCode || er.StatusCode != tc.wantStatus {
				t.Errorf("MinIO answered %d %s; want %d %s", er.StatusCode, er.Code, tc.wantStatus, tc.wantCode)
			}
			if got := classifyPut(err, tc.put); !errors.Is(got, tc.want) {
				t.Errorf("classifyPut(%v, %+v) = %v; want %v", err, tc.put, got, tc.want)
			}
		})
	}
}

// TestClassifyByCodeNotMessage: the code decides, whatever the message says.
func TestClassifyByCodeNotMessage(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{mc.ErrorResponse{Code: "PreconditionFailed", Message: "The specified key does not exist"}, archive.ErrExists},
		{mc.ErrorResponse{Code: "NoSuchKey", Message: "At least one of the pre-conditions you specified did not hold"}, archive.ErrNotFound},
		{mc.ErrorResponse{Code: "InvalidRange"}, archive.ErrInvalidRange},
		{mc.ErrorResponse{Code: "NoSuchBucket", StatusCode: 404}, archive.ErrBucketNotFound},
		{mc.ErrorResponse{StatusCode: 412, Message: "no such key"}, archive.ErrExists},
		{mc.ErrorResponse{StatusCode: 404}, archive.ErrNotFound},
		{mc.ErrorResponse{StatusCode: 416}, archive.ErrInvalidRange},
	} {
		if got := classify(tc.err); !errors.Is(got, tc.want) {
			t.Errorf("classify(%v) = %v; want %v", tc.err, got, tc.want)
		}
	}
	for _, err := range []error{
		mc.ErrorResponse{Code: "AccessDenied", Message: "not found", StatusCode: 403},
		mc.ErrorResponse{Code: "SlowDown", Message: "precondition failed", StatusCode: 503},
		errors.New("NoSuchKey"),
	} {
		got := classify(err)
		for _, s := range []error{archive.ErrNotFound, archive.ErrExists, archive.ErrInvalidRange, archive.ErrBucketNotFound} {
			if errors.Is(got, s) {
				t.Errorf("classify(%v) = %v; want it unclassified", err, got)
			}
		}
	}
}
