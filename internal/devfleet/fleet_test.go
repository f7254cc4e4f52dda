package devfleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/canaryops/terraform-provider-canary/internal/devfleet"
)

// run runs cmd on h over SSH with a bounded time.
func run(t *testing.T, h *devfleet.Host, cmd string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return h.Run(ctx, cmd)
}

func mustRun(t *testing.T, h *devfleet.Host, cmd string) string {
	t.Helper()
	out, err := run(t, h, cmd)
	if err != nil {
		t.Fatalf("%s: %q: %v\n%s", h.Name, cmd, err, out)
	}
	return out
}

type health struct {
	Version string `json:"version"`
	Status  string `json:"status"`
	Host    string `json:"host"`
}

// healthz GETs the agent's /healthz directly; code 0 means not reachable.
func healthz(t *testing.T, h *devfleet.Host) (int, health) {
	t.Helper()
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + h.AgentAddr() + "/healthz")
	if err != nil {
		return 0, health{}
	}
	defer resp.Body.Close()
	var body health
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("%s: /healthz body %q: %v", h.Name, b, err)
	}
	return resp.StatusCode, body
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// systemSSH runs the OpenSSH client against h with strict host key checking.
func systemSSH(t *testing.T, f *devfleet.Fleet, h *devfleet.Host, knownHosts, cmd string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, "ssh",
		"-F", "/dev/null",
		"-i", f.ClientKeyFile,
		"-o", "IdentitiesOnly=yes",
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile="+knownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "ConnectTimeout=5",
		"-p", strconv.Itoa(h.Port),
		f.User+"@"+h.Address, cmd)
	out, err := c.CombinedOutput()
	return string(out), err
}

