package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"floe/archive"
	"floe/archive/archivetest"
	"floe/archive/miniotest"
)

func TestMain(m *testing.M) { os.Exit(miniotest.Main(m)) }

// open returns the backend for a fresh bucket on the shared MinIO, through the
// standard AWS credential chain (the environment, set by SetEnv).
func open(t *testing.T, srv *miniotest.Server) *Bucket {
	t.Helper()
	b, err := Open(t.Context(), srv.NewBucket(t), archive.Options{Endpoint: srv.Endpoint})
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

func TestCreateBucket(t *testing.T) {
	srv := miniotest.Shared(t)
	srv.SetEnv(t)
	ctx := t.Context()
	opts := archive.Options{Endpoint: strings.TrimPrefix(srv.Endpoint, "http://"), Region: srv.Region}
	// A bare host:port means https, which this server does not speak.
	if b, err := Open(ctx, "created-by-test", archive.Options{Endpoint: opts.Endpoint, CreateBucket: true}); err == nil {
		b.Close()
		t.Fatalf("Open over https against a plain-http server succeeded")
	}
	opts.Endpoint = srv.Endpoint
	b, err := Open(ctx, "no-such-bucket", opts)
	if err != nil {
		t.Fatalf("Open without CreateBucket must not contact the store: %v", err)
	}
	if _, err := b.Get(ctx, "k"); !errors.Is(err, archive.ErrBucketNotFound) || archive.IsNotFound(err) {
		t.Fatalf("Get in a missing bucket: error %v; want ErrBucketNotFound (and not ErrNotFound)", err)
	}
	if err := b.List(ctx, "", func(archive.ObjectInfo) error { return nil }); !errors.Is(err, archive.ErrBucketNotFound) {
		t.Fatalf("List of a missing bucket: error %v; want ErrBucketNotFound", err)
	}
	opts.CreateBucket = true
	for i := range 2 { // the second time the bucket exists and is ours
		b, err := Open(ctx, "created-by-test", opts)
		if err != nil {
			t.Fatalf("Open with CreateBucket (%d): %v", i, err)
		}
		if err := b.Put(ctx, "k", strings.NewReader("v"), 1, archive.PutOptions{}); err != nil {
			t.Fatalf("Put into the created bucket: %v", err)
		}
	}
}

// TestClassifyFromMinIO provokes each classified condition on a real MinIO with plain
// SDK calls and checks the code MinIO sends and the sentinel classify maps it to.
func TestClassifyFromMinIO(t *testing.T) {
	srv := miniotest.Shared(t)
	srv.SetEnv(t)
	b := open(t, srv)
	c := b.client
	ctx := t.Context()
	if err := b.Put(ctx, "exists", strings.NewReader("x"), 1, archive.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	bucket := aws.String(b.bucket)

	// A multipart upload of one (last, so small) part, completed over an existing key.
	mpu, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: bucket, Key: aws.String("exists"), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c})
	if err != nil {
		t.Fatal(err)
	}
	part, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: bucket, Key: aws.String("exists"), UploadId: mpu.UploadId, PartNumber: aws.Int32(1),
		Body: strings.NewReader("y"), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c})
	if err != nil {
		t.Fatal(err)
	}
	defer c.AbortMultipartUpload(context.WithoutCancel(ctx), &awss3.AbortMultipartUploadInput{Bucket: bucket, Key: aws.String("exists"), UploadId: mpu.UploadId})

	for _, tc := range []struct {
		name       string
		call       func() error
		wantCode   string
		wantStatus int
		want       error
	}{
		{"HeadObject missing", func() error {
			_, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: bucket, Key: aws.String("missing")})
			return err
		}, "NotFound", http.StatusNotFound, archive.ErrNotFound},
		{"GetObject missing", func() error {
			_, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: bucket, Key: aws.String("missing")})
			return err
		}, "NoSuchKey", http.StatusNotFound, archive.ErrNotFound},
		{"GetObject missing bucket", func() error {
			_, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("no-such-bucket"), Key: aws.String("k")})
			return err
		}, "NoSuchBucket", http.StatusNotFound, archive.ErrBucketNotFound},
		{"PutObject If-None-Match over existing", func() error {
			_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: bucket, Key: aws.String("exists"), Body: strings.NewReader("z"), IfNoneMatch: aws.String("*")})
			return err
		}, "PreconditionFailed", http.StatusPreconditionFailed, archive.ErrExists},
		{"CompleteMultipartUpload If-None-Match over existing", func() error {
			_, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: bucket, Key: aws.String("exists"), UploadId: mpu.UploadId,
				IfNoneMatch: aws.String("*"),
				MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{
					{ETag: part.ETag, PartNumber: aws.Int32(1), ChecksumCRC32C: part.ChecksumCRC32C}}}})
			return err
		}, "PreconditionFailed", http.StatusPreconditionFailed, archive.ErrExists},
		{"GetObject range past the end", func() error {
			_, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: bucket, Key: aws.String("exists"), Range: aws.String("bytes=5-9")})
			return err
		}, "InvalidRange", http.StatusRequestedRangeNotSatisfiable, archive.ErrInvalidRange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var ae smithy.APIError
			var re *smithyhttp.ResponseError
			if !errors.As(err, &ae) || !errors.As(err, &re) {
				t.Fatalf("error %v (%T) carries no API error code and HTTP status", err, err)
			}
			t.Logf("MinIO answered %d %s", re.HTTPStatusCode(), ae.ErrorCode())
			if ae.ErrorCode() != tc.wantCode || re.HTTPStatusCode() != tc.wantStatus {
				t.Errorf("MinIO answered %d %s; want %d %s", re.HTTPStatusCode(), ae.ErrorCode(), tc.wantStatus, tc.wantCode)
			}
			if got := classify(err); !errors.Is(got, tc.want) {
				t.Errorf("classify(%v) = %v; want %v", err, got, tc.want)
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
		{&smithy.GenericAPIError{Code: "PreconditionFailed", Message: "The specified key does not exist"}, archive.ErrExists},
		{&smithy.GenericAPIError{Code: "NoSuchKey", Message: "At least one of the pre-conditions you specified did not hold"}, archive.ErrNotFound},
		{&smithy.GenericAPIError{Code: "InvalidRange"}, archive.ErrInvalidRange},
		{&smithy.GenericAPIError{Code: "NoSuchBucket"}, archive.ErrBucketNotFound},
		{&smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 412}}, Err: errors.New("no such key")}, archive.ErrExists},
		{&smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 404}}, Err: errors.New("precondition")}, archive.ErrNotFound},
		{&smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 416}}, Err: errors.New("x")}, archive.ErrInvalidRange},
	} {
		if got := classify(tc.err); !errors.Is(got, tc.want) {
			t.Errorf("classify(%v) = %v; want %v", tc.err, got, tc.want)
		}
	}
	for _, err := range []error{
		&smithy.GenericAPIError{Code: "AccessDenied", Message: "not found"},
		&smithy.GenericAPIError{Code: "SlowDown", Message: "precondition failed"},
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

// TestChecksums: every upload path stores a CRC32C the service verified, and a
// large object goes up in parts.
func TestChecksums(t *testing.T) {
	srv := miniotest.Shared(t)
	srv.SetEnv(t)
	b := open(t, srv)
	ctx := t.Context()
	for _, tc := range []struct {
		key       string
		size      int
		multipart bool
	}{
		{"small", 1000, false},
		{"large", 2*PartSize + 3, true},
	} {
		data := bytes.Repeat([]byte("floe"), tc.size/4+1)[:tc.size]
		if err := b.Put(ctx, tc.key, bytes.NewReader(data), int64(len(data)), archive.PutOptions{IfNoneMatch: true}); err != nil {
			t.Fatal(err)
		}
		head, err := b.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(tc.key), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Fatal(err)
		}
		etag := aws.ToString(head.ETag)
		if got := strings.Contains(etag, "-"); got != tc.multipart {
			t.Errorf("%s: ETag %s; want multipart %v", tc.key, etag, tc.multipart)
		}
		if aws.ToString(head.ChecksumCRC32C) == "" {
			t.Errorf("%s: no CRC32C stored (checksum type %q)", tc.key, head.ChecksumType)
		}
		t.Logf("%s: ETag %s, CRC32C %s, type %s", tc.key, etag, aws.ToString(head.ChecksumCRC32C), head.ChecksumType)
	}
}

