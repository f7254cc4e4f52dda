package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/canaryops/terraform-provider-canary/internal/devfleet"
	"github.com/canaryops/terraform-provider-canary/internal/devfleet/internal/proc"
)

// syncBuffer collects a process's output safely while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func devfleetBinary(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin, err := devfleet.BuildAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// startUp runs `devfleet up args...` (optionally through a wrapper such as
// setpriv) and waits for its inventory.
func startUp(t *testing.T, wrapper []string, dir string, args ...string) (<-chan struct{}, *syncBuffer, devfleet.Inventory) {
	t.Helper()
	bin := devfleetBinary(t)
	argv := append(append(append([]string{}, wrapper...), bin, "up", "--dir", dir), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, inventoryFileName))
		if err == nil {
			var inv devfleet.Inventory
			if err := json.Unmarshal(b, &inv); err != nil {
				t.Fatal(err)
			}
			return exited, out, inv
		}
		select {
		case <-exited:
			t.Fatalf("devfleet up exited early (%v):\n%s", cmd.ProcessState, out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no inventory after 30s:\n%s", out)
		}
	}
}

func dialHost(t *testing.T, inv devfleet.Inventory, h devfleet.InventoryHost) *ssh.Client {
	t.Helper()
	key, err := os.ReadFile(inv.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := knownhosts.New(inv.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", net.JoinHostPort(h.Address, strconv.Itoa(h.Port)), &ssh.ClientConfig{
		User: inv.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: cb, Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("ssh %s: %v", h.Name, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func output(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, _ := s.CombinedOutput(cmd)
	return string(out)
}

func healthCode(addr string, port int) int {
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Get(fmt.Sprintf("http://%s:%d/healthz", addr, port))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// processesUnder lists live processes whose command line mentions dir.
func processesUnder(dir string) []string {
	all, _ := proc.All()
	var out []string
	for _, st := range all {
		if st.Dead() || st.PID == os.Getpid() {
			continue
		}
		argv, _ := proc.Cmdline(st.PID)
		if line := strings.Join(argv, " "); strings.Contains(line, dir) {
			out = append(out, fmt.Sprintf("%d %s", st.PID, line))
		}
	}
	return out
}

func TestUpAndDown(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "fleet")
	up, out, inv := startUp(t, nil, dir, "--hosts", "2", "--initial-version", "1.0.0", "--behavior", "1.2.0=unhealthy")
	if len(inv.Hosts) != 2 || inv.Hosts[0].Name != "host-1" || inv.Dir != dir {
		t.Fatalf("inventory %+v", inv)
	}
	var vars tfVars
	b, err := os.ReadFile(filepath.Join(dir, tfvarsFileName))
	if err != nil || json.Unmarshal(b, &vars) != nil {
		t.Fatalf("tfvars: %v\n%s", err, b)
	}
	if vars.SSHUser != inv.User || vars.SSHPrivateKeyFile != inv.ClientKeyFile || vars.KnownHostsFile != inv.KnownHostsFile ||
		len(vars.Hosts) != 2 || vars.Hosts[1].Port != inv.Hosts[1].Port ||
		vars.Hosts[1].Vars["agent_port"] != strconv.Itoa(inv.Hosts[1].AgentPort) {
		t.Fatalf("tfvars %+v do not match inventory %+v", vars, inv)
	}
	// The output is printed before the inventory is written, but our copy
	// of it may lag behind the pipe.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), "devfleet down --dir") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	for _, want := range []string{"host-1", "host-2", inv.ClientKeyFile, inv.KnownHostsFile, "devfleet down --dir " + dir} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	h := inv.Hosts[1]
	if code := healthCode(h.Address, h.AgentPort); code != 200 {
		t.Fatalf("initial version answers %d", code)
	}
	c := dialHost(t, inv, h)
	if got := output(t, c, "agentctl install 1.2.0 && cat ~/agent/VERSION"); got != "installed 1.2.0\n1.2.0\n" {
		t.Fatalf("install over ssh: %q", got)
	}
	if code := healthCode(h.Address, h.AgentPort); code != 503 {
		t.Fatalf("--behavior 1.2.0=unhealthy: /healthz answers %d", code)
	}

	var dout, derr bytes.Buffer
	if code := run([]string{"devfleet", "down", "--dir", dir}, &dout, &derr); code != 0 {
		t.Fatalf("down = %d: %s%s", code, dout.String(), derr.String())
	}
	select {
	case <-up:
	case <-time.After(10 * time.Second):
		t.Fatal("devfleet up still running after down returned")
	}
	if !strings.Contains(out.String(), "fleet stopped") {
		t.Errorf("up output:\n%s", out)
	}
	for _, n := range []string{pidFileName, inventoryFileName, tfvarsFileName} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			t.Errorf("%s left behind", n)
		}
	}
	if left := processesUnder(dir); len(left) > 0 {
		t.Errorf("processes left after down:\n%s", strings.Join(left, "\n"))
	}
	dout.Reset()
	if code := run([]string{"devfleet", "down", "--dir", dir}, &dout, io.Discard); code != 0 || !strings.Contains(dout.String(), "no fleet") {
		t.Errorf("second down = %d %q", code, dout.String())
	}
}

func TestCommandLineErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"devfleet"},
		{"devfleet", "sideways"},
		{"devfleet", "up", "--behavior", "1.0=weird"},
		{"devfleet", "up", "extra"},
		{"devfleet", "down"},
		{"devfleet", "agent", "install", "1.0; touch X"},
		{"/some/where/agentctl", "install", "a b"},
	} {
		if code := run(args, io.Discard, io.Discard); code != 2 {
			t.Errorf("%q exits %d, want 2", args, code)
		}
	}
	if code := run([]string{"devfleet", "help"}, io.Discard, io.Discard); code != 0 {
		t.Errorf("help exits %d", code)
	}
}

