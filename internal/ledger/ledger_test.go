package ledger

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var sha1hex = strings.Repeat("a1", 32)

func openT(t *testing.T, opts Options) *Ledger {
	t.Helper()
	l, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func setChannel(active, channel string) func(*Index) {
	return func(x *Index) { x.ActiveVersion, x.Channel = active, channel }
}

// record writes a canary event for version (recording it) and returns the index.
func record(t *testing.T, l *Ledger, fleet, release, version string, minSeq uint64) *Index {
	t.Helper()
	sum := hex.EncodeToString([]byte(fmt.Sprintf("%032s", version)))
	idx, err := l.Append(fleet, release, minSeq,
		Event{Action: ActionCanary, Result: ResultSucceeded, Reason: "test", Ticket: "T-1", RunID: "run-" + version, Stage: "canary", Hosts: []string{"h1"}},
		&Version{Version: version, ManifestSHA256: sum}, setChannel(version, ChannelCanary))
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func TestRoundTripWithKeyFormats(t *testing.T) {
	keygenText := func(t *testing.T) []byte {
		b, err := os.ReadFile(sshKeygen(t, "-t", "ed25519"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for name, key := range map[string]func(t *testing.T) []byte{
		"pkcs8":      func(t *testing.T) []byte { return pkcs8PEM(t, newEd25519(t)) },
		"openssh":    func(t *testing.T) []byte { return opensshPEM(t, newEd25519(t)) },
		"ssh-keygen": keygenText,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			now := time.Date(2025, 3, 4, 5, 6, 7, 8, time.FixedZone("X", 3600))
			l := openT(t, Options{Dir: dir, SigningKey: key(t), Actor: "alice", Now: func() time.Time { return now }})
			if l.Insecure() || !strings.HasPrefix(l.KeyID(), "SHA256:") {
				t.Fatalf("insecure=%v keyid=%q", l.Insecure(), l.KeyID())
			}
			empty, err := l.Load("agents", "agent", 0)
			if err != nil || empty.Sequence != 0 || len(empty.Events) != 0 || empty.SchemaVersion != SchemaVersion {
				t.Fatalf("empty load: %+v %v", empty, err)
			}
			record(t, l, "agents", "agent", "2.4.0", 0)
			written, err := l.Append("agents", "agent", 1, Event{Action: ActionPromote, Result: ResultSucceeded, Actor: "bob"}, nil, setChannel("2.4.0", ChannelStable))
			if err != nil {
				t.Fatal(err)
			}
			got, err := l.Load("agents", "agent", 2)
			if err != nil {
				t.Fatal(err)
			}
			if !equalJSON(t, got, written) {
				t.Fatalf("loaded %+v\nwritten %+v", got, written)
			}
			if got.Sequence != 2 || got.ActiveVersion != "2.4.0" || got.Channel != ChannelStable || got.Insecure {
				t.Fatalf("index: %+v", got)
			}
			if len(got.Versions) != 1 || got.Versions[0].ManifestSHA256 == "" || !got.Versions[0].FirstRecorded.Equal(now) {
				t.Fatalf("versions: %+v", got.Versions)
			}
			e0, e1 := got.Events[0], got.Events[1]
			if e0.Sequence != 1 || e0.Actor != "alice" || e0.Version != "2.4.0" || e0.RunID != "run-2.4.0" || e0.Time.Location() != time.UTC || !e0.Time.Equal(now) {
				t.Fatalf("event 0: %+v", e0)
			}
			if e1.Sequence != 2 || e1.Actor != "bob" || e1.Insecure {
				t.Fatalf("event 1: %+v", e1)
			}
			// The file is an Envelope whose public key and key id are ours, with no private material.
			data, err := os.ReadFile(filepath.Join(dir, "index", "agents", "agent.json"))
			if err != nil {
				t.Fatal(err)
			}
			var env Envelope
			if err := json.Unmarshal(data, &env); err != nil {
				t.Fatal(err)
			}
			if env.KeyID != l.KeyID() || env.PublicKey != l.PublicKey() || env.Index.Sequence != 2 {
				t.Fatalf("envelope: %s", data)
			}
			if bytes.Contains(data, []byte("PRIVATE")) {
				t.Fatal("private key material in the index")
			}
		})
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err1 := CanonicalJSON(a)
	jb, err2 := CanonicalJSON(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return bytes.Equal(ja, jb)
}

func TestTamperDetected(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Options{Dir: dir, SigningKey: pkcs8PEM(t, newEd25519(t))})
	record(t, l, "agents", "agent", "2.4.0", 0)
	path, _ := l.Path("agents", "agent")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edits := map[string]func([]byte) []byte{
		"version string": func(b []byte) []byte { return bytes.ReplaceAll(b, []byte(`"2.4.0"`), []byte(`"2.4.1"`)) },
		"sequence":       func(b []byte) []byte { return bytes.Replace(b, []byte(`"sequence": 1,`), []byte(`"sequence": 9,`), 1) },
		"extra field": func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"active_version": `), []byte(`"x": 1, "active_version": `), 1)
		},
		"case-folded": func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"fleet": "agents"`), []byte(`"fleet": "agents", "FLEET": "other"`), 1)
		},
		"signature": func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"signature": "`), []byte(`"signature": "AAAA`), 1)
		},
		"key id": func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"key_id": "SHA256:`), []byte(`"key_id": "SHA256:x`), 1)
		},
		"truncated": func(b []byte) []byte { return b[:len(b)/2] },
		"empty":     func([]byte) []byte { return nil },
	}
	for name, edit := range edits {
		changed := edit(bytes.Clone(orig))
		if bytes.Equal(changed, orig) {
			t.Fatalf("%s: edit did not apply", name)
		}
		if err := os.WriteFile(path, changed, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := l.Load("agents", "agent", 0)
		var te *TamperError
		if !errors.As(err, &te) || te.Path != path || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "Restore") {
			t.Errorf("%s: got %v", name, err)
		}
		// Append refuses to build on a tampered index.
		if _, err := l.Append("agents", "agent", 0, Event{Action: ActionPromote}, nil, nil); !errors.As(err, &te) {
			t.Errorf("%s: append over tampered file: %v", name, err)
		}
	}
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Load("agents", "agent", 1); err != nil {
		t.Fatalf("restored file: %v", err)
	}
}

