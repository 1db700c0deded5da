package archive

import (
	"context"
	"io"
	"strings"
)

// WithPrefix returns a view of b in which every key is stored as prefix + "/" + key.
// Listing strips the prefix again, so callers never see it. Leading and trailing
// slashes of prefix are ignored; an empty prefix returns b itself. Closing the view
// closes b.
func WithPrefix(b Bucket, prefix string) Bucket {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return b
	}
	return &prefixed{b: b, p: prefix + "/"}
}

type prefixed struct {
	b Bucket
	p string // ends in "/"
}

var _ Bucket = (*prefixed)(nil)

// full validates key before prefixing it, so "../x" cannot climb out of the prefix.
func (p *prefixed) full(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", Error("use key", key, "prefix "+p.p, err)
	}
	return p.p + key, nil
}

func (p *prefixed) Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error {
	k, err := p.full(key)
	if err != nil {
		return err
	}
	return p.b.Put(ctx, k, r, size, opts)
}

func (p *prefixed) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	k, err := p.full(key)
	if err != nil {
		return nil, err
	}
	return p.b.Get(ctx, k)
}

func (p *prefixed) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	k, err := p.full(key)
	if err != nil {
		return nil, err
	}
	return p.b.GetRange(ctx, k, off, length)
}

func (p *prefixed) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	k, err := p.full(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	info, err := p.b.Stat(ctx, k)
	info.Key = strings.TrimPrefix(info.Key, p.p)
	return info, err
}

func (p *prefixed) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	return p.b.List(ctx, p.p+prefix, func(info ObjectInfo) error {
		info.Key = strings.TrimPrefix(info.Key, p.p)
		return fn(info)
	})
}

func (p *prefixed) Delete(ctx context.Context, key string) error {
	k, err := p.full(key)
	if err != nil {
		return err
	}
	return p.b.Delete(ctx, k)
}

func (p *prefixed) Close() error { return p.b.Close() }
