package ledger

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// tempPrefix starts every temporary file name. Names starting with "." are
// never index files, so List and Load ignore leftovers of a crashed write.
const tempPrefix = "."

// tempSuffix marks a temporary file; the full name is
// ".<target name>.tmp-<random>".
const tempSuffix = ".tmp-"

// writeFileAtomic replaces path with data so that a reader (or a crash) sees
// either the old file or the new one, never a mix: temp file in the same
// directory, write, fsync, chmod 0600, close, rename, fsync the directory.
func writeFileAtomic(path string, data []byte) (err error) {
	dir, name := filepath.Split(path)
	f, err := os.CreateTemp(dir, tempPrefix+name+tempSuffix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// removeStaleTemps deletes temporary files left next to path by a writer that
// crashed between write and rename. Callers hold the directory lock, so no
// live writer owns them.
func removeStaleTemps(path string) {
	dir, name := filepath.Split(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := tempPrefix + name + tempSuffix
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// mkdirPrivate creates dir and any missing parents with mode 0700.
// Directories that already exist keep their mode.
func mkdirPrivate(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("ledger: creating %s: %w", dir, err)
	}
	return nil
}
