// Package ledger keeps the signed release index: one JSON file per
// (fleet, release) under <Dir>/index/<fleet>/<release>.json recording every
// version and every rollout event, signed with ed25519 over the canonical JSON
// of the index (see CanonicalJSON) and verified on every load.
//
// Integrity model:
//   - Content: any edit to a signed file is a *TamperError.
//   - Origin: only the configured signing key and Options.TrustedKeys are
//     accepted; anything else is an *UntrustedKeyError.
//   - Freshness: every write increments Sequence; callers pass the sequence
//     recorded in Terraform state as minSeq and an older (replayed) file is a
//     *ReplayError, a vanished one a *MissingIndexError.
//
// Without a signing key a development key is generated at
// <Dir>/dev_signing_key and every index and event it writes says Insecure, so
// production readiness checks can refuse it. Private keys never enter an index.
package ledger

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// SchemaVersion is the index schema this package reads and writes.
const SchemaVersion = 1

// Event actions.
const (
	ActionCanary    = "canary"
	ActionPromote   = "promote"
	ActionRollback  = "rollback"
	ActionHalt      = "halt"
	ActionInterrupt = "interrupt"
	ActionDryRun    = "dry_run"
	ActionDestroy   = "destroy"
	ActionFollowup  = "followup"
)

// Event results.
const (
	ResultSucceeded   = "succeeded"
	ResultFailed      = "failed"
	ResultRolledBack  = "rolled_back"
	ResultHalted      = "halted"
	ResultInterrupted = "interrupted"
	ResultPassed      = "passed"
	ResultRegressed   = "regressed"
)

// Channels.
const (
	ChannelCanary     = "canary"      // rollout in progress or halted
	ChannelStable     = "stable"      // fully promoted
	ChannelRolledBack = "rolled_back" // last rollout was reverted
)

// Index is the signed state of one (fleet, release).
type Index struct {
	SchemaVersion int    `json:"schema_version"`
	Fleet         string `json:"fleet"`
	Release       string `json:"release"`
	// Sequence is incremented by exactly one on every write.
	Sequence uint64 `json:"sequence"`
	// ActiveVersion is what the fleet runs per the last completed event ("" none).
	ActiveVersion string `json:"active_version"`
	// Channel is "" (nothing recorded yet), "canary", "stable" or "rolled_back".
	Channel string `json:"channel"`
	// Versions holds every version ever recorded, oldest first, no duplicates.
	Versions []Version `json:"versions"`
	// Events is the append-only history, oldest first.
	Events []Event `json:"events"`
	// Insecure says the last write was signed with a local development key.
	Insecure bool `json:"insecure"`
}

// Version is one recorded version and the digest of its manifest.
type Version struct {
	Version        string    `json:"version"`
	ManifestSHA256 string    `json:"manifest_sha256"`
	FirstRecorded  time.Time `json:"first_recorded"`
}

// Event is one entry of the history.
type Event struct {
	Sequence uint64    `json:"sequence"` // the index sequence this event was written at
	Action   string    `json:"action"`   // see the Action constants
	Version  string    `json:"version"`
	Actor    string    `json:"actor"`
	Reason   string    `json:"reason"`
	Ticket   string    `json:"ticket"`
	RunID    string    `json:"run_id"`
	Stage    string    `json:"stage"`
	Hosts    []string  `json:"hosts,omitempty"`
	Result   string    `json:"result"` // see the Result constants
	Time     time.Time `json:"time"`
	Insecure bool      `json:"insecure,omitempty"` // written with a development key
}

// Envelope is the file on disk.
type Envelope struct {
	Index Index `json:"index"`
	// Signature is base64 (standard, padded) ed25519 over CanonicalJSON(Index).
	Signature string `json:"signature"`
	// KeyID is KeyIDOf(the signing public key).
	KeyID string `json:"key_id"`
	// PublicKey is the signing public key in authorized_keys form.
	PublicKey string `json:"public_key"`
}

