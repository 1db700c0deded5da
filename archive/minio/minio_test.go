package minio

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
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

// TestSSE: with Options.SSE, every object the backend writes, with one PUT or in parts,
// is stored encrypted (StatObject reports the mode and the KMS key, and the server's
// disk holds none of its bytes in the clear) and reads back byte for byte; without it,
// the same objects are stored in the clear, so the checks can fail.
func TestSSE(t *testing.T) {
	srv := miniotest.SharedSSE(t)
	srv.SetEnv(t)
	for _, tc := range []struct {
		name string
		opts archive.Options
		want string // x-amz-server-side-encryption of the stored objects
	}{
		{"none", archive.Options{}, ""},
		{"AES256", archive.Options{SSE: archive.SSES3}, "AES256"},
		{"aws:kms", archive.Options{SSE: archive.SSEKMS, SSEKMSKeyID: srv.KMSKey}, "aws:kms"},
		{"aws:kms default key", archive.Options{SSE: archive.SSEKMS}, "aws:kms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			bucket := srv.NewBucket(t)
			tc.opts.Endpoint, tc.opts.Region = srv.Endpoint, srv.Region
			b, err := Open(ctx, bucket, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, size := range []int64{1000, archivetest.LargeSize} { // the large one in parts
				key := fmt.Sprintf("topics/t/%d.seg", size)
				data := make([]byte, size)
				rand.Read(data)
				if err := b.Put(ctx, key, bytes.NewReader(data), size, archive.PutOptions{IfNoneMatch: true}); err != nil {
					t.Fatal(err)
				}
				info, err := b.client.StatObject(ctx, bucket, key, mc.StatObjectOptions{})
				if err != nil {
					t.Fatal(err)
				}
				sse, kmsKey := info.Metadata.Get("X-Amz-Server-Side-Encryption"), info.Metadata.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id")
				t.Logf("%s: ETag %s, SSE %q, KMS key %q", key, info.ETag, sse, kmsKey)
				if got, want := strings.Contains(info.ETag, "-"), size > 16<<20; got != want {
					t.Errorf("%s: ETag %s; want multipart %v", key, info.ETag, want)
				}
				if sse != tc.want {
					t.Errorf("%s: stored with SSE %q; want %q", key, sse, tc.want)
				}
				if tc.want == "aws:kms" && !strings.HasSuffix(kmsKey, srv.KMSKey) {
					t.Errorf("%s: KMS key %q; want %s", key, kmsKey, srv.KMSKey)
				}
				if got, want := srv.OnDisk(t, bucket, key, data[:64]), tc.want == ""; got != want {
					t.Errorf("%s: plaintext on the server's disk %v; want %v", key, got, want)
				}
				archivetest.CheckObject(t, b, key, data)
			}
		})
	}
}

// TestAcceptanceSSE runs the suite on buckets that encrypt with SSE-S3.
func TestAcceptanceSSE(t *testing.T) {
	srv := miniotest.SharedSSE(t)
	srv.SetEnv(t)
	archivetest.Run(t, func(t *testing.T) archive.Bucket {
		b, err := Open(t.Context(), srv.NewBucket(t), archive.Options{Endpoint: srv.Endpoint, Region: srv.Region, SSE: archive.SSES3})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// TestSSERefused: settings ValidateSSE refuses fail Open with a message naming the
// flag, before anything is contacted: CreateBucket creates nothing.
func TestSSERefused(t *testing.T) {
	srv := miniotest.SharedSSE(t)
	srv.SetEnv(t)
	for i, tc := range []struct {
		opts archive.Options
		flag string
	}{
		{archive.Options{SSE: "aes256"}, "--s3-sse "},
		{archive.Options{SSE: "aws:kms:dsse"}, "--s3-sse "},
		{archive.Options{SSEKMSKeyID: "k"}, "--s3-sse-kms-key-id"},
		{archive.Options{SSE: archive.SSES3, SSEKMSKeyID: "k"}, "--s3-sse-kms-key-id"},
	} {
		bucket := fmt.Sprintf("refused-sse-%d", i)
		tc.opts.Endpoint, tc.opts.Region, tc.opts.CreateBucket = srv.Endpoint, srv.Region, true
		_, err := Open(t.Context(), bucket, tc.opts)
		if !errors.Is(err, archive.ErrBadSSE) || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("Open with SSE %q, KMS key %q: error %v; want ErrBadSSE naming %s", tc.opts.SSE, tc.opts.SSEKMSKeyID, err, tc.flag)
		}
		if ok, err := srv.Client(t).BucketExists(t.Context(), bucket); err != nil || ok {
			t.Errorf("bucket %s exists (%v, %v) after a refused Open", bucket, ok, err)
		}
	}
}
