//go:build !unix

package ledger

import (
	"fmt"
	"os"
)

// syncDir is a no-op where directories cannot be opened for syncing.
func syncDir(string) error { return nil }

// lockFile on platforms without flock only creates the lock file; writers in
// one process are still serialized by the Ledger mutex, but concurrent
// processes are not excluded.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ledger: opening lock file: %w", err)
	}
	return func() { _ = f.Close() }, nil
}