// minPartSize is the smallest part S3 (and MinIO) accepts but for the last.
const minPartSize = 5 << 20

// TestSSE: with Options.SSE, every object the backend writes, with one PutObject or in
// parts, is stored encrypted (HeadObject reports the mode and the KMS key, and the
// server's disk holds none of its bytes in the clear) and reads back byte for byte;
// without it, the same objects are stored in the clear, so the checks can fail.
func TestSSE(t *testing.T) {
	srv := miniotest.SharedSSE(t)
	srv.SetEnv(t)
	for _, tc := range []struct {
		name string
		opts archive.Options
		want types.ServerSideEncryption
	}{
		{"none", archive.Options{}, ""},
		{"AES256", archive.Options{SSE: archive.SSES3}, types.ServerSideEncryptionAes256},
		{"aws:kms", archive.Options{SSE: archive.SSEKMS, SSEKMSKeyID: srv.KMSKey}, types.ServerSideEncryptionAwsKms},
		{"aws:kms default key", archive.Options{SSE: archive.SSEKMS}, types.ServerSideEncryptionAwsKms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			bucket := srv.NewBucket(t)
			tc.opts.Endpoint = srv.Endpoint
			b, err := Open(ctx, bucket, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			b.partSize = minPartSize
			for _, size := range []int64{1000, 2*minPartSize + 3} {
				key := fmt.Sprintf("topics/t/%d.seg", size)
				data := make([]byte, size)
				rand.Read(data)
				if err := b.Put(ctx, key, bytes.NewReader(data), size, archive.PutOptions{IfNoneMatch: true}); err != nil {
					t.Fatal(err)
				}
				head, err := b.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
				if err != nil {
					t.Fatal(err)
				}
				etag := aws.ToString(head.ETag)
				t.Logf("%s: ETag %s, SSE %q, KMS key %q", key, etag, head.ServerSideEncryption, aws.ToString(head.SSEKMSKeyId))
				if got, want := strings.Contains(etag, "-"), size > b.partSize; got != want {
					t.Errorf("%s: ETag %s; want multipart %v", key, etag, want)
				}
				if head.ServerSideEncryption != tc.want {
					t.Errorf("%s: stored with SSE %q; want %q", key, head.ServerSideEncryption, tc.want)
				}
				if tc.want == types.ServerSideEncryptionAwsKms && !strings.HasSuffix(aws.ToString(head.SSEKMSKeyId), srv.KMSKey) {
					t.Errorf("%s: KMS key %q; want %s", key, aws.ToString(head.SSEKMSKeyId), srv.KMSKey)
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
		b, err := Open(t.Context(), srv.NewBucket(t), archive.Options{Endpoint: srv.Endpoint, SSE: archive.SSES3})
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
		tc.opts.Endpoint, tc.opts.CreateBucket = srv.Endpoint, true
		_, err := Open(t.Context(), bucket, tc.opts)
		if !errors.Is(err, archive.ErrBadSSE) || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("Open with SSE %q, KMS key %q: error %v; want ErrBadSSE naming %s", tc.opts.SSE, tc.opts.SSEKMSKeyID, err, tc.flag)
		}
		if ok, err := srv.Client(t).BucketExists(t.Context(), bucket); err != nil || ok {
			t.Errorf("bucket %s exists (%v, %v) after a refused Open", bucket, ok, err)
		}
	}
}