// TestNonRootUser runs a fleet as an unprivileged user: sshd then
// logs in only that user and needs no privilege separation directory.
func TestNonRootUser(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("runs as root to switch to nobody; as a normal user every other test already covers it")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv not installed")
	}
	// Not "nobody": nss-systemd reports it as a locked account, which sshd
	// refuses without PAM. Any ordinary non-root account will do.
	var nobody *user.User
	for _, name := range []string{"daemon", "bin"} {
		if u, err := user.Lookup(name); err == nil && u.Uid != "0" {
			nobody = u
			break
		}
	}
	if nobody == nil {
		t.Skip("no unprivileged system account (daemon, bin) to run as")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	parent, err := os.MkdirTemp("", "devfleet-nonroot-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(parent) })
	dir := filepath.Join(parent, "fleet")
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	wrapper := []string{setpriv, "--reuid=" + nobody.Uid, "--regid=" + nobody.Gid, "--clear-groups"}
	_, out, inv := startUp(t, wrapper, dir, "--hosts", "1", "--initial-version", "1.0.0")
	if inv.User != nobody.Username {
		t.Fatalf("fleet user %q, want %s", inv.User, nobody.Username)
	}
	h := inv.Hosts[0]
	if code := healthCode(h.Address, h.AgentPort); code != 200 {
		t.Fatalf("agent answers %d\n%s", code, out)
	}
	// Public key authentication must succeed; the account's login shell
	// (nologin) then refuses to run commands, which is fine here.
	c := dialHost(t, inv, h)
	t.Logf("command as %s: %q", nobody.Username, output(t, c, "echo hi"))
	procs := processesUnder(dir)
	if len(procs) == 0 {
		t.Fatal("no fleet processes found")
	}
	for _, p := range procs {
		pid, _ := strconv.Atoi(strings.Fields(p)[0])
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" && f[1] != nobody.Uid {
				t.Errorf("process runs as uid %s, not %s: %s", f[1], nobody.Uid, p)
			}
		}
	}
	if code := run([]string{"devfleet", "down", "--dir", dir}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("down = %d", code)
	}
	if left := processesUnder(dir); len(left) > 0 {
		t.Errorf("processes left after down:\n%s", strings.Join(left, "\n"))
	}
}
