package ssh

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestQuoteTable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "''"},
		{"abc", "abc"},
		{"A-Z_0.9+:@%/=,-", "A-Z_0.9+:@%/=,-"},
		{"a!b", "'a!b'"},
		{"a.b+c:d@e%f/g=h,i-j", "a.b+c:d@e%f/g=h,i-j"},
		{"/opt/agent/install", "/opt/agent/install"},
		{"2.4.0", "2.4.0"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"'", `''\'''`},
		{"$(id)", "'$(id)'"},
		{"`id`", "'`id`'"},
		{"a;b|c&d", "'a;b|c&d'"},
		{"line1\nline2", "'line1\nline2'"},
		{"~/x", "'~/x'"},
		{"*", "'*'"},
		{`back\slash`, `'back\slash'`},
	}
	for _, tt := range tests {
		if got := Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// hostileStrings must survive a trip through a real shell unchanged.
var hostileStrings = []string{
	"",
	"plain",
	"two words",
	"$(touch /tmp/canary-pwned)",
	"`touch /tmp/canary-pwned`",
	"${HOME}",
	"$HOME",
	"it's",
	`"double"`,
	`'single'`,
	"'\"'\"'",
	"a;b|c&d>e<f",
	"line1\nline2\n",
	"tab\there",
	`back\slash\n`,
	"*?[a-z]{1,2}~!#",
	"-n",
	"--",
	"\u00e9\u00e8 \u2603",
	"trailing '",
}

func TestQuoteRoundTripsThroughLocalShells(t *testing.T) {
	for _, sh := range []string{"/bin/sh", "/bin/bash", "/bin/dash"} {
		if _, err := os.Stat(sh); err != nil {
			continue
		}
		for _, s := range hostileStrings {
			// printf rather than echo: echo interprets backslashes in dash.
			out, err := exec.Command(sh, "-c", "printf '%s' "+Quote(s)).Output()
			if err != nil {
				t.Fatalf("%s: %q: %v", sh, s, err)
			}
			if string(out) != s {
				t.Errorf("%s: Quote(%q) came back as %q", sh, s, out)
			}
		}
	}
	if _, err := os.Stat("/tmp/canary-pwned"); err == nil {
		t.Fatal("a quoted string was executed")
	}
}

func TestCaptureKeepsHeadAndTail(t *testing.T) {
	c := newCapture(10)
	for i := 0; i < 100; i++ {
		fmt.Fprintf(c, "%02d", i) // 200 bytes in 2-byte writes
	}
	got, truncated := c.String()
	want := "00010[... 190 bytes truncated ...]79899"
	if got != want || !truncated {
		t.Fatalf("got %q (truncated %v), want %q", got, truncated, want)
	}

	c = newCapture(10)
	_, _ = c.Write([]byte("0123456789")) // exactly the bound
	if got, truncated := c.String(); got != "0123456789" || truncated {
		t.Fatalf("at the bound: got %q (truncated %v)", got, truncated)
	}
	_, _ = c.Write([]byte("A"))
	if got, truncated := c.String(); got != "01234[... 1 bytes truncated ...]6789A" || !truncated {
		t.Fatalf("one over: got %q", got)
	}

	c = newCapture(9) // odd bound: 4 head, 5 tail
	_, _ = c.Write(bytes.Repeat([]byte("x"), 1000))
	_, _ = c.Write([]byte("tail!"))
	if got, _ := c.String(); got != "xxxx[... 996 bytes truncated ...]tail!" {
		t.Fatalf("odd bound: got %q", got)
	}
}

func TestMarkerFilter(t *testing.T) {
	var out bytes.Buffer
	f := newMarkerFilter("MK=", &out)
	for _, chunk := range []string{"noise from .bashrc\nMK", "=4242", "\nreal ", "stderr\n"} {
		_, _ = f.Write([]byte(chunk))
	}
	f.flush()
	if f.PGID() != 4242 {
		t.Fatalf("pgid = %d", f.PGID())
	}
	if out.String() != "noise from .bashrc\nreal stderr\n" {
		t.Fatalf("filtered stderr = %q", out.String())
	}
	select {
	case <-f.known:
	default:
		t.Fatal("known not closed")
	}

	out.Reset()
	f = newMarkerFilter("MK=", &out)
	_, _ = f.Write([]byte("no marker, no newline"))
	f.flush()
	if out.String() != "no marker, no newline" || f.PGID() != 0 {
		t.Fatalf("got %q pgid %d", out.String(), f.PGID())
	}
}

func TestRemotePath(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"/etc/agent.conf", "/etc/agent.conf", ""},
		{"~/agent.conf", `"$HOME"/agent.conf`, ""},
		{"~/my dir/it's", `"$HOME"/'my dir/it'\''s'`, ""},
		{"rel/x", "rel/x", ""},
		{"", "", "empty"},
		{"/etc/", "", "directory"},
		{"~", "", "directory"},
		{"~root/x", "", "only a ~/ prefix"},
	}
	for _, tt := range tests {
		got, err := remotePath(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("remotePath(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("remotePath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestHostPort(t *testing.T) {
	tests := []struct{ in, want string }{
		{"host", "host:22"},
		{"host:2222", "host:2222"},
		{"10.0.0.1", "10.0.0.1:22"},
		{"[::1]", "[::1]:22"},
		{"[::1]:2200", "[::1]:2200"},
		{"::1", "[::1]:22"},
		{"", ""},
		{"host:0", ""},
		{"host:x", ""},
		{"fe80::zz", ""},
	}
	for _, tt := range tests {
		got, err := hostPort(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("hostPort(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("hostPort(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func genKey(t *testing.T) (priv []byte, pub ssh.PublicKey) {
	t.Helper()
	pk, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(sk, "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ssh.NewPublicKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block), p
}

// encryptKey returns a copy of key encrypted with passphrase by ssh-keygen,
// with one KDF round to keep the tests fast.
func encryptKey(t *testing.T, key, passphrase []byte) []byte {
	t.Helper()
	f := filepath.Join(t.TempDir(), "id")
	if err := os.WriteFile(f, key, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ssh-keygen", "-q", "-p", "-a", "1", "-P", "", "-N", string(passphrase), "-f", f).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -p: %v: %s", err, out)
	}
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidate(t *testing.T) {
	key, pub := genKey(t)
	passphrase := []byte("correct horse battery staple")
	encKey := encryptKey(t, key, passphrase)
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	badKH := filepath.Join(dir, "bad_known_hosts")
	if err := os.WriteFile(badKH, []byte("host ssh-ed25519 not-base64!!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "no-agent.sock")

	tests := []struct {
		name  string
		cfg   Config
		field string // "" = valid
		want  string
	}{
		{"valid key", Config{User: "u", PrivateKey: key, KnownHostsFile: kh}, "", ""},
		{"valid encrypted key", Config{User: "u", PrivateKey: encKey, PrivateKeyPassphrase: passphrase}, "", ""},
		{"no user", Config{PrivateKey: key}, "user", "set user"},
		{"no auth", Config{User: "u"}, "private_key", "use_agent = true"},
		{"encrypted without passphrase", Config{User: "u", PrivateKey: encKey}, "private_key", "set private_key_passphrase"},
		{"wrong passphrase", Config{User: "u", PrivateKey: encKey, PrivateKeyPassphrase: []byte("nope-nope")},
			"private_key_passphrase", "does not decrypt"},
		{"public key", Config{User: "u", PrivateKey: ssh.MarshalAuthorizedKey(pub)}, "private_key", "public key"},
		{"path instead of key", Config{User: "u", PrivateKey: []byte("~/.ssh/id_ed25519")}, "private_key", "not to its path"},
		{"garbage PEM", Config{User: "u", PrivateKey: []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n")},
			"private_key", "cannot be parsed"},
		{"missing known_hosts", Config{User: "u", PrivateKey: key, KnownHostsFile: filepath.Join(dir, "nope")},
			"known_hosts_file", "ssh-keyscan"},
		{"malformed known_hosts", Config{User: "u", PrivateKey: key, KnownHostsFile: badKH}, "known_hosts_file", badKH + ":1"},
		{"agent socket missing", Config{User: "u", UseAgent: true, AgentSocket: sock}, "agent_socket", "is ssh-agent running"},
		{"insecure and known_hosts", Config{User: "u", PrivateKey: key, KnownHostsFile: kh, InsecureIgnoreHostKey: true},
			"insecure_ignore_host_key", "remove one"},
		{"bad bastion", Config{User: "u", PrivateKey: key, Bastion: &Endpoint{Address: "b:99999"}}, "bastion.host", "port"},
		{"bad bastion key", Config{User: "u", PrivateKey: key, Bastion: &Endpoint{Address: "b", HostKey: "nope"}},
			"bastion.host_key", "authorized_keys format"},
		{"negative timeout", Config{User: "u", PrivateKey: key, ConnectTimeout: -1}, "connect_timeout", "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "no auth" || tt.name == "agent socket missing" {
				t.Setenv("SSH_AUTH_SOCK", "")
			}
			err := tt.cfg.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Validate() = %v, want a *ConfigError", err)
			}
			found := false
			for _, e := range unjoin(err) {
				if errors.As(e, &ce) && ce.Field == tt.field && strings.Contains(ce.Error(), tt.want) {
					found = true
				}
			}
			if !found {
				t.Fatalf("Validate() = %v\nwant field %s mentioning %q", err, tt.field, tt.want)
			}
			if !IsFatal(err) {
				t.Errorf("IsFatal(%v) = false", err)
			}
			assertNoSecrets(t, err.Error(), tt.cfg)
		})
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// assertNoSecrets fails if s shows any part of the key or the passphrase.
func assertNoSecrets(t *testing.T, s string, cfg Config) {
	t.Helper()
	if len(cfg.PrivateKeyPassphrase) > 0 && strings.Contains(s, string(cfg.PrivateKeyPassphrase)) {
		t.Fatalf("passphrase leaked: %s", s)
	}
	if !bytes.Contains(cfg.PrivateKey, []byte("-----BEGIN")) {
		return // not key material
	}
	for _, line := range strings.Split(string(cfg.PrivateKey), "\n") {
		line = strings.TrimSpace(line)
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") && strings.Contains(s, line) {
			t.Fatalf("private key material leaked: %s", s)
		}
	}
}

func TestConfigStringRedactsSecrets(t *testing.T) {
	key, _ := genKey(t)
	cfg := Config{User: "deploy", PrivateKey: key, PrivateKeyPassphrase: []byte("pass-phrase-123")}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		s := fmt.Sprintf(f, cfg)
		assertNoSecrets(t, s, cfg)
		if !strings.Contains(s, "<redacted>") || !strings.Contains(s, "deploy") {
			t.Errorf("%s: %s", f, s)
		}
	}
	s := fmt.Sprintf("%v", &cfg)
	assertNoSecrets(t, s, cfg)
}

// TestHostKeyAlgorithmsFromKnownHosts checks that HostKeyAlgorithms is
// filled from the entries recorded for the host, whatever their pattern form.
func TestHostKeyAlgorithmsFromKnownHosts(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaPub, _ := ssh.NewPublicKey(&rsaKey.PublicKey)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecPub, _ := ssh.NewPublicKey(&ecKey.PublicKey)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	edSSH, _ := ssh.NewPublicKey(edPub)

	lines := []string{
		knownhosts.Line([]string{"plain.example"}, edSSH),
		knownhosts.Line([]string{"plain.example"}, rsaPub),
		knownhosts.Line([]string{"[port.example]:2222"}, ecPub),
		knownhosts.Line([]string{knownhosts.HashHostname("hashed.example")}, rsaPub),
		knownhosts.Line([]string{knownhosts.HashHostname("[10.1.2.3]:2200")}, edSSH),
		knownhosts.Line([]string{"*.wild.example"}, ecPub),
		"@cert-authority *.ca.example " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(edSSH))),
	}
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{User: "u", KnownHostsFile: kh}

	rsaAlgos := []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	tests := []struct {
		addr string
		want []string
	}{
		{"plain.example:22", append([]string{ssh.KeyAlgoED25519}, rsaAlgos...)},
		{"port.example:2222", []string{ssh.KeyAlgoECDSA256}},
		{"port.example:22", nil}, // unknown: library default
		{"hashed.example:22", rsaAlgos},
		{"10.1.2.3:2200", []string{ssh.KeyAlgoED25519}},
		{"a.wild.example:22", []string{ssh.KeyAlgoECDSA256}},
		{"h.ca.example:22", nil}, // certificates: library default
	}
	for _, tt := range tests {
		v, err := newVerifier(cfg, Endpoint{Address: tt.addr}, tt.addr, "")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(v.algos, tt.want) {
			t.Errorf("%s: HostKeyAlgorithms = %v, want %v", tt.addr, v.algos, tt.want)
		}
	}

	// A pinned key replaces known_hosts and sets the algorithms.
	v, err := newVerifier(cfg, Endpoint{Address: "plain.example", HostKey: string(ssh.MarshalAuthorizedKey(ecPub))},
		"plain.example:22", "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(v.algos, []string{ssh.KeyAlgoECDSA256}) {
		t.Errorf("pinned: HostKeyAlgorithms = %v", v.algos)
	}
	if err := v.callback("plain.example:22", &net.TCPAddr{}, edSSH); err == nil {
		t.Error("pinned: a key recorded in known_hosts but not pinned was accepted")
	}
	if err := v.callback("plain.example:22", &net.TCPAddr{}, ecPub); err != nil {
		t.Errorf("pinned: pinned key refused: %v", err)
	}
}
