package devfleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/canaryops/terraform-provider-canary/internal/devfleet/agent"
	"github.com/canaryops/terraform-provider-canary/internal/devfleet/internal/proc"
)

// ErrSSHDNotFound is returned by Start when no OpenSSH sshd binary is found.
var ErrSSHDNotFound = errors.New("devfleet: OpenSSH sshd not found (install openssh-server, e.g. apt-get install -y openssh-server)")

var errPortInUse = errors.New("port in use")

// findSSHD returns the absolute path of sshd (sshd refuses to re-exec itself
// from a relative path).
func findSSHD(explicit string) (string, error) {
	cands := []string{explicit, os.Getenv("DEVFLEET_SSHD")}
	if p, err := exec.LookPath("sshd"); err == nil {
		cands = append(cands, p)
	}
	cands = append(cands, "/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd", "/usr/bin/sshd")
	for _, c := range cands {
		if c == "" {
			continue
		}
		abs, err := filepath.Abs(c)
		if err != nil {
			continue
		}
		if st, err := os.Stat(abs); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return abs, nil
		}
		if c == explicit {
			return "", fmt.Errorf("%w: %s", ErrSSHDNotFound, explicit)
		}
	}
	return "", ErrSSHDNotFound
}

// findSFTPServer returns the external sftp-server binary, or "".
func findSFTPServer(sshd string) string {
	for _, c := range []string{
		"/usr/lib/openssh/sftp-server",
		"/usr/libexec/openssh/sftp-server",
		"/usr/libexec/sftp-server",
		"/usr/lib/ssh/sftp-server",
		filepath.Join(filepath.Dir(sshd), "..", "libexec", "sftp-server"),
	} {
		if st, err := os.Stat(c); err == nil && st.Mode().IsRegular() {
			return filepath.Clean(c)
		}
	}
	return ""
}

// Ports are picked by binding 127.0.0.1:0 and closing. Ports handed out in
// this process are never handed out again, so fleets in one test binary never
// race each other; collisions with other processes are caught when sshd fails
// to bind (or when the readiness probe sees a foreign host key) and retried.
var ports struct {
	mu   sync.Mutex
	used map[int]bool
}

func pickPort() (int, error) {
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.used == nil {
		ports.used = map[int]bool{}
	}
	for i := 0; i < 100; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("pick a free port: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if !ports.used[port] {
			ports.used[port] = true
			return port, nil
		}
	}
	return 0, errors.New("pick a free port: no unused port found")
}

// The spawner starts sshd from one goroutine locked to its OS thread for the
// life of the process: Pdeathsig fires when the *thread* that forked the child
// exits, and Go may retire other threads at any time.
var spawner struct {
	once sync.Once
	reqs chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func spawn(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range spawner.reqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
	r := spawnReq{cmd: cmd, done: make(chan error, 1)}
	spawner.reqs <- r
	return <-r.done
}

// sshdProc is a running sshd listener.
type sshdProc struct {
	cmd  *exec.Cmd
	pid  int
	done chan struct{} // closed once the process is reaped
}

const sessionScript = `# devfleet: start every SSH session in $HOME, like a real host does.
cd "$HOME" || exit 1
if [ -n "${SSH_ORIGINAL_COMMAND+x}" ]; then
	exec "$SHELL" -c "$SSH_ORIGINAL_COMMAND"
fi
exec "$SHELL" -l
`

func (h *Host) sshdConfig() string {
	f := h.fleet
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# sshd_config for devfleet host %s (generated; do not edit)", h.Name)
	p("Port %d", h.Port)
	p("ListenAddress %s", h.Address)
	p("AddressFamily inet")
	p("HostKey %s", filepath.Join(h.sshdDir, "ssh_host_ed25519_key"))
	p("AuthorizedKeysFile %s", filepath.Join(h.sshdDir, "authorized_keys"))
	p("PidFile %s", filepath.Join(h.sshdDir, "sshd.pid"))
	p("StrictModes no")
	p("UsePAM no")
	p("PubkeyAuthentication yes")
	p("PasswordAuthentication no")
	p("KbdInteractiveAuthentication no")
	p("HostbasedAuthentication no")
	p("AuthenticationMethods publickey")
	p("PermitRootLogin prohibit-password")
	p("AllowUsers %s", f.User)
	p("UseDNS no")
	p("PrintMotd no")
	p("PrintLastLog no")
	p("PermitUserRC no")
	p("PermitUserEnvironment no")
	p("AllowTcpForwarding yes")
	p("X11Forwarding no")
	p("MaxStartups 100:30:200")
	p("MaxSessions 100")
	p("LoginGraceTime 30")
	p("LogLevel INFO")
	env := []string{
		"HOME=" + h.Dir,
		"PATH=" + filepath.Join(h.Dir, "bin") + ":/usr/local/bin:/usr/bin:/bin",
	}
	env = append(env, h.agentConfig().Env()...)
	p("SetEnv %s", strings.Join(env, " "))
	p("ForceCommand exec /bin/sh %s", filepath.Join(h.sshdDir, "session.sh"))
	if f.sftpServer != "" {
		p("Subsystem sftp %s -d %s", f.sftpServer, h.Dir)
	}
	return b.String()
}

func (h *Host) agentConfig() agent.Config {
	f := h.fleet
	return agent.Config{
		Home:           h.Dir,
		Host:           h.Name,
		AgentPort:      h.AgentPort,
		BehaviorsFile:  f.behaviorsFile,
		OwnerPID:       f.ownerPID,
		OwnerStart:     f.ownerStart,
		SlowStartDelay: f.opts.SlowStartDelay,
		PanicDelay:     f.opts.PanicDelay,
	}
}

// writeSSHDFiles writes the config, host key and authorized_keys.
func (h *Host) writeSSHDFiles() error {
	files := []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{"sshd_config", []byte(h.sshdConfig()), 0o644},
		{"ssh_host_ed25519_key", h.hostKey.private, 0o600},
		{"ssh_host_ed25519_key.pub", h.hostKey.public, 0o644},
		{"authorized_keys", h.fleet.clientKey.public, 0o644},
		{"session.sh", []byte(sessionScript), 0o644},
	}
	for _, f := range files {
		if err := agent.WriteFileAtomic(filepath.Join(h.sshdDir, f.name), f.data, f.perm); err != nil {
			return err
		}
	}
	return nil
}