func TestIndexCopiedOverAnother(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Options{Dir: dir, SigningKey: pkcs8PEM(t, newEd25519(t))})
	record(t, l, "agents", "agent", "2.4.0", 0)
	record(t, l, "web", "agent", "1.0.0", 0)
	src, _ := l.Path("agents", "agent")
	dst, _ := l.Path("web", "agent")
	data, _ := os.ReadFile(src)
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := l.Load("web", "agent", 0)
	var te *TamperError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), `fleet "agents"`) {
		t.Fatalf("got %v", err)
	}
	if probs := l.VerifyAll(); len(probs) != 1 || probs[0].Path != dst {
		t.Fatalf("VerifyAll: %+v", probs)
	}
}

func TestUntrustedKey(t *testing.T) {
	dir := t.TempDir()
	mine := openT(t, Options{Dir: dir, SigningKey: pkcs8PEM(t, newEd25519(t))})
	record(t, mine, "agents", "agent", "2.4.0", 0)

	otherDir := t.TempDir()
	other := openT(t, Options{Dir: otherDir, SigningKey: opensshPEM(t, newEd25519(t))})
	record(t, other, "agents", "agent", "2.4.0", 0)
	record(t, other, "agents", "agent", "2.5.0", 1)
	otherPath, _ := other.Path("agents", "agent")
	data, _ := os.ReadFile(otherPath)
	path, _ := mine.Path("agents", "agent")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	_, err := mine.Load("agents", "agent", 1)
	var ue *UntrustedKeyError
	if !errors.As(err, &ue) || ue.KeyID != other.KeyID() || ue.SigningKeyID != mine.KeyID() || !strings.Contains(err.Error(), other.KeyID()) || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v", err)
	}
	// A file signed by another key that claims to be the signing key's is tampering.
	forged := bytes.Replace(data, []byte(other.KeyID()), []byte(mine.KeyID()), 1)
	forged = bytes.Replace(forged, []byte(other.PublicKey()), []byte(mine.PublicKey()), 1)
	if err := os.WriteFile(path, forged, 0o600); err != nil {
		t.Fatal(err)
	}
	var te *TamperError
	if _, err := mine.Load("agents", "agent", 1); !errors.As(err, &te) {
		t.Fatalf("forged key: %v", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	// Trusting the other key (authorized_keys form with a comment) makes it acceptable,
	// and our own appends continue the history under our key.
	trusting := openT(t, Options{Dir: dir, SigningKey: nil, TrustedKeys: []string{other.PublicKey() + " release@ci"}})
	got, err := trusting.Load("agents", "agent", 2)
	if err != nil || got.Sequence != 2 || got.ActiveVersion != "2.5.0" {
		t.Fatalf("trusted load: %+v %v", got, err)
	}
	if _, err := trusting.Append("agents", "agent", 2, Event{Action: ActionPromote}, nil, setChannel("2.5.0", ChannelStable)); err != nil {
		t.Fatal(err)
	}
	// Now signed by the dev key: the original signer does not trust it and says so.
	_, err = mine.Load("agents", "agent", 3)
	if !errors.As(err, &ue) || !ue.DevKey || !strings.Contains(err.Error(), "development key") {
		t.Fatalf("dev-key signed index: %v", err)
	}
	if _, err := Open(Options{Dir: dir, TrustedKeys: []string{"ssh-rsa AAAA"}}); err == nil || !strings.Contains(err.Error(), "trusted key #1") {
		t.Fatalf("bad trusted key: %v", err)
	}
}

func TestReplayAndMissing(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Options{Dir: dir, SigningKey: pkcs8PEM(t, newEd25519(t))})
	record(t, l, "agents", "agent", "2.4.0", 0)
	record(t, l, "agents", "agent", "2.5.0", 1)
	path, _ := l.Path("agents", "agent")
	seq2, _ := os.ReadFile(path)
	idx := record(t, l, "agents", "agent", "2.6.0", 2)
	if idx.Sequence != 3 {
		t.Fatalf("sequence %d", idx.Sequence)
	}
	if err := os.WriteFile(path, seq2, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := l.Load("agents", "agent", 3)
	var re *ReplayError
	if !errors.As(err, &re) || re.Sequence != 2 || re.MinSequence != 3 || !strings.Contains(err.Error(), "an older signed index was put back") {
		t.Fatalf("got %v", err)
	}
	if _, err := l.Append("agents", "agent", 3, Event{Action: ActionRollback}, nil, nil); !errors.As(err, &re) {
		t.Fatalf("append on replayed index: %v", err)
	}
	// Without knowledge of the newer sequence the old file is still validly signed.
	if got, err := l.Load("agents", "agent", 2); err != nil || got.Sequence != 2 {
		t.Fatalf("load minSeq 2: %v", err)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	_, err = l.Load("agents", "agent", 3)
	var me *MissingIndexError
	if !errors.As(err, &me) || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("missing: %v", err)
	}
	if got, err := l.Load("agents", "agent", 0); err != nil || got.Sequence != 0 {
		t.Fatalf("missing with minSeq 0: %+v %v", got, err)
	}
}

func TestModesAndLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", ".canary")
	l := openT(t, Options{Dir: dir}) // dev key
	record(t, l, "agents/prod", "..", "1.0.0", 0)
	record(t, l, "agents_prod", ".", "1.0.0", 0)
	path, _ := l.Path("agents/prod", "..")
	if filepath.Dir(filepath.Dir(filepath.Dir(path))) != dir {
		t.Fatalf("path escapes the ledger: %s", path)
	}
	p2, _ := l.Path("agents_prod", ".")
	if p2 == path {
		t.Fatal("distinct names share a file")
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, p2} {
		rel, _ := filepath.Rel(filepath.Join(dir, "index"), p)
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) != 2 || strings.HasPrefix(parts[0], ".") || strings.HasPrefix(parts[1], ".") {
			t.Fatalf("bad layout: %s", rel)
		}
	}
	ents, err := l.List()
	if err != nil || len(ents) != 2 || ents[0].Err != nil || ents[1].Err != nil {
		t.Fatalf("list: %+v %v", ents, err)
	}
}

