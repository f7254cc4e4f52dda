package devfleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// EnvAgentBinary names a prebuilt agent binary (the devfleet command) to use
// instead of building one.
const EnvAgentBinary = "DEVFLEET_AGENT_BIN"

// agentPackage is the main package that is both the devfleet CLI and the agent.
const agentPackage = "github.com/canaryops/terraform-provider-canary/internal/devfleet/cmd/devfleet"

var build struct {
	mu   sync.Mutex
	path string // set once a build succeeded
}

// BuildAgent returns the path of an agent binary: $DEVFLEET_AGENT_BIN if
// set, else the devfleet command built with `go build` from this module's
// source. The build runs at most once per process (failed builds are retried)
// and is cached in os.TempDir() under a hash of the sources' names, sizes and
// modification times, so later test processes reuse it.
func BuildAgent(ctx context.Context) (string, error) { return buildAgent(ctx, nil) }

func buildAgent(ctx context.Context, logf func(string, ...any)) (string, error) {
	if p := os.Getenv(EnvAgentBinary); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(abs); err != nil {
			return "", fmt.Errorf("%s: %w", EnvAgentBinary, err)
		}
		return abs, nil
	}
	build.mu.Lock()
	defer build.mu.Unlock()
	if build.path != "" {
		return build.path, nil
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", fmt.Errorf("build agent: %w (or set %s to a prebuilt devfleet binary)", err, EnvAgentBinary)
	}
	key, err := sourceHash(root)
	if err != nil {
		return "", fmt.Errorf("build agent: %w", err)
	}
	dir := filepath.Join(os.TempDir(), "devfleet-agent-"+key)
	out := filepath.Join(dir, "devfleet")
	if st, err := os.Stat(out); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		now := time.Now()
		_ = os.Chtimes(dir, now, now) // in use: keep removeStaleBuilds away
		build.path = out
		return out, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// 0755 even under a restrictive umask: fleets run the copy as other users.
	_ = os.Chmod(dir, 0o755)
	goBin, err := findGo()
	if err != nil {
		return "", fmt.Errorf("build agent: %w (or set %s to a prebuilt devfleet binary)", err, EnvAgentBinary)
	}
	tmp := fmt.Sprintf("%s.tmp%d", out, os.Getpid())
	start := time.Now()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", tmp, agentPackage)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("build agent: go build %s: %w\n%s", agentPackage, err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	if logf != nil {
		logf("devfleet: built agent binary %s in %v", out, time.Since(start).Round(time.Millisecond))
	}
	removeStaleBuilds(dir)
	build.path = out
	return out, nil
}

// moduleRoot finds the root of this module: from this file's compile-time
// path when it is still there, else from `go env GOMOD` in the working dir.
func moduleRoot(ctx context.Context) (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
		if isThisModule(root) {
			return root, nil
		}
	}
	goBin, err := findGo()
	if err != nil {
		return "", err
	}
	b, err := exec.CommandContext(ctx, goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(b))
	if gomod == "" || gomod == os.DevNull || !isThisModule(filepath.Dir(gomod)) {
		return "", errors.New("cannot find the source of module github.com/canaryops/terraform-provider-canary: run from inside it")
	}
	return filepath.Dir(gomod), nil
}

func isThisModule(root string) bool {
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return f[1] == "github.com/canaryops/terraform-provider-canary"
		}
	}
	return false
}

func findGo() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	// runtime.GOROOT is deprecated for binaries copied elsewhere, but tests and devfleet run where
	// they were built, so the toolchain that built them is the best guess when go is not on PATH.
	for _, root := range []string{os.Getenv("GOROOT"), runtime.GOROOT()} { //nolint:staticcheck // see above
		if root == "" {
			continue
		}
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("the go command is not on PATH")
}

// sourceHash hashes what the agent binary is built from: the Go version,
// go.mod/go.sum and the name, size and mtime of every non-test Go file under
// internal/devfleet.
func sourceHash(root string) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version(), runtime.GOOS, runtime.GOARCH, root)
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		h.Write(b)
	}
	src := filepath.Join(root, "internal", "devfleet")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintln(h, p, info.Size(), info.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:20], nil
}

// removeStaleBuilds removes agent builds of other source versions that have
// not been touched for a day, so the temp dir does not fill up.
func removeStaleBuilds(keep string) {
	old, _ := filepath.Glob(filepath.Join(filepath.Dir(keep), "devfleet-agent-*"))
	for _, d := range old {
		if d == keep {
			continue
		}
		if st, err := os.Stat(d); err == nil && st.IsDir() && time.Since(st.ModTime()) > 24*time.Hour {
			_ = os.RemoveAll(d)
		}
	}
}
