// Package devfleet runs a local fleet of real OpenSSH sshd hosts, each with
// its own home directory, host key, port and demo agent, for the tests, the
// demo and the benchmarks of the canary provider and runner.
//
// Every host is an sshd (sshd -D, no PAM) listening on 127.0.0.1 that logs
// in only the current OS user, with the fleet's ed25519 client key; clients
// check host keys strictly against the fleet's known_hosts. Exec, shell,
// sftp (rooted at the host dir) and direct-tcpip port forwarding work as on
// a real host. SSH sessions see:
//
//	cwd and $HOME          the host directory (Host.Dir)
//	$PATH                  $HOME/bin:/usr/local/bin:/usr/bin:/bin
//	$HOME/bin/agentctl     install VERSION | install "" | uninstall | version | status | start | stop
//	$HOME/agent/VERSION    the installed version
//	$HOME/agent/agent.log  the agent's log (reopened on SIGHUP)
//	$HOME/agent/agent.pid  the running agent's pid
//	DEVFLEET_HOST, DEVFLEET_AGENT_PORT, DEVFLEET_BEHAVIORS, DEVFLEET_OWNER_PID,
//	DEVFLEET_OWNER_START, DEVFLEET_SLOW_START_DELAY, DEVFLEET_PANIC_DELAY
//
// The agent serves GET /healthz on 127.0.0.1:Host.AgentPort with
// {"version":V,"status":S,"host":NAME} according to the Behavior configured
// for its version. Agents exit on their own within a second when the process
// that started the fleet is gone, and sshd gets SIGTERM when it dies
// (Pdeathsig), so a killed test binary leaves nothing behind.
//
// The fleet directory holds id_ed25519(.pub), known_hosts, behaviors.json,
// one directory per host, and .devfleet/ (sshd configs, host keys, sshd
// logs, the agent binary). Start refuses a non-empty directory that is not a
// previous fleet's.
//
// It runs as root or as an ordinary user. sshd without PAM refuses accounts
// whose password field starts with '!' ("account is locked"); Start checks
// that it can log in and says so.
package devfleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/canaryops/terraform-provider-canary/internal/devfleet/agent"
	"github.com/canaryops/terraform-provider-canary/internal/devfleet/internal/proc"
)

// Behavior is how the demo agent of a given version behaves.
type Behavior string

// Behaviors.
const (
	Healthy      Behavior = "healthy"   // /healthz 200 {"version":V,"status":"ok","host":NAME}
	Unhealthy    Behavior = "unhealthy" // /healthz 503 {"version":V,"status":"unhealthy",...}
	CrashOnStart Behavior = "crash"     // process logs a fatal line and exits 1 right after start
	PanicLater   Behavior = "panic"     // healthy, but PanicDelay after start logs "panic: simulated failure in version V" every 500ms
	SlowStart    Behavior = "slow"      // /healthz 503 {"status":"starting"} for SlowStartDelay, then healthy
)

// Valid reports whether b is one of the defined behaviors.
func (b Behavior) Valid() bool { return agent.KnownBehavior(string(b)) }

// Options configures Start.
type Options struct {
	Hosts          int                              // default 3
	Dir            string                           // parent dir for the fleet; default a new os.MkdirTemp
	NamePrefix     string                           // default "host-" => host-1..host-N
	AgentBinary    string                           // prebuilt agent binary; default: $DEVFLEET_AGENT_BIN, else built once per process
	InitialVersion string                           // if set, installed and running on every host when Start returns
	Behaviors      map[string]Behavior              // version -> behavior; unlisted versions are Healthy
	SlowStartDelay time.Duration                    // default 3s
	PanicDelay     time.Duration                    // default 3s
	Logf           func(format string, args ...any) // optional debug logging (tests pass t.Logf)

	// SSHD is the sshd binary; default $DEVFLEET_SSHD, sshd on PATH, /usr/sbin/sshd.
	SSHD string
}

