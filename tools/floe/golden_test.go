package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/ with what the code renders now")

// checkGolden compares got with testdata/<name>.golden, or with -update writes it
// there. A mismatch prints both, with escapes quoted so that colour codes show.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to write it)", err, t.Name())
	}
	if !bytes.Equal(want, []byte(got)) {
		t.Errorf("%s differs from what is rendered now (go test -run '%s' -update rewrites it after review)\ngot:\n%s\nwant:\n%s",
			path, t.Name(), quoteEscapes(got), quoteEscapes(string(want)))
	}
}

// quoteEscapes shows the ESC bytes of ANSI sequences as \e.
func quoteEscapes(s string) string {
	return string(bytes.ReplaceAll([]byte(s), []byte("\x1b"), []byte(`\e`)))
}

// TestReadmeExamples: the README shows the tier map and floe top's table as the
// golden files hold them, so that the manual changes with the output.
func TestReadmeExamples(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tiermap-every-tier", "top"} {
		golden, err := os.ReadFile(filepath.Join("testdata", name+".golden"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(readme, golden) {
			t.Errorf("README.md does not show testdata/%s.golden as it is now:\n%s", name, golden)
		}
	}
}