// Options configures Open.
type Options struct {
	// Dir is the ledger directory (the provider's ledger_dir). Required.
	Dir string
	// SigningKey is an ed25519 private key (see ParseSigningKey). Nil or
	// blank: a development key generated once at <Dir>/dev_signing_key (0600)
	// and reused; everything written with it says Insecure.
	SigningKey []byte
	// TrustedKeys are public keys (see ParsePublicKey) whose signatures are
	// accepted besides the signing key's own.
	TrustedKeys []string
	// Actor is recorded on events that do not name one. Default: the OS user.
	Actor string
	// Now defaults to time.Now. Times are stored in UTC.
	Now func() time.Time
}

// Ledger reads and writes the indexes under one directory.
type Ledger struct {
	dir      string
	priv     ed25519.PrivateKey
	pub      ed25519.PublicKey
	keyID    string
	authKey  string
	insecure bool
	trusted  map[string]ed25519.PublicKey // key id -> key, includes our own
	actor    string
	now      func() time.Time

	mu sync.Mutex // serializes Append within this process; flock does across processes
}

// Entry is one index found by List. Err is set when it failed verification.
type Entry struct {
	Path  string
	Index *Index
	Err   error
}

// Problem is one failure found by VerifyAll.
type Problem struct {
	Path string
	Err  error
}

