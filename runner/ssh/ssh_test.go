package ssh

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/canaryops/terraform-provider-canary/internal/devfleet"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Every test here runs against real OpenSSH sshd hosts of a devfleet.

func startFleet(t *testing.T, hosts int, version string) *devfleet.Fleet {
	t.Helper()
	return devfleet.StartT(t, devfleet.Options{Hosts: hosts, InitialVersion: version, Logf: t.Logf})
}

func fleetConfig(f *devfleet.Fleet) Config {
	return Config{
		User:           f.User,
		PrivateKey:     f.ClientKey,
		KnownHostsFile: f.KnownHostsFile,
		ConnectTimeout: 5 * time.Second,
	}
}

func dialT(t *testing.T, cfg Config, addr string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), cfg, Endpoint{Address: addr})
	if err != nil {
		t.Fatalf("Dial(%s): %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func runT(t *testing.T, c *Client, cmd string) *Result {
	t.Helper()
	r, err := c.Run(context.Background(), cmd, RunOptions{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("Run(%q): %v", cmd, err)
	}
	return r
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func authorizedKey(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// uniqueSleep returns a sleep duration of about 300s whose text identifies
// the process in ps output.
func uniqueSleep() string {
	n, _ := rand.Int(rand.Reader, big.NewInt(1e9))
	return fmt.Sprintf("300.%09d", n.Int64())
}

// remoteProcs lists, through a fresh session, the processes whose command
// line contains "sleep <dur>".
func remoteProcs(t *testing.T, c *Client, dur string) string {
	t.Helper()
	pattern := "[s]leep " + strings.ReplaceAll(dur, ".", `\.`) // [s] keeps grep from matching itself
	return strings.TrimSpace(runT(t, c, "ps -eo pid=,pgid=,args= | grep "+Quote(pattern)+" || true").Stdout)
}

func TestRunKeyAuth(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 1, "")
	c := dialT(t, fleetConfig(f), f.Hosts[0].SSHAddr())

	r, err := c.Run(context.Background(), "echo out; echo err >&2; echo $DEVFLEET_HOST; exit 3", RunOptions{})
	if err != nil {
		t.Fatalf("a non-zero exit must not be an error: %v", err)
	}
	if r.Stdout != "out\n"+f.Hosts[0].Name+"\n" || r.Stderr != "err\n" || r.ExitStatus != 3 || r.Truncated {
		t.Fatalf("got %+v", r)
	}
	if r.Duration <= 0 {
		t.Errorf("Duration = %v", r.Duration)
	}
	// The command runs under the login shell, in $HOME, as with plain ssh.
	if got := runT(t, c, "pwd; echo $SHELL; echo $0").Stdout; !strings.HasPrefix(got, f.Hosts[0].Dir+"\n") {
		t.Errorf("pwd/shell = %q", got)
	}

	r, err = c.Run(context.Background(), "kill -KILL $$", RunOptions{})
	var se *ExitSignalError
	if !errors.As(err, &se) || se.Signal != "KILL" || r == nil || r.ExitStatus != -1 || r.Signal != "KILL" {
		t.Fatalf("killed by signal: %+v, %v", r, err)
	}
	if IsFatal(err) {
		t.Error("a signal is not fatal")
	}
}

func TestRunOutputBound(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 1, "")
	c := dialT(t, fleetConfig(f), f.Hosts[0].SSHAddr())

	cmd := "head -c 100000 /dev/zero | tr '\\0' a; printf END; head -c 50000 /dev/zero | tr '\\0' b >&2"
	r, err := c.Run(context.Background(), cmd, RunOptions{MaxOutput: 1000})
	if err != nil {
		t.Fatal(err)
	}
	wantOut := strings.Repeat("a", 500) + "[... 99003 bytes truncated ...]" + strings.Repeat("a", 497) + "END"
	wantErr := strings.Repeat("b", 500) + "[... 49000 bytes truncated ...]" + strings.Repeat("b", 500)
	if r.Stdout != wantOut || r.Stderr != wantErr || !r.Truncated || r.ExitStatus != 0 {
		t.Fatalf("stdout %d bytes %q...%q, stderr %d bytes, truncated %v", len(r.Stdout), r.Stdout[:10],
			r.Stdout[len(r.Stdout)-40:], len(r.Stderr), r.Truncated)
	}

	// The default bound is 64 KiB per stream; smaller output is kept whole.
	r = runT(t, c, "head -c 65536 /dev/zero | tr '\\0' x")
	if len(r.Stdout) != 65536 || r.Truncated {
		t.Fatalf("64 KiB: got %d bytes, truncated %v", len(r.Stdout), r.Truncated)
	}
	r = runT(t, c, "head -c 65537 /dev/zero | tr '\\0' x")
	if !r.Truncated || !strings.Contains(r.Stdout, "[... 1 bytes truncated ...]") {
		t.Fatalf("64 KiB + 1: truncated %v", r.Truncated)
	}
}

func TestRunStdin(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 1, "")
	c := dialT(t, fleetConfig(f), f.Hosts[0].SSHAddr())

	r, err := c.Run(context.Background(), "cat", RunOptions{Stdin: strings.NewReader("hello\nworld")})
	if err != nil || r.Stdout != "hello\nworld" {
		t.Fatalf("cat: %+v %v", r, err)
	}
	big := make([]byte, 4<<20)
	_, _ = rand.Read(big)
	sum := sha256.Sum256(big)
	r, err = c.Run(context.Background(), "sha256sum", RunOptions{Stdin: bytes.NewReader(big), Timeout: 30 * time.Second})
	if err != nil || !strings.HasPrefix(r.Stdout, hex.EncodeToString(sum[:])) {
		t.Fatalf("4 MiB stdin: %+v %v", r, err)
	}
	// Without Stdin the command reads EOF at once.
	if r := runT(t, c, "cat; echo done"); r.Stdout != "done\n" {
		t.Fatalf("empty stdin: %q", r.Stdout)
	}
}

// TestRunTimeoutKillsProcessTree proves that a timed-out command really dies
// on the host, with its children, whether or not it ignores SIGTERM.
func TestRunTimeoutKillsProcessTree(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 1, "")
	h := f.Hosts[0]
	c := dialT(t, fleetConfig(f), h.SSHAddr())

	tests := []struct {
		name  string
		cmd   string // %[1]s: sleep duration, %[2]s: marker file
		grace time.Duration
	}{
		{"sleep then touch", "sleep %[1]s; touch %[2]s", 0},
		{"background children", "(sleep %[1]s; touch %[2]s) & sleep %[1]s; touch %[2]s", 0},
		{"ignores SIGTERM", "trap '' TERM; sleep %[1]s; touch %[2]s", 500 * time.Millisecond},
		{"nested shells", "sh -c 'bash -c \"sleep %[1]s\"'; touch %[2]s", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dur, marker := uniqueSleep(), "marker-"+strings.ReplaceAll(tt.name, " ", "-")
			cmd := fmt.Sprintf(tt.cmd, dur, marker)
			start := time.Now()
			r, err := c.Run(context.Background(), cmd, RunOptions{Timeout: time.Second, KillGrace: tt.grace})
			elapsed := time.Since(start)
			var te *TimeoutError
			if !errors.As(err, &te) {
				t.Fatalf("err = %v, want *TimeoutError", err)
			}
			if te.Command != shorten(cmd, 80) || te.Timeout != time.Second || te.Address != h.SSHAddr() || !te.Terminated {
				t.Errorf("TimeoutError = %+v", te)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", te.Command)) || !strings.Contains(err.Error(), "after 1s") {
				t.Errorf("message %q does not name the command and the timeout", err)
			}
			if !errors.Is(err, context.DeadlineExceeded) || IsFatal(err) {
				t.Errorf("errors.Is(DeadlineExceeded) = %v, IsFatal = %v", errors.Is(err, context.DeadlineExceeded), IsFatal(err))
			}
			if r == nil || r.ExitStatus != -1 {
				t.Errorf("result = %+v", r)
			}
			if elapsed < time.Second || elapsed > 4*time.Second {
				t.Errorf("Run returned after %v, want 1s..4s", elapsed)
			}
			if ps := remoteProcs(t, c, dur); ps != "" {
				t.Fatalf("processes survived the timeout:\n%s", ps)
			}
			time.Sleep(300 * time.Millisecond) // a surviving shell would touch the marker now
			if got := runT(t, c, "test -e "+marker+" && echo present || echo absent").Stdout; got != "absent\n" {
				t.Fatalf("marker %s", got)
			}
			if _, err := os.Stat(filepath.Join(h.Dir, marker)); !os.IsNotExist(err) {
				t.Fatalf("marker on disk: %v", err)
			}
		})
	}
}

