// Package s3 is an archive.Bucket on Amazon S3 or any S3-compatible service, through
// aws-sdk-go-v2 (URL s3://bucket/prefix; the prefix is applied by archive.WithPrefix).
//
// Credentials come from the standard AWS chain (environment, shared config and
// credentials files, web identity, ECS and EC2 roles) via config.LoadDefaultConfig and
// are never logged. Setting an endpoint implies path-style addressing, as MinIO and most
// self-hosted services need.
//
// Uploads: an object of up to PartSize bytes is buffered and sent with one PutObject; a
// larger one goes as a multipart upload of PartSize parts, a few in flight at once, and
// is aborted on any failure. Every PutObject and UploadPart carries an explicit CRC32C
// checksum that the service verifies (never rely on the SDK's default
// algorithm choice for multipart), and CompleteMultipartUpload carries the expected
// object size. IfNoneMatch sends If-None-Match: * on PutObject and on
// CompleteMultipartUpload, the point at which a multipart object becomes visible;
// IfMatch sends If-Match: "<etag>" at the same two points. With archive.Options.SSE,
// every PutObject and CreateMultipartUpload asks for server-side encryption
// (x-amz-server-side-encryption, and the KMS key id for aws:kms); the parts of a
// multipart upload inherit it from its creation. The backend never copies an object.
// Reads need no SSE headers.
//
// Errors are classified by the service's error code, then by HTTP status, never by
// message text: NoSuchKey, NotFound and 404 are archive.ErrNotFound; NoSuchBucket is
// archive.ErrBucketNotFound; PreconditionFailed and 412 are archive.ErrExists (only a
// conditional Put sends a precondition), except that a Put with IfMatch refused with
// PreconditionFailed, 412, NoSuchKey or 404 is archive.ErrPreconditionFailed
// (archive.S3PutSentinel); InvalidRange and 416 are
// archive.ErrInvalidRange. AWS answers 409 ConditionalRequestConflict to a conditional
// write that races another one in flight; that is left unclassified (a plain error to
// retry, after which the loser sees 412), since the other write may yet fail. MinIO
// answers 412 in that race too. Nothing is retried here beyond the SDK's standard
// retryer.
//
// Bodies are always seekable byte slices, so the SDK's default request checksum mode
// (WhenSupported) works against MinIO over plain http; RequestChecksumCalculation
// WhenRequired is not needed.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"golang.org/x/sync/errgroup"

	"floe/archive"
)

const (
	// PartSize is the size of a multipart upload's parts, and the largest object sent
	// with a single PutObject. S3's minimum part size is 5 MiB.
	PartSize = 8 << 20
	// partsInFlight bounds concurrent UploadPart calls (and so the memory of one Put to
	// about (partsInFlight+1) * PartSize).
	partsInFlight = 4
)

// Bucket is one S3 bucket. Safe for concurrent use.
type Bucket struct {
	client   *awss3.Client
	bucket   string
	loc      string
	partSize int64
	bufs     sync.Pool // *[]byte of partSize
	// sse and kmsKeyID are sent with every write ("" and nil: not sent).
	sse      types.ServerSideEncryption
	kmsKeyID *string
}

var _ archive.Bucket = (*Bucket)(nil)