// Open prepares a ledger. It creates Dir (0700) only when it has to generate
// or read the development key; Append creates directories as needed.
func Open(opts Options) (*Ledger, error) {
	if strings.TrimSpace(opts.Dir) == "" {
		return nil, errors.New("ledger: Dir (ledger_dir) is required")
	}
	l := &Ledger{
		dir:     filepath.Clean(opts.Dir),
		actor:   opts.Actor,
		now:     opts.Now,
		trusted: map[string]ed25519.PublicKey{},
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.actor == "" {
		l.actor = osUser()
	}
	if len(bytes.TrimSpace(opts.SigningKey)) > 0 {
		priv, err := ParseSigningKey(opts.SigningKey)
		if err != nil {
			return nil, err
		}
		l.priv = priv
	} else {
		if err := mkdirPrivate(l.dir); err != nil {
			return nil, err
		}
		unlock, err := lockFile(l.lockPath())
		if err != nil {
			return nil, err
		}
		priv, err := loadOrCreateDevKey(l.dir)
		unlock()
		if err != nil {
			return nil, err
		}
		l.priv = priv
		l.insecure = true
	}
	l.pub = l.priv.Public().(ed25519.PublicKey)
	l.keyID = KeyIDOf(l.pub)
	l.authKey = AuthorizedKey(l.pub)
	l.trusted[l.keyID] = l.pub
	for i, s := range opts.TrustedKeys {
		pub, err := ParsePublicKey(s)
		if err != nil {
			return nil, fmt.Errorf("ledger: trusted key #%d: %w", i+1, err)
		}
		l.trusted[KeyIDOf(pub)] = pub
	}
	return l, nil
}

func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

// Insecure reports whether this ledger signs with the development key.
func (l *Ledger) Insecure() bool { return l.insecure }

// KeyID is the signing key's id ("SHA256:...", as `ssh-keygen -l` prints it).
func (l *Ledger) KeyID() string { return l.keyID }

// PublicKey is the signing key in authorized_keys form, to hand to other
// ledgers as a trusted key.
func (l *Ledger) PublicKey() string { return l.authKey }

// Dir is the ledger directory.
func (l *Ledger) Dir() string { return l.dir }

// Path is the file holding the index of (fleet, release).
func (l *Ledger) Path(fleet, release string) (string, error) {
	if fleet == "" || release == "" {
		return "", errors.New("ledger: fleet and release names are required")
	}
	return filepath.Join(l.dir, "index", safeName(fleet), safeName(release)+".json"), nil
}

func (l *Ledger) lockPath() string { return filepath.Join(l.dir, ".lock") }

// safeName maps a fleet or release name to a file name of [A-Za-z0-9._-].
// Names already in that alphabet (not starting with '.', at most 128 bytes)
// are used as is; others are rewritten ('_' for each other byte) and get a
// short hash of the original appended, so distinct names do not collide.
func safeName(s string) string {
	ok := len(s) > 0 && len(s) <= 128 && s[0] != '.'
	for i := 0; ok && i < len(s); i++ {
		ok = allowedByte(s[i])
	}
	if ok {
		return s
	}
	b := []byte(s)
	for i := range b {
		if !allowedByte(b[i]) {
			b[i] = '_'
		}
	}
	if len(b) > 0 && b[0] == '.' {
		b[0] = '_'
	}
	if len(b) > 64 {
		b = b[:64]
	}
	sum := sha256.Sum256([]byte(s))
	return string(b) + "-" + hex.EncodeToString(sum[:6])
}

func allowedByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// TamperError: the file is not a valid signed index, or its content no longer
// matches its signature.
type TamperError struct {
	Path   string
	Reason string
}

func (e *TamperError) Error() string {
	return fmt.Sprintf("ledger: %s failed verification: %s. The signed release index was changed outside the provider "+
		"or is corrupt, so it cannot be trusted. Restore this file from a backup or version control "+
		"(do not edit index files by hand); if no good copy exists, move it aside and re-record the release.",
		e.Path, e.Reason)
}

// UntrustedKeyError: the index is validly signed, by a key that is neither the
// signing key nor trusted.
type UntrustedKeyError struct {
	Path         string
	KeyID        string // the key that signed the file
	SigningKeyID string // this ledger's own key
	DevKey       bool   // the file claims it was written with a development key
}

func (e *UntrustedKeyError) Error() string {
	msg := fmt.Sprintf("ledger: %s is signed by key %s, which is neither this provider's signing key (%s) nor a trusted key.",
		e.Path, e.KeyID, e.SigningKeyID)
	if e.DevKey {
		msg += " The file says it was signed with a local development key (no signing_key configured where it was written)."
	}
	return msg + " If that key is legitimate (e.g. a previous or a colleague's signing key), add its public key " +
		"(\"ssh-ed25519 AAAA...\") to the trusted keys; otherwise restore the file from a backup."
}

// ReplayError: the index is older than the sequence the caller last saw.
type ReplayError struct {
	Path        string
	Sequence    uint64 // in the file
	MinSequence uint64 // expected at least
}

func (e *ReplayError) Error() string {
	return fmt.Sprintf("ledger: %s has sequence %d but sequence %d was already recorded: an older signed index was put back "+
		"(replayed or restored from a stale backup). Restore the newest copy of this file (sequence >= %d); "+
		"refusing to act on outdated release history.", e.Path, e.Sequence, e.MinSequence, e.MinSequence)
}

// MissingIndexError: the index file does not exist although the caller
// recorded a sequence for it. errors.Is(err, fs.ErrNotExist) holds.
type MissingIndexError struct {
	Path        string
	MinSequence uint64
}

func (e *MissingIndexError) Error() string {
	return fmt.Sprintf("ledger: %s does not exist, but the Terraform state says this index existed at sequence %d: "+
		"was it deleted, or was ledger_dir moved or changed? Restore the file (or point ledger_dir at it) and retry.",
		e.Path, e.MinSequence)
}

func (e *MissingIndexError) Unwrap() error { return fs.ErrNotExist }

// UnsupportedSchemaError: a validly signed index of a schema this version of
// the provider cannot read.
type UnsupportedSchemaError struct {
	Path    string
	Version int
}

func (e *UnsupportedSchemaError) Error() string {
	return fmt.Sprintf("ledger: %s uses index schema_version %d; this provider reads schema_version %d. "+
		"Upgrade the provider to one that supports it.", e.Path, e.Version, SchemaVersion)
}

// ManifestConflictError: a version is already recorded with a different
// manifest digest. A version name must always mean the same deploy and revert.
type ManifestConflictError struct {
	Fleet, Release, Version string
	Recorded, Got           string
}

func (e *ManifestConflictError) Error() string {
	return fmt.Sprintf("ledger: version %q of release %q on fleet %q is already recorded with manifest sha256 %s, "+
		"but its manifest is now %s: the deploy, revert or files changed without a version change. "+
		"Give the changed release a new version.", e.Version, e.Release, e.Fleet, e.Recorded, e.Got)
}

func newIndex(fleet, release string) *Index {
	return &Index{SchemaVersion: SchemaVersion, Fleet: fleet, Release: release, Versions: []Version{}, Events: []Event{}}
}

func (x *Index) clone() *Index {
	c := *x
	c.Versions = append([]Version{}, x.Versions...)
	c.Events = make([]Event, len(x.Events))
	for i, e := range x.Events {
		if e.Hosts != nil {
			e.Hosts = append([]string{}, e.Hosts...)
		}
		c.Events[i] = e
	}
	return &c
}

// Load reads and verifies the index of (fleet, release). A missing file is an
// empty index (Sequence 0) unless minSeq > 0. minSeq is the sequence the
// caller last recorded; an older file is a *ReplayError.
func (l *Ledger) Load(fleet, release string, minSeq uint64) (*Index, error) {
	path, err := l.Path(fleet, release)
	if err != nil {
		return nil, err
	}
	return l.load(path, fleet, release, minSeq)
}

func (l *Ledger) load(path, fleet, release string, minSeq uint64) (*Index, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if minSeq > 0 {
			return nil, &MissingIndexError{Path: path, MinSequence: minSeq}
		}
		return newIndex(fleet, release), nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: reading %s: %w", path, err)
	}
	idx, err := l.verify(path, data)
	if err != nil {
		return nil, err
	}
	if idx.Fleet != fleet || idx.Release != release {
		return nil, &TamperError{Path: path, Reason: fmt.Sprintf(
			"it is the index of fleet %q release %q, not of fleet %q release %q (a file was copied over another)",
			idx.Fleet, idx.Release, fleet, release)}
	}
	if idx.Sequence < minSeq {
		return nil, &ReplayError{Path: path, Sequence: idx.Sequence, MinSequence: minSeq}
	}
	return idx, nil
}

