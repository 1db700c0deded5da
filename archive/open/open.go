// Package open turns an archive URL into an archive.Bucket. It lives apart from package
// archive because it imports every backend, and the backends import archive.
package open

import (
	"context"
	"fmt"

	"floe/archive"
	"floe/archive/fs"
	"floe/archive/mem"
	"floe/archive/minio"
	"floe/archive/s3"
)

// Open parses rawURL (see archive.ParseURL) and returns its bucket, with the URL's
// prefix applied through archive.WithPrefix:
//
//	file:///abs/dir          package fs
//	s3://bucket/prefix       package s3 (aws-sdk-go-v2, standard AWS credential chain)
//	minio://bucket/prefix    package minio (minio-go, AWS_ACCESS_KEY_ID/SECRET in env)
//	mem://name/prefix        package mem (process-wide store named name)
//
// Open contacts the store only when opts.CreateBucket is set (s3, minio) or to check
// and create the directory (file); errors wrap archive.ErrBadURL for a URL it cannot
// use. Server-side encryption (opts.SSE) is for s3:// and minio:// only: Open refuses
// it, and settings that opts.ValidateSSE refuses, with archive.ErrBadSSE before it
// touches anything, so an operator who asked for encryption at rest never gets a store
// that silently does without. The caller closes the bucket.
func Open(ctx context.Context, rawURL string, opts archive.Options) (archive.Bucket, error) {
	loc, err := archive.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if err := opts.ValidateSSE(); err != nil {
		return nil, err
	}
	if opts.SSE != "" && (loc.Scheme == "file" || loc.Scheme == "mem") {
		hint := ""
		if loc.Scheme == "file" {
			hint = " (and encrypt the disk that holds the directory instead)"
		}
		return nil, fmt.Errorf("%w: --s3-sse %s: a %s:// archive cannot encrypt objects at rest; drop --s3-sse%s",
			archive.ErrBadSSE, opts.SSE, loc.Scheme, hint)
	}
	var b archive.Bucket
	switch loc.Scheme {
	case "file":
		b, err = fs.Open(loc.Dir, opts)
	case "s3":
		b, err = s3.Open(ctx, loc.Bucket, opts)
	case "minio":
		b, err = minio.Open(ctx, loc.Bucket, opts)
	case "mem":
		b = mem.Open(loc.Bucket)
	default:
		err = fmt.Errorf("%w: unsupported scheme %q", archive.ErrBadURL, loc.Scheme)
	}
	if err != nil {
		return nil, err
	}
	return archive.WithPrefix(b, loc.Prefix), nil
}