// Fleet is a running set of hosts.
type Fleet struct {
	Dir            string
	User           string // the login user (current OS user)
	ClientKeyFile  string // OpenSSH-format ed25519 private key file, 0600
	ClientKey      []byte // its contents
	KnownHostsFile string // known_hosts listing every host as [127.0.0.1]:port
	BehaviorsFile  string // JSON {"version":"behavior"} read by agents at start
	Hosts          []*Host

	opts          Options
	createdDir    bool
	sshd          string
	sftpServer    string
	ownerPID      int
	ownerStart    uint64
	behaviorsFile string
	clientKey     keyPair
	internalDir   string

	logMu     sync.Mutex
	mu        sync.Mutex // guards behaviors and the behaviors file
	behaviors map[string]Behavior

	closeOnce sync.Once
	closeErr  error
	closed    chan struct{}
}

// Host is one sshd host of a fleet.
type Host struct {
	Name      string
	Address   string // "127.0.0.1"
	Port      int    // sshd port
	AgentPort int    // the demo agent's HTTP port on 127.0.0.1
	Dir       string // the host's directory; it is the host's $HOME for SSH sessions

	fleet   *Fleet
	sshdDir string

	mu         sync.Mutex // guards the fields below and Port
	hostKey    keyPair
	sshd       *sshdProc
	frozen     bool
	frozenPIDs []int
}

