// Package minio is an archive.Bucket on MinIO or any S3-compatible service, through
// minio-go (URL minio://bucket/prefix; the prefix is applied by archive.WithPrefix).
//
// Credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and
// AWS_SESSION_TOKEN) in the environment, and are never logged. Without an endpoint the
// client talks to AWS S3; with one it uses path-style addressing. A bare host:port
// endpoint means https.
//
// Uploads stream the body through minio-go (one PUT, or a multipart upload for large
// objects) with CRC32C checksums that the service verifies. The body is wrapped in
// archive.ExactReader, so a body that is short or long fails the request before the
// object is committed. IfNoneMatch sends If-None-Match: * (minio-go sends it on the
// PUT, and on both the initiation and the completion of a multipart upload); IfMatch
// sends If-Match: "<etag>" the same way (PutObjectOptions.SetMatchETag). With
// archive.Options.SSE, every PutObject asks for server-side encryption
// (PutObjectOptions.ServerSideEncryption: encrypt.NewSSE or encrypt.NewSSEKMS), which
// minio-go sends on the single PUT and on the initiation of a multipart upload, whose
// parts inherit it. The backend never copies or composes objects. Reads need no SSE
// headers.
//
// Errors are classified by the S3 error code of minio.ErrorResponse, then by HTTP
// status, never by message text: NoSuchKey and 404 are archive.ErrNotFound;
// NoSuchBucket is archive.ErrBucketNotFound; PreconditionFailed and 412 are
// archive.ErrExists, except that a Put with IfMatch refused with PreconditionFailed,
// 412, NoSuchKey or 404 is archive.ErrPreconditionFailed (archive.S3PutSentinel);
// InvalidRange and 416 are archive.ErrInvalidRange. Nothing is
// retried here beyond minio-go's own retries.
package minio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	mc "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/encrypt"

	"floe/archive"
)

// Bucket is one bucket of an S3-compatible service. Safe for concurrent use.
type Bucket struct {
	client *mc.Client
	core   *mc.Core
	bucket string
	loc    string
	sse    encrypt.ServerSide // sent with every write; nil: none
}

var _ archive.Bucket = (*Bucket)(nil)

// DefaultEndpoint is used when archive.Options.Endpoint is empty.
const DefaultEndpoint = "https://s3.amazonaws.com"

// Open returns the bucket named bucket. It contacts the service only when
// opts.CreateBucket is set, to create the bucket if it is missing.
func Open(ctx context.Context, bucket string, opts archive.Options) (*Bucket, error) {
	loc := "minio://" + bucket
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" || os.Getenv("AWS_SECRET_ACCESS_KEY") == "" {
		return nil, archive.Error("open", bucket, loc, errors.New("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set for minio://"))
	}
	return OpenWithCredentials(ctx, bucket, credentials.NewEnvAWS(), opts)
}