// rawEnvelope is Envelope with the index kept as the bytes that were signed.
type rawEnvelope struct {
	Index     json.RawMessage `json:"index"`
	Signature string          `json:"signature"`
	KeyID     string          `json:"key_id"`
	PublicKey string          `json:"public_key"`
}

// verify checks one file's envelope, key, signature, schema and content.
func (l *Ledger) verify(path string, data []byte) (*Index, error) {
	tamper := func(format string, args ...any) error {
		return &TamperError{Path: path, Reason: fmt.Sprintf(format, args...)}
	}
	var env rawEnvelope
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, tamper("not a valid index envelope (%v)", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, tamper("unexpected data after the envelope")
	}
	if len(env.Index) == 0 || bytes.Equal(env.Index, []byte("null")) || env.Signature == "" || env.KeyID == "" || env.PublicKey == "" {
		return nil, tamper("the envelope lacks its index, signature, key_id or public_key")
	}
	pub, err := ParsePublicKey(env.PublicKey)
	if err != nil {
		return nil, tamper("public_key is unreadable (%v)", err)
	}
	if got := KeyIDOf(pub); got != env.KeyID {
		return nil, tamper("key_id %s does not match the embedded public key (%s)", env.KeyID, got)
	}
	if trusted, ok := l.trusted[env.KeyID]; !ok || !bytes.Equal(trusted, pub) {
		var claim struct {
			Insecure bool `json:"insecure"`
		}
		_ = json.Unmarshal(env.Index, &claim)
		return nil, &UntrustedKeyError{Path: path, KeyID: env.KeyID, SigningKeyID: l.keyID, DevKey: claim.Insecure}
	}
	sig, err := base64.StdEncoding.DecodeString(env.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, tamper("signature is not a base64 ed25519 signature")
	}
	canon, err := canonicalize(env.Index)
	if err != nil {
		return nil, tamper("index is not valid JSON (%v)", err)
	}
	if !ed25519.Verify(pub, canon, sig) {
		return nil, tamper("the signature does not match the content (the index was changed after it was signed)")
	}
	var head struct {
		SchemaVersion *int `json:"schema_version"`
	}
	if err := json.Unmarshal(env.Index, &head); err != nil || head.SchemaVersion == nil {
		return nil, tamper("schema_version is missing")
	}
	if *head.SchemaVersion != SchemaVersion {
		return nil, &UnsupportedSchemaError{Path: path, Version: *head.SchemaVersion}
	}
	var idx Index
	idec := json.NewDecoder(bytes.NewReader(env.Index))
	idec.DisallowUnknownFields()
	if err := idec.Decode(&idx); err != nil {
		return nil, tamper("index does not match schema_version %d (%v)", SchemaVersion, err)
	}
	// What we act on must be exactly what was signed: reject content that the
	// Go types would read differently (case-folded keys, unusual time forms).
	again, err := CanonicalJSON(&idx)
	if err != nil || !bytes.Equal(again, canon) {
		return nil, tamper("index content is not in the form this provider writes")
	}
	if reason := checkIndex(&idx); reason != "" {
		return nil, tamper("%s", reason)
	}
	return &idx, nil
}

