package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
	"unicode/utf8"
)

// Bucket is an object store. Keys are slash-separated, relative to the bucket's prefix
// (see ValidateKey). Every method is safe for concurrent use. No method retries beyond
// what the provider's SDK does on its own; callers (the uploader) own retry policy.
type Bucket interface {
	// Put stores the object under key, reading exactly size bytes from r. If r ends early
	// or holds more than size bytes, Put fails with ErrSizeMismatch and nothing is stored.
	// The object becomes visible atomically: readers see the old object (or none) or the
	// whole new one. With opts.IfNoneMatch, Put fails with ErrExists (errors.Is) when the
	// key already exists and never overwrites it (S3 If-None-Match: *), also against a
	// concurrent writer of the same key: exactly one of them succeeds. With opts.IfMatch,
	// Put replaces the object only while its ETag is still opts.IfMatch, and fails with
	// ErrPreconditionFailed (changing nothing) when the object was replaced or deleted
	// since (S3 If-Match): of concurrent writers that name the same ETag, at most one
	// succeeds.
	Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error

	// Get returns the whole object. It fails with ErrNotFound when the key does not exist.
	// The reader fails (never returns io.EOF early) if fewer bytes arrive than the object
	// holds; the caller must Close it.
	Get(ctx context.Context, key string) (io.ReadCloser, error)

	// GetRange returns exactly the bytes [off, off+length) of the object. It fails with
	// ErrNotFound when the key does not exist and with ErrInvalidRange when off < 0,
	// length <= 0 or off+length exceeds the object's size. The reader fails if fewer than
	// length bytes arrive; the caller must Close it. No end-to-end checksum covers a
	// range: integrity of ranged reads is the object format's business.
	GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error)

	// Stat describes the object. It fails with ErrNotFound when the key does not exist.
	Stat(ctx context.Context, key string) (ObjectInfo, error)

	// List calls fn for every object whose key starts with prefix (a plain string prefix,
	// not necessarily ending in "/"), recursively, in lexical (byte-wise) key order.
	// Keys passed to fn are relative to the bucket, like the keys given to Put. If fn
	// returns an error, List stops and returns that error unwrapped. Objects written or
	// deleted while List runs may or may not be seen.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error

	// Delete removes the object. It is idempotent: deleting a missing key succeeds.
	Delete(ctx context.Context, key string) error

	// Close releases the bucket's resources. The bucket must not be used afterwards.
	Close() error
}

// PutOptions modify a Put.
type PutOptions struct {
	// IfNoneMatch makes Put fail with ErrExists instead of overwriting an existing object.
	IfNoneMatch bool
	// IfMatch, when not empty, is the ETag (as Stat or List report it) that the object
	// must still have: Put fails with ErrPreconditionFailed instead of overwriting any
	// other version, or of creating an object that is gone. A compare-and-swap, for
	// small objects that several writers may replace (the cluster claim). At most one
	// of IfNoneMatch and IfMatch may be set; "*" is not a wildcard.
	IfMatch string
	// ContentType is stored with the object where the backend supports it
	// (default application/octet-stream).
	ContentType string
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	// Key is relative to the bucket (and to its prefix, see WithPrefix).
	Key  string
	Size int64
	// ETag is opaque: it changes when the object is replaced, and is not necessarily an
	// MD5 of the content (multipart uploads, the fs backend).
	ETag         string
	LastModified time.Time
}

// Errors returned by every backend, wrapped with the key and location (see Error);
// test them with errors.Is. Their texts reach clients verbatim (a read served from
// the archive that fails answers with its error), so they carry no package prefix.
var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrExists: Put with IfNoneMatch found the key already present.
	ErrExists = errors.New("object already exists")
	// ErrPreconditionFailed: Put with IfMatch found the object replaced (another ETag)
	// or gone.
	ErrPreconditionFailed = errors.New("object changed since it was read")
	// ErrInvalidRange: GetRange asked for bytes outside the object, or an empty range.
	ErrInvalidRange = errors.New("invalid range")
	// ErrBadURL: Open could not parse or does not support the archive URL.
	ErrBadURL = errors.New("bad archive URL")
	// ErrInvalidKey: the key breaks the rules of ValidateKey.
	ErrInvalidKey = errors.New("invalid key")
	// ErrSizeMismatch: the bytes sent or received differ from the size announced.
	ErrSizeMismatch = errors.New("size mismatch")
	// ErrBucketNotFound: the bucket (or the fs root directory) does not exist.
	ErrBucketNotFound = errors.New("bucket not found")
	// ErrBadSSE: Open was given server-side encryption settings it cannot honour (see
	// Options.ValidateSSE), or any at all for a backend that cannot encrypt (file, mem).
	ErrBadSSE = errors.New("bad server-side encryption setting")
)

