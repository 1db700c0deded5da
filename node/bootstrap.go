package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"floe/internal/fsutil"
)

// A node that bootstraps a cluster first writes the new cluster's id to
// <data-dir>/bootstrap-cluster-id (fsynced), then claims the archive for it, creates
// its Raft state, bootstraps Raft and finally commits the id to the metadata
// (init_cluster). A crash anywhere in between leaves the file, and the next start
// finishes the same bootstrap with the same id instead of either waiting forever as
// a member of nothing or running a cluster without an id (whose claim would then look
// like another cluster's, and pause its archive). The file is removed once the
// metadata holds the id, so a later wipe of raft/ alone cannot revive it.
const bootstrapIDFile = "bootstrap-cluster-id"

// readBootstrapID returns the id of an unfinished bootstrap, or "" if there is none.
func readBootstrapID(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, bootstrapIDFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("node: cannot read the id of an unfinished bootstrap: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" || strings.ContainsAny(id, " \t\n/") || len(id) > 64 {
		return "", fmt.Errorf("node: %s holds %q, not a cluster id: remove it (and raft/) to bootstrap afresh",
			filepath.Join(dataDir, bootstrapIDFile), b)
	}
	return id, nil
}

// writeBootstrapID records id durably: a temporary file, fsynced, renamed, and the
// data dir fsynced.
func writeBootstrapID(dataDir, id string) error {
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	return fsutil.WriteFile(dataDir, bootstrapIDFile, []byte(id+"\n"))
}

// removeBootstrapID forgets a finished (or refused) bootstrap.
func removeBootstrapID(dataDir string) error {
	err := os.Remove(filepath.Join(dataDir, bootstrapIDFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return fsutil.SyncDir(dataDir)
}

// failpoint ends the process when FLOE_FAILPOINT names point: tests use it to crash a
// node at a precise step of a multi-step operation. It does nothing otherwise.
func failpoint(point string) {
	if os.Getenv("FLOE_FAILPOINT") == point {
		fmt.Fprintf(os.Stderr, "failpoint %s: exiting\n", point)
		os.Exit(3)
	}
}
