// Package archive is floe's object-store interface: the remote tier that sealed
// segments are uploaded to (docs/ARCHITECTURE.md, "Tiering"). It knows nothing of Raft or of segments; it
// stores and returns opaque objects under slash-separated keys.
//
// # Packages
//
//	archive               Bucket, PutOptions, ObjectInfo, Options, the sentinel errors,
//	                      ParseURL, the WithPrefix and WithMetrics wrappers
//	archive/open          Open(ctx, url, opts): URL -> backend, prefix applied
//	archive/fs            file:///abs/dir      local directory (temp file, fsync, rename/link)
//	archive/s3            s3://bucket/prefix   aws-sdk-go-v2, standard AWS credential chain
//	archive/minio         minio://bucket/prefix minio-go, AWS_ACCESS_KEY_ID/SECRET from env
//	archive/mem           mem://name/prefix    in-process, for unit tests only
//	archive/archivetest   Run(t, newBucket): the acceptance suite every backend and wrapper passes
//	archive/miniotest     a real MinIO server (bin/minio) for tests
//
// Open lives in archive/open rather than here because it imports every backend and
// every backend imports archive; an explicit switch there, rather than backends
// registering themselves from init, means no binary can forget a blank import.
//
// # Where an object lives
//
//	URL  s3://logs/floe/prod   key  topics/orders/00000000000000000042.seg
//	                    \_____/      \_____________________________________/
//	                    prefix (WithPrefix)        key given to Bucket methods
//	object: bucket "logs", name "floe/prod/topics/orders/00000000000000000042.seg"
//	file:   file:///data/archive -> /data/archive/topics/orders/00000000000000000042.seg
//
// Keys follow ValidateKey on every backend (no empty, "." or ".." segments, no leading
// or trailing slash), so a key that works in a unit test on mem works on S3 and on a
// directory, and none can climb out of a prefix or a root directory.
//
// # The contract
//
// Atomic visibility: a reader sees no object or a whole one, never a partial Put.
//
// Exact sizes: Put reads exactly size bytes; a body that ends early or runs long
// fails with ErrSizeMismatch (or the reader's own error) and stores nothing, also when
// the backend streams the body (archive.ExactReader fails the request before the last
// byte is sent). Downloads are wrapped in CheckedBody, so a truncated transfer is an
// error, never a short object. Uploads to S3 and MinIO carry CRC32C checksums that the
// service verifies; whole-object Gets on s3 ask for the stored checksum and the SDK
// checks it. Ranged reads carry no checksum: the segment object format has its own.
//
// IfNoneMatch (S3 If-None-Match: *): Put fails with ErrExists when the key exists and
// never overwrites it. Among concurrent conditional Puts of one key exactly one
// succeeds; the others get ErrExists. floe's uploader relies on this so that a late or
// duplicate upload cannot replace an archived segment, and treats ErrExists as success
// once the existing object's checksum matches its own.
//
// IfMatch (S3 If-Match: "<etag>"): Put replaces the object only while its ETag is still
// the one given (as Stat or List reported it), and otherwise fails with
// ErrPreconditionFailed, also when the object is gone (S3 answers 412 or 404; both are
// ErrPreconditionFailed). Of concurrent Puts that name the same ETag at most one
// succeeds. floe's Raft leader refreshes the cluster claim with it, so that a claim
// another cluster wrote after the leader read it is never overwritten. A Put with
// IfMatch is not safe to retry blindly: one that succeeded answers
// ErrPreconditionFailed when repeated, since the ETag changed; the caller reads again.
//
// Not found: Stat, Get and GetRange of a missing key fail with ErrNotFound (test with
// IsNotFound). A missing bucket is ErrBucketNotFound where the service says so (Get,
// List); S3's HEAD has no body, so a Stat in a missing bucket reports ErrNotFound.
// Delete of a missing key succeeds. GetRange outside the object is ErrInvalidRange,
// also when the range only partly overlaps it (S3 would clip it silently).
//
// Classification: each backend maps the provider's error code (then HTTP status),
// never its message, to the sentinels; see the backends' package comments. Errors read
// "cannot <verb> "<key>" at <location>: <cause>", and the location never holds
// credentials (URLs with user info are refused).
//
// Retries: none inside the backends beyond what the SDKs do on their own for a single
// request (aws-sdk-go-v2's standard retryer, minio-go's request retries). Retrying a
// failed Put, with backoff, is the caller's job (the tiering uploader); Put is safe to
// retry because a failed Put leaves nothing behind (a failed multipart upload is
// aborted) and a conditional Put that already succeeded answers ErrExists.
//
// Starting up: Open contacts the store only to create a missing bucket when
// Options.CreateBucket is set, so a node starts while the store is down.
//
// Encryption at rest: with Options.SSE (SSES3 or SSEKMS, validated by
// Options.ValidateSSE) the s3 and minio backends ask the service to encrypt every
// object they write; reads are unchanged. open.Open refuses SSE for file:// and mem://,
// which cannot encrypt. The fs backend keeps its objects 0600 and its directories 0700.
//
// Concurrency: every Bucket is safe for concurrent use; List sees a mix of before and
// after for objects changed while it runs.
package archive
