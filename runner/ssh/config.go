package ssh

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/crypto/ssh"
)

// Defaults applied by Dial, Run and Upload.
const (
	DefaultConnectTimeout    = 15 * time.Second
	DefaultKeepaliveInterval = 15 * time.Second
	DefaultKeepaliveCountMax = 3
	DefaultMaxOutput         = 64 << 10
	DefaultBackupSuffix      = ".canary-backup"
	DefaultKillGrace         = 2 * time.Second
	// DefaultMaxSessions stays below OpenSSH's MaxSessions (10) so that the
	// sessions that terminate timed-out commands can always be opened.
	DefaultMaxSessions = 8
)

// Config says how to connect and authenticate. The zero values of the
// optional fields select the documented defaults. Config's String and
// GoString methods redact the private key and the passphrase, so a Config can
// be logged safely with %v, %+v and %#v.
type Config struct {
	User                  string
	PrivateKey            []byte // PEM or OpenSSH format; sensitive, never logged or put in errors
	PrivateKeyPassphrase  []byte
	UseAgent              bool   // ssh-agent via AgentSocket or $SSH_AUTH_SOCK
	AgentSocket           string // default $SSH_AUTH_SOCK
	KnownHostsFile        string // default ~/.ssh/known_hosts when no other host key source is set; "~/" is expanded
	InsecureIgnoreHostKey bool   // explicit opt-in only: disables host key verification
	Bastion               *Endpoint
	BastionUser           string        // default User
	ConnectTimeout        time.Duration // covers TCP connect AND the SSH handshake, both hops; default 15s
	KeepaliveInterval     time.Duration // default 15s; 0 uses the default, negative disables keepalives
	KeepaliveCountMax     int           // default 3: close the connection after this many unanswered keepalives

	// MaxSessions bounds the concurrent Run/Upload/Restore sessions on one
	// connection (further calls wait, within their context and timeout).
	// Default 8; keep it below the server's MaxSessions (OpenSSH: 10).
	MaxSessions int
	// Logger receives debug and warning messages (never secrets). Default: silent.
	Logger hclog.Logger
}

// Endpoint is a host to connect to.
type Endpoint struct {
	Address string // "host" or "host:port" (default port 22); IPv6 in brackets
	// HostKey optionally pins the host's public key in authorized_keys format
	// ("ssh-ed25519 AAAA..."). When set it is the only accepted key and
	// known_hosts is not consulted for this endpoint.
	HostKey string
}

// String redacts secrets.
func (c Config) String() string {
	redact := func(b []byte) string {
		if len(b) == 0 {
			return `""`
		}
		return "<redacted>"
	}
	bastion := "<nil>"
	if c.Bastion != nil {
		bastion = fmt.Sprintf("{Address:%q HostKey:%q}", c.Bastion.Address, c.Bastion.HostKey)
	}
	return fmt.Sprintf("sshx.Config{User:%q PrivateKey:%s PrivateKeyPassphrase:%s UseAgent:%t AgentSocket:%q "+
		"KnownHostsFile:%q InsecureIgnoreHostKey:%t Bastion:%s BastionUser:%q ConnectTimeout:%s "+
		"KeepaliveInterval:%s KeepaliveCountMax:%d MaxSessions:%d}",
		c.User, redact(c.PrivateKey), redact(c.PrivateKeyPassphrase), c.UseAgent, c.AgentSocket,
		c.KnownHostsFile, c.InsecureIgnoreHostKey, bastion, c.BastionUser, c.ConnectTimeout,
		c.KeepaliveInterval, c.KeepaliveCountMax, c.MaxSessions)
}

// GoString redacts secrets.
func (c Config) GoString() string { return c.String() }

