package ssh

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Reasons reported in HostKeyError.Reason.
const (
	ReasonUnknownHost = "unknown host"
	ReasonMismatch    = "mismatch"
	ReasonRevoked     = "revoked"
	ReasonRejected    = "rejected"
)

// HostKeyError reports a host key that could not be verified. It is fatal
// (see IsFatal): a host key mismatch may be an attack and must never be
// retried.
type HostKeyError struct {
	Address     string // host:port as dialed
	Reason      string // ReasonUnknownHost, ReasonMismatch, ReasonRevoked, ReasonRejected
	Fingerprint string // SHA256 fingerprint of the key the host offered ("" if it offered none we could use)
	KeyType     string // type of the key the host offered
	File        string // known_hosts file consulted; "" for a pinned host_key or insecure mode
	Line        int    // line of the recorded key that did not match (mismatch, revoked)
	Detail      string // what exactly was wrong
	Fix         string // what to do about it
}

func (e *HostKeyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ssh: host key verification failed for %s: %s", e.Address, e.Reason)
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Fix != "" {
		b.WriteString(". ")
		b.WriteString(e.Fix)
	}
	return b.String()
}

// AuthError reports that the server refused every offered credential. It is
// fatal (see IsFatal).
type AuthError struct {
	Address, User string
	Err           error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("ssh: authentication as %q to %s failed: %v. Check that the user exists and that the "+
		"public key of private_key (or one of ssh-agent's keys) is in its authorized_keys", e.User, e.Address, e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// ConfigError reports an invalid or unusable configuration. Retrying cannot
// help, so it is fatal too (see IsFatal).
type ConfigError struct {
	Field string // configuration attribute, as named in the provider's HCL (user, private_key, ...)
	Msg   string // what is wrong and how to fix it; never contains key material
}

func (e *ConfigError) Error() string { return "ssh: invalid " + e.Field + ": " + e.Msg }

// TimeoutError reports that a dial or a command did not finish in time.
// errors.Is(err, context.DeadlineExceeded) is true for it.
type TimeoutError struct {
	Op      string // "connect" (TCP), "handshake" (SSH handshake and authentication) or "command"
	Address string
	Command string        // the command's first 80 characters (Op "command")
	Timeout time.Duration // the limit that was exceeded
	// Terminated is set for commands when the remote command was seen to exit
	// after it was signalled; false means it may still be running (for example
	// because the connection was lost).
	Terminated bool
}

func (e *TimeoutError) Error() string {
	switch e.Op {
	case "command":
		s := fmt.Sprintf("ssh: command %q on %s timed out after %s", e.Command, e.Address, e.Timeout)
		if e.Terminated {
			return s + "; it was terminated"
		}
		return s + "; it could not be confirmed that it was terminated"
	case "connect":
		return fmt.Sprintf("ssh: TCP connect to %s timed out after %s: check the address, the port and firewalls", e.Address, e.Timeout)
	default:
		return fmt.Sprintf("ssh: SSH handshake with %s did not complete within %s: the host or its sshd is "+
			"overloaded, frozen or not an SSH server", e.Address, e.Timeout)
	}
}

// Unwrap makes errors.Is(err, context.DeadlineExceeded) true.
func (e *TimeoutError) Unwrap() error { return context.DeadlineExceeded }

// ExitSignalError reports that the remote command was killed by a signal.
// Result.ExitStatus is -1 and Result.Signal names the signal.
type ExitSignalError struct {
	Address string
	Command string // first 80 characters
	Signal  string // e.g. "KILL", "SEGV"
	Message string // the server's message, if any
}

func (e *ExitSignalError) Error() string {
	s := fmt.Sprintf("ssh: command %q on %s was killed by signal %s", e.Command, e.Address, e.Signal)
	if e.Message != "" {
		s += " (" + e.Message + ")"
	}
	return s
}

// IsFatal reports whether err must not be retried: host key errors,
// authentication errors and configuration errors. Transient errors (connection
// refused, timeouts, lost connections) are not fatal.
func IsFatal(err error) bool {
	var hk *HostKeyError
	var ae *AuthError
	var ce *ConfigError
	return errors.As(err, &hk) || errors.As(err, &ae) || errors.As(err, &ce)
}

// shorten returns s's first n runes, marking a cut with "...".
func shorten(s string, n int) string {
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos] + "..."
		}
		i++
	}
	return s
}

func cmdLabel(cmd string) string { return shorten(cmd, 80) }
