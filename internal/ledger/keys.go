package ledger

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// supportedKeyFormats is appended to every signing-key parse error.
const supportedKeyFormats = "the signing key must be an unencrypted ed25519 private key in PEM PKCS#8 form " +
	"(\"-----BEGIN PRIVATE KEY-----\", e.g. from `openssl genpkey -algorithm ed25519`) " +
	"or OpenSSH form (\"-----BEGIN OPENSSH PRIVATE KEY-----\", e.g. from `ssh-keygen -t ed25519 -N ''`)"

func keyError(format string, args ...any) error {
	return fmt.Errorf("ledger: signing key: "+format+"; "+supportedKeyFormats, args...)
}

// ParseSigningKey parses an ed25519 private key in PEM PKCS#8 ("PRIVATE KEY")
// or OpenSSH ("OPENSSH PRIVATE KEY") form. Errors name the supported formats
// and never include key material.
func ParseSigningKey(text []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(bytes.TrimSpace(text))
	if block == nil {
		return nil, keyError("not a PEM block")
	}
	var parsed any
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, keyError("malformed PKCS#8 key")
		}
		parsed = k
	case "OPENSSH PRIVATE KEY":
		k, err := ssh.ParseRawPrivateKey(pem.EncodeToMemory(block))
		if err != nil {
			var pm *ssh.PassphraseMissingError
			if errors.As(err, &pm) {
				return nil, keyError("the OpenSSH key is passphrase-protected, which is not supported (pass the unencrypted key through a sensitive variable)")
			}
			return nil, keyError("malformed OpenSSH key")
		}
		parsed = k
	case "RSA PRIVATE KEY":
		return nil, keyError("RSA keys are not supported")
	case "EC PRIVATE KEY":
		return nil, keyError("ECDSA keys are not supported")
	case "DSA PRIVATE KEY":
		return nil, keyError("DSA keys are not supported")
	case "ENCRYPTED PRIVATE KEY":
		return nil, keyError("encrypted PKCS#8 keys are not supported")
	default:
		return nil, keyError("unsupported PEM block type %q", block.Type)
	}
	var priv ed25519.PrivateKey
	switch k := parsed.(type) {
	case ed25519.PrivateKey:
		priv = k
	case *ed25519.PrivateKey:
		priv = *k
	case *rsa.PrivateKey:
		return nil, keyError("RSA keys are not supported")
	case *ecdsa.PrivateKey:
		return nil, keyError("ECDSA keys are not supported")
	default:
		return nil, keyError("unsupported key type %T", parsed)
	}
	if len(priv) != ed25519.PrivateKeySize {
		return nil, keyError("ed25519 key has the wrong length")
	}
	// Re-derive from the seed: a key whose public half does not match its
	// seed would produce signatures nobody can verify.
	derived := ed25519.NewKeyFromSeed(priv.Seed())
	if !bytes.Equal(derived, priv) {
		return nil, keyError("ed25519 key is inconsistent (public half does not match the seed)")
	}
	return derived, nil
}

// ParsePublicKey parses an ed25519 public key in authorized_keys form
// ("ssh-ed25519 AAAA... comment") or PEM PKIX form ("-----BEGIN PUBLIC KEY-----").
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	const formats = "expected an ed25519 public key as \"ssh-ed25519 AAAA... [comment]\" or PEM \"-----BEGIN PUBLIC KEY-----\""
	if strings.HasPrefix(s, "-----BEGIN") {
		block, _ := pem.Decode([]byte(s))
		if block == nil || block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("ledger: public key: not a PEM \"PUBLIC KEY\" block; %s", formats)
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ledger: public key: malformed PKIX key; %s", formats)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("ledger: public key: %T is not supported; %s", k, formats)
		}
		return pub, nil
	}
	sk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("ledger: public key: cannot parse; %s", formats)
	}
	if sk.Type() != ssh.KeyAlgoED25519 {
		return nil, fmt.Errorf("ledger: public key: %s keys are not supported; %s", sk.Type(), formats)
	}
	cpk, ok := sk.(ssh.CryptoPublicKey)
	if !ok {
		return nil, fmt.Errorf("ledger: public key: cannot extract the key; %s", formats)
	}
	pub, ok := cpk.CryptoPublicKey().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("ledger: public key: not an ed25519 key; %s", formats)
	}
	return pub, nil
}

// KeyIDOf returns the key id of an ed25519 public key: "SHA256:" followed by
// the unpadded base64 SHA-256 of the key's SSH wire encoding. This is exactly
// the fingerprint `ssh-keygen -l -f key.pub` prints, so operators can check a
// key id against a key file with standard tools.
func KeyIDOf(pub ed25519.PublicKey) string {
	sk, err := ssh.NewPublicKey(pub)
	if err != nil {
		return ""
	}
	return ssh.FingerprintSHA256(sk)
}

// AuthorizedKey returns pub in authorized_keys form without a comment
// ("ssh-ed25519 AAAA...").
func AuthorizedKey(pub ed25519.PublicKey) string {
	sk, err := ssh.NewPublicKey(pub)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sk)))
}

// DevKeyFile is the name, under Options.Dir, of the generated development key.
const DevKeyFile = "dev_signing_key"

// loadOrCreateDevKey returns the development key at <dir>/dev_signing_key,
// generating it (PEM PKCS#8, mode 0600) on first use. The caller holds the
// directory lock, so two processes never both generate one.
func loadOrCreateDevKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, DevKeyFile)
	text, err := os.ReadFile(path)
	if err == nil {
		key, perr := ParseSigningKey(text)
		if perr != nil {
			return nil, fmt.Errorf("ledger: development key %s is unreadable (delete it to generate a new one; indexes it signed will then need re-recording): %w", path, perr)
		}
		if fi, serr := os.Stat(path); serr == nil && fi.Mode().Perm()&0o077 != 0 {
			if cerr := os.Chmod(path, 0o600); cerr != nil {
				return nil, fmt.Errorf("ledger: development key %s is readable by others and cannot be restricted to 0600: %w", path, cerr)
			}
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("ledger: reading development key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ledger: generating development key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("ledger: encoding development key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := writeFileAtomic(path, data); err != nil {
		return nil, fmt.Errorf("ledger: writing development key: %w", err)
	}
	return priv, nil
}