func TestDevKey(t *testing.T) {
	dir := t.TempDir()
	l1 := openT(t, Options{Dir: dir, SigningKey: []byte("  \n")}) // blank means none
	if !l1.Insecure() {
		t.Fatal("dev key not insecure")
	}
	keyPath := filepath.Join(dir, DevKeyFile)
	fi, err := os.Stat(keyPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dev key file: %v %v", fi, err)
	}
	keyText, _ := os.ReadFile(keyPath)
	l2 := openT(t, Options{Dir: dir})
	if l2.KeyID() != l1.KeyID() {
		t.Fatal("dev key not reused")
	}
	if again, _ := os.ReadFile(keyPath); !bytes.Equal(again, keyText) {
		t.Fatal("dev key rewritten")
	}
	idx := record(t, l1, "agents", "agent", "1.0.0", 0)
	if !idx.Insecure || !idx.Events[0].Insecure {
		t.Fatalf("insecure not recorded: %+v", idx)
	}
	got, err := l2.Load("agents", "agent", 1)
	if err != nil || !got.Insecure || !got.Events[0].Insecure {
		t.Fatalf("load: %+v %v", got, err)
	}
	// Even a caller claiming otherwise cannot clear the flag.
	idx, err = l2.Append("agents", "agent", 1, Event{Action: ActionPromote, Insecure: false}, nil, func(x *Index) { x.Insecure = false })
	if err != nil || !idx.Insecure || !idx.Events[1].Insecure {
		t.Fatalf("append: %+v %v", idx, err)
	}
	// The dev key never lands in an index.
	path, _ := l1.Path("agents", "agent")
	data, _ := os.ReadFile(path)
	if bytes.Contains(data, bytes.TrimSpace(keyText)[30:60]) {
		t.Fatal("dev key in index")
	}
	// A loosened dev key file is tightened again.
	if err := os.Chmod(keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	openT(t, Options{Dir: dir})
	if fi, _ := os.Stat(keyPath); fi.Mode().Perm() != 0o600 {
		t.Fatalf("dev key mode %v", fi.Mode().Perm())
	}
	// A real signing key is not insecure, and does not trust dev-key indexes.
	secure := openT(t, Options{Dir: dir, SigningKey: pkcs8PEM(t, newEd25519(t))})
	var ue *UntrustedKeyError
	if _, err := secure.Load("agents", "agent", 0); secure.Insecure() || !errors.As(err, &ue) {
		t.Fatalf("secure ledger: %v", err)
	}
}

func TestAppendSemantics(t *testing.T) {
	l := openT(t, Options{Dir: t.TempDir(), SigningKey: pkcs8PEM(t, newEd25519(t))})
	v := &Version{Version: "1.0.0", ManifestSHA256: sha1hex}
	idx, err := l.Append("f", "r", 0, Event{Action: ActionCanary, Sequence: 99}, v, func(x *Index) {
		x.ActiveVersion, x.Channel = "1.0.0", ChannelCanary
		x.Sequence = 1000        // ignored
		x.Events = nil           // ignored
		x.Fleet = "someone-else" // ignored
	})
	if err != nil {
		t.Fatal(err)
	}
	if idx.Sequence != 1 || idx.Events[0].Sequence != 1 || idx.Fleet != "f" || len(idx.Events) != 1 || idx.Events[0].Version != "1.0.0" {
		t.Fatalf("index: %+v", idx)
	}
	// Re-recording the same version with the same digest adds no duplicate.
	idx, err = l.Append("f", "r", 1, Event{Action: ActionPromote}, v, setChannel("1.0.0", ChannelStable))
	if err != nil || len(idx.Versions) != 1 || idx.Channel != ChannelStable {
		t.Fatalf("%+v %v", idx, err)
	}
	// A different manifest under the same version is refused, nothing written.
	_, err = l.Append("f", "r", 2, Event{Action: ActionCanary}, &Version{Version: "1.0.0", ManifestSHA256: strings.Repeat("b", 64)}, nil)
	var mc *ManifestConflictError
	if !errors.As(err, &mc) || mc.Recorded != sha1hex {
		t.Fatalf("conflict: %v", err)
	}
	if got, _ := l.Load("f", "r", 2); got.Sequence != 2 {
		t.Fatalf("conflict wrote: %d", got.Sequence)
	}
	idx, err = l.Append("f", "r", 2, Event{Action: ActionCanary}, &Version{Version: "2.0.0", ManifestSHA256: sha1hex}, nil)
	if err != nil || len(idx.Versions) != 2 || idx.Versions[0].Version != "1.0.0" || idx.Versions[1].Version != "2.0.0" || idx.Channel != ChannelStable {
		t.Fatalf("%+v %v", idx, err)
	}
	bad := []struct {
		e     Event
		v     *Version
		apply func(*Index)
		want  string
	}{
		{Event{}, nil, nil, "action is required"},
		{Event{Action: ActionCanary}, &Version{Version: "3", ManifestSHA256: "XYZ"}, nil, "64 lower-case hex"},
		{Event{Action: ActionCanary}, &Version{ManifestSHA256: sha1hex}, nil, "version name is required"},
		{Event{Action: ActionCanary}, nil, setChannel("3", "beta"), "unknown channel"},
	}
	for _, b := range bad {
		if _, err := l.Append("f", "r", 0, b.e, b.v, b.apply); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("want %q, got %v", b.want, err)
		}
	}
	if _, err := l.Append("", "r", 0, Event{Action: ActionCanary}, nil, nil); err == nil {
		t.Error("empty fleet accepted")
	}
	if got, _ := l.Load("f", "r", 3); got.Sequence != 3 {
		t.Fatalf("failed appends wrote: %d", got.Sequence)
	}
}

func TestConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	key := pkcs8PEM(t, newEd25519(t))
	l := openT(t, Options{Dir: dir, SigningKey: key})
	other := openT(t, Options{Dir: dir, SigningKey: key}) // a second Ledger on the same dir: flock, not the mutex
	const workers, each = 8, 4
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			led := l
			if w%2 == 1 {
				led = other
			}
			for i := 0; i < each; i++ {
				_, err := led.Append("agents", "agent", 0, Event{Action: ActionFollowup, RunID: fmt.Sprintf("w%d-%d", w, i)}, nil, nil)
				errs <- err
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkHistory(t, l, "agents", "agent", workers*each)
}

// checkHistory asserts the index holds n events with sequences 1..n and
// distinct run ids.
func checkHistory(t *testing.T, l *Ledger, fleet, release string, n int) {
	t.Helper()
	idx, err := l.Load(fleet, release, uint64(n))
	if err != nil {
		t.Fatal(err)
	}
	if idx.Sequence != uint64(n) || len(idx.Events) != n {
		t.Fatalf("sequence %d with %d events, want %d", idx.Sequence, len(idx.Events), n)
	}
	runs := map[string]bool{}
	for i, e := range idx.Events {
		if e.Sequence != uint64(i+1) || runs[e.RunID] {
			t.Fatalf("event %d: %+v", i, e)
		}
		runs[e.RunID] = true
	}
}

