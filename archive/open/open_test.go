package open_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	mc "github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"floe/archive"
	"floe/archive/archivetest"
	"floe/archive/miniotest"
	"floe/archive/open"
)

func TestMain(m *testing.M) { os.Exit(miniotest.Main(m)) }

// TestAcceptanceMinIOWrapped runs the suite through a minio:// URL with a prefix (so
// through archive.WithPrefix) and the metrics wrapper, against the real MinIO.
func TestAcceptanceMinIOWrapped(t *testing.T) {
	srv := miniotest.Shared(t)
	srv.SetEnv(t)
	archivetest.Run(t, func(t *testing.T) archive.Bucket {
		b, err := open.Open(t.Context(), "minio://"+srv.NewBucket(t)+"/floe/prod", archive.Options{Endpoint: srv.Endpoint})
		if err != nil {
			t.Fatal(err)
		}
		return archive.WithMetrics(b, prometheus.NewPedanticRegistry(), prometheus.Labels{"bucket": "test"})
	})
}

// TestURLs opens each scheme and checks where the objects land.
func TestURLs(t *testing.T) {
	srv := miniotest.Shared(t)
	srv.SetEnv(t)
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "archive")
	bucket := srv.NewBucket(t)
	for _, tc := range []struct {
		url, where string
		opts       archive.Options
	}{
		{"file://" + dir, filepath.Join(dir, "k/v"), archive.Options{CreateBucket: true}},
		{"mem://open-test/pre", "mem", archive.Options{}},
		{"s3://" + bucket + "/via-s3/", "via-s3/k/v", archive.Options{Endpoint: srv.Endpoint}},
		{"minio://" + bucket + "/via-minio", "via-minio/k/v", archive.Options{Endpoint: srv.Endpoint}},
	} {
		t.Run(strings.SplitN(tc.url, ":", 2)[0], func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			b, err := open.Open(ctx, tc.url, tc.opts)
			if err != nil {
				t.Fatalf("Open(%q): %v", tc.url, err)
			}
			b = archive.WithMetrics(b, reg, nil)
			defer b.Close()
			if err := b.Put(ctx, "k/v", strings.NewReader("value"), 5, archive.PutOptions{IfNoneMatch: true, ContentType: "text/plain"}); err != nil {
				t.Fatal(err)
			}
			rc, err := b.Get(ctx, "k/v")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || string(got) != "value" {
				t.Fatalf("Get = %q, %v", got, err)
			}
			switch {
			case strings.HasPrefix(tc.url, "file:"):
				if _, err := os.Stat(tc.where); err != nil {
					t.Fatalf("object not at %s: %v", tc.where, err)
				}
			case strings.HasPrefix(tc.url, "s3:"), strings.HasPrefix(tc.url, "minio:"):
				info, err := srv.Client(t).StatObject(ctx, bucket, tc.where, mc.StatObjectOptions{})
				if err != nil {
					t.Fatalf("object not at %s: %v", tc.where, err)
				}
				if info.ContentType != "text/plain" {
					t.Errorf("content type %q; want text/plain", info.ContentType)
				}
			}
			if n := testutil.CollectAndCount(reg, "floe_archive_operations_total"); n != 2 {
				t.Errorf("%d operation series; want 2 (put, get)", n)
			}
		})
	}
}

func TestBadURLs(t *testing.T) {
	for _, raw := range []string{"", "ftp://x/y", "s3://", "file://rel/dir", "s3://key:secret@bucket/p"} {
		if _, err := open.Open(t.Context(), raw, archive.Options{}); !errors.Is(err, archive.ErrBadURL) {
			t.Errorf("Open(%q) error = %v; want ErrBadURL", raw, err)
		}
	}
	if _, err := open.Open(t.Context(), "file://"+filepath.Join(t.TempDir(), "missing"), archive.Options{}); !errors.Is(err, archive.ErrBucketNotFound) {
		t.Errorf("Open of a missing directory without CreateBucket: want ErrBucketNotFound")
	}
}

// TestSSERefused: Open refuses SSE for backends that cannot encrypt, and SSE settings
// that ValidateSSE refuses for every scheme, before it creates anything.
func TestSSERefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "archive")
	for _, tc := range []struct {
		url  string
		opts archive.Options
	}{
		{"file://" + dir, archive.Options{SSE: archive.SSES3}},
		{"file://" + dir, archive.Options{SSE: archive.SSEKMS, SSEKMSKeyID: "k"}},
		{"file://" + dir, archive.Options{SSEKMSKeyID: "k"}},
		{"mem://sse-refused", archive.Options{SSE: archive.SSES3}},
		{"s3://sse-refused", archive.Options{SSE: "aes256"}},
		{"minio://sse-refused", archive.Options{SSE: archive.SSES3, SSEKMSKeyID: "k"}},
	} {
		tc.opts.CreateBucket = true
		_, err := open.Open(t.Context(), tc.url, tc.opts)
		if !errors.Is(err, archive.ErrBadSSE) || !strings.Contains(err.Error(), "--s3-sse") {
			t.Errorf("Open(%q) with SSE %q, KMS key %q: error %v; want ErrBadSSE naming the flag", tc.url, tc.opts.SSE, tc.opts.SSEKMSKeyID, err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused Open created %s: %v", dir, err)
	}
}