var (
	safePath = regexp.MustCompile(`^[A-Za-z0-9._/+@%,=-]+$`)
	safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// ownerFile records which process runs the fleet in a directory.
type ownerFile struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// logf calls Options.Logf, one call at a time.
func (f *Fleet) logf(format string, args ...any) {
	if f.opts.Logf != nil {
		f.logMu.Lock()
		defer f.logMu.Unlock()
		f.opts.Logf(format, args...)
	}
}

// Start brings a fleet up: keys, known_hosts, one sshd per host (started in
// parallel) and, with InitialVersion, a running agent on every host. ctx
// bounds the start only; the fleet lives until Close. On error everything
// started is torn down.
func Start(ctx context.Context, opts Options) (_ *Fleet, err error) {
	t0 := time.Now()
	if opts.Hosts < 0 {
		return nil, fmt.Errorf("devfleet: Hosts must not be negative, got %d", opts.Hosts)
	}
	if opts.Hosts == 0 {
		opts.Hosts = 3
	}
	if opts.NamePrefix == "" {
		opts.NamePrefix = "host-"
	}
	if opts.SlowStartDelay <= 0 {
		opts.SlowStartDelay = agent.DefaultSlowStartDelay
	}
	if opts.PanicDelay <= 0 {
		opts.PanicDelay = agent.DefaultPanicDelay
	}
	if !safeName.MatchString(opts.NamePrefix + "1") {
		return nil, fmt.Errorf("devfleet: NamePrefix %q must be letters, digits, '.', '_' or '-'", opts.NamePrefix)
	}
	if opts.InitialVersion != "" && !agent.ValidVersion(opts.InitialVersion) {
		return nil, fmt.Errorf("devfleet: InitialVersion %q must match %s", opts.InitialVersion, agent.VersionPattern)
	}
	behaviors := make(map[string]Behavior, len(opts.Behaviors))
	for v, b := range opts.Behaviors {
		if !agent.ValidVersion(v) {
			return nil, fmt.Errorf("devfleet: Behaviors: version %q must match %s", v, agent.VersionPattern)
		}
		if !b.Valid() {
			return nil, fmt.Errorf("devfleet: Behaviors[%q]: unknown behavior %q (want healthy, unhealthy, crash, panic or slow)", v, b)
		}
		behaviors[v] = b
	}
	sshd, err := findSSHD(opts.SSHD)
	if err != nil {
		return nil, err
	}
	userName, err := currentUser()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		// sshd running as root needs its privilege separation directory.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, fmt.Errorf("devfleet: create sshd privilege separation dir /run/sshd: %w", err)
		}
	}

	f := &Fleet{
		User:       userName,
		opts:       opts,
		sshd:       sshd,
		sftpServer: findSFTPServer(sshd),
		ownerPID:   os.Getpid(),
		ownerStart: proc.StartTime(os.Getpid()),
		behaviors:  behaviors,
		closed:     make(chan struct{}),
	}
	if opts.Dir == "" {
		d, err := os.MkdirTemp("", "devfleet-*")
		if err != nil {
			return nil, fmt.Errorf("devfleet: %w", err)
		}
		f.Dir, f.createdDir = d, true
	} else {
		d, err := filepath.Abs(opts.Dir)
		if err != nil {
			return nil, fmt.Errorf("devfleet: %w", err)
		}
		f.Dir = d
	}
	defer func() {
		if err != nil {
			_ = f.Close()
		}
	}()
	if err := f.prepareDir(); err != nil {
		return nil, err
	}

	bin := opts.AgentBinary
	if bin == "" {
		if bin, err = buildAgent(ctx, f.logf); err != nil {
			return nil, fmt.Errorf("devfleet: %w", err)
		}
	}
	fleetBin := filepath.Join(f.internalDir, "bin", "agentctl")
	if err := os.MkdirAll(filepath.Dir(fleetBin), 0o755); err != nil {
		return nil, err
	}
	if err := agent.LinkOrCopy(bin, fleetBin); err != nil {
		return nil, fmt.Errorf("devfleet: install agent binary %s: %w", bin, err)
	}

	if f.clientKey, err = newKeyPair("devfleet-client"); err != nil {
		return nil, err
	}
	f.ClientKeyFile = filepath.Join(f.Dir, "id_ed25519")
	f.ClientKey = f.clientKey.private
	if err := agent.WriteFileAtomic(f.ClientKeyFile, f.ClientKey, 0o600); err != nil {
		return nil, err
	}
	if err := agent.WriteFileAtomic(f.ClientKeyFile+".pub", f.clientKey.public, 0o644); err != nil {
		return nil, err
	}
	f.behaviorsFile = filepath.Join(f.Dir, "behaviors.json")
	f.BehaviorsFile = f.behaviorsFile
	if err := f.writeBehaviorsLocked(); err != nil {
		return nil, err
	}

	for i := 1; i <= opts.Hosts; i++ {
		h, err := f.newHost(opts.NamePrefix+strconv.Itoa(i), fleetBin)
		if err != nil {
			return nil, err
		}
		f.Hosts = append(f.Hosts, h)
	}
	if err := f.parallel(func(h *Host) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.launchSSHD(ctx, true)
	}); err != nil {
		return nil, err
	}
	if err := f.writeKnownHosts(); err != nil {
		return nil, err
	}
	if err := f.checkLogin(ctx, f.Hosts[0]); err != nil {
		return nil, err
	}
	f.logf("devfleet: %d hosts up in %s in %v", len(f.Hosts), f.Dir, time.Since(t0).Round(time.Millisecond))
	for _, h := range f.Hosts {
		f.logf("devfleet:   %s ssh %s agent 127.0.0.1:%d home %s", h.Name, h.SSHAddr(), h.AgentPort, h.Dir)
	}
	if opts.InitialVersion != "" {
		if err := f.parallel(func(h *Host) error { return h.installLocal(ctx, opts.InitialVersion) }); err != nil {
			return nil, err
		}
		f.logf("devfleet: version %s installed on every host", opts.InitialVersion)
	}
	return f, nil
}

