package tiering

import (
	"os"
	"path/filepath"
	"testing"
)

// TestNewUploaderRemovesStaleTemps: a crash in the middle of an encode leaves an
// upload-*.seg file behind; the next uploader of the node removes it, and nothing else.
func TestNewUploaderRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "upload-123.seg")
	other := filepath.Join(dir, "keep.txt")
	for _, f := range []string{stale, other} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	NewUploader(UploaderConfig{NodeID: 1, TempDir: dir})
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale upload file: Stat = %v, want it removed", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("file not made by the uploader: %v, want it kept", err)
	}
}