func TestRunCancel(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 1, "")
	c := dialT(t, fleetConfig(f), f.Hosts[0].SSHAddr())

	dur := uniqueSleep()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	start := time.Now()
	r, err := c.Run(ctx, "echo started; sleep "+dur+"; touch cancel-marker", RunOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want one wrapping context.Canceled", err)
	}
	var te *TimeoutError
	if errors.As(err, &te) || IsFatal(err) {
		t.Errorf("cancellation reported as %T (fatal %v)", err, IsFatal(err))
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("Run returned after %v", elapsed)
	}
	if r == nil || r.Stdout != "started\n" {
		t.Errorf("partial result = %+v", r)
	}
	if ps := remoteProcs(t, c, dur); ps != "" {
		t.Fatalf("processes survived cancellation:\n%s", ps)
	}
	if got := runT(t, c, "test -e cancel-marker && echo present || echo absent").Stdout; got != "absent\n" {
		t.Fatalf("marker %s", got)
	}

	// An already cancelled context runs nothing.
	if _, err := c.Run(ctx, "touch never", RunOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
}

func TestRunConcurrentSessions(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 1, "")
	cfg := fleetConfig(f)
	cfg.MaxSessions = 3
	c := dialT(t, cfg, f.Hosts[0].SSHAddr())
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.Run(context.Background(), fmt.Sprintf("sleep 0.1; echo %d", i), RunOptions{Timeout: 20 * time.Second})
			if err == nil && r.Stdout != fmt.Sprintf("%d\n", i) {
				err = fmt.Errorf("run %d: stdout %q", i, r.Stdout)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestQuoteRoundTripsThroughRemoteShell(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 1, "")
	c := dialT(t, fleetConfig(f), f.Hosts[0].SSHAddr())
	for _, s := range hostileStrings {
		if got := runT(t, c, "printf '%s' "+Quote(s)).Stdout; got != s {
			t.Errorf("printf: Quote(%q) came back as %q", s, got)
		}
		if strings.ContainsRune(s, '\\') || strings.HasPrefix(s, "-") {
			continue // echo's own option and escape handling
		}
		if got := runT(t, c, "echo "+Quote(s)).Stdout; got != s+"\n" {
			t.Errorf("echo: Quote(%q) came back as %q", s, got)
		}
	}
	if got := runT(t, c, "ls /tmp/canary-pwned 2>/dev/null || echo none").Stdout; got != "none\n" {
		t.Fatal("a quoted string was executed")
	}
}