// Open returns the bucket named bucket. It contacts the service only when
// opts.CreateBucket is set, to create the bucket if it is missing. SSE settings that
// opts.ValidateSSE refuses fail it before anything is contacted.
func Open(ctx context.Context, bucket string, opts archive.Options) (*Bucket, error) {
	loc := "s3://" + bucket
	if err := opts.ValidateSSE(); err != nil {
		return nil, archive.Error("open", bucket, loc, err)
	}
	var load []func(*config.LoadOptions) error
	if opts.Region != "" {
		load = append(load, config.WithRegion(opts.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, archive.Error("open", bucket, loc, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := awss3.NewFromConfig(cfg, func(o *awss3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(normalizeEndpoint(opts.Endpoint))
			o.UsePathStyle = true
		}
		// Ranged GETs and multipart objects carry no full-object checksum to validate;
		// the SDK would log that on every such read.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	b := newBucket(client, bucket)
	b.sse = types.ServerSideEncryption(opts.SSE)
	if opts.SSEKMSKeyID != "" {
		b.kmsKeyID = aws.String(opts.SSEKMSKeyID)
	}
	if opts.CreateBucket {
		if err := b.create(ctx, cfg.Region, opts); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func newBucket(client *awss3.Client, bucket string) *Bucket {
	b := &Bucket{client: client, bucket: bucket, loc: "s3://" + bucket, partSize: PartSize}
	b.bufs.New = func() any {
		buf := make([]byte, b.partSize)
		return &buf
	}
	return b
}

// normalizeEndpoint turns a bare host:port into an https URL.
func normalizeEndpoint(ep string) string {
	if strings.Contains(ep, "://") {
		return ep
	}
	return "https://" + ep
}

// Client returns the underlying SDK client, for benchmarks that compare against plain
// SDK calls. Use the Bucket methods for everything else.
func (b *Bucket) Client() *awss3.Client { return b.client }

// create makes the bucket, tolerating one that already exists and is ours.
func (b *Bucket) create(ctx context.Context, region string, opts archive.Options) error {
	in := &awss3.CreateBucketInput{Bucket: aws.String(b.bucket)}
	if region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(region)}
	}
	_, err := b.client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	switch {
	case err == nil:
		opts.Log().Info("archive: created bucket", "bucket", b.bucket, "region", region)
		return nil
	case errors.As(err, &owned):
		return nil
	default:
		return archive.Error("create bucket", b.bucket, b.loc, err)
	}
}

// classify maps an SDK error to the archive sentinels by code, then by HTTP status.
func classify(err error) error {
	return archive.Classified(archive.S3Sentinel(errorCode(err)), err)
}

// errorCode is the S3 error code and HTTP status of an SDK error, where it has them.
func errorCode(err error) (code string, status int) {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return code, status
}

func (b *Bucket) fail(verb, key string, err error) error {
	return archive.Error(verb, key, b.loc, classify(err))
}

// Put uploads r; see the package comment for how.
func (b *Bucket) Put(ctx context.Context, key string, r io.Reader, size int64, opts archive.PutOptions) error {
	if err := archive.ValidateKey(key); err != nil {
		return archive.Error("put", key, b.loc, err)
	}
	if size < 0 {
		return archive.Error("put", key, b.loc, fmt.Errorf("%w: negative size %d", archive.ErrSizeMismatch, size))
	}
	if err := archive.CheckPutOptions(opts); err != nil {
		return archive.Error("put", key, b.loc, err)
	}
	body := archive.ExactReader(r, size)
	var err error
	if size <= b.partSize {
		err = b.putSingle(ctx, key, body, size, opts)
	} else {
		err = b.putMultipart(ctx, key, body, size, opts)
	}
	if err != nil {
		return archive.Error("put", key, b.loc, classifyPut(err, opts))
	}
	return nil
}

// classifyPut is classify for the answer to a Put with opts (see archive.S3PutSentinel).
func classifyPut(err error, opts archive.PutOptions) error {
	code, status := errorCode(err)
	return archive.Classified(archive.S3PutSentinel(code, status, opts), err)
}

func contentType(opts archive.PutOptions) *string {
	if opts.ContentType == "" {
		return aws.String("application/octet-stream")
	}
	return aws.String(opts.ContentType)
}

func ifNoneMatch(opts archive.PutOptions) *string {
	if opts.IfNoneMatch {
		return aws.String("*")
	}
	return nil
}

// ifMatch quotes the ETag again (ObjectInfo.ETag carries it without quotes).
func ifMatch(opts archive.PutOptions) *string {
	if opts.IfMatch != "" {
		return aws.String(`"` + opts.IfMatch + `"`)
	}
	return nil
}

// putSingle reads the whole body first: a body that is short or long fails before any
// request is sent, and the SDK gets a seekable body it can sign, checksum and retry.
func (b *Bucket) putSingle(ctx context.Context, key string, body io.Reader, size int64, opts archive.PutOptions) error {
	var buf []byte
	if size <= 1<<20 {
		buf = make([]byte, size) // small objects (metadata) do not hold a pooled part buffer
	} else {
		bufp := b.bufs.Get().(*[]byte)
		defer b.bufs.Put(bufp)
		buf = (*bufp)[:size]
	}
	data, err := readPart(body, buf)
	if err != nil {
		return err
	}
	if !atEOF(body) {
		return fmt.Errorf("%w: reader holds more than %d bytes", archive.ErrSizeMismatch, size)
	}
	_, err = b.client.PutObject(ctx, &awss3.PutObjectInput{
		Bucket:            aws.String(b.bucket),
		Key:               aws.String(key),
		Body:              bytes.NewReader(data),
		ContentLength:     aws.Int64(int64(len(data))),
		ContentType:       contentType(opts),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
		IfNoneMatch:       ifNoneMatch(opts),
		IfMatch:           ifMatch(opts),
		// ServerSideEncryption "" sends no header.
		ServerSideEncryption: b.sse,
		SSEKMSKeyId:          b.kmsKeyID,
	})
	return err
}

// readPart fills buf from r; ExactReader below it turns a short body into an error.
func readPart(r io.Reader, buf []byte) ([]byte, error) {
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// atEOF reports whether r (an ExactReader) has nothing left and ended cleanly.
func atEOF(r io.Reader) bool {
	var one [1]byte
	n, err := r.Read(one[:])
	return n == 0 && errors.Is(err, io.EOF)
}

func (b *Bucket) putMultipart(ctx context.Context, key string, body io.Reader, size int64, opts archive.PutOptions) (err error) {
	created, err := b.client.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{
		Bucket:            aws.String(b.bucket),
		Key:               aws.String(key),
		ContentType:       contentType(opts),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
		// The parts and the completed object inherit the encryption asked for here.
		ServerSideEncryption: b.sse,
		SSEKMSKeyId:          b.kmsKeyID,
	})
	if err != nil {
		return err
	}
	uploadID := created.UploadId
	defer func() {
		if err == nil {
			return
		}
		// Abort even if ctx is done, so no invisible parts are left to pay for.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, aerr := b.client.AbortMultipartUpload(actx, &awss3.AbortMultipartUploadInput{
			Bucket: aws.String(b.bucket), Key: aws.String(key), UploadId: uploadID,
		}); aerr != nil {
			err = fmt.Errorf("%w (and abort of upload failed: %v)", err, aerr)
		}
	}()

	nparts := int((size + b.partSize - 1) / b.partSize)
	parts := make([]types.CompletedPart, nparts)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(partsInFlight)
	var sent int64
	for i := range nparts {
		n := min(b.partSize, size-int64(i)*b.partSize)
		bufp := b.bufs.Get().(*[]byte)
		data, rerr := readPart(body, (*bufp)[:n])
		if rerr == nil && i == nparts-1 && !atEOF(body) {
			rerr = fmt.Errorf("%w: reader holds more than %d bytes", archive.ErrSizeMismatch, size)
		}
		if rerr != nil {
			b.bufs.Put(bufp)
			_ = g.Wait()
			return rerr
		}
		sent += int64(len(data))
		if gctx.Err() != nil {
			b.bufs.Put(bufp)
			break // a part failed; g.Wait reports it
		}
		g.Go(func() error {
			defer b.bufs.Put(bufp)
			out, err := b.client.UploadPart(gctx, &awss3.UploadPartInput{
				Bucket:            aws.String(b.bucket),
				Key:               aws.String(key),
				UploadId:          uploadID,
				PartNumber:        aws.Int32(int32(i + 1)),
				Body:              bytes.NewReader(data),
				ContentLength:     aws.Int64(int64(len(data))),
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
			})
			if err != nil {
				return fmt.Errorf("part %d of %d: %w", i+1, nparts, err)
			}
			parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1)), ChecksumCRC32C: out.ChecksumCRC32C}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if sent != size {
		return fmt.Errorf("%w: sent %d of %d bytes", archive.ErrSizeMismatch, sent, size)
	}
	_, err = b.client.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
		Bucket:          aws.String(b.bucket),
		Key:             aws.String(key),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		IfNoneMatch:     ifNoneMatch(opts),
		IfMatch:         ifMatch(opts),
		MpuObjectSize:   aws.Int64(size),
	})
	return err
}

// Get downloads the whole object, asking the service for its stored checksum so that
// the SDK verifies single-part objects end to end.
func (b *Bucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := archive.ValidateKey(key); err != nil {
		return nil, archive.Error("get", key, b.loc, err)
	}
	out, err := b.client.GetObject(ctx, &awss3.GetObjectInput{
		Bucket:       aws.String(b.bucket),
		Key:          aws.String(key),
		ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return nil, b.fail("get", key, err)
	}
	if out.ContentLength == nil {
		out.Body.Close()
		return nil, archive.Error("get", key, b.loc, errors.New("response carries no Content-Length"))
	}
	return archive.CheckedBody(out.Body, *out.ContentLength, func(err error) error { return archive.Error("read", key, b.loc, err) }), nil
}

func (b *Bucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	const verb = "get range of"
	if err := archive.ValidateKey(key); err != nil {
		return nil, archive.Error(verb, key, b.loc, err)
	}
	if err := archive.CheckRange(off, length); err != nil {
		return nil, archive.Error(verb, key, b.loc, err)
	}
	out, err := b.client.GetObject(ctx, &awss3.GetObjectInput{
		Bucket: aws.String(b.bucket),
		Key:    aws.String(key),
		Range:  aws.String(fmt.Sprintf("bytes=%d-%d", off, off+length-1)),
	})
	if err != nil {
		return nil, b.fail(verb, key, err)
	}
	if err := checkRange(out, off, length); err != nil {
		out.Body.Close()
		return nil, archive.Error(verb, key, b.loc, err)
	}
	return archive.CheckedBody(out.Body, length, func(err error) error { return archive.Error("read", key, b.loc, err) }), nil
}

// checkRange verifies that the service returned exactly the range asked for. S3 clips
// a range that runs past the end; that is ErrInvalidRange here.
func checkRange(out *awss3.GetObjectOutput, off, length int64) error {
	var start, end, total int64
	if out.ContentRange == nil {
		return errors.New("response to a ranged GET carries no Content-Range")
	}
	if _, err := fmt.Sscanf(*out.ContentRange, "bytes %d-%d/%d", &start, &end, &total); err != nil {
		return fmt.Errorf("unparsable Content-Range %q: %w", *out.ContentRange, err)
	}
	if start != off || end != off+length-1 {
		return fmt.Errorf("%w: [%d, %d) of %d bytes", archive.ErrInvalidRange, off, off+length, total)
	}
	if out.ContentLength == nil || *out.ContentLength != length {
		return fmt.Errorf("%w: Content-Length %v for a range of %d bytes", archive.ErrSizeMismatch, aws.ToInt64(out.ContentLength), length)
	}
	return nil
}

func (b *Bucket) Stat(ctx context.Context, key string) (archive.ObjectInfo, error) {
	if err := archive.ValidateKey(key); err != nil {
		return archive.ObjectInfo{}, archive.Error("stat", key, b.loc, err)
	}
	out, err := b.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)})
	if err != nil {
		return archive.ObjectInfo{}, b.fail("stat", key, err)
	}
	return archive.ObjectInfo{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		ETag:         strings.Trim(aws.ToString(out.ETag), `"`),
		LastModified: aws.ToTime(out.LastModified),
	}, nil
}

func (b *Bucket) List(ctx context.Context, prefix string, fn func(archive.ObjectInfo) error) error {
	in := &awss3.ListObjectsV2Input{Bucket: aws.String(b.bucket)}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	pages := awss3.NewListObjectsV2Paginator(b.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return b.fail("list", prefix, err)
		}
		for _, obj := range page.Contents {
			err := fn(archive.ObjectInfo{
				Key:          aws.ToString(obj.Key),
				Size:         aws.ToInt64(obj.Size),
				ETag:         strings.Trim(aws.ToString(obj.ETag), `"`),
				LastModified: aws.ToTime(obj.LastModified),
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete removes the object; S3 answers success for a missing key, and so does Delete.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := archive.ValidateKey(key); err != nil {
		return archive.Error("delete", key, b.loc, err)
	}
	_, err := b.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)})
	if err != nil && !errors.Is(classify(err), archive.ErrNotFound) {
		return b.fail("delete", key, err)
	}
	return nil
}

// Close does nothing: the SDK client holds only idle connections.
func (b *Bucket) Close() error { return nil }
