package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/canaryops/terraform-provider-canary/internal/devfleet/internal/proc"
)

// StopTimeout is how long Stop waits after SIGTERM before it sends SIGKILL.
const StopTimeout = 5 * time.Second

// readyTimeout bounds how long install/start wait for a new agent to serve.
const readyTimeout = 5 * time.Second

// IsInvocation reports whether args (os.Args) ask for agent mode by program
// name: "agentctl" or "agent" (the installed version binaries).
func IsInvocation(args []string) bool {
	if len(args) == 0 {
		return false
	}
	switch filepath.Base(args[0]) {
	case "agentctl", "agent":
		return true
	}
	return false
}

const usage = `usage: agentctl COMMAND [ARG]

commands:
  install VERSION   install VERSION and (re)start the agent; "" uninstalls
  uninstall         stop the agent and remove the installed version
  version           print the installed version (empty when none)
  status            print version, pid and whether the agent runs
  start             start the installed version if it is not running
  stop              stop the agent (the version stays installed)
  run VERSION       run the agent in the foreground (used by start/install)
`

// Main runs agentctl with args (args[0] is the program name) and returns the
// process exit code: 0 success, 1 failure, 2 usage or invalid input.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[1], args[2:]
	if cmd == "run" {
		if len(rest) != 1 {
			fmt.Fprint(stderr, usage)
			return 2
		}
		cfg, err := LoadConfig()
		if err != nil {
			fmt.Fprintf(stderr, "agent: %v\n", err)
			return 1
		}
		return Run(cfg, rest[0])
	}
	wantArgs := map[string]int{"install": 1, "uninstall": 0, "version": 0, "status": 0, "start": 0, "stop": 0}
	n, ok := wantArgs[cmd]
	if !ok {
		if cmd == "help" || cmd == "-h" || cmd == "--help" {
			fmt.Fprint(stdout, usage)
			return 0
		}
		fmt.Fprintf(stderr, "agentctl: unknown command %q\n%s", cmd, usage)
		return 2
	}
	if len(rest) != n {
		fmt.Fprintf(stderr, "agentctl: %s takes %d argument(s)\n%s", cmd, n, usage)
		return 2
	}
	if cmd == "install" && rest[0] != "" && !ValidVersion(rest[0]) {
		fmt.Fprintf(stderr, "agentctl: invalid version %q: must match %s\n", rest[0], VersionPattern)
		return 2
	}
	cfg, err := LoadConfig()
	if err != nil {
		fmt.Fprintf(stderr, "agentctl: %v\n", err)
		return 1
	}
	switch cmd {
	case "install":
		if rest[0] == "" {
			err = Uninstall(cfg)
			if err == nil {
				fmt.Fprintln(stdout, "uninstalled")
			}
			break
		}
		err = Install(cfg, rest[0])
		var ex *ExitedError
		if errors.As(err, &ex) {
			// Installed, but the new version died at once: the rollout's
			// health checks must notice, the install itself succeeded.
			fmt.Fprintf(stderr, "agentctl: warning: %v\n", err)
			err = nil
		}
		if err == nil {
			fmt.Fprintf(stdout, "installed %s\n", rest[0])
		}
	case "uninstall":
		if err = Uninstall(cfg); err == nil {
			fmt.Fprintln(stdout, "uninstalled")
		}
	case "version":
		var v string
		if v, err = ReadVersion(cfg.Home); err == nil && v != "" {
			fmt.Fprintln(stdout, v)
		}
	case "status":
		var v string
		if v, err = ReadVersion(cfg.Home); err == nil {
			pid, running := RunningPID(cfg.Home)
			fmt.Fprintf(stdout, "host=%s version=%s running=%t pid=%d port=%d\n", cfg.Host, v, running, pid, cfg.AgentPort)
		}
	case "start":
		err = withLock(cfg.Home, func() error {
			if _, running := RunningPID(cfg.Home); running {
				return nil
			}
			v, err := ReadVersion(cfg.Home)
			if err != nil {
				return err
			}
			if v == "" {
				return errors.New("no version installed")
			}
			return startAgent(cfg, v)
		})
		var ex *ExitedError
		if errors.As(err, &ex) {
			fmt.Fprintf(stderr, "agentctl: %v\n", err)
			return 1
		}
	case "stop":
		err = withLock(cfg.Home, func() error { return Stop(cfg.Home, StopTimeout) })
	}
	if err != nil {
		fmt.Fprintf(stderr, "agentctl: %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

// ExitedError reports that a freshly started agent exited before serving.
type ExitedError struct {
	Version string
	Err     error // from Wait
	Log     string
}

func (e *ExitedError) Error() string {
	return fmt.Sprintf("agent version %s exited right after start (%v); see %s", e.Version, e.Err, e.Log)
}

// Install installs version on the host described by cfg and restarts the
// agent on it: the binary is placed at BinaryPath, VERSION is replaced
// atomically, the running agent is stopped and the new one started detached.
// If the new agent exits at once the error is an *ExitedError (the version
// stays installed).
func Install(cfg Config, version string) error {
	if !ValidVersion(version) {
		return fmt.Errorf("invalid version %q: must match %s", version, VersionPattern)
	}
	return withLock(cfg.Home, func() error {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("locate own binary: %w", err)
		}
		dst := BinaryPath(cfg.Home, version)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := LinkOrCopy(self, dst); err != nil {
			return fmt.Errorf("install binary: %w", err)
		}
		if err := WriteFileAtomic(VersionFile(cfg.Home), []byte(version+"\n"), 0o644); err != nil {
			return fmt.Errorf("write VERSION: %w", err)
		}
		if err := Stop(cfg.Home, StopTimeout); err != nil {
			return err
		}
		return startAgent(cfg, version)
	})
}

// Uninstall stops the agent and removes VERSION ("nothing installed").
func Uninstall(cfg Config) error {
	return withLock(cfg.Home, func() error {
		if err := Stop(cfg.Home, StopTimeout); err != nil {
			return err
		}
		err := os.Remove(VersionFile(cfg.Home))
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
		return err
	})
}

// ReadVersion returns the installed version, "" when none.
func ReadVersion(home string) (string, error) {
	b, err := os.ReadFile(VersionFile(home))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// RunningPID returns the pid of the agent running for home, if any. The pid
// file is trusted only if that process is alive and is one of home's agent
// binaries (pids get reused).
func RunningPID(home string) (int, bool) {
	b, err := os.ReadFile(PIDFile(home))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	if !IsAgentProcess(home, pid) {
		return pid, false
	}
	return pid, true
}

// IsAgentProcess reports whether pid is a live agent of home.
func IsAgentProcess(home string, pid int) bool {
	if !proc.Alive(pid) {
		return false
	}
	argv, err := proc.Cmdline(pid)
	if err != nil || len(argv) < 2 || argv[1] != "run" {
		return false
	}
	prefix := filepath.Join(filepath.Clean(home), "agent", "versions") + string(filepath.Separator)
	return strings.HasPrefix(filepath.Clean(argv[0]), prefix)
}

// Stop stops the agent of home: SIGTERM, up to timeout for it to exit, then
// SIGKILL. The pid file is removed. Stopping when nothing runs is not an error.
func Stop(home string, timeout time.Duration) error {
	pid, running := RunningPID(home)
	defer func() { _ = os.Remove(PIDFile(home)) }()
	if !running {
		return nil
	}
	if err := proc.Signal(pid, syscall.SIGCONT); err != nil { // in case it was frozen
		return fmt.Errorf("signal agent %d: %w", pid, err)
	}
	if err := proc.Signal(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal agent %d: %w", pid, err)
	}
	if len(proc.WaitDead([]int{pid}, timeout)) == 0 {
		return nil
	}
	_ = proc.Signal(pid, syscall.SIGKILL)
	if len(proc.WaitDead([]int{pid}, 2*time.Second)) > 0 {
		return fmt.Errorf("agent %d did not exit after SIGKILL", pid)
	}
	return nil
}

// startAgent starts version's binary fully detached: new session, stdin from
// /dev/null, stdout and stderr appended to the log. It waits until the agent
// serves (or exits, or readyTimeout passes), so callers see a settled state,
// but never waits for the agent itself: an SSH session running it returns.
func startAgent(cfg Config, version string) error {
	bin := BinaryPath(cfg.Home, version)
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("version %s is not installed: %w", version, err)
	}
	logf, err := os.OpenFile(LogFile(cfg.Home), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	cmd := exec.Command(bin, "run", version)
	cmd.Dir = cfg.Home
	cmd.Env = mergeEnv(os.Environ(), append(cfg.Env(), "HOME="+cfg.Home, envReadyFD+"=3"))
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	_ = pw.Close()
	if err != nil {
		return fmt.Errorf("start agent: %w", err)
	}
	pid := cmd.Process.Pid
	if err := WriteFileAtomic(PIDFile(cfg.Home), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("write pid file: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ready := make(chan bool, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(pr, 16))
		ready <- strings.HasPrefix(string(b), "ok")
	}()
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case ok := <-ready:
		if ok {
			return nil
		}
		// EOF without "ok": the agent is exiting.
		select {
		case werr := <-exited:
			removePIDFile(cfg.Home, pid)
			return &ExitedError{Version: version, Err: werr, Log: LogFile(cfg.Home)}
		case <-timer.C:
			return nil
		}
	case werr := <-exited:
		removePIDFile(cfg.Home, pid)
		return &ExitedError{Version: version, Err: werr, Log: LogFile(cfg.Home)}
	case <-timer.C:
		return nil // still starting (e.g. waiting for its port); leave it be
	}
}

// removePIDFile removes the pid file if it still names pid.
func removePIDFile(home string, pid int) {
	b, err := os.ReadFile(PIDFile(home))
	if err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(pid) {
		_ = os.Remove(PIDFile(home))
	}
}

// withLock runs fn holding an exclusive flock on $HOME/agent/.lock, so that
// concurrent installs on one host serialize.
func withLock(home string, fn func() error) error {
	if err := os.MkdirAll(agentDir(home), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(agentDir(home), ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	defer func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }()
	return fn()
}

// LinkOrCopy makes dst a copy of src: a hard link when possible, else a byte
// copy, in both cases through a temporary name and an atomic rename so a
// running binary at dst is never modified in place.
func LinkOrCopy(src, dst string) error {
	tmp := fmt.Sprintf("%s.tmp%d", dst, os.Getpid())
	_ = os.Remove(tmp)
	if err := os.Link(src, tmp); err != nil {
		if err := copyFile(src, tmp); err != nil {
			_ = os.Remove(tmp)
			return err
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// mergeEnv returns base with the NAME=VALUE pairs of extra set (replacing).
func mergeEnv(base, extra []string) []string {
	drop := make(map[string]bool, len(extra))
	for _, kv := range extra {
		drop[kv[:strings.IndexByte(kv, '=')+1]] = true
	}
	out := make([]string, 0, len(base)+len(extra))
	for _, kv := range base {
		if i := strings.IndexByte(kv, '='); i >= 0 && drop[kv[:i+1]] {
			continue
		}
		out = append(out, kv)
	}
	return append(out, extra...)
}