// TestHelperAppendProcess is the child side of TestAppendsAcrossProcesses.
func TestHelperAppendProcess(t *testing.T) {
	dir := os.Getenv("LEDGER_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process only")
	}
	l := openT(t, Options{Dir: dir, SigningKey: []byte(os.Getenv("LEDGER_HELPER_KEY"))})
	n, _ := strconv.Atoi(os.Getenv("LEDGER_HELPER_N"))
	for i := 0; i < n; i++ {
		if _, err := l.Append("agents", "agent", 0, Event{Action: ActionFollowup, RunID: fmt.Sprintf("p%d-%d", os.Getpid(), i)}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAppendsAcrossProcesses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := pkcs8PEM(t, newEd25519(t))
	l := openT(t, Options{Dir: dir, SigningKey: key})
	const procs, each = 3, 5
	cmds := make([]*exec.Cmd, procs)
	outs := make([]bytes.Buffer, procs)
	for i := range cmds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAppendProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "LEDGER_HELPER_DIR="+dir, "LEDGER_HELPER_KEY="+string(key), "LEDGER_HELPER_N="+strconv.Itoa(each))
		cmd.Stdout, cmd.Stderr = &outs[i], &outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	for i := 0; i < each; i++ {
		if _, err := l.Append("agents", "agent", 0, Event{Action: ActionFollowup, RunID: fmt.Sprintf("parent-%d", i)}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v\n%s", i, err, outs[i].String())
		}
	}
	checkHistory(t, l, "agents", "agent", (procs+1)*each)
}