func TestFleetStartsAndHostsAreReachable(t *testing.T) {
	t.Parallel()
	f := devfleet.StartT(t, devfleet.Options{Hosts: 3, Logf: t.Logf})
	if len(f.Hosts) != 3 {
		t.Fatalf("got %d hosts, want 3", len(f.Hosts))
	}
	kh, err := os.ReadFile(f.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(f.ClientKeyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("client key file %s: mode %v, err %v; want 0600", f.ClientKeyFile, st.Mode(), err)
	}
	if _, err := ssh.ParsePrivateKey(f.ClientKey); err != nil {
		t.Fatalf("ClientKey does not parse: %v", err)
	}
	for i, h := range f.Hosts {
		if want := fmt.Sprintf("host-%d", i+1); h.Name != want || f.Host(want) != h {
			t.Errorf("host %d is %q, want %q", i, h.Name, want)
		}
		if h.Address != "127.0.0.1" || h.SSHAddr() != "127.0.0.1:"+strconv.Itoa(h.Port) {
			t.Errorf("%s: address %s, SSHAddr %s", h.Name, h.Address, h.SSHAddr())
		}
		if !strings.Contains(string(kh), h.HostKeyLine()+"\n") || !strings.HasPrefix(h.HostKeyLine(), fmt.Sprintf("[127.0.0.1]:%d ssh-ed25519 ", h.Port)) {
			t.Errorf("%s: known_hosts lacks %q", h.Name, h.HostKeyLine())
		}
		out := mustRun(t, h, `echo ~; pwd; command -v agentctl; echo "$DEVFLEET_HOST $DEVFLEET_AGENT_PORT $DEVFLEET_OWNER_PID"; agentctl version; echo end`)
		want := strings.Join([]string{h.Dir, h.Dir, filepath.Join(h.Dir, "bin", "agentctl"),
			fmt.Sprintf("%s %d %d", h.Name, h.AgentPort, os.Getpid()), "end", ""}, "\n")
		if out != want {
			t.Errorf("%s: session sees\n%s\nwant\n%s", h.Name, out, want)
		}
		if v, err := h.Version(); err != nil || v != "" {
			t.Errorf("%s: Version() = %q, %v; want none installed", h.Name, v, err)
		}
		if h.AgentRunning() {
			t.Errorf("%s: agent running before any install", h.Name)
		}
	}
	if f.Host("nope") != nil {
		t.Error(`Host("nope") != nil`)
	}
	if _, err := exec.LookPath("ssh"); err == nil {
		h := f.Hosts[1]
		out, err := systemSSH(t, f, h, f.KnownHostsFile, "echo ~")
		if err != nil || strings.TrimSpace(out) != h.Dir {
			t.Errorf("ssh client: %q, %v; want %s", out, err, h.Dir)
		}
	}
}

func TestInstallUpgradeAndUninstallOverSSH(t *testing.T) {
	t.Parallel()
	f := devfleet.StartT(t, devfleet.Options{Hosts: 1})
	h := f.Hosts[0]

	if out := mustRun(t, h, "agentctl install 1.0.0"); out != "installed 1.0.0\n" {
		t.Fatalf("install output %q", out)
	}
	if v, err := h.Version(); err != nil || v != "1.0.0" {
		t.Fatalf("Version() = %q, %v", v, err)
	}
	if code, body := healthz(t, h); code != 200 || body != (health{"1.0.0", "ok", h.Name}) {
		t.Fatalf("/healthz = %d %+v", code, body)
	}
	pid1 := h.AgentPID()
	if !h.AgentRunning() || pid1 == 0 {
		t.Fatal("agent not running after install")
	}

	if out := mustRun(t, h, "agentctl install 1.1.0"); out != "installed 1.1.0\n" {
		t.Fatalf("install output %q", out)
	}
	if code, body := healthz(t, h); code != 200 || body.Version != "1.1.0" {
		t.Fatalf("/healthz after upgrade = %d %+v", code, body)
	}
	if out := mustRun(t, h, "cat ~/agent/VERSION; agentctl version"); out != "1.1.0\n1.1.0\n" {
		t.Fatalf("remote version reads %q", out)
	}
	if pid2 := h.AgentPID(); pid2 == 0 || pid2 == pid1 {
		t.Fatalf("agent pid %d after upgrade (was %d): not swapped", pid2, pid1)
	}
	if _, err := os.Stat(filepath.Join(h.Dir, "agent", "versions", "1.1.0", "agent")); err != nil {
		t.Fatal(err)
	}
	log, err := h.AgentLog()
	if err != nil || !strings.Contains(log, "started version 1.0.0 on host host-1") ||
		!strings.Contains(log, "stopped version 1.0.0") || !strings.Contains(log, "started version 1.1.0 on host host-1") {
		t.Fatalf("agent log (err %v):\n%s", err, log)
	}

	mustRun(t, h, "agentctl install ''")
	if v, _ := h.Version(); v != "" {
		t.Fatalf("Version() after uninstall = %q", v)
	}
	if h.AgentRunning() {
		t.Fatal("agent still running after uninstall")
	}
	if code, _ := healthz(t, h); code != 0 {
		t.Fatalf("/healthz answers %d after uninstall", code)
	}
	mustRun(t, h, "agentctl install 1.2.0 && agentctl uninstall")
	if v, _ := h.Version(); v != "" || h.AgentRunning() {
		t.Fatalf("after agentctl uninstall: version %q running %v", v, h.AgentRunning())
	}
}

func TestBehaviors(t *testing.T) {
	t.Parallel()
	const slowDelay = 1500 * time.Millisecond
	f := devfleet.StartT(t, devfleet.Options{
		Hosts: 4,
		Behaviors: map[string]devfleet.Behavior{
			"2.0.0": devfleet.Unhealthy,
			"3.0.0": devfleet.CrashOnStart,
			"4.0.0": devfleet.PanicLater,
			"5.0.0": devfleet.SlowStart,
			"6.0.0": devfleet.Healthy,
		},
		SlowStartDelay: slowDelay,
		PanicDelay:     300 * time.Millisecond,
	})

	t.Run("unhealthy", func(t *testing.T) {
		t.Parallel()
		h := f.Hosts[0]
		mustRun(t, h, "agentctl install 2.0.0")
		if code, body := healthz(t, h); code != 503 || body != (health{"2.0.0", "unhealthy", h.Name}) {
			t.Fatalf("/healthz = %d %+v", code, body)
		}
		if !h.AgentRunning() {
			t.Fatal("unhealthy agent should keep running")
		}
	})
	t.Run("crash", func(t *testing.T) {
		t.Parallel()
		h := f.Hosts[1]
		out := mustRun(t, h, "agentctl install 3.0.0")
		if !strings.Contains(out, "installed 3.0.0") {
			t.Fatalf("install output %q", out)
		}
		eventually(t, 3*time.Second, "crashed agent to be gone", func() bool { return !h.AgentRunning() })
		if v, _ := h.Version(); v != "3.0.0" {
			t.Fatalf("Version() = %q, want 3.0.0 (installed, then crashed)", v)
		}
		if code, _ := healthz(t, h); code != 0 {
			t.Fatalf("/healthz answers %d for a crashed agent", code)
		}
		if log, _ := h.AgentLog(); !strings.Contains(log, "fatal: version 3.0.0") {
			t.Fatalf("log lacks the fatal line:\n%s", log)
		}
	})
	t.Run("panic", func(t *testing.T) {
		t.Parallel()
		h := f.Hosts[2]
		mustRun(t, h, "agentctl install 4.0.0")
		if code, body := healthz(t, h); code != 200 || body.Status != "ok" {
			t.Fatalf("/healthz = %d %+v", code, body)
		}
		eventually(t, 5*time.Second, "two panic lines", func() bool {
			log, _ := h.AgentLog()
			return strings.Count(log, "panic: simulated failure in version 4.0.0\n") >= 2
		})
		if !h.AgentRunning() {
			t.Fatal("panicking agent should keep running")
		}
	})
	t.Run("slow", func(t *testing.T) {
		t.Parallel()
		h := f.Hosts[3]
		start := time.Now()
		mustRun(t, h, "agentctl install 5.0.0")
		if code, body := healthz(t, h); code != 503 || body != (health{"5.0.0", "starting", h.Name}) {
			t.Fatalf("/healthz right after start = %d %+v", code, body)
		}
		eventually(t, 5*time.Second, "slow agent to become healthy", func() bool {
			code, body := healthz(t, h)
			return code == 200 && body.Status == "ok"
		})
		if d := time.Since(start); d < slowDelay {
			t.Fatalf("healthy after %v, before SlowStartDelay %v", d, slowDelay)
		}
	})
}

func TestInitialVersionAndSetBehavior(t *testing.T) {
	t.Parallel()
	f := devfleet.StartT(t, devfleet.Options{Hosts: 3, InitialVersion: "1.0.0", NamePrefix: "agent-"})
	for _, h := range f.Hosts {
		if !strings.HasPrefix(h.Name, "agent-") {
			t.Errorf("host name %q", h.Name)
		}
		if v, _ := h.Version(); v != "1.0.0" || !h.AgentRunning() {
			t.Fatalf("%s: version %q running %v", h.Name, v, h.AgentRunning())
		}
		if code, body := healthz(t, h); code != 200 || body.Version != "1.0.0" || body.Host != h.Name {
			t.Fatalf("%s: /healthz = %d %+v", h.Name, code, body)
		}
	}
	if err := f.SetBehavior("1.1.0", devfleet.Unhealthy); err != nil {
		t.Fatal(err)
	}
	if err := f.SetBehavior("1.1.0", "bogus"); err == nil {
		t.Fatal("SetBehavior accepted an unknown behavior")
	}
	if err := f.SetBehavior("bad version", devfleet.Healthy); err == nil {
		t.Fatal("SetBehavior accepted an invalid version")
	}
	h := f.Hosts[0]
	mustRun(t, h, "agentctl install 1.1.0")
	if code, body := healthz(t, h); code != 503 || body.Version != "1.1.0" {
		t.Fatalf("/healthz = %d %+v", code, body)
	}
	// Agents started before SetBehavior keep their behavior.
	if code, _ := healthz(t, f.Hosts[1]); code != 200 {
		t.Fatalf("untouched host answers %d", code)
	}
}

func TestInvalidVersionIsRefused(t *testing.T) {
	t.Parallel()
	f := devfleet.StartT(t, devfleet.Options{Hosts: 1, InitialVersion: "1.0.0"})
	h := f.Hosts[0]
	for _, v := range []string{"1.0; touch X", "../escape", "-rf", "a b", strings.Repeat("1", 65), "1.0\nX", "$(touch X)"} {
		out, err := run(t, h, "agentctl install '"+strings.ReplaceAll(v, "'", `'\''`)+"'")
		var ee *ssh.ExitError
		if !errors.As(err, &ee) || ee.ExitStatus() != 2 || !strings.Contains(out, "invalid version") {
			t.Errorf("install %q: err %v, output %q; want exit 2 and \"invalid version\"", v, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(h.Dir, "X")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("X was created: %v", err)
	}
	if v, _ := h.Version(); v != "1.0.0" || !h.AgentRunning() {
		t.Fatalf("refused install changed the host: version %q running %v", v, h.AgentRunning())
	}
	if ents, _ := os.ReadDir(filepath.Join(h.Dir, "agent", "versions")); len(ents) != 1 {
		t.Fatalf("versions dir has %d entries, want 1", len(ents))
	}
}

func TestStopAndStartSSHD(t *testing.T) {
	t.Parallel()
	f := devfleet.StartT(t, devfleet.Options{Hosts: 2, InitialVersion: "1.0.0"})
	h := f.Hosts[0]
	port := h.Port
	if err := h.StopSSHD(); err != nil {
		t.Fatal(err)
	}
	_, err := net.DialTimeout("tcp", h.SSHAddr(), 2*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial stopped host: %v, want connection refused", err)
	}
	if !h.AgentRunning() {
		t.Fatal("agent stopped with sshd")
	}
	if code, _ := healthz(t, h); code != 200 {
		t.Fatalf("agent answers %d while sshd is down", code)
	}
	mustRun(t, f.Hosts[1], "true") // the other host is unaffected
	if err := h.StopSSHD(); err != nil {
		t.Fatalf("second StopSSHD: %v", err)
	}
	if err := h.StartSSHD(); err != nil {
		t.Fatal(err)
	}
	if h.Port != port {
		t.Fatalf("port moved from %d to %d", port, h.Port)
	}
	if out := mustRun(t, h, "agentctl version"); out != "1.0.0\n" {
		t.Fatalf("after restart: %q", out)
	}
}

func TestFreezeAndThaw(t *testing.T) {
	t.Parallel()
	f := devfleet.StartT(t, devfleet.Options{Hosts: 1})
	h := f.Hosts[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := h.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := h.Freeze(); err != nil {
		t.Fatal(err)
	}
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := c.NewSession()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer s.Close()
		out, err := s.Output("echo thawed")
		done <- result{string(out), err}
	}()
	select {
	case r := <-done:
		t.Fatalf("command on a frozen host finished: %+v", r)
	case <-time.After(700 * time.Millisecond):
	}
	// New connections hang too (no banner).
	short, cancelShort := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err = h.Dial(short)
	cancelShort()
	if err == nil {
		t.Fatal("dial to a frozen host succeeded")
	}
	if err := h.Thaw(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.out != "thawed\n" {
			t.Fatalf("after thaw: %q, %v", r.out, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("command still hangs after Thaw")
	}
	mustRun(t, h, "true")
}

func TestReplaceHostKeyCausesMismatch(t *testing.T) {
	t.Parallel()
	f := devfleet.StartT(t, devfleet.Options{Hosts: 1})
	h := f.Hosts[0]
	old := h.HostKeyLine()
	if err := h.ReplaceHostKey(); err != nil {
		t.Fatal(err)
	}
	if h.HostKeyLine() == old {
		t.Fatal("HostKeyLine unchanged")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := h.Dial(ctx)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) == 0 {
		t.Fatalf("dial after key change: %v; want a knownhosts mismatch", err)
	}
	if _, lerr := exec.LookPath("ssh"); lerr == nil {
		out, err := systemSSH(t, f, h, f.KnownHostsFile, "true")
		if err == nil || !strings.Contains(out, "HOST IDENTIFICATION HAS CHANGED") {
			t.Fatalf("ssh client after key change: %v\n%s", err, out)
		}
		kh := filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(kh, []byte(h.HostKeyLine()+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := systemSSH(t, f, h, kh, "echo ok"); err != nil || out != "ok\n" {
			t.Fatalf("ssh with the new key: %v\n%s", err, out)
		}
	}
	if err := f.UpdateKnownHosts(); err != nil {
		t.Fatal(err)
	}
	if out := mustRun(t, h, "echo trusted"); out != "trusted\n" {
		t.Fatalf("after UpdateKnownHosts: %q", out)
	}
}

func TestCloseLeavesNoProcesses(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var logged []string
	f, err := devfleet.Start(ctx, devfleet.Options{Hosts: 2, InitialVersion: "1.0.0",
		Logf: func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) }})
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, h := range f.Hosts {
		if h.SSHDPID() == 0 || h.AgentPID() == 0 {
			t.Fatalf("%s: sshd pid %d agent pid %d", h.Name, h.SSHDPID(), h.AgentPID())
		}
		pids = append(pids, h.SSHDPID(), h.AgentPID())
	}
	// A long-running command in an open session.
	c, err := f.Hosts[0].Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	stdout, _ := s.StdoutPipe()
	if err := s.Start("echo $$; exec sleep 60"); err != nil {
		t.Fatal(err)
	}
	var sleepPID int
	if _, err := fmt.Fscan(stdout, &sleepPID); err != nil {
		t.Fatal(err)
	}
	pids = append(pids, sleepPID)

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); fields[0] != "Z" {
				t.Errorf("process %d survived Close: %s", pid, b)
			}
		}
	}
	if _, err := os.Stat(f.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("fleet dir %s not removed: %v", f.Dir, err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := f.Hosts[0].StartSSHD(); err == nil {
		t.Error("StartSSHD after Close succeeded")
	}
	if len(logged) == 0 {
		t.Error("Logf was never called")
	}
}

func TestAgentExitsWhenOwnerIsGone(t *testing.T) {
	t.Parallel()
	f := devfleet.StartT(t, devfleet.Options{Hosts: 1})
	h := f.Hosts[0]
	owner := exec.Command("sleep", "60")
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	mustRun(t, h, fmt.Sprintf("DEVFLEET_OWNER_PID=%d DEVFLEET_OWNER_START= agentctl install 1.0.0", owner.Process.Pid))
	if !h.AgentRunning() {
		t.Fatal("agent not running")
	}
	_ = owner.Process.Kill()
	_ = owner.Wait()
	eventually(t, 5*time.Second, "agent to exit after its owner", func() bool { return !h.AgentRunning() })
	if log, _ := h.AgentLog(); !strings.Contains(log, fmt.Sprintf("fleet owner process %d exited", owner.Process.Pid)) {
		t.Fatalf("log:\n%s", log)
	}
}

func TestAgentReopensLogOnSIGHUP(t *testing.T) {
	t.Parallel()
	f := devfleet.StartT(t, devfleet.Options{Hosts: 1, InitialVersion: "1.0.0"})
	h := f.Hosts[0]
	mustRun(t, h, "mv ~/agent/agent.log ~/agent/agent.log.1 && kill -HUP $(cat ~/agent/agent.pid)")
	eventually(t, 5*time.Second, "a new log with the reopen line", func() bool {
		log, _ := h.AgentLog()
		return strings.Contains(log, "reopened log file")
	})
	old, _ := os.ReadFile(filepath.Join(h.Dir, "agent", "agent.log.1"))
	if !strings.Contains(string(old), "started version 1.0.0") || strings.Contains(string(old), "reopened") {
		t.Fatalf("rotated log:\n%s", old)
	}
	if !h.AgentRunning() {
		t.Fatal("agent died on SIGHUP")
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if _, err := devfleet.Start(ctx, devfleet.Options{SSHD: "/nonexistent/sshd"}); !errors.Is(err, devfleet.ErrSSHDNotFound) {
		t.Errorf("missing sshd: %v", err)
	}
	busy := t.TempDir()
	if err := os.WriteFile(filepath.Join(busy, "precious"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := devfleet.Start(ctx, devfleet.Options{Dir: busy}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("non-empty dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(busy, "precious")); err != nil {
		t.Errorf("Start touched a foreign dir: %v", err)
	}
	if _, err := devfleet.Start(ctx, devfleet.Options{Behaviors: map[string]devfleet.Behavior{"1.0": "weird"}}); err == nil {
		t.Error("unknown behavior accepted")
	}
	if _, err := devfleet.Start(ctx, devfleet.Options{InitialVersion: "1 0"}); err == nil {
		t.Error("invalid InitialVersion accepted")
	}
}

func TestReuseDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "fleet")
	f1 := devfleet.StartT(t, devfleet.Options{Hosts: 1, Dir: dir, InitialVersion: "1.0.0"})
	if _, err := devfleet.Start(context.Background(), devfleet.Options{Hosts: 1, Dir: dir}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second fleet in a live fleet's dir: %v", err)
	}
	if err := f1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f1.Hosts[0].Dir); err != nil {
		t.Fatalf("Close removed a dir it did not create: %v", err)
	}
	f2 := devfleet.StartT(t, devfleet.Options{Hosts: 1, Dir: dir})
	if v, _ := f2.Hosts[0].Version(); v != "" {
		t.Fatalf("state leaked from the previous fleet: version %q", v)
	}
	mustRun(t, f2.Hosts[0], "true")
}

func TestSixteenHostsStartFast(t *testing.T) {
	t.Parallel()
	if _, err := devfleet.BuildAgent(context.Background()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	f := devfleet.StartT(t, devfleet.Options{Hosts: 16, InitialVersion: "1.0.0"})
	d := time.Since(start)
	t.Logf("16 hosts with a running agent each up in %v", d)
	if d > 5*time.Second {
		t.Errorf("16-host fleet took %v to start", d)
	}
	last := f.Hosts[15]
	if out := mustRun(t, last, "agentctl version"); out != "1.0.0\n" {
		t.Fatalf("%s: %q", last.Name, out)
	}
}

func BenchmarkStart16(b *testing.B) {
	if _, err := devfleet.BuildAgent(context.Background()); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		ctx := context.Background()
		f, err := devfleet.Start(ctx, devfleet.Options{Hosts: 16})
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestManyConcurrentSessions(t *testing.T) {
	t.Parallel()
	f := devfleet.StartT(t, devfleet.Options{Hosts: 4, InitialVersion: "1.0.0"})
	errs := make(chan error, 4*15)
	for _, h := range f.Hosts {
		for range 15 {
			go func() {
				out, err := run(t, h, "agentctl version")
				if err == nil && out != "1.0.0\n" {
					err = fmt.Errorf("%s: %q", h.Name, out)
				}
				errs <- err
			}()
		}
	}
	for range 4 * 15 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestPortForwardingAndSFTP(t *testing.T) {
	t.Parallel()
	f := devfleet.StartT(t, devfleet.Options{Hosts: 1, InitialVersion: "1.0.0"})
	h := f.Hosts[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := h.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Health checks are dialed through the host's SSH connection.
	hc := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return c.DialContext(ctx, network, addr)
		},
	}}
	resp, err := hc.Get("http://" + h.AgentAddr() + "/healthz")
	if err != nil {
		t.Fatalf("healthz through SSH: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"version":"1.0.0"`) {
		t.Fatalf("healthz through SSH: %d %s", resp.StatusCode, body)
	}

	if _, err := exec.LookPath("sftp"); err != nil {
		t.Log("no sftp client; skipping the sftp part")
		return
	}
	src := filepath.Join(t.TempDir(), "payload.txt")
	if err := os.WriteFile(src, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "sftp", "-F", "/dev/null", "-b", "-", "-i", f.ClientKeyFile,
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile="+f.KnownHostsFile, "-P", strconv.Itoa(h.Port), f.User+"@"+h.Address)
	cmd.Stdin = strings.NewReader("put " + src + " uploaded.txt\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(h.Dir, "uploaded.txt")); err != nil || string(b) != "hello\n" {
		t.Fatalf("relative sftp path did not land in the host dir: %q, %v", b, err)
	}
}