// OpenWithCredentials is Open with explicit credentials, for tests and embedding. SSE
// settings that opts.ValidateSSE refuses fail it before anything is contacted.
func OpenWithCredentials(ctx context.Context, bucket string, creds *credentials.Credentials, opts archive.Options) (*Bucket, error) {
	loc := "minio://" + bucket
	if err := opts.ValidateSSE(); err != nil {
		return nil, archive.Error("open", bucket, loc, err)
	}
	var sse encrypt.ServerSide
	switch opts.SSE {
	case archive.SSES3:
		sse = encrypt.NewSSE()
	case archive.SSEKMS:
		var err error
		if sse, err = encrypt.NewSSEKMS(opts.SSEKMSKeyID, nil); err != nil {
			return nil, archive.Error("open", bucket, loc, err)
		}
	}
	ep := opts.Endpoint
	lookup := mc.BucketLookupPath
	if ep == "" {
		ep, lookup = DefaultEndpoint, mc.BucketLookupAuto
	}
	if !strings.Contains(ep, "://") {
		ep = "https://" + ep
	}
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, archive.Error("open", bucket, loc, fmt.Errorf("%w: endpoint %q: want http(s)://host[:port]", archive.ErrBadURL, opts.Endpoint))
	}
	client, err := mc.New(u.Host, &mc.Options{
		Creds:           creds,
		Secure:          u.Scheme == "https",
		Region:          opts.Region,
		BucketLookup:    lookup,
		TrailingHeaders: true, // CRC32C trailing checksums on uploads
	})
	if err != nil {
		return nil, archive.Error("open", bucket, loc, err)
	}
	b := &Bucket{client: client, core: &mc.Core{Client: client}, bucket: bucket, loc: loc, sse: sse}
	if opts.CreateBucket {
		if err := b.create(ctx, opts); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Client returns the underlying minio-go client, for benchmarks that compare against
// plain SDK calls.
func (b *Bucket) Client() *mc.Client { return b.client }

// create makes the bucket, tolerating one that already exists and is ours.
func (b *Bucket) create(ctx context.Context, opts archive.Options) error {
	err := b.client.MakeBucket(ctx, b.bucket, mc.MakeBucketOptions{Region: opts.Region})
	switch code(err) {
	case "":
		if err != nil {
			return archive.Error("create bucket", b.bucket, b.loc, err)
		}
		opts.Log().Info("archive: created bucket", "bucket", b.bucket)
		return nil
	case "BucketAlreadyOwnedByYou":
		return nil
	default:
		return archive.Error("create bucket", b.bucket, b.loc, err)
	}
}

// code returns the S3 error code carried by err, or "".
func code(err error) string {
	var er mc.ErrorResponse
	if errors.As(err, &er) {
		return er.Code
	}
	return ""
}

// classify maps a minio-go error to the archive sentinels by code, then by status.
func classify(err error) error {
	var er mc.ErrorResponse
	if errors.As(err, &er) {
		return archive.Classified(archive.S3Sentinel(er.Code, er.StatusCode), err)
	}
	return err
}

// classifyPut is classify for the answer to a Put with opts (see archive.S3PutSentinel).
func classifyPut(err error, opts archive.PutOptions) error {
	var er mc.ErrorResponse
	if errors.As(err, &er) {
		return archive.Classified(archive.S3PutSentinel(er.Code, er.StatusCode, opts), err)
	}
	return err
}

func (b *Bucket) fail(verb, key string, err error) error {
	return archive.Error(verb, key, b.loc, classify(err))
}

func (b *Bucket) Put(ctx context.Context, key string, r io.Reader, size int64, opts archive.PutOptions) error {
	if err := archive.ValidateKey(key); err != nil {
		return archive.Error("put", key, b.loc, err)
	}
	if size < 0 {
		return archive.Error("put", key, b.loc, fmt.Errorf("%w: negative size %d", archive.ErrSizeMismatch, size))
	}
	po := mc.PutObjectOptions{
		ContentType:          opts.ContentType,
		Checksum:             mc.ChecksumCRC32C,
		ServerSideEncryption: b.sse,
	}
	if po.ContentType == "" {
		po.ContentType = "application/octet-stream"
	}
	if err := archive.CheckPutOptions(opts); err != nil {
		return archive.Error("put", key, b.loc, err)
	}
	if opts.IfNoneMatch {
		po.SetMatchETagExcept("*")
	}
	if opts.IfMatch != "" {
		po.SetMatchETag(opts.IfMatch)
	}
	body := &recordingReader{r: archive.ExactReader(r, size)}
	if size == 0 && body.atEOF() != nil { // minio-go never reads an empty body
		return archive.Error("put", key, b.loc, body.err)
	}
	info, err := b.client.PutObject(ctx, b.bucket, key, body, size, po)
	if err != nil && body.err != nil {
		// The body failed (short, long, or the caller's reader broke): that is the
		// cause, whatever transport error minio-go made of it.
		return archive.Error("put", key, b.loc, body.err)
	}
	if err != nil {
		return archive.Error("put", key, b.loc, classifyPut(err, opts))
	}
	if info.Size != size {
		return archive.Error("put", key, b.loc, fmt.Errorf("%w: service stored %d of %d bytes", archive.ErrSizeMismatch, info.Size, size))
	}
	return nil
}

// recordingReader remembers the first error of its reader other than io.EOF.
type recordingReader struct {
	r   io.Reader
	err error
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// atEOF reads once more, expecting the end; the error is also recorded.
func (r *recordingReader) atEOF() error {
	var one [1]byte
	if _, err := r.Read(one[:]); err != io.EOF {
		if r.err == nil {
			r.err = fmt.Errorf("%w: body not at its end", archive.ErrSizeMismatch)
		}
		return r.err
	}
	return nil
}

func (b *Bucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := archive.ValidateKey(key); err != nil {
		return nil, archive.Error("get", key, b.loc, err)
	}
	body, info, _, err := b.core.GetObject(ctx, b.bucket, key, mc.GetObjectOptions{})
	if err != nil {
		return nil, b.fail("get", key, err)
	}
	return archive.CheckedBody(body, info.Size, func(err error) error { return archive.Error("read", key, b.loc, err) }), nil
}

func (b *Bucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	const verb = "get range of"
	if err := archive.ValidateKey(key); err != nil {
		return nil, archive.Error(verb, key, b.loc, err)
	}
	if err := archive.CheckRange(off, length); err != nil {
		return nil, archive.Error(verb, key, b.loc, err)
	}
	var opts mc.GetObjectOptions
	if err := opts.SetRange(off, off+length-1); err != nil {
		return nil, archive.Error(verb, key, b.loc, fmt.Errorf("%w: %w", archive.ErrInvalidRange, err))
	}
	body, info, hdr, err := b.core.GetObject(ctx, b.bucket, key, opts)
	if err != nil {
		return nil, b.fail(verb, key, err)
	}
	if err := checkRange(hdr.Get("Content-Range"), info.Size, off, length); err != nil {
		body.Close()
		return nil, archive.Error(verb, key, b.loc, err)
	}
	return archive.CheckedBody(body, length, func(err error) error { return archive.Error("read", key, b.loc, err) }), nil
}

// checkRange verifies that the service returned exactly the range asked for; S3 clips
// a range that runs past the end, which is ErrInvalidRange here.
func checkRange(contentRange string, contentLength, off, length int64) error {
	var start, end, total int64
	if _, err := fmt.Sscanf(contentRange, "bytes %d-%d/%d", &start, &end, &total); err != nil {
		return fmt.Errorf("unparsable Content-Range %q: %w", contentRange, err)
	}
	if start != off || end != off+length-1 {
		return fmt.Errorf("%w: [%d, %d) of %d bytes", archive.ErrInvalidRange, off, off+length, total)
	}
	if contentLength != length {
		return fmt.Errorf("%w: Content-Length %d for a range of %d bytes", archive.ErrSizeMismatch, contentLength, length)
	}
	return nil
}

func (b *Bucket) Stat(ctx context.Context, key string) (archive.ObjectInfo, error) {
	if err := archive.ValidateKey(key); err != nil {
		return archive.ObjectInfo{}, archive.Error("stat", key, b.loc, err)
	}
	info, err := b.client.StatObject(ctx, b.bucket, key, mc.StatObjectOptions{})
	if err != nil {
		return archive.ObjectInfo{}, b.fail("stat", key, err)
	}
	return archive.ObjectInfo{Key: key, Size: info.Size, ETag: strings.Trim(info.ETag, `"`), LastModified: info.LastModified}, nil
}

func (b *Bucket) List(ctx context.Context, prefix string, fn func(archive.ObjectInfo) error) error {
	// Cancelling ctx on return stops minio-go's listing goroutine when fn stops early.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for obj := range b.client.ListObjectsIter(ctx, b.bucket, mc.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return b.fail("list", prefix, obj.Err)
		}
		err := fn(archive.ObjectInfo{Key: obj.Key, Size: obj.Size, ETag: strings.Trim(obj.ETag, `"`), LastModified: obj.LastModified})
		if err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil { // the iterator ends quietly on cancellation
		return archive.Error("list", prefix, b.loc, err)
	}
	return nil
}

// Delete removes the object; S3 answers success for a missing key, and so does Delete.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := archive.ValidateKey(key); err != nil {
		return archive.Error("delete", key, b.loc, err)
	}
	err := b.client.RemoveObject(ctx, b.bucket, key, mc.RemoveObjectOptions{})
	if err != nil && !errors.Is(classify(err), archive.ErrNotFound) {
		return b.fail("delete", key, err)
	}
	return nil
}

// Close does nothing: the client holds only idle connections.
func (b *Bucket) Close() error { return nil }