func TestInterruptedWriteLeavesPreviousIndex(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Options{Dir: dir, SigningKey: pkcs8PEM(t, newEd25519(t))})
	record(t, l, "agents", "agent", "1.0.0", 0)
	path, _ := l.Path("agents", "agent")
	// A writer killed between write and rename leaves a partial temp file.
	tmp := filepath.Join(filepath.Dir(path), ".agent.json.tmp-123456")
	if err := os.WriteFile(tmp, []byte(`{"index":{"schema_version":1,"fleet":"agen`), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := l.Load("agents", "agent", 1)
	if err != nil || got.Sequence != 1 {
		t.Fatalf("load: %+v %v", got, err)
	}
	if probs := l.VerifyAll(); len(probs) != 0 {
		t.Fatalf("temp file reported: %+v", probs)
	}
	if idx := record(t, l, "agents", "agent", "1.1.0", 1); idx.Sequence != 2 {
		t.Fatalf("sequence %d", idx.Sequence)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stale temp file not cleaned: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*"))
	if len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
}

func TestListAndVerifyAll(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Options{Dir: dir, SigningKey: opensshPEM(t, newEd25519(t))})
	if ents, err := l.List(); err != nil || len(ents) != 0 {
		t.Fatalf("empty list: %v %v", ents, err)
	}
	if probs := l.VerifyAll(); len(probs) != 0 {
		t.Fatalf("empty verify: %v", probs)
	}
	record(t, l, "agents", "agent", "1.0.0", 0)
	record(t, l, "agents", "sidecar", "1.0.0", 0)
	record(t, l, "web", "frontend", "3.0.0", 0)
	bad, _ := l.Path("agents", "sidecar")
	data, _ := os.ReadFile(bad)
	if err := os.WriteFile(bad, bytes.Replace(data, []byte(`"1.0.0"`), []byte(`"6.6.6"`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	// Unrelated files are ignored.
	if err := os.WriteFile(filepath.Join(dir, "index", "web", "README"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	ents, err := l.List()
	if err != nil || len(ents) != 3 {
		t.Fatalf("list: %+v %v", ents, err)
	}
	var good []string
	for _, e := range ents {
		if e.Path == bad {
			var te *TamperError
			if !errors.As(e.Err, &te) || e.Index != nil {
				t.Fatalf("bad entry: %+v", e)
			}
			continue
		}
		if e.Err != nil || e.Index == nil {
			t.Fatalf("good entry: %+v", e)
		}
		good = append(good, e.Index.Fleet+"/"+e.Index.Release)
	}
	if strings.Join(good, ",") != "agents/agent,web/frontend" {
		t.Fatalf("good entries: %v", good)
	}
	probs := l.VerifyAll()
	if len(probs) != 1 || probs[0].Path != bad || !strings.Contains(probs[0].Err.Error(), bad) {
		t.Fatalf("VerifyAll: %+v", probs)
	}
}

func TestUnsupportedSchema(t *testing.T) {
	dir := t.TempDir()
	key := pkcs8PEM(t, newEd25519(t))
	l := openT(t, Options{Dir: dir, SigningKey: key})
	idx := record(t, l, "agents", "agent", "1.0.0", 0)
	idx.SchemaVersion = 2
	data, err := l.seal(idx)
	if err != nil {
		t.Fatal(err)
	}
	path, _ := l.Path("agents", "agent")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = l.Load("agents", "agent", 0)
	var se *UnsupportedSchemaError
	if !errors.As(err, &se) || se.Version != 2 || !strings.Contains(err.Error(), "Upgrade the provider") {
		t.Fatalf("got %v", err)
	}
}

// Content that is validly signed but that the Go types would read differently
// from what was signed (case-folded duplicate keys, odd time forms) is refused.
func TestSignedButNonCanonicalContent(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Options{Dir: dir, SigningKey: pkcs8PEM(t, newEd25519(t))})
	idx := record(t, l, "agents", "agent", "1.0.0", 0)
	canon, err := CanonicalJSON(idx)
	if err != nil {
		t.Fatal(err)
	}
	path, _ := l.Path("agents", "agent")
	for name, raw := range map[string][]byte{
		"case-folded key": bytes.Replace(canon, []byte(`"fleet":"agents"`), []byte(`"FLEET":"other","fleet":"agents"`), 1),
		"time offset":     bytes.Replace(canon, []byte(`Z"`), []byte(`+00:00"`), 1),
		"bad channel":     bytes.Replace(canon, []byte(`"channel":"canary"`), []byte(`"channel":"beta"`), 1),
	} {
		if bytes.Equal(raw, canon) {
			t.Fatalf("%s: edit did not apply", name)
		}
		raw, err := canonicalize(raw)
		if err != nil {
			t.Fatal(err)
		}
		env := rawEnvelope{Index: raw, Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(l.priv, raw)), KeyID: l.KeyID(), PublicKey: l.PublicKey()}
		data, _ := json.Marshal(env)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var te *TamperError
		if _, err := l.Load("agents", "agent", 0); !errors.As(err, &te) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}
