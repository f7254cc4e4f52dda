package ssh

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// knownHostsDB is one parsed known_hosts file. Parsed files are cached and
// re-read when their size or modification time changes, so that dialing
// thousands of hosts does not parse a large file thousands of times.
type knownHostsDB struct {
	path     string
	size     int64
	modTime  time.Time
	callback ssh.HostKeyCallback
	caLines  map[int]bool // lines holding @cert-authority entries
}

var (
	khMu    sync.Mutex
	khCache = map[string]*knownHostsDB{}
)

// loadKnownHosts returns the parsed file, or a *ConfigError saying the fix.
func loadKnownHosts(file string) (*knownHostsDB, error) {
	path, err := expandHome(file)
	if err != nil {
		return nil, &ConfigError{Field: "known_hosts_file", Msg: fmt.Sprintf("cannot expand %s: %v", file, err)}
	}
	fi, err := os.Stat(path)
	if err == nil && fi.IsDir() {
		err = errors.New("is a directory")
	}
	if err != nil {
		return nil, &ConfigError{Field: "known_hosts_file", Msg: fmt.Sprintf("cannot read %s (%v): create it with "+
			"ssh-keyscan (for example \"ssh-keyscan -H <host> >> %s\"), point known_hosts_file at an existing file, "+
			"or pin each host's host_key", path, unwrapPathError(err), path)}
	}
	khMu.Lock()
	defer khMu.Unlock()
	if db := khCache[path]; db != nil && db.size == fi.Size() && db.modTime.Equal(fi.ModTime()) {
		return db, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{Field: "known_hosts_file", Msg: fmt.Sprintf("cannot read %s (%v): fix its permissions "+
			"or point known_hosts_file at a readable file", path, unwrapPathError(err))}
	}
	cb, err := knownhosts.New(path)
	if err != nil {
		return nil, &ConfigError{Field: "known_hosts_file", Msg: fmt.Sprintf("%v: fix or delete the malformed line "+
			"(\"ssh-keygen -R <host> -f %s\" removes a host's entries)", err, path)}
	}
	db := &knownHostsDB{path: path, size: fi.Size(), modTime: fi.ModTime(), callback: cb, caLines: map[int]bool{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.HasPrefix(strings.TrimSpace(sc.Text()), "@cert-authority") {
			db.caLines[n] = true
		}
	}
	khCache[path] = db
	return db, nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// probeKey is a key that no host has. Checking it against the database
// yields a *knownhosts.KeyError listing every key recorded for the host, which
// lets the library do the host matching (plain, hashed, wildcard, negated
// and [host]:port patterns) for us.
var probeKey = func() ssh.PublicKey {
	k, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())
	if err != nil {
		panic(err)
	}
	return k
}()

// recordedKeys returns the keys recorded for addr (host:port), and whether
// any of them is a certificate authority.
func (db *knownHostsDB) recordedKeys(addr string) (keys []knownhosts.KnownKey, ca bool) {
	err := db.callback(addr, &net.TCPAddr{IP: net.IPv4zero}, probeKey)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return nil, false
	}
	for _, k := range ke.Want {
		if db.caLines[k.Line] {
			ca = true
		}
	}
	return ke.Want, ca
}

// hostKeyAlgos lists, in order of preference, the host key algorithms that
// produce a signature with the given key types. Nil means "no restriction".
func hostKeyAlgos(keyTypes map[string]bool) []string {
	prefs := []struct{ algo, keyType string }{
		{ssh.KeyAlgoED25519, ssh.KeyAlgoED25519},
		{ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA256},
		{ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA384},
		{ssh.KeyAlgoECDSA521, ssh.KeyAlgoECDSA521},
		{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSA},
		{ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA},
	}
	var out []string
	for _, p := range prefs {
		if keyTypes[p.keyType] {
			out = append(out, p.algo)
		}
	}
	return out
}

// verifier checks one hop's host key and remembers why it refused one.
type verifier struct {
	address  string // host:port as dialed
	viaHop   string // bastion address when dialed through one
	pinned   ssh.PublicKey
	insecure bool
	db       *knownHostsDB
	algos    []string // ClientConfig.HostKeyAlgorithms; nil = library default
	recorded []knownhosts.KnownKey

	mu      sync.Mutex
	failure *HostKeyError
}

func newVerifier(cfg Config, ep Endpoint, addr, viaHop string) (*verifier, error) {
	v := &verifier{address: addr, viaHop: viaHop}
	switch {
	case ep.HostKey != "":
		k, err := parsePinnedKey(ep.HostKey)
		if err != nil {
			return nil, &ConfigError{Field: "host_key", Msg: err.Error()}
		}
		v.pinned = k
		v.algos = hostKeyAlgos(map[string]bool{k.Type(): true})
	case cfg.InsecureIgnoreHostKey:
		v.insecure = true
	default:
		file := cfg.KnownHostsFile
		if file == "" {
			file = "~/.ssh/known_hosts"
		}
		db, err := loadKnownHosts(file)
		if err != nil {
			return nil, err
		}
		v.db = db
		keys, ca := db.recordedKeys(addr)
		v.recorded = keys
		if !ca {
			types := map[string]bool{}
			for _, k := range keys {
				types[k.Key.Type()] = true
			}
			v.algos = hostKeyAlgos(types)
		}
	}
	return v, nil
}