// Validate checks the configuration without connecting anywhere: a user, at
// least one authentication method, a private key that parses (with its
// passphrase), a reachable agent socket, a readable and well-formed
// known_hosts file when one is set, and a well-formed bastion. All problems
// are reported, each as a *ConfigError that says the fix.
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if strings.TrimSpace(c.User) == "" {
		add("user", "no SSH user is set: set user to the remote login name")
	}
	if len(c.PrivateKey) == 0 && !c.UseAgent {
		add("private_key", "no authentication method is configured: set private_key to the contents of a private key "+
			"(for example file(\"~/.ssh/id_ed25519\")) or set use_agent = true")
	}
	if len(c.PrivateKey) > 0 {
		if _, err := cachedSigner(c.PrivateKey, c.PrivateKeyPassphrase); err != nil {
			errs = append(errs, err)
		}
	}
	if c.UseAgent {
		if _, err := c.agentSocket(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.InsecureIgnoreHostKey && c.KnownHostsFile != "" {
		add("insecure_ignore_host_key", "both known_hosts_file and insecure_ignore_host_key are set: remove one "+
			"(insecure_ignore_host_key turns host key verification off)")
	}
	if c.KnownHostsFile != "" {
		if _, err := loadKnownHosts(c.KnownHostsFile); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Bastion != nil {
		if _, err := hostPort(c.Bastion.Address); err != nil {
			add("bastion.host", "%v", err)
		}
		if c.Bastion.HostKey != "" {
			if _, err := parsePinnedKey(c.Bastion.HostKey); err != nil {
				add("bastion.host_key", "%v", err)
			}
		}
	}
	if c.ConnectTimeout < 0 {
		add("connect_timeout", "must not be negative (0 selects the default, %s)", DefaultConnectTimeout)
	}
	if c.KeepaliveCountMax < 0 {
		add("keepalive_count_max", "must not be negative (0 selects the default, %d)", DefaultKeepaliveCountMax)
	}
	if c.MaxSessions < 0 {
		add("max_sessions", "must not be negative (0 selects the default, %d)", DefaultMaxSessions)
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.KeepaliveInterval == 0 {
		c.KeepaliveInterval = DefaultKeepaliveInterval
	}
	if c.KeepaliveCountMax == 0 {
		c.KeepaliveCountMax = DefaultKeepaliveCountMax
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.BastionUser == "" {
		c.BastionUser = c.User
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return c
}

func (c Config) agentSocket() (string, error) {
	sock := c.AgentSocket
	field := "agent_socket"
	if sock == "" {
		sock = os.Getenv("SSH_AUTH_SOCK")
		field = "use_agent"
	}
	if sock == "" {
		return "", &ConfigError{Field: "use_agent", Msg: "use_agent is set but no agent socket is known: start ssh-agent " +
			"and export SSH_AUTH_SOCK, or set agent_socket"}
	}
	fi, err := os.Stat(sock)
	if err != nil {
		return "", &ConfigError{Field: field, Msg: fmt.Sprintf("ssh-agent socket %s is not usable (%v): is ssh-agent "+
			"running? Check SSH_AUTH_SOCK or agent_socket", sock, errors.Unwrap(err))}
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return "", &ConfigError{Field: field, Msg: fmt.Sprintf("%s is not a socket: point SSH_AUTH_SOCK or agent_socket "+
			"at ssh-agent's socket", sock)}
	}
	return sock, nil
}

// signerCache holds parsed keys: decrypting a passphrase-protected OpenSSH
// key runs bcrypt_pbkdf, far too slow to repeat for every host of a fleet.
var signerCache sync.Map // sha256(len(key) key passphrase) -> ssh.Signer

func cachedSigner(key, passphrase []byte) (ssh.Signer, error) {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(key)))
	h.Write(n[:])
	h.Write(key)
	h.Write(passphrase)
	var id [sha256.Size]byte
	h.Sum(id[:0])
	if s, ok := signerCache.Load(id); ok {
		return s.(ssh.Signer), nil
	}
	s, err := parseSigner(key, passphrase)
	if err != nil {
		return nil, err
	}
	signerCache.Store(id, s)
	return s, nil
}

// parseSigner parses a private key. Its errors never contain key material or
// the passphrase.
func parseSigner(key, passphrase []byte) (ssh.Signer, error) {
	s, err := ssh.ParsePrivateKey(key)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) && len(passphrase) > 0 {
		s, err = ssh.ParsePrivateKeyWithPassphrase(key, passphrase)
	}
	if err == nil {
		return s, nil
	}
	msg := err.Error()
	if len(passphrase) > 0 && bytes.Contains([]byte(msg), passphrase) {
		msg = "malformed key"
	}
	cerr := &ConfigError{Field: "private_key"}
	trimmed := bytes.TrimSpace(key)
	switch {
	case errors.As(err, &missing):
		cerr.Msg = "the private key is encrypted: set private_key_passphrase, or add the key to ssh-agent and set use_agent = true"
	case errors.Is(err, x509.IncorrectPasswordError) || strings.Contains(msg, "decryption password incorrect"):
		cerr.Field = "private_key_passphrase"
		cerr.Msg = "the passphrase does not decrypt private_key: check private_key_passphrase"
	case bytes.HasPrefix(trimmed, []byte("ssh-")) || bytes.HasPrefix(trimmed, []byte("ecdsa-")) ||
		bytes.HasPrefix(trimmed, []byte("sk-")):
		cerr.Msg = "this is a public key: set private_key to the private key's contents (the file without .pub)"
	case !bytes.Contains(key, []byte("-----BEGIN ")):
		cerr.Msg = "not a PEM or OpenSSH private key: set private_key to the key's contents, " +
			"for example file(\"~/.ssh/id_ed25519\"), not to its path"
	default:
		cerr.Msg = fmt.Sprintf("the private key cannot be parsed (%s): use an OpenSSH or PEM private key "+
			"(ed25519, ECDSA or RSA)", msg)
	}
	return nil, cerr
}

// parsePinnedKey parses a host key in authorized_keys format, also accepting
// a known_hosts line.
func parsePinnedKey(s string) (ssh.PublicKey, error) {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s))
	if err == nil {
		return k, nil
	}
	if _, _, k, _, _, err2 := ssh.ParseKnownHosts([]byte(s)); err2 == nil {
		return k, nil
	}
	return nil, fmt.Errorf("host_key %q is not a public key in authorized_keys format: use a line such as "+
		"\"ssh-ed25519 AAAA...\" (ssh-keyscan prints it after the host name) (%v)", shorten(s, 40), err)
}

// hostPort normalises an address to host:port, defaulting the port to 22.
func hostPort(addr string) (string, error) {
	a := strings.TrimSpace(addr)
	if a == "" {
		return "", errors.New("the address is empty: set it to a host name or IP, optionally with :port")
	}
	if host, port, err := net.SplitHostPort(a); err == nil {
		if host == "" {
			return "", fmt.Errorf("address %q has no host", addr)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("address %q has an invalid port: use 1-65535", addr)
		}
		return net.JoinHostPort(host, port), nil
	}
	h := a
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if strings.ContainsAny(h, "[]/ \t") || h == "" {
		return "", fmt.Errorf("address %q is malformed: use host, host:port or [ipv6]:port", addr)
	}
	if strings.Contains(h, ":") && net.ParseIP(h) == nil {
		return "", fmt.Errorf("address %q is malformed: put IPv6 addresses in brackets, as [::1]:22", addr)
	}
	return net.JoinHostPort(h, "22"), nil
}

// expandHome expands a leading "~/" to the local home directory.
func expandHome(p string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, strings.TrimPrefix(p, "~")), nil
}
