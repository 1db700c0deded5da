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
)

func TestMissingBinaryFails(t *testing.T) {
	_, err := startBinary(filepath.Join(t.TempDir(), "bin", "minio"), t.TempDir())
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
