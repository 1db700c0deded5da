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
// use. The caller closes the bucket.
func Open(ctx context.Context, rawURL string, opts archive.Options) (archive.Bucket, error) {
	loc, err := archive.ParseURL(rawURL)
	if err != nil {
		return nil, err
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