// checkLogin logs in to h once with the fleet's key and known_hosts, so a
// fleet nobody can log in to fails at Start with the reason, not later in
// every test that uses it.
func (f *Fleet) checkLogin(ctx context.Context, h *Host) error {
	c, err := h.Dial(ctx)
	if err == nil {
		return c.Close()
	}
	hint := ""
	b, _ := os.ReadFile(h.SSHDLogFile())
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	tail := strings.Join(lines, "\n")
	if strings.Contains(tail, "account is locked") {
		hint = fmt.Sprintf("\nsshd (run without PAM) refuses accounts whose password field starts with '!': "+
			"give %s a '*' password field (usermod -p '*' %s) or run as another user", f.User, f.User)
	}
	return fmt.Errorf("devfleet: user %s cannot log in to %s (%s) with the fleet key: %w\nsshd log:\n%s%s",
		f.User, h.Name, h.SSHAddr(), err, tail, hint)
}

func currentUser() (string, error) {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username, nil
	}
	if u := os.Getenv("USER"); u != "" {
		return u, nil
	}
	return "", fmt.Errorf("devfleet: cannot determine the current user name (uid %d)", os.Getuid())
}

// prepareDir checks that Dir is empty or a previous fleet's directory no
// live process owns, clears the previous fleet's files and claims it.
func (f *Fleet) prepareDir() error {
	if !safePath.MatchString(f.Dir) {
		return fmt.Errorf("devfleet: fleet dir %q must not contain spaces or shell metacharacters", f.Dir)
	}
	if err := os.MkdirAll(f.Dir, 0o755); err != nil {
		return fmt.Errorf("devfleet: %w", err)
	}
	f.internalDir = filepath.Join(f.Dir, ".devfleet")
	ownerPath := filepath.Join(f.internalDir, "owner.json")
	entries, err := os.ReadDir(f.Dir)
	if err != nil {
		return fmt.Errorf("devfleet: %w", err)
	}
	if len(entries) > 0 {
		if _, err := os.Stat(f.internalDir); err != nil {
			return fmt.Errorf("devfleet: fleet dir %s is not empty and holds no previous fleet; use an empty or new directory", f.Dir)
		}
		if b, err := os.ReadFile(ownerPath); err == nil {
			var o ownerFile
			if json.Unmarshal(b, &o) == nil && proc.Alive(o.PID) && (o.Start == 0 || proc.StartTime(o.PID) == o.Start) {
				return fmt.Errorf("devfleet: fleet dir %s is in use by process %d; stop that fleet first (devfleet down --dir %s)", f.Dir, o.PID, f.Dir)
			}
		}
		// Remove what a previous fleet left, and nothing else.
		for _, e := range entries {
			p := filepath.Join(f.Dir, e.Name())
			if e.IsDir() {
				if _, err := os.Stat(agent.HostConfigFile(p)); err == nil {
					if err := os.RemoveAll(p); err != nil {
						return fmt.Errorf("devfleet: remove previous host dir: %w", err)
					}
				}
			}
		}
		if err := os.RemoveAll(f.internalDir); err != nil {
			return fmt.Errorf("devfleet: %w", err)
		}
	}
	if err := os.MkdirAll(f.internalDir, 0o755); err != nil {
		return fmt.Errorf("devfleet: %w", err)
	}
	b, _ := json.Marshal(ownerFile{PID: f.ownerPID, Start: f.ownerStart})
	return agent.WriteFileAtomic(ownerPath, b, 0o644)
}