func (v *verifier) fail(e *HostKeyError) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.failure == nil {
		v.failure = e
	}
	return e
}

func (v *verifier) failed() *HostKeyError {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.failure
}

// callback is the ssh.HostKeyCallback.
func (v *verifier) callback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	if v.insecure {
		return ssh.InsecureIgnoreHostKey()(hostname, remote, key)
	}
	e := &HostKeyError{Address: v.address, Fingerprint: ssh.FingerprintSHA256(key), KeyType: key.Type()}
	if v.pinned != nil {
		if bytes.Equal(key.Marshal(), v.pinned.Marshal()) {
			return nil
		}
		e.Reason = ReasonMismatch
		e.Detail = fmt.Sprintf("the host offered %s key %s, but host_key pins %s key %s", key.Type(), e.Fingerprint,
			v.pinned.Type(), ssh.FingerprintSHA256(v.pinned))
		e.Fix = "This may be a man-in-the-middle attack. If the host was reinstalled or rekeyed, verify the new " +
			"fingerprint out of band and update host_key"
		return v.fail(e)
	}
	err := v.db.callback(v.address, remote, key)
	if err == nil {
		return nil
	}
	e.File = v.db.path
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &ke) && len(ke.Want) == 0:
		e.Reason = ReasonUnknownHost
		e.Detail = fmt.Sprintf("%s has no entry for it; the host offered %s key %s", v.db.path, key.Type(), e.Fingerprint)
		e.Fix = fmt.Sprintf("Verify that fingerprint out of band, then add it with %q%s, or pin host_key",
			keyscanCommand(v.address, key.Type(), v.db.path), v.viaHint())
	case errors.As(err, &ke):
		want := ke.Want[0]
		for _, k := range ke.Want {
			if k.Key.Type() == key.Type() {
				want = k
				break
			}
		}
		e.Reason = ReasonMismatch
		e.Line = want.Line
		e.Detail = fmt.Sprintf("the host offered %s key %s, but %s:%d records %s key %s", key.Type(), e.Fingerprint,
			want.Filename, want.Line, want.Key.Type(), ssh.FingerprintSHA256(want.Key))
		e.Fix = fmt.Sprintf("This may be a man-in-the-middle attack. If the host was reinstalled or rekeyed, "+
			"verify the new fingerprint out of band, remove the old entry with \"ssh-keygen -R %s -f %s\" and add the new key",
			knownhosts.Normalize(v.address), v.db.path)
	case errors.As(err, &re):
		e.Reason = ReasonRevoked
		e.Line = re.Revoked.Line
		e.Detail = fmt.Sprintf("the host offered %s key %s, which %s:%d marks @revoked", key.Type(), e.Fingerprint,
			re.Revoked.Filename, re.Revoked.Line)
		e.Fix = "Do not connect; rekey the host and record its new key"
	default:
		e.Reason = ReasonRejected
		e.Detail = err.Error()
		e.Fix = fmt.Sprintf("Check the host's certificate and the @cert-authority entries in %s", v.db.path)
	}
	return v.fail(e)
}

// noCommonAlgorithm turns a failed host key algorithm negotiation into a
// host key mismatch: the host offers none of the key types recorded for it.
func (v *verifier) noCommonAlgorithm() *HostKeyError {
	e := &HostKeyError{Address: v.address, Reason: ReasonMismatch}
	var recorded []string
	if v.pinned != nil {
		recorded = append(recorded, v.pinned.Type()+" (host_key)")
	}
	for _, k := range v.recorded {
		recorded = append(recorded, fmt.Sprintf("%s (%s:%d)", k.Key.Type(), k.Filename, k.Line))
		if e.File == "" {
			e.File, e.Line = k.Filename, k.Line
		}
	}
	e.Detail = fmt.Sprintf("the host offers none of the key types recorded for it: %s", strings.Join(recorded, ", "))
	e.Fix = "This may be a man-in-the-middle attack. If the host was rekeyed, verify its new key out of band and " +
		"update known_hosts or host_key"
	_ = v.fail(e)
	return e
}

func (v *verifier) viaHint() string {
	if v.viaHop == "" {
		return ""
	}
	return " (run ssh-keyscan on the bastion " + v.viaHop + ")"
}

func keyscanCommand(addr, keyType, file string) string {
	host, port, _ := net.SplitHostPort(addr)
	t := keyType
	switch {
	case strings.HasPrefix(keyType, "ecdsa-"):
		t = "ecdsa"
	case keyType == ssh.KeyAlgoED25519:
		t = "ed25519"
	case keyType == ssh.KeyAlgoRSA:
		t = "rsa"
	}
	p := ""
	if port != "22" {
		p = "-p " + port + " "
	}
	return fmt.Sprintf("ssh-keyscan %s-t %s %s >> %s", p, t, Quote(host), Quote(file))
}