// launchSSHD starts sshd and waits until it serves this host's key. With
// newPorts it moves to a fresh port when the current one is taken; otherwise
// it retries the same port for a few seconds. h.mu must be held.
func (h *Host) launchSSHD(ctx context.Context, newPorts bool) error {
	deadline := time.Now().Add(5 * time.Second)
	for attempt := 1; ; attempt++ {
		err := h.spawnSSHD(ctx)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errPortInUse) || attempt >= 10 || (!newPorts && time.Now().After(deadline)) {
			return err
		}
		if newPorts {
			port, perr := pickPort()
			if perr != nil {
				return perr
			}
			h.fleet.logf("devfleet: %s: port %d is taken, moving to %d", h.Name, h.Port, port)
			h.Port = port
		} else {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

func (h *Host) spawnSSHD(ctx context.Context) error {
	if err := h.writeSSHDFiles(); err != nil {
		return err
	}
	logPath := filepath.Join(h.sshdDir, "sshd.log")
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	offset, _ := logf.Seek(0, io.SeekEnd)
	cmd := exec.Command(h.fleet.sshd, "-D", "-e", "-f", filepath.Join(h.sshdDir, "sshd_config"))
	cmd.Dir = h.sshdDir
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	err = spawn(cmd)
	_ = logf.Close()
	if err != nil {
		return fmt.Errorf("start %s for %s: %w", h.fleet.sshd, h.Name, err)
	}
	p := &sshdProc{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	logTail := func() string {
		b, _ := os.ReadFile(logPath)
		if int64(len(b)) >= offset {
			b = b[offset:]
		}
		return strings.TrimSpace(string(b))
	}
	fail := func(err error) error {
		_ = proc.Signal(-p.pid, syscall.SIGKILL)
		<-p.done
		return err
	}
	addr := h.SSHAddr()
	delay := 2 * time.Millisecond
	timeout := time.NewTimer(15 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case <-p.done:
			tail := logTail()
			if strings.Contains(tail, "Address already in use") || strings.Contains(tail, "Cannot bind any address") {
				return errPortInUse
			}
			return fmt.Errorf("sshd for %s exited at start (%v): %s", h.Name, cmd.ProcessState, tail)
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-timeout.C:
			return fail(fmt.Errorf("sshd for %s on %s not ready after 15s: %s", h.Name, addr, logTail()))
		default:
		}
		switch probeSSH(addr, h.fleet.User, h.hostKey.signer.PublicKey()) {
		case probeOK:
			h.sshd = p
			return nil
		case probeForeign:
			// Another sshd owns the port; ours must be failing to bind.
			select {
			case <-p.done:
			case <-time.After(2 * time.Second):
			}
			_ = fail(nil)
			return errPortInUse
		}
		select {
		case <-p.done:
		case <-time.After(delay):
		}
		if delay < 20*time.Millisecond {
			delay *= 2
		}
	}
}

type probeResult int

const (
	probeNotReady probeResult = iota
	probeOK
	probeForeign
)

var errProbeDone = errors.New("devfleet probe: host key seen")

// probeSSH dials addr, reads the SSH-2.0 banner and runs the key exchange far
// enough to see the host key, then aborts.
func probeSSH(addr, user string, want ssh.PublicKey) probeResult {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return probeNotReady
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	var got ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User:              user,
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			got = key
			return errProbeDone
		},
	}
	_, _, _, _ = ssh.NewClientConn(conn, addr, cfg)
	switch {
	case got == nil:
		return probeNotReady
	case bytes.Equal(got.Marshal(), want.Marshal()):
		return probeOK
	default:
		return probeForeign
	}
}