func (f *Fleet) newHost(name, fleetBin string) (*Host, error) {
	h := &Host{
		Name:    name,
		Address: "127.0.0.1",
		Dir:     filepath.Join(f.Dir, name),
		fleet:   f,
		sshdDir: filepath.Join(f.internalDir, "sshd", name),
	}
	var err error
	if _, err := os.Lstat(h.Dir); err == nil {
		return nil, fmt.Errorf("devfleet: host dir %s already exists and is not a devfleet host", h.Dir)
	}
	if h.Port, err = pickPort(); err != nil {
		return nil, err
	}
	if h.AgentPort, err = pickPort(); err != nil {
		return nil, err
	}
	if h.hostKey, err = newKeyPair("devfleet-" + name); err != nil {
		return nil, err
	}
	for _, d := range []string{filepath.Join(h.Dir, "bin"), filepath.Join(h.Dir, "agent"), h.sshdDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.Symlink(fleetBin, filepath.Join(h.Dir, "bin", "agentctl")); err != nil {
		return nil, err
	}
	// Interactive login shells read /etc/profile, which resets PATH.
	profile := "# devfleet host " + name + "\nPATH=\"$HOME/bin:$PATH\"\nexport PATH\n"
	if err := os.WriteFile(filepath.Join(h.Dir, ".profile"), []byte(profile), 0o644); err != nil {
		return nil, err
	}
	if err := agent.WriteHostConfig(h.agentConfig()); err != nil {
		return nil, err
	}
	return h, nil
}

// parallel runs fn for every host concurrently and joins the errors.
func (f *Fleet) parallel(fn func(h *Host) error) error {
	errs := make([]error, len(f.Hosts))
	var wg sync.WaitGroup
	for i, h := range f.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(h)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// UpdateKnownHosts rewrites KnownHostsFile with every host's current key
// (for example to trust a host again after ReplaceHostKey).
func (f *Fleet) UpdateKnownHosts() error {
	if f.isClosed() {
		return errClosed
	}
	return f.writeKnownHosts()
}

func (f *Fleet) writeKnownHosts() error {
	var b strings.Builder
	for _, h := range f.Hosts {
		b.WriteString(h.HostKeyLine() + "\n")
	}
	f.KnownHostsFile = filepath.Join(f.Dir, "known_hosts")
	return agent.WriteFileAtomic(f.KnownHostsFile, []byte(b.String()), 0o644)
}

func (f *Fleet) writeBehaviorsLocked() error {
	m := make(map[string]string, len(f.behaviors))
	for v, b := range f.behaviors {
		m[v] = string(b)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return agent.WriteFileAtomic(f.behaviorsFile, append(b, '\n'), 0o644)
}

// Host returns the host called name, or nil.
func (f *Fleet) Host(name string) *Host {
	for _, h := range f.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// SetBehavior sets the behavior of version for agents started afterwards
// (running agents keep theirs).
func (f *Fleet) SetBehavior(version string, b Behavior) error {
	if !agent.ValidVersion(version) {
		return fmt.Errorf("devfleet: SetBehavior: version %q must match %s", version, agent.VersionPattern)
	}
	if !b.Valid() {
		return fmt.Errorf("devfleet: SetBehavior: unknown behavior %q (want healthy, unhealthy, crash, panic or slow)", b)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.behaviors[version] = b
	return f.writeBehaviorsLocked()
}

// Behaviors returns a copy of the fleet's version -> behavior map.
func (f *Fleet) Behaviors() map[string]Behavior {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := make(map[string]Behavior, len(f.behaviors))
	for v, b := range f.behaviors {
		m[v] = b
	}
	return m
}

// ClientConfig returns an x/crypto/ssh client config for the fleet: the
// fleet user and key, strict host key checking against KnownHostsFile.
func (f *Fleet) ClientConfig() (*ssh.ClientConfig, error) {
	signer, err := ssh.ParsePrivateKey(f.ClientKey)
	if err != nil {
		return nil, err
	}
	cb, err := knownhosts.New(f.KnownHostsFile)
	if err != nil {
		return nil, err
	}
	return &ssh.ClientConfig{
		User:              f.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   cb,
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		Timeout:           5 * time.Second,
	}, nil
}

// Close stops every sshd, session and agent of the fleet and waits for them.
// It is idempotent; the fleet dir is removed only if Start created it.
func (f *Fleet) Close() error {
	f.closeOnce.Do(func() {
		close(f.closed)
		f.closeErr = f.close()
	})
	return f.closeErr
}

func (f *Fleet) close() error {
	t0 := time.Now()
	var errs []error
	errs = append(errs, f.parallel(func(h *Host) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		return errors.Join(h.stopSSHDLocked(), agent.Stop(h.Dir, agent.StopTimeout))
	}))
	if f.internalDir != "" {
		errs = append(errs, killStrays(f.Dir))
		_ = os.Remove(filepath.Join(f.internalDir, "owner.json"))
	}
	if f.createdDir {
		errs = append(errs, os.RemoveAll(f.Dir))
	}
	err := errors.Join(errs...)
	if err != nil {
		err = fmt.Errorf("devfleet: close: %w", err)
	}
	f.logf("devfleet: fleet %s closed in %v", f.Dir, time.Since(t0).Round(time.Millisecond))
	return err
}

// killStrays kills any process still running a binary from under dir
// (agents or agentctl whose pid file was lost).
func killStrays(dir string) error {
	all, err := proc.All()
	if err != nil {
		return err
	}
	prefix := filepath.Clean(dir) + string(filepath.Separator)
	var pids []int
	for _, st := range all {
		if st.PID == os.Getpid() || st.Dead() {
			continue
		}
		if exe, err := proc.Exe(st.PID); err == nil && strings.HasPrefix(exe, prefix) {
			_ = proc.Signal(st.PID, syscall.SIGKILL)
			pids = append(pids, st.PID)
		}
	}
	if left := proc.WaitDead(pids, 3*time.Second); len(left) > 0 {
		return fmt.Errorf("processes %v did not exit", left)
	}
	return nil
}

func (f *Fleet) isClosed() bool {
	select {
	case <-f.closed:
		return true
	default:
		return false
	}
}

var errClosed = errors.New("devfleet: fleet is closed")

// SSHAddr is "127.0.0.1:port".
func (h *Host) SSHAddr() string { return hostAddr(h.Address, h.Port) }

// AgentAddr is "127.0.0.1:agentport".
func (h *Host) AgentAddr() string { return hostAddr("127.0.0.1", h.AgentPort) }

// Version returns the installed version ("" when none is installed).
func (h *Host) Version() (string, error) { return agent.ReadVersion(h.Dir) }

// AgentLog returns the agent log ("" when there is none).
func (h *Host) AgentLog() (string, error) {
	b, err := os.ReadFile(agent.LogFile(h.Dir))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	return string(b), err
}

// AgentLogFile is the path of the agent log ($HOME/agent/agent.log).
func (h *Host) AgentLogFile() string { return agent.LogFile(h.Dir) }

// AgentRunning reports whether the agent process is alive.
func (h *Host) AgentRunning() bool {
	_, ok := agent.RunningPID(h.Dir)
	return ok
}

// AgentPID returns the pid of the running agent, 0 when none runs.
func (h *Host) AgentPID() int {
	if pid, ok := agent.RunningPID(h.Dir); ok {
		return pid
	}
	return 0
}

// SSHDPID returns the pid of the sshd listener, 0 when it is stopped.
func (h *Host) SSHDPID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sshd == nil {
		return 0
	}
	return h.sshd.pid
}

// SSHDLogFile is the path of this host's sshd log (sshd -e output).
func (h *Host) SSHDLogFile() string { return filepath.Join(h.sshdDir, "sshd.log") }

// HostKeyLine returns the known_hosts line for this host's current key.
func (h *Host) HostKeyLine() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return knownHostsLine(h.Address, h.Port, h.hostKey.signer.PublicKey())
}

// HostKey returns this host's current public host key.
func (h *Host) HostKey() ssh.PublicKey {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hostKey.signer.PublicKey()
}

// StopSSHD stops this host's sshd and kills its SSH sessions: the host
// becomes unreachable (connection refused). The agent keeps running.
func (h *Host) StopSSHD() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fleet.isClosed() {
		return errClosed
	}
	return h.stopSSHDLocked()
}

// StartSSHD starts this host's sshd again on the same port with the same key.
func (h *Host) StartSSHD() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fleet.isClosed() {
		return errClosed
	}
	if h.sshd != nil {
		return nil
	}
	return h.launchSSHD(context.Background(), false)
}

