package ledger

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

func newEd25519(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func pkcs8PEM(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func opensshPEM(t *testing.T, key any) []byte {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(key, "test key")
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}

// sshKeygen runs the real ssh-keygen and returns the private key file path.
func sshKeygen(t *testing.T, args ...string) string {
	t.Helper()
	return sshKeygenPass(t, "", args...)
}

func sshKeygenPass(t *testing.T, passphrase string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not on PATH")
	}
	path := filepath.Join(t.TempDir(), "id_key")
	out, err := exec.Command(bin, append([]string{"-q", "-N", passphrase, "-C", "ledger-test", "-f", path}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	return path
}

func TestParseSigningKeyFormats(t *testing.T) {
	priv := newEd25519(t)
	for name, text := range map[string][]byte{
		"pkcs8":             pkcs8PEM(t, priv),
		"openssh":           opensshPEM(t, priv),
		"surrounding space": append(append([]byte("\n  \n"), pkcs8PEM(t, priv)...), "\n\n"...),
	} {
		got, err := ParseSigningKey(text)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !got.Equal(priv) {
			t.Fatalf("%s: parsed a different key", name)
		}
	}
}

func TestParseSigningKeyFromSSHKeygen(t *testing.T) {
	path := sshKeygen(t, "-t", "ed25519")
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ParseSigningKey(text)
	if err != nil {
		t.Fatal(err)
	}
	pubText, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(string(pubText))
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) {
		t.Fatal("private and public key from ssh-keygen do not match")
	}
	// Key ids are the fingerprints ssh-keygen prints.
	out, err := exec.Command("ssh-keygen", "-l", "-E", "sha256", "-f", path+".pub").Output()
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(out))
	if len(fields) < 2 || fields[1] != KeyIDOf(pub) {
		t.Fatalf("key id %s, ssh-keygen says %q", KeyIDOf(pub), out)
	}
}

var testRSA = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 1024) })

func rsaKeyT(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := testRSA()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParseSigningKeyRefusals(t *testing.T) {
	t.Parallel()
	rsaKey := rsaKeyT(t)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	priv := newEd25519(t)
	corrupt := pkcs8PEM(t, priv)
	corrupt = bytes.Replace(corrupt, []byte("MC4CAQAw"), []byte("MC4CAQBw"), 1)
	cases := []struct {
		name, want string
		text       []byte
	}{
		{"rsa pkcs8", "RSA keys are not supported", pkcs8PEM(t, rsaKey)},
		{"rsa pkcs1", "RSA keys are not supported", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})},
		{"rsa openssh", "RSA keys are not supported", opensshPEM(t, rsaKey)},
		{"ecdsa pkcs8", "ECDSA keys are not supported", pkcs8PEM(t, ecKey)},
		{"ecdsa sec1", "ECDSA keys are not supported", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})},
		{"ecdsa openssh", "ECDSA keys are not supported", opensshPEM(t, ecKey)},
		{"not pem", "not a PEM block", []byte("hunter2-not-a-key")},
		{"raw seed", "not a PEM block", []byte(priv.Seed())},
		{"corrupt", "malformed PKCS#8", corrupt},
		{"certificate", "unsupported PEM block type \"CERTIFICATE\"", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}})},
	}
	for _, c := range cases {
		_, err := ParseSigningKey(c.text)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) || !strings.Contains(msg, "PKCS#8") || !strings.Contains(msg, "OPENSSH PRIVATE KEY") {
			t.Errorf("%s: unhelpful error: %s", c.name, msg)
		}
		// Never echo key material: no line of the input appears in the error.
		for _, line := range strings.Split(string(c.text), "\n") {
			if len(line) > 8 && !strings.HasPrefix(line, "-----") && strings.Contains(msg, line) {
				t.Errorf("%s: error echoes key material", c.name)
			}
		}
	}
	// ssh-keygen's passphrase-protected key (1 KDF round, to stay fast).
	text, err := os.ReadFile(sshKeygenPass(t, "secret", "-t", "ed25519", "-a", "1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseSigningKey(text); err == nil || !strings.Contains(err.Error(), "passphrase-protected") {
		t.Errorf("encrypted ssh-keygen key: %v", err)
	}
	// ssh-keygen's own RSA key is refused the same way.
	text, err = os.ReadFile(sshKeygen(t, "-t", "rsa", "-b", "1024"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseSigningKey(text); err == nil || !strings.Contains(err.Error(), "RSA keys are not supported") {
		t.Errorf("ssh-keygen rsa key: %v", err)
	}
	// Open reports the same error.
	if _, err := Open(Options{Dir: t.TempDir(), SigningKey: pkcs8PEM(t, rsaKey)}); err == nil || !strings.Contains(err.Error(), "RSA") {
		t.Errorf("Open with an RSA key: %v", err)
	}
}

func TestParsePublicKey(t *testing.T) {
	priv := newEd25519(t)
	pub := priv.Public().(ed25519.PublicKey)
	sk, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{
		"authorized": string(ssh.MarshalAuthorizedKey(sk)),
		"comment":    strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sk))) + " ops@example",
		"pem":        string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		"ours":       AuthorizedKey(pub),
	} {
		got, err := ParsePublicKey(s)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !got.Equal(pub) {
			t.Fatalf("%s: different key", name)
		}
	}
	rsaKey := rsaKeyT(t)
	rsk, err := ssh.NewPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rder, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{
		"rsa ssh": string(ssh.MarshalAuthorizedKey(rsk)),
		"rsa pem": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rder})),
		"garbage": "ssh-ed25519 notbase64!!",
		"empty":   "",
	} {
		if _, err := ParsePublicKey(s); err == nil || !strings.Contains(err.Error(), "ssh-ed25519 AAAA") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
