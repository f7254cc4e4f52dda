package devfleet

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// keyPair is an ed25519 key with its OpenSSH encodings.
type keyPair struct {
	signer  ssh.Signer
	private []byte // OpenSSH PEM ("-----BEGIN OPENSSH PRIVATE KEY-----")
	public  []byte // authorized_keys line, with newline
}

func newKeyPair(comment string) (keyPair, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return keyPair{}, fmt.Errorf("generate ed25519 key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return keyPair{}, fmt.Errorf("marshal private key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return keyPair{}, err
	}
	pub := ssh.MarshalAuthorizedKey(signer.PublicKey())
	if comment != "" {
		pub = append(pub[:len(pub)-1], []byte(" "+comment+"\n")...)
	}
	return keyPair{signer: signer, private: pem.EncodeToMemory(block), public: pub}, nil
}

// knownHostsAddr is the known_hosts host pattern for 127.0.0.1:port.
func knownHostsAddr(addr string, port int) string {
	if port == 22 {
		return addr
	}
	return "[" + addr + "]:" + strconv.Itoa(port)
}

func knownHostsLine(addr string, port int, key ssh.PublicKey) string {
	return knownHostsAddr(addr, port) + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
}

// hostAddr is "127.0.0.1:port".
func hostAddr(addr string, port int) string { return net.JoinHostPort(addr, strconv.Itoa(port)) }