// Freeze SIGSTOPs sshd and all its session processes: new connections get
// no banner and commands on established connections hang, like a host
// that stopped responding. The agent is not frozen.
func (h *Host) Freeze() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fleet.isClosed() {
		return errClosed
	}
	return h.freezeLocked()
}

// Thaw resumes what Freeze stopped (SIGCONT).
func (h *Host) Thaw() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fleet.isClosed() {
		return errClosed
	}
	return h.thawLocked()
}

// ReplaceHostKey gives the host a new host key and restarts its sshd. The
// fleet's known_hosts is NOT updated, so strict clients see a mismatch;
// HostKeyLine returns the new line.
func (h *Host) ReplaceHostKey() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fleet.isClosed() {
		return errClosed
	}
	k, err := newKeyPair("devfleet-" + h.Name)
	if err != nil {
		return err
	}
	if err := h.stopSSHDLocked(); err != nil {
		return err
	}
	h.hostKey = k
	return h.launchSSHD(context.Background(), false)
}

// Dial opens an SSH connection to the host with the fleet's ClientConfig.
func (h *Host) Dial(ctx context.Context) (*ssh.Client, error) {
	cfg, err := h.fleet.ClientConfig()
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", h.SSHAddr())
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	c, chans, reqs, err := ssh.NewClientConn(conn, h.SSHAddr(), cfg)
	if err != nil {
		_ = conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// Run runs cmd on the host over a new SSH connection and returns its
// combined output. A non-zero exit is an *ssh.ExitError.
func (h *Host) Run(ctx context.Context, cmd string) (string, error) {
	c, err := h.Dial(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	if ctx.Err() != nil {
		return string(out), ctx.Err()
	}
	return string(out), err
}

// installLocal runs `agentctl install version` for the host without SSH,
// with the environment an SSH session would have.
func (h *Host) installLocal(ctx context.Context, version string) error {
	cfg := h.agentConfig()
	env := append([]string{
		"HOME=" + h.Dir,
		"PATH=" + filepath.Join(h.Dir, "bin") + ":/usr/local/bin:/usr/bin:/bin",
		"USER=" + h.fleet.User,
	}, cfg.Env()...)
	out, err := runCommand(ctx, filepath.Join(h.Dir, "bin", "agentctl"), []string{"install", version}, h.Dir, env)
	if err != nil {
		return fmt.Errorf("devfleet: %s: agentctl install %s: %w: %s", h.Name, version, err, strings.TrimSpace(out))
	}
	return nil
}

// Inventory describes a fleet for tools and humans (devfleet up writes it).
type Inventory struct {
	Dir            string          `json:"dir"`
	User           string          `json:"user"`
	ClientKeyFile  string          `json:"client_key_file"`
	KnownHostsFile string          `json:"known_hosts_file"`
	BehaviorsFile  string          `json:"behaviors_file"`
	OwnerPID       int             `json:"owner_pid"`
	Hosts          []InventoryHost `json:"hosts"`
}

// InventoryHost is one host of an Inventory.
type InventoryHost struct {
	Name      string `json:"name"`
	Address   string `json:"address"`
	Port      int    `json:"port"`
	AgentPort int    `json:"agent_port"`
	Dir       string `json:"dir"`
}

// Inventory returns the fleet's inventory, hosts in creation order.
func (f *Fleet) Inventory() Inventory {
	inv := Inventory{
		Dir: f.Dir, User: f.User, ClientKeyFile: f.ClientKeyFile, KnownHostsFile: f.KnownHostsFile,
		BehaviorsFile: f.BehaviorsFile, OwnerPID: f.ownerPID,
	}
	for _, h := range f.Hosts {
		h.mu.Lock()
		inv.Hosts = append(inv.Hosts, InventoryHost{Name: h.Name, Address: h.Address, Port: h.Port, AgentPort: h.AgentPort, Dir: h.Dir})
		h.mu.Unlock()
	}
	return inv
}
