package miniotest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mc "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/encrypt"
)

func TestMissingBinaryFails(t *testing.T) {
	_, err := startBinary(filepath.Join(t.TempDir(), "bin", "minio"), t.TempDir(), false)
	if !errors.Is(err, errMissing) || !strings.HasPrefix(err.Error(), "bin/minio missing: run make minio") {
		t.Fatalf("error = %v; want %q", err, errMissing)
	}
}

func TestBinaryInModuleRoot(t *testing.T) {
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(filepath.Dir(filepath.Dir(bin))) == "archive" || !strings.HasSuffix(bin, filepath.Join("bin", "minio")) {
		t.Fatalf("Binary() = %s; want <module root>/bin/minio", bin)
	}
}

// TestKillRestart: a killed server refuses requests; after Restart the same endpoint,
// credentials and data are back.
func TestKillRestart(t *testing.T) {
	srv := Start(t)
	bucket := srv.NewBucket(t)
	c := srv.Client(t)
	ctx := context.Background()
	if _, err := c.PutObject(ctx, bucket, "k", strings.NewReader("kept"), 4, mc.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	srv.Kill() // idempotent
	hc := &http.Client{Timeout: time.Second}
	if resp, err := hc.Get(srv.Endpoint + "/minio/health/live"); err == nil {
		resp.Body.Close()
		t.Fatalf("killed server still answers")
	}
	srv.Restart(t)
	obj, err := c.GetObject(ctx, bucket, "k", mc.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	if got, err := io.ReadAll(obj); err != nil || string(got) != "kept" {
		t.Fatalf("after restart: %q, %v; want %q", got, err, "kept")
	}
}

// TestSSE: a server from StartSSE encrypts objects asked for with SSE-S3 or SSE-KMS (its
// own key, or none) over plain http, reports them encrypted and keeps no plaintext on
// disk, also after a restart; a server without KMS refuses SSE. What MinIO answers is
// logged, for the README's SSE notes.
func TestSSE(t *testing.T) {
	ctx := context.Background()
	secret := randHex(32)
	srv := StartSSE(t)
	if srv.KMSKey == "" {
		t.Fatal("StartSSE: no KMSKey")
	}
	bucket := srv.NewBucket(t)
	c := srv.Client(t)
	cases := []struct {
		key  string
		sse  encrypt.ServerSide
		want string // x-amz-server-side-encryption of the stored object
	}{
		{"plain", nil, ""},
		{"sse-s3", encrypt.NewSSE(), "AES256"},
		{"sse-kms", mustKMS(t, srv.KMSKey), "aws:kms"},
		{"sse-kms-default-key", mustKMS(t, ""), "aws:kms"},
	}
	for _, tc := range cases {
		if _, err := c.PutObject(ctx, bucket, tc.key, strings.NewReader(secret), int64(len(secret)), mc.PutObjectOptions{ServerSideEncryption: tc.sse}); err != nil {
			t.Fatalf("put %s: %v", tc.key, err)
		}
	}
	check := func(when string) {
		for _, tc := range cases {
			info, err := c.StatObject(ctx, bucket, tc.key, mc.StatObjectOptions{})
			if err != nil {
				t.Fatalf("%s: stat %s: %v", when, tc.key, err)
			}
			t.Logf("%s: %s: SSE %q, KMS key %q", when, tc.key, info.Metadata.Get("X-Amz-Server-Side-Encryption"), info.Metadata.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"))
			if got := info.Metadata.Get("X-Amz-Server-Side-Encryption"); got != tc.want {
				t.Errorf("%s: %s stored with SSE %q; want %q", when, tc.key, got, tc.want)
			}
			obj, err := c.GetObject(ctx, bucket, tc.key, mc.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(obj)
			obj.Close()
			if err != nil || string(got) != secret {
				t.Errorf("%s: get %s: %q, %v; want %q", when, tc.key, got, err, secret)
			}
			if got, want := srv.OnDisk(t, bucket, tc.key, []byte(secret)), tc.want == ""; got != want {
				t.Errorf("%s: %s: plaintext on disk %v; want %v", when, tc.key, got, want)
			}
		}
	}
	check("before restart")
	srv.Restart(t)
	check("after restart")
	if _, err := c.PutObject(ctx, bucket, "other-key", strings.NewReader("x"), 1, mc.PutObjectOptions{ServerSideEncryption: mustKMS(t, "no-such-key")}); err == nil {
		t.Errorf("SSE-KMS naming a key the server does not have succeeded")
	} else {
		t.Logf("SSE-KMS with an unknown key: %v", err)
	}

	plain := Start(t)
	pb := plain.NewBucket(t)
	_, err := plain.Client(t).PutObject(ctx, pb, "k", strings.NewReader("x"), 1, mc.PutObjectOptions{ServerSideEncryption: encrypt.NewSSE()})
	if err == nil {
		t.Fatalf("a server without KMS accepted SSE-S3")
	}
	t.Logf("SSE-S3 without KMS: %v", err)
}

// mustKMS returns SSE-KMS with the key named key ("": the server's default).
func mustKMS(t *testing.T, key string) encrypt.ServerSide {
	t.Helper()
	s, err := encrypt.NewSSEKMS(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