// IsNotFound reports whether err says the object does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsExists reports whether err says a conditional Put found the object already there.
func IsExists(err error) bool { return errors.Is(err, ErrExists) }

// IsPreconditionFailed reports whether err says a Put with IfMatch found the object
// replaced or gone.
func IsPreconditionFailed(err error) bool { return errors.Is(err, ErrPreconditionFailed) }

// CheckPutOptions refuses options no backend can honour, before any request is made.
func CheckPutOptions(opts PutOptions) error {
	if opts.IfNoneMatch && opts.IfMatch != "" {
		return errors.New("a Put cannot be conditional on both IfNoneMatch and IfMatch")
	}
	return nil
}

// S3PutSentinel is S3Sentinel for the answer to a Put with opts. A Put with IfMatch
// that S3 refuses with 412 found another ETag, and one that it refuses with 404 (AWS
// answers NoSuchKey when the object is gone) found none: both are
// ErrPreconditionFailed, not ErrExists or ErrNotFound.
func S3PutSentinel(code string, status int, opts PutOptions) error {
	s := S3Sentinel(code, status)
	if opts.IfMatch != "" && (s == ErrExists || s == ErrNotFound) {
		return ErrPreconditionFailed
	}
	return s
}

// S3Sentinel returns the sentinel error that an S3 error code means, or failing that
// (code unknown or empty) its HTTP status; nil if neither means one. The S3-compatible
// backends classify their clients' errors with it.
func S3Sentinel(code string, status int) error {
	switch code {
	case "NoSuchKey", "NotFound":
		return ErrNotFound
	case "NoSuchBucket":
		return ErrBucketNotFound
	case "PreconditionFailed":
		return ErrExists
	case "InvalidRange":
		return ErrInvalidRange
	}
	switch status {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusPreconditionFailed:
		return ErrExists
	case http.StatusRequestedRangeNotSatisfiable:
		return ErrInvalidRange
	}
	return nil
}

// Classified wraps err in sentinel (when not nil), keeping err's text and chain.
func Classified(sentinel, err error) error {
	if sentinel == nil || err == nil {
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

// Error wraps err in the house message "cannot <verb> <key> at <location>: <err>".
// location names the backend and bucket, e.g. "s3://logs/floe"; it never holds
// credentials.
func Error(verb, key, location string, err error) error {
	return fmt.Errorf("cannot %s %q at %s: %w", verb, key, location, err)
}

// Options configure Open and the backends' constructors.
type Options struct {
	// Endpoint of an S3-compatible service, e.g. "http://127.0.0.1:9000". A bare
	// "host:port" means https. Setting it implies path-style addressing.
	Endpoint string
	// Region of the bucket; defaults to the standard AWS chain's region, else us-east-1.
	Region string
	// CreateBucket creates a missing bucket (or fs root directory) when the bucket is
	// opened; a bucket that already exists and is owned by the caller is fine. Without
	// it, Open never contacts the store, so a node starts even while the store is down.
	CreateBucket bool
	// Logger receives the backends' few log lines (never credentials); nil: slog.Default.
	Logger *slog.Logger
	// SSE asks the service to encrypt every object it writes at rest: "" leaves it to
	// the bucket's default encryption, SSES3 ("AES256") and SSEKMS ("aws:kms") are sent
	// as x-amz-server-side-encryption on every PutObject and CreateMultipartUpload.
	// Reads need nothing. Only the s3 and minio backends can honour it; open.Open
	// refuses it for file:// and mem://. Flag --s3-sse.
	SSE string
	// SSEKMSKeyID names the KMS key (id, ARN or alias) of SSEKMS; empty: the bucket's
	// default KMS key (on AWS, aws/s3 unless the bucket names another). Only with SSE
	// SSEKMS. Flag --s3-sse-kms-key-id.
	SSEKMSKeyID string
}

// The server-side encryption modes of Options.SSE, as S3 spells them.
const (
	// SSES3 encrypts with keys the service owns and manages (SSE-S3).
	SSES3 = "AES256"
	// SSEKMS encrypts with a key held in the service's KMS (SSE-KMS): every write and
	// read is a KMS call, allowed or denied by the key's policy.
	SSEKMS = "aws:kms"
)

// ValidateSSE checks SSE and SSEKMSKeyID before any request is made. Its errors wrap
// ErrBadSSE and name the flags an operator sets (--s3-sse, --s3-sse-kms-key-id).
func (o Options) ValidateSSE() error {
	switch o.SSE {
	case "", SSES3, SSEKMS:
	default:
		return fmt.Errorf("%w: --s3-sse %q: want AES256 (SSE-S3), aws:kms (SSE-KMS) or empty (none)", ErrBadSSE, o.SSE)
	}
	if o.SSEKMSKeyID != "" && o.SSE != SSEKMS {
		got := "is not set"
		if o.SSE != "" {
			got = "is " + o.SSE
		}
		return fmt.Errorf("%w: --s3-sse-kms-key-id needs --s3-sse aws:kms (--s3-sse %s)", ErrBadSSE, got)
	}
	return nil
}

// Log returns o.Logger or the default logger.
func (o Options) Log() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

// MaxKeyLen is the longest key accepted, in bytes (S3's limit).
const MaxKeyLen = 1024

// ValidateKey checks that key is a usable relative object key: non-empty valid UTF-8 of at
// most MaxKeyLen bytes, slash-separated segments that are neither empty, "." nor "..",
// no leading or trailing slash, no NUL or backslash. The same rules hold on every backend,
// so a key that works on mem works on S3 and on a local directory.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidKey, len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: not UTF-8", ErrInvalidKey)
	case strings.ContainsAny(key, "\x00\\"):
		return fmt.Errorf("%w: contains NUL or backslash", ErrInvalidKey)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: segment %q in %q", ErrInvalidKey, seg, key)
		}
	}
	return nil
}

