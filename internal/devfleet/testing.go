package devfleet

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"
)

// StartT starts a fleet for a test or benchmark and closes it in t.Cleanup.
// It fails the test at once when sshd is missing or the fleet cannot start.
func StartT(t testing.TB, opts Options) *Fleet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f, err := Start(ctx, opts)
	if errors.Is(err, ErrSSHDNotFound) {
		t.Fatalf("devfleet needs a real OpenSSH server: %v", err)
	}
	if err != nil {
		t.Fatalf("devfleet: start fleet: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return f
}

// runCommand runs name with args in dir with exactly env and returns the
// combined output.
func runCommand(ctx context.Context, name string, args []string, dir string, env []string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}