func TestHostKeyUnknown(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 1, "")
	h := f.Hosts[0]
	cfg := fleetConfig(f)
	cfg.KnownHostsFile = writeFile(t, "known_hosts", "")

	c, err := Dial(context.Background(), cfg, Endpoint{Address: h.SSHAddr()})
	var he *HostKeyError
	if !errors.As(err, &he) || c != nil {
		t.Fatalf("Dial = %v, %v; want a *HostKeyError", c, err)
	}
	if he.Reason != ReasonUnknownHost || he.Fingerprint != ssh.FingerprintSHA256(h.HostKey()) || he.File != cfg.KnownHostsFile {
		t.Errorf("HostKeyError = %+v", he)
	}
	if !IsFatal(err) {
		t.Error("IsFatal = false for an unknown host")
	}
	msg := err.Error()
	for _, want := range []string{cfg.KnownHostsFile, he.Fingerprint, fmt.Sprintf("ssh-keyscan -p %d -t ed25519 127.0.0.1 >> ", h.Port), "pin host_key"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
}

func TestHostKeyMismatch(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 1, "")
	h := f.Hosts[0]
	if err := h.ReplaceHostKey(); err != nil {
		t.Fatal(err)
	}
	c, err := Dial(context.Background(), fleetConfig(f), Endpoint{Address: h.SSHAddr()})
	var he *HostKeyError
	if !errors.As(err, &he) || c != nil {
		t.Fatalf("Dial = %v, %v; want a *HostKeyError", c, err)
	}
	if he.Reason != ReasonMismatch || he.File != f.KnownHostsFile || he.Line < 1 ||
		he.Fingerprint != ssh.FingerprintSHA256(h.HostKey()) {
		t.Errorf("HostKeyError = %+v", he)
	}
	if !IsFatal(err) {
		t.Error("IsFatal = false for a mismatch")
	}
	if want := fmt.Sprintf("%s:%d", f.KnownHostsFile, he.Line); !strings.Contains(err.Error(), want) {
		t.Errorf("message %q does not name %s", err, want)
	}
	// Pinning the new key is the explicit way past it.
	c, err = Dial(context.Background(), fleetConfig(f), Endpoint{Address: h.SSHAddr(), HostKey: authorizedKey(h.HostKey())})
	if err != nil {
		t.Fatalf("pinned new key: %v", err)
	}
	c.Close()
}