func validChannel(c string) bool {
	return c == "" || c == ChannelCanary || c == ChannelStable || c == ChannelRolledBack
}

// checkIndex enforces the invariants every index written by Append has.
func checkIndex(x *Index) string {
	if x.Fleet == "" || x.Release == "" {
		return "fleet or release is empty"
	}
	if !validChannel(x.Channel) {
		return fmt.Sprintf("unknown channel %q", x.Channel)
	}
	seen := map[string]bool{}
	for _, v := range x.Versions {
		if v.Version == "" || seen[v.Version] {
			return fmt.Sprintf("versions list is invalid (empty or duplicate %q)", v.Version)
		}
		seen[v.Version] = true
	}
	var last uint64
	for _, e := range x.Events {
		if e.Sequence <= last || e.Sequence > x.Sequence || e.Action == "" {
			return fmt.Sprintf("event history is inconsistent at event sequence %d", e.Sequence)
		}
		last = e.Sequence
	}
	return ""
}

func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Append records one event, under an exclusive lock: it loads and verifies
// the index (minSeq as in Load), adds v to Versions if that version is new
// (a known version with a different digest is a *ManifestConflictError),
// fills e.Sequence (always), e.Time and e.Actor (when empty), e.Version (from
// v when empty) and e.Insecure (always), appends e, lets apply set
// ActiveVersion and Channel (apply gets a copy; only those two fields are
// taken back), increments Sequence, signs and writes the file atomically.
// It returns the index as written.
func (l *Ledger) Append(fleet, release string, minSeq uint64, e Event, v *Version, apply func(*Index)) (*Index, error) {
	path, err := l.Path(fleet, release)
	if err != nil {
		return nil, err
	}
	if e.Action == "" {
		return nil, errors.New("ledger: event action is required")
	}
	if v != nil {
		if v.Version == "" {
			return nil, errors.New("ledger: version name is required")
		}
		if !isHexSHA256(v.ManifestSHA256) {
			return nil, fmt.Errorf("ledger: manifest sha256 of version %q must be 64 lower-case hex digits (see ManifestSHA256)", v.Version)
		}
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if err := mkdirPrivate(filepath.Dir(path)); err != nil {
		return nil, err
	}
	unlock, err := lockFile(l.lockPath())
	if err != nil {
		return nil, err
	}
	defer unlock()
	removeStaleTemps(path)

	idx, err := l.load(path, fleet, release, minSeq)
	if err != nil {
		return nil, err
	}
	now := l.now().UTC()
	if v != nil {
		known := false
		for _, have := range idx.Versions {
			if have.Version != v.Version {
				continue
			}
			if have.ManifestSHA256 != v.ManifestSHA256 {
				return nil, &ManifestConflictError{Fleet: fleet, Release: release, Version: v.Version,
					Recorded: have.ManifestSHA256, Got: v.ManifestSHA256}
			}
			known = true
		}
		if !known {
			nv := *v
			if nv.FirstRecorded.IsZero() {
				nv.FirstRecorded = now
			}
			nv.FirstRecorded = nv.FirstRecorded.UTC()
			idx.Versions = append(idx.Versions, nv)
		}
		if e.Version == "" {
			e.Version = v.Version
		}
	}
	e.Sequence = idx.Sequence + 1
	if e.Time.IsZero() {
		e.Time = now
	}
	e.Time = e.Time.UTC()
	if e.Actor == "" {
		e.Actor = l.actor
	}
	e.Insecure = l.insecure
	if e.Hosts != nil {
		e.Hosts = append([]string{}, e.Hosts...)
	}
	idx.Events = append(idx.Events, e)
	if apply != nil {
		c := idx.clone()
		apply(c)
		if !validChannel(c.Channel) {
			return nil, fmt.Errorf("ledger: unknown channel %q (want %q, %q or %q)", c.Channel, ChannelCanary, ChannelStable, ChannelRolledBack)
		}
		idx.ActiveVersion, idx.Channel = c.ActiveVersion, c.Channel
	}
	idx.SchemaVersion = SchemaVersion
	idx.Sequence++
	idx.Insecure = l.insecure

	data, err := l.seal(idx)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, data); err != nil {
		return nil, fmt.Errorf("ledger: writing %s: %w", path, err)
	}
	return idx, nil
}

