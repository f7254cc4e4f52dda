package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/canaryops/terraform-provider-canary/internal/ledger"
)

func TestStatusAndVerify(t *testing.T) {
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(keyFile)
	l, err := ledger.Open(ledger.Options{Dir: dir, SigningKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append("agents", "agent", 0, ledger.Event{Action: ledger.ActionPromote, Version: "1.1.0", Actor: "alice", Ticket: "CHG-42", Result: ledger.ResultSucceeded},
		&ledger.Version{Version: "1.1.0", ManifestSHA256: strings.Repeat("a", 64)}, func(i *ledger.Index) { i.ActiveVersion, i.Channel = "1.1.0", ledger.ChannelStable }); err != nil {
		t.Fatal(err)
	}
	cmd := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		rc := run(t.Context(), append(args, "--ledger-dir", dir, "--signing-key-file", keyFile), &out, &errb)
		return rc, out.String() + errb.String()
	}
	rc, out := cmd("status")
	if rc != 0 || !regexp.MustCompile(`agents\s+agent\s+1\.1\.0\s+stable\s+1\s+promote 1\.1\.0 succeeded by alice at \S+ \(CHG-42\)\s+yes`).MatchString(out) {
		t.Fatalf("status: rc %d\n%s", rc, out)
	}
	if rc, out := cmd("verify"); rc != 0 || !strings.Contains(out, "ok: 1 indexes verified") {
		t.Fatalf("verify: rc %d\n%s", rc, out)
	}
	// Tampering is caught by both.
	p := filepath.Join(dir, "index", "agents", "agent.json")
	b, _ := os.ReadFile(p)
	if err := os.WriteFile(p, bytes.Replace(b, []byte(`"active_version": "1.1.0"`), []byte(`"active_version": "6.6.6"`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if rc, out := cmd("verify"); rc != 1 || !strings.Contains(out, "FAIL") || !strings.Contains(out, "1 of 1 indexes failed verification") {
		t.Fatalf("verify after tampering: rc %d\n%s", rc, out)
	}
	if rc, out := cmd("status"); rc != 1 || !strings.Contains(out, "REFUSED") {
		t.Fatalf("status after tampering: rc %d\n%s", rc, out)
	}
}
