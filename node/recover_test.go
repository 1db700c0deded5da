package node

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestSalvageCopyNeverOverwrites: setting aside the same segment twice (a second file
// by that name, say after a restart) keeps both copies, each under its own name.
func TestSalvageCopyNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "segments", "t", "00000000000000000007.wal")
	root := filepath.Join(dir, "abandoned")
	if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
		t.Fatal(err)
	}
	contents := [][]byte{[]byte("three acknowledged entries"), []byte("header only")}
	var got []string
	for _, b := range contents {
		if err := os.WriteFile(src, b, 0o644); err != nil {
			t.Fatal(err)
		}
		dst, err := salvageCopy(src, root, "t")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, dst)
	}
	want := []string{filepath.Join(root, "t", "00000000000000000007.wal"), filepath.Join(root, "t", "00000000000000000007.wal.1")}
	for i, dst := range got {
		if dst != want[i] {
			t.Errorf("copy %d went to %s, want %s", i, dst, want[i])
		}
		if b, err := os.ReadFile(want[i]); err != nil || !bytes.Equal(b, contents[i]) {
			t.Errorf("%s holds %q (%v), want %q", want[i], b, err, contents[i])
		}
	}
	if files, _ := os.ReadDir(filepath.Join(root, "t")); len(files) != 2 {
		t.Errorf("%d files set aside, want 2 (no temporary files left)", len(files))
	}
}

// TestRemoveSalvageTemps: the temporary file of a copy a crash interrupted goes; the
// salvage copies stay.
func TestRemoveSalvageTemps(t *testing.T) {
	root := filepath.Join(t.TempDir(), "abandoned")
	dir := filepath.Join(root, "t")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	temp := filepath.Join(dir, ".salvage-123")
	kept := filepath.Join(dir, "00000000000000000007.wal")
	for _, f := range []string{temp, kept} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	removeSalvageTemps(root, slog.Default())
	if _, err := os.Stat(temp); !os.IsNotExist(err) {
		t.Errorf("temporary file of an interrupted copy: Stat = %v, want it removed", err)
	}
	if _, err := os.Stat(kept); err != nil {
		t.Errorf("salvage copy: %v, want it kept", err)
	}
}