func TestPinnedHostKey(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 1, "")
	h := f.Hosts[0]
	cfg := fleetConfig(f)
	cfg.KnownHostsFile = writeFile(t, "known_hosts", "") // would say "unknown host": the pin replaces it

	c, err := Dial(context.Background(), cfg, Endpoint{Address: h.SSHAddr(), HostKey: authorizedKey(h.HostKey())})
	if err != nil {
		t.Fatalf("pinned key refused: %v", err)
	}
	if r := runT(t, c, "echo ok"); r.Stdout != "ok\n" {
		t.Fatalf("%+v", r)
	}
	c.Close()

	_, other := genKey(t)
	c, err = Dial(context.Background(), cfg, Endpoint{Address: h.SSHAddr(), HostKey: authorizedKey(other)})
	var he *HostKeyError
	if !errors.As(err, &he) || c != nil || he.Reason != ReasonMismatch || !IsFatal(err) {
		t.Fatalf("wrong pinned key: %v", err)
	}
	if !strings.Contains(err.Error(), "host_key") || !strings.Contains(err.Error(), ssh.FingerprintSHA256(other)) {
		t.Errorf("message %q", err)
	}
	// A pinned key of another type is refused in negotiation, as a mismatch.
	rsaPub := rsaPublicKey(t)
	_, err = Dial(context.Background(), cfg, Endpoint{Address: h.SSHAddr(), HostKey: authorizedKey(rsaPub)})
	if !errors.As(err, &he) || he.Reason != ReasonMismatch || !IsFatal(err) {
		t.Fatalf("pinned RSA key, ed25519 host: %v", err)
	}
}

func TestAuthFailure(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 1, "")
	cfg := fleetConfig(f)
	cfg.PrivateKey, _ = genKey(t)
	c, err := Dial(context.Background(), cfg, Endpoint{Address: f.Hosts[0].SSHAddr()})
	var ae *AuthError
	if !errors.As(err, &ae) || c != nil {
		t.Fatalf("Dial = %v; want *AuthError", err)
	}
	if ae.User != f.User || ae.Address != f.Hosts[0].SSHAddr() || !IsFatal(err) {
		t.Errorf("AuthError = %+v, fatal %v", ae, IsFatal(err))
	}
	assertNoSecrets(t, err.Error(), cfg)

	cfg.User = "no-such-user-canary"
	cfg.PrivateKey = f.ClientKey
	if _, err := Dial(context.Background(), cfg, Endpoint{Address: f.Hosts[0].SSHAddr()}); !errors.As(err, &ae) {
		t.Fatalf("unknown user: %v", err)
	}
}

func TestEncryptedKeyAuth(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 1, "")
	cfg := fleetConfig(f)
	cfg.PrivateKeyPassphrase = []byte("s3cret passphrase")
	cfg.PrivateKey = encryptKey(t, f.ClientKey, cfg.PrivateKeyPassphrase)
	c := dialT(t, cfg, f.Hosts[0].SSHAddr())
	if r := runT(t, c, "echo ok"); r.Stdout != "ok\n" {
		t.Fatalf("%+v", r)
	}
	cfg.PrivateKeyPassphrase = []byte("wrong")
	_, err := Dial(context.Background(), cfg, Endpoint{Address: f.Hosts[0].SSHAddr()})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "private_key_passphrase" || !IsFatal(err) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	assertNoSecrets(t, err.Error(), cfg)
}

func TestInsecureIgnoreHostKey(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 1, "")
	h := f.Hosts[0]
	if err := h.ReplaceHostKey(); err != nil { // not in any known_hosts now
		t.Fatal(err)
	}
	cfg := fleetConfig(f)
	cfg.KnownHostsFile = ""
	cfg.InsecureIgnoreHostKey = true
	c := dialT(t, cfg, h.SSHAddr())
	if r := runT(t, c, "echo ok"); r.Stdout != "ok\n" {
		t.Fatalf("%+v", r)
	}
}

func TestDialStoppedSSHD(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 1, "")
	h := f.Hosts[0]
	if err := h.StopSSHD(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c, err := Dial(context.Background(), fleetConfig(f), Endpoint{Address: h.SSHAddr()})
	if err == nil {
		c.Close()
		t.Fatal("Dial to a stopped sshd succeeded")
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("Dial failed after %v, want quickly", elapsed)
	}
	if IsFatal(err) || !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), h.SSHAddr()) {
		t.Errorf("err = %v (fatal %v); want a non-fatal connection refused naming the address", err, IsFatal(err))
	}
	// It recovers when sshd is back.
	if err := h.StartSSHD(); err != nil {
		t.Fatal(err)
	}
	dialT(t, fleetConfig(f), h.SSHAddr())
}