// seal signs idx and returns the envelope file content.
func (l *Ledger) seal(idx *Index) ([]byte, error) {
	canon, err := CanonicalJSON(idx)
	if err != nil {
		return nil, fmt.Errorf("ledger: encoding index: %w", err)
	}
	env := rawEnvelope{
		Index:     canon,
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(l.priv, canon)),
		KeyID:     l.keyID,
		PublicKey: l.authKey,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(env); err != nil {
		return nil, fmt.Errorf("ledger: encoding envelope: %w", err)
	}
	return buf.Bytes(), nil
}

// List verifies every index under Dir. A file that fails verification is an
// Entry with Err set, so it never hides the others. Entries are sorted by
// path. Temporary files of interrupted writes are skipped.
func (l *Ledger) List() ([]Entry, error) {
	root := filepath.Join(l.dir, "index")
	fleets, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: listing %s: %w", root, err)
	}
	var out []Entry
	for _, fd := range fleets {
		if !fd.IsDir() || strings.HasPrefix(fd.Name(), ".") {
			continue
		}
		fleetDir := filepath.Join(root, fd.Name())
		files, err := os.ReadDir(fleetDir)
		if err != nil {
			out = append(out, Entry{Path: fleetDir, Err: fmt.Errorf("ledger: listing %s: %w", fleetDir, err)})
			continue
		}
		for _, f := range files {
			name := f.Name()
			if f.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
				continue
			}
			path := filepath.Join(fleetDir, name)
			out = append(out, l.listOne(path, fd.Name(), name))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func (l *Ledger) listOne(path, fleetDir, file string) Entry {
	data, err := os.ReadFile(path)
	if err != nil {
		return Entry{Path: path, Err: fmt.Errorf("ledger: reading %s: %w", path, err)}
	}
	idx, err := l.verify(path, data)
	if err != nil {
		return Entry{Path: path, Err: err}
	}
	if safeName(idx.Fleet) != fleetDir || safeName(idx.Release)+".json" != file {
		return Entry{Path: path, Err: &TamperError{Path: path, Reason: fmt.Sprintf(
			"it is the index of fleet %q release %q but is stored under another name (a file was copied or renamed)",
			idx.Fleet, idx.Release)}}
	}
	return Entry{Path: path, Index: idx}
}

// VerifyAll verifies every index under Dir and returns the failures; an empty
// result means everything verified.
func (l *Ledger) VerifyAll() []Problem {
	entries, err := l.List()
	if err != nil {
		return []Problem{{Path: filepath.Join(l.dir, "index"), Err: err}}
	}
	var out []Problem
	for _, e := range entries {
		if e.Err != nil {
			out = append(out, Problem{Path: e.Path, Err: e.Err})
		}
	}
	return out
}