// CheckRange validates the arguments of GetRange before any request is made.
func CheckRange(off, length int64) error {
	if off < 0 || length <= 0 || off > (1<<63-1)-length {
		return fmt.Errorf("%w: offset %d, length %d", ErrInvalidRange, off, length)
	}
	return nil
}

// Location is a parsed archive URL.
type Location struct {
	// Scheme is one of "file", "s3", "minio", "mem".
	Scheme string
	// Bucket is the bucket name; for file it is empty.
	Bucket string
	// Dir is the absolute root directory of a file archive.
	Dir string
	// Prefix is the key prefix inside the bucket, without leading or trailing slashes.
	Prefix string
}

// String renders the location without credentials, for messages.
func (l Location) String() string {
	switch l.Scheme {
	case "file":
		return "file://" + l.Dir
	default:
		s := l.Scheme + "://" + l.Bucket
		if l.Prefix != "" {
			s += "/" + l.Prefix
		}
		return s
	}
}

// ParseURL parses an archive URL:
//
//	file:///abs/dir          a local directory (the whole path is the root; a "prefix"
//	                         is simply a deeper directory)
//	s3://bucket[/prefix]     S3 through aws-sdk-go-v2
//	minio://bucket[/prefix]  S3 through minio-go
//	mem://[bucket[/prefix]]  in-process memory, for tests; the same bucket name in one
//	                         process is the same store, an empty name a private one
//
// User info, queries and fragments are refused, so credentials never ride in the URL.
func ParseURL(raw string) (Location, error) {
	bad := func(why string) (Location, error) {
		return Location{}, fmt.Errorf("%w: %s", ErrBadURL, why)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the URL; it may hold secrets a user pasted, so keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return bad(err.Error())
	}
	if u.User != nil {
		return bad("credentials in the URL are not accepted; use the AWS environment or profile")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return bad("query and fragment are not accepted")
	}
	loc := Location{Scheme: u.Scheme}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return bad(fmt.Sprintf("file URL with host %q; want file:///absolute/dir", u.Host))
		}
		if u.Path == "" || !path.IsAbs(u.Path) {
			return bad("file URL needs an absolute path: file:///absolute/dir")
		}
		loc.Dir = path.Clean(u.Path)
		return loc, nil
	case "s3", "minio", "mem":
		loc.Bucket = u.Host
		if u.Scheme != "mem" && !validBucketName(loc.Bucket) {
			return bad(fmt.Sprintf("bucket name %q: want 3-63 of [a-z0-9.-]", loc.Bucket))
		}
		loc.Prefix = strings.Trim(u.Path, "/")
		if loc.Prefix != "" {
			if err := ValidateKey(loc.Prefix); err != nil {
				return bad(fmt.Sprintf("prefix %q: %v", loc.Prefix, err))
			}
		}
		return loc, nil
	case "":
		return bad("missing scheme; want file://, s3://, minio:// or mem://")
	default:
		return bad(fmt.Sprintf("unsupported scheme %q; want file://, s3://, minio:// or mem://", u.Scheme))
	}
}

func validBucketName(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for _, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '.' && c != '-' {
			return false
		}
	}
	return true
}