// TestFrozenHost covers a host that stops responding: the handshake deadline
// for new connections, ctx cancellation of a dial, the keepalive of an
// established connection, and a command hanging on it.
func TestFrozenHost(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 1, "")
	h := f.Hosts[0]
	cfg := fleetConfig(f)
	cfg.KeepaliveInterval = 200 * time.Millisecond
	cfg.KeepaliveCountMax = 3
	alive := dialT(t, cfg, h.SSHAddr())
	noKeepalive := cfg
	noKeepalive.KeepaliveInterval = -1
	hung := dialT(t, noKeepalive, h.SSHAddr())
	// Keepalive is tied to the Dial context: once it is done, no keepalive
	// runs, so this connection is not closed by one.
	kctx, kcancel := context.WithCancel(context.Background())
	ctxBound, err := Dial(kctx, cfg, Endpoint{Address: h.SSHAddr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctxBound.Close() })
	kcancel()

	if err := h.Freeze(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Thaw() })
	frozenAt := time.Now()

	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // new dial: the handshake deadline fires
		defer wg.Done()
		cfg := cfg
		cfg.ConnectTimeout = time.Second
		start := time.Now()
		c, err := Dial(context.Background(), cfg, Endpoint{Address: h.SSHAddr()})
		elapsed := time.Since(start)
		var te *TimeoutError
		if !errors.As(err, &te) || te.Op != "handshake" || c != nil || IsFatal(err) {
			t.Errorf("Dial to a frozen host = %v; want a non-fatal handshake *TimeoutError", err)
		}
		if elapsed < 900*time.Millisecond || elapsed > 2*time.Second {
			t.Errorf("handshake timeout after %v, want about 1s", elapsed)
		}
	}()
	go func() { // ctx cancellation aborts a dial
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := Dial(ctx, cfg, Endpoint{Address: h.SSHAddr()})
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
			t.Errorf("Dial with a 300ms ctx = %v after %v", err, time.Since(start))
		}
	}()
	go func() { // a command on an established connection without keepalive
		defer wg.Done()
		start := time.Now()
		_, err := hung.Run(context.Background(), "echo never", RunOptions{Timeout: time.Second, KillGrace: 200 * time.Millisecond})
		var te *TimeoutError
		if !errors.As(err, &te) || te.Terminated {
			t.Errorf("Run on a frozen host = %v", err)
		}
		if elapsed := time.Since(start); elapsed > 3*time.Second {
			t.Errorf("Run on a frozen host returned after %v", elapsed)
		}
	}()

	select { // keepalive: at most Interval*(CountMax+1) plus scheduling slack
	case <-alive.Done():
		elapsed := time.Since(frozenAt)
		if elapsed > 1500*time.Millisecond {
			t.Errorf("keepalive closed the connection after %v, want <= ~800ms", elapsed)
		}
		if err := alive.Err(); err == nil || !strings.Contains(err.Error(), "keepalive") {
			t.Errorf("Err() = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("keepalive did not close the connection to a frozen host")
	}
	select {
	case <-ctxBound.Done():
		t.Error("keepalive ran after its context was done")
	default:
	}
	_, err = alive.Run(context.Background(), "echo hi", RunOptions{})
	if err == nil || IsFatal(err) || !strings.Contains(err.Error(), "keepalive") {
		t.Errorf("Run on a dead connection = %v", err)
	}
	wg.Wait()
}

func TestCloseAndDone(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 1, "")
	c := dialT(t, fleetConfig(f), f.Hosts[0].SSHAddr())
	select {
	case <-c.Done():
		t.Fatal("Done closed on a live connection")
	default:
	}
	if c.Err() != nil {
		t.Fatalf("Err() = %v on a live connection", c.Err())
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	<-c.Done()
	if !errors.Is(c.Err(), ErrClosed) || c.Close() != nil {
		t.Fatalf("after Close: Err() = %v", c.Err())
	}
	if _, err := c.Run(context.Background(), "true", RunOptions{}); err == nil {
		t.Fatal("Run after Close succeeded")
	}

	// A server-side close also closes Done.
	c = dialT(t, fleetConfig(f), f.Hosts[0].SSHAddr())
	if err := f.Hosts[0].StopSSHD(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the server went away")
	}
}

func TestUploadAndRestore(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 1, "")
	h := f.Hosts[0]
	c := dialT(t, fleetConfig(f), h.SSHAddr())
	ctx := context.Background()
	if err := os.Mkdir(filepath.Join(h.Dir, "conf dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	const base = "agent's $(touch pwned) `x`.conf"
	const name = "conf dir/" + base
	path := "~/" + name
	q := `"$HOME"/` + Quote(name)
	state := func() string {
		return runT(t, c, "for f in "+q+" "+q+".canary-backup; do if [ -e \"$f\" ]; then "+
			"printf '%s %s\\n' \"$(stat -c %a \"$f\")\" \"$(cat \"$f\")\"; else echo missing; fi; done; ls -A \"$HOME/conf dir\"").Stdout
	}

	// Create.
	u1, err := c.Upload(ctx, path, []byte("v1"), 0o640, UploadOptions{Backup: true})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("v1"))
	if u1.Existed || u1.BackupPath != "" || u1.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("first upload: %+v", u1)
	}
	if got, want := state(), "640 v1\nmissing\n"+base+"\n"; got != want {
		t.Fatalf("after create:\n%s\nwant\n%s", got, want)
	}

	// Replace, with a backup.
	u2, err := c.Upload(ctx, path, []byte("v2"), 0o600, UploadOptions{Backup: true})
	if err != nil {
		t.Fatal(err)
	}
	if !u2.Existed || u2.BackupPath != path+".canary-backup" {
		t.Fatalf("second upload: %+v", u2)
	}
	if got, want := state(), "600 v2\n640 v1\n"+base+"\n"+base+".canary-backup\n"; got != want {
		t.Fatalf("after replace:\n%s\nwant\n%s", got, want)
	}
	if _, err := os.Stat(filepath.Join(h.Dir, "pwned")); err == nil {
		t.Fatal("the path was executed")
	}

	// Restore puts the old content and mode back (idempotently).
	for range 2 {
		if err := c.Restore(ctx, path, u2); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := state(), "640 v1\n640 v1\n"+base+"\n"+base+".canary-backup\n"; got != want {
		t.Fatalf("after restore:\n%s\nwant\n%s", got, want)
	}

	// Restoring the first upload removes the file: it did not exist before.
	if err := c.Restore(ctx, path, u1); err != nil {
		t.Fatal(err)
	}
	if got := state(); !strings.HasPrefix(got, "missing\n") {
		t.Fatalf("after restoring a created file:\n%s", got)
	}

	// Absolute paths, a custom suffix, and no backup.
	abs := filepath.Join(h.Dir, "abs.conf")
	if _, err := c.Upload(ctx, abs, []byte("a1"), 0, UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	u, err := c.Upload(ctx, abs, []byte("a2"), 0o755, UploadOptions{Backup: true, BackupSuffix: ".bak"})
	if err != nil || u.BackupPath != abs+".bak" {
		t.Fatalf("%+v %v", u, err)
	}
	if got := runT(t, c, "stat -c %a "+abs+" "+abs+".bak; cat "+abs+" "+abs+".bak").Stdout; got != "755\n644\na2a1" {
		t.Fatalf("abs: %q", got)
	}
	u, err = c.Upload(ctx, abs, []byte("a3"), 0o644, UploadOptions{})
	if err != nil || !u.Existed || u.BackupPath != "" {
		t.Fatalf("%+v %v", u, err)
	}
	if err := c.Restore(ctx, abs, u); err == nil || !strings.Contains(err.Error(), "no backup") {
		t.Fatalf("Restore without backup = %v", err)
	}

	// Large content streams intact; failures say why.
	big := bytes.Repeat([]byte("0123456789abcdef"), 256<<10) // 4 MiB
	if _, err := c.Upload(ctx, "~/big.bin", big, 0o600, UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(h.Dir, "big.bin")); err != nil || fi.Size() != int64(len(big)) {
		t.Fatalf("big upload: %v", err)
	}
	if _, err := c.Upload(ctx, "~/no/such/dir/x", []byte("x"), 0, UploadOptions{}); err == nil ||
		!strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing dir: %v", err)
	}
	if _, err := c.Upload(ctx, "~/conf dir", []byte("x"), 0, UploadOptions{}); err == nil ||
		!strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("directory: %v", err)
	}
	if got := runT(t, c, "ls -A \"$HOME\" | grep -c canary- || true").Stdout; got != "0\n" {
		t.Fatalf("temporary files left behind: %s", got)
	}
}