// sessionProcs returns the processes belonging to sshd listener pid's
// connections: its descendants, plus every process in the sessions (setsid)
// those descendants created, which catches commands orphaned by a dying
// sshd session. It also returns those session ids for a later sweep. Agent
// servers (their own session, started by agentctl) are excluded: they
// outlive SSH sessions on a real host too.
func (h *Host) sessionProcs(listener int) (pids []int, sids map[int]bool) {
	all, err := proc.All()
	if err != nil {
		return nil, nil
	}
	self, _ := proc.ReadStat(os.Getpid())
	sids = map[int]bool{}
	for _, st := range proc.Descendants(all, listener) {
		if st.SID != self.SID && st.SID > 0 {
			sids[st.SID] = true
		}
	}
	seen := map[int]bool{}
	add := func(st proc.Stat) {
		if seen[st.PID] || st.PID == listener || st.PID == os.Getpid() || agent.IsAgentProcess(h.Dir, st.PID) {
			return
		}
		seen[st.PID] = true
		pids = append(pids, st.PID)
	}
	for _, st := range proc.Descendants(all, listener) {
		add(st)
	}
	pids = append(pids, h.inSessions(all, sids, seen)...)
	return pids, sids
}

// inSessions returns the live non-agent processes of the given sessions
// that are not in seen.
func (h *Host) inSessions(all []proc.Stat, sids map[int]bool, seen map[int]bool) []int {
	var out []int
	for _, st := range all {
		if sids[st.SID] && !st.Dead() && !seen[st.PID] && st.PID != os.Getpid() && !agent.IsAgentProcess(h.Dir, st.PID) {
			seen[st.PID] = true
			out = append(out, st.PID)
		}
	}
	return out
}

// stopSSHDLocked stops the listener and every session process. h.mu held.
func (h *Host) stopSSHDLocked() error {
	p := h.sshd
	if p == nil {
		return nil
	}
	h.sshd = nil
	procs, sids := h.sessionProcs(p.pid)
	if h.frozen {
		for _, pid := range append(procs, h.frozenPIDs...) {
			_ = proc.Signal(pid, syscall.SIGCONT)
		}
		_ = proc.Signal(-p.pid, syscall.SIGCONT)
		h.frozen, h.frozenPIDs = false, nil
	}
	_ = proc.Signal(-p.pid, syscall.SIGTERM)
	for _, pid := range procs {
		_ = proc.Signal(pid, syscall.SIGTERM)
	}
	var errs []error
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		_ = proc.Signal(-p.pid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(3 * time.Second):
			errs = append(errs, fmt.Errorf("sshd %d of %s did not exit", p.pid, h.Name))
		}
	}
	if left := proc.WaitDead(procs, 2*time.Second); len(left) > 0 {
		for _, pid := range left {
			_ = proc.Signal(pid, syscall.SIGKILL)
		}
		if left = proc.WaitDead(left, 2*time.Second); len(left) > 0 {
			errs = append(errs, fmt.Errorf("session processes %v of %s did not exit", left, h.Name))
		}
	}
	// Commands forked by the sessions while we were killing them.
	all, _ := proc.All()
	if late := h.inSessions(all, sids, map[int]bool{}); len(late) > 0 {
		for _, pid := range late {
			_ = proc.Signal(pid, syscall.SIGKILL)
		}
		proc.WaitDead(late, 2*time.Second)
	}
	return errors.Join(errs...)
}

// freezeLocked SIGSTOPs the listener, then its session processes until no
// new one appears. h.mu held.
func (h *Host) freezeLocked() error {
	p := h.sshd
	if p == nil {
		return fmt.Errorf("devfleet: %s: sshd is not running", h.Name)
	}
	if err := proc.Signal(-p.pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("devfleet: freeze %s: %w", h.Name, err)
	}
	stopped := map[int]bool{}
	for round := 0; round < 20; round++ {
		n := 0
		pids, _ := h.sessionProcs(p.pid)
		for _, pid := range pids {
			if !stopped[pid] {
				_ = proc.Signal(pid, syscall.SIGSTOP)
				stopped[pid] = true
				n++
			}
		}
		if n == 0 {
			break
		}
	}
	h.frozen = true
	h.frozenPIDs = h.frozenPIDs[:0]
	for pid := range stopped {
		h.frozenPIDs = append(h.frozenPIDs, pid)
	}
	return nil
}

func (h *Host) thawLocked() error {
	p := h.sshd
	if !h.frozen || p == nil {
		return nil
	}
	for _, pid := range h.frozenPIDs {
		_ = proc.Signal(pid, syscall.SIGCONT)
	}
	pids, _ := h.sessionProcs(p.pid)
	for _, pid := range pids {
		_ = proc.Signal(pid, syscall.SIGCONT)
	}
	h.frozen, h.frozenPIDs = false, nil
	if err := proc.Signal(-p.pid, syscall.SIGCONT); err != nil {
		return fmt.Errorf("devfleet: thaw %s: %w", h.Name, err)
	}
	return nil
}