func TestDialContextReachesAgent(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 1, "1.0.0")
	h := f.Hosts[0]
	c := dialT(t, fleetConfig(f), h.SSHAddr())
	hc := &http.Client{Transport: &http.Transport{DialContext: c.DialContext}, Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", h.AgentPort))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"version":"1.0.0"`) {
		t.Fatalf("healthz: %d %s", resp.StatusCode, body)
	}
	// Refused ports are errors naming the target.
	if _, err := c.DialContext(context.Background(), "tcp", "127.0.0.1:1"); err == nil ||
		!strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("dial to a closed port: %v", err)
	}
}

func rsaPublicKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ssh.NewPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startAgent runs a real ssh-agent holding keyFiles and returns its socket.
func startAgent(t *testing.T, keyFiles ...string) string {
	t.Helper()
	if _, err := exec.LookPath("ssh-agent"); err != nil {
		t.Skip("ssh-agent not installed")
	}
	dir, err := os.MkdirTemp("", "agent") // short path: unix socket names are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	cmd := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	for i := 0; ; i++ {
		if conn, err := net.Dial("unix", sock); err == nil { // bound and listening
			conn.Close()
			break
		}
		if i == 100 {
			t.Fatal("ssh-agent socket did not appear")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, kf := range keyFiles {
		add := exec.Command("ssh-add", kf)
		add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
		if out, err := add.CombinedOutput(); err != nil {
			t.Fatalf("ssh-add: %v: %s", err, out)
		}
	}
	return sock
}

func TestAgentAuth(t *testing.T) { // not parallel: sets SSH_AUTH_SOCK
	f := startFleet(t, 1, "")
	h := f.Hosts[0]
	sock := startAgent(t, f.ClientKeyFile)
	cfg := fleetConfig(f)
	cfg.PrivateKey = nil
	cfg.UseAgent = true

	t.Run("AgentSocket", func(t *testing.T) {
		t.Setenv("SSH_AUTH_SOCK", "")
		cfg := cfg
		cfg.AgentSocket = sock
		c := dialT(t, cfg, h.SSHAddr())
		if r := runT(t, c, "echo agent"); r.Stdout != "agent\n" {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("SSH_AUTH_SOCK", func(t *testing.T) {
		t.Setenv("SSH_AUTH_SOCK", sock)
		c := dialT(t, cfg, h.SSHAddr())
		if r := runT(t, c, "echo agent"); r.Stdout != "agent\n" {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("agent key after a wrong private key", func(t *testing.T) {
		t.Setenv("SSH_AUTH_SOCK", sock)
		cfg := cfg
		cfg.PrivateKey, _ = genKey(t)
		dialT(t, cfg, h.SSHAddr())
	})
	t.Run("empty agent", func(t *testing.T) {
		cfg := cfg
		cfg.AgentSocket = startAgent(t)
		_, err := Dial(context.Background(), cfg, Endpoint{Address: h.SSHAddr()})
		var ae *AuthError
		if !errors.As(err, &ae) || !IsFatal(err) {
			t.Fatalf("empty agent: %v", err)
		}
	})
}

func TestBastion(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 2, "")
	bastion, target := f.Hosts[0], f.Hosts[1]
	cfg := fleetConfig(f)
	cfg.Bastion = &Endpoint{Address: bastion.SSHAddr()}

	c := dialT(t, cfg, target.SSHAddr())
	if c.bastion == nil {
		t.Fatal("no bastion hop")
	}
	if r := runT(t, c, "echo $DEVFLEET_HOST"); r.Stdout != target.Name+"\n" {
		t.Fatalf("reached %q, want %s", r.Stdout, target.Name)
	}
	// Guards dial through the target, not the bastion.
	if _, err := c.DialContext(context.Background(), "tcp", target.SSHAddr()); err != nil {
		t.Fatal(err)
	}
	// Close closes both hops.
	bastionDone := make(chan struct{})
	go func() { _ = c.bastion.Wait(); close(bastionDone) }()
	c.Close()
	select {
	case <-bastionDone:
	case <-time.After(3 * time.Second):
		t.Fatal("bastion connection still open after Close")
	}

	// Both hops are verified with the same rules.
	onlyBastion := cfg
	onlyBastion.KnownHostsFile = writeFile(t, "kh1", bastion.HostKeyLine()+"\n")
	_, err := Dial(context.Background(), onlyBastion, Endpoint{Address: target.SSHAddr()})
	var he *HostKeyError
	if !errors.As(err, &he) || he.Address != target.SSHAddr() || he.Reason != ReasonUnknownHost || !IsFatal(err) {
		t.Fatalf("unknown target behind a known bastion: %v", err)
	}
	if !strings.Contains(err.Error(), "run ssh-keyscan on the bastion") {
		t.Errorf("message %q", err)
	}
	onlyTarget := cfg
	onlyTarget.KnownHostsFile = writeFile(t, "kh2", target.HostKeyLine()+"\n")
	_, err = Dial(context.Background(), onlyTarget, Endpoint{Address: target.SSHAddr()})
	if !errors.As(err, &he) || he.Address != bastion.SSHAddr() || !IsFatal(err) || !strings.Contains(err.Error(), "bastion") {
		t.Fatalf("unknown bastion: %v", err)
	}
	// A pinned bastion key works like a pinned target key.
	pinned := onlyTarget
	pinned.Bastion = &Endpoint{Address: bastion.SSHAddr(), HostKey: authorizedKey(bastion.HostKey())}
	dialT(t, pinned, target.SSHAddr())

	// A target the bastion cannot reach is a transient error.
	if err := target.StopSSHD(); err != nil {
		t.Fatal(err)
	}
	_, err = Dial(context.Background(), cfg, Endpoint{Address: target.SSHAddr()})
	if err == nil || IsFatal(err) || !strings.Contains(err.Error(), "cannot connect to "+target.SSHAddr()) {
		t.Fatalf("stopped target behind bastion: %v", err)
	}
}

// startDualKeySSHD runs an sshd with both an RSA and an ed25519 host key,
// accepting the fleet's client key. devfleet hosts have an ed25519 key only.
func startDualKeySSHD(t *testing.T, f *devfleet.Fleet) (addr string, rsaKey, edKey ssh.PublicKey) {
	t.Helper()
	dir := t.TempDir()
	for _, kt := range []string{"rsa", "ed25519"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", kt, "-N", "", "-f", filepath.Join(dir, kt)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
	}
	readPub := func(name string) ssh.PublicKey {
		b, err := os.ReadFile(filepath.Join(dir, name+".pub"))
		if err != nil {
			t.Fatal(err)
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey(b)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	signer, err := ssh.ParsePrivateKey(f.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := strings.Join([]string{
		"Port " + port, "ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(dir, "rsa"), "HostKey " + filepath.Join(dir, "ed25519"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"), "PidFile " + filepath.Join(dir, "pid"),
		"StrictModes no", "UsePAM no", "PermitRootLogin prohibit-password", "AllowUsers " + f.User,
		"LogLevel ERROR", "",
	}, "\n")
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	sshd := "/usr/sbin/sshd"
	if p, err := exec.LookPath("sshd"); err == nil {
		sshd = p
	}
	cmd := exec.Command(sshd, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	for i := 0; ; i++ {
		if conn, err := net.Dial("tcp", addr); err == nil {
			conn.Close()
			break
		}
		if i == 250 {
			t.Fatalf("sshd did not start: %s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return addr, readPub("rsa"), readPub("ed25519")
}

// TestHostKeyAlgorithmsNegotiateRecordedKey: a host with RSA and ed25519
// keys, recorded with only one of them, must negotiate the recorded one.
// x/crypto's default preference puts RSA before ed25519, so without
// HostKeyAlgorithms from known_hosts this host would be a "mismatch".
func TestHostKeyAlgorithmsNegotiateRecordedKey(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 1, "")
	addr, rsaKey, edKey := startDualKeySSHD(t, f)
	_, port, _ := net.SplitHostPort(addr)
	pattern := "[127.0.0.1]:" + port

	for _, k := range []ssh.PublicKey{edKey, rsaKey} {
		t.Run(k.Type(), func(t *testing.T) {
			cfg := fleetConfig(f)
			cfg.KnownHostsFile = writeFile(t, "known_hosts", knownhosts.Line([]string{pattern}, k)+"\n")
			c := dialT(t, cfg, addr)
			if r := runT(t, c, "echo ok"); r.Stdout != "ok\n" {
				t.Fatalf("%+v", r)
			}
			// Hashed entries work the same.
			cfg.KnownHostsFile = writeFile(t, "hashed", knownhosts.Line([]string{knownhosts.HashHostname(pattern)}, k)+"\n")
			dialT(t, cfg, addr)
		})
	}

	// Proof that the restriction matters: the library default negotiates RSA.
	cb, err := knownhosts.New(writeFile(t, "kh", knownhosts.Line([]string{pattern}, edKey)+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.ParsePrivateKey(f.ClientKey)
	_, err = ssh.Dial("tcp", addr, &ssh.ClientConfig{User: f.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: cb, Timeout: 5 * time.Second})
	t.Logf("for comparison, x/crypto without HostKeyAlgorithms: %v", err)

	// A host offering none of the recorded key types is a fatal mismatch.
	cfg := fleetConfig(f)
	cfg.KnownHostsFile = writeFile(t, "ecdsa", knownhosts.Line([]string{pattern}, ecdsaPublicKey(t))+"\n")
	_, err = Dial(context.Background(), cfg, Endpoint{Address: addr})
	var he *HostKeyError
	if !errors.As(err, &he) || he.Reason != ReasonMismatch || he.File != cfg.KnownHostsFile || he.Line != 1 || !IsFatal(err) {
		t.Fatalf("no recorded key type offered: %v", err)
	}
}

func ecdsaPublicKey(t *testing.T) ssh.PublicKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := ssh.NewPublicKey(&k.PublicKey)
	return p
}

func TestDefaultKnownHostsFile(t *testing.T) { // not parallel: sets HOME
	f := startFleet(t, 1, "")
	h := f.Hosts[0]
	home := t.TempDir()
	t.Setenv("HOME", home)
	cfg := fleetConfig(f)
	cfg.KnownHostsFile = ""

	_, err := Dial(context.Background(), cfg, Endpoint{Address: h.SSHAddr()})
	var ce *ConfigError
	want := filepath.Join(home, ".ssh", "known_hosts")
	if !errors.As(err, &ce) || !IsFatal(err) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "ssh-keyscan") {
		t.Fatalf("missing ~/.ssh/known_hosts: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(want, []byte(h.HostKeyLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dialT(t, cfg, h.SSHAddr())
}
