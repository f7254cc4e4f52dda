// Package guard holds the health checks that gate a rollout. Every guard runs against one host
// through that host's SSH connection (a Target), so "127.0.0.1:8080" means the host's own loopback.
package guard

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	sshx "github.com/canaryops/terraform-provider-canary/runner/ssh"
	"github.com/canaryops/terraform-provider-canary/runner/tmpl"
)

// Severity says what a failing guard means: fatal stops the stage, warn is recorded and shown.
type Severity string

const (
	Fatal Severity = "fatal"
	Warn  Severity = "warn"
)

// Defaults for a guard's schedule and promotion criteria.
const (
	DefaultInterval         = 10 * time.Second
	DefaultTimeout          = 10 * time.Second
	DefaultFailureThreshold = 3
	DefaultSuccessThreshold = 1
)

// ExecResult is the outcome of a command on a host.
type ExecResult struct {
	Stdout, Stderr string
	ExitStatus     int
}

// Target is a host as a guard sees it: commands and TCP connections go through its SSH connection.
type Target interface {
	Exec(ctx context.Context, cmd string, timeout time.Duration) (ExecResult, error)
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// SSHTarget is a host's SSH connection as a Target.
type SSHTarget struct{ Client *sshx.Client }

func (t SSHTarget) Exec(ctx context.Context, cmd string, timeout time.Duration) (ExecResult, error) {
	res, err := t.Client.Run(ctx, cmd, sshx.RunOptions{Timeout: timeout})
	if err != nil {
		return ExecResult{}, err
	}
	return ExecResult{Stdout: res.Stdout, Stderr: res.Stderr, ExitStatus: res.ExitStatus}, nil
}

func (t SSHTarget) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return t.Client.DialContext(ctx, network, addr)
}

// Result is one check's outcome. Evidence is what an operator needs to see why it failed: the
// response body, the log lines, the command output (bounded).
type Result struct {
	OK bool
	// Pending means the check cannot decide yet (something must appear within a deadline that
	// has not passed): neither a success nor a failure. The runner keeps checking.
	Pending bool
	// Warning marks a passing result the operator must still see (for example "Sentry could not
	// be reached" with on_unavailable = "warn"); the runner records it like a warn guard's failure.
	Warning  bool
	Message  string
	Evidence string
}

// Checker is one kind of check.
type Checker interface {
	// Kind names the check kind ("http", "tcp", "command", ...).
	Kind() string
	// Validate checks the configuration without touching any host.
	Validate() error
	// Check runs the check once on a host. mark is what Mark returned for this host, or nil.
	Check(ctx context.Context, t Target, d tmpl.Data, mark any) Result
}

// Marker is implemented by checkers that need a baseline taken on each host just before it is
// deployed (a log offset, a timestamp); the runner passes it back to every Check on that host.
type Marker interface {
	Mark(ctx context.Context, t Target, d tmpl.Data) (any, error)
}

// Sincer is implemented by checkers whose baseline is a point in time (the deploy): follow-up
// checks, which run long after the deploy without a Mark, get their baseline from it.
type Sincer interface {
	MarkSince(t time.Time) any
}

// Guard is a named check with its schedule and promotion criteria.
type Guard struct {
	Name     string
	Severity Severity
	// Interval between checks on one host while a stage is observed.
	Interval time.Duration
	// Timeout of one check.
	Timeout time.Duration
	// FailureThreshold is how many consecutive failures of a fatal guard fail the stage.
	FailureThreshold int
	// SuccessThreshold is how many consecutive successes a guard needs to count as passing.
	SuccessThreshold int
	Check            Checker
}

// WithDefaults returns g with unset fields at their defaults.
func (g Guard) WithDefaults() Guard {
	if g.Severity == "" {
		g.Severity = Fatal
	}
	if g.Interval <= 0 {
		g.Interval = DefaultInterval
	}
	if g.Timeout <= 0 {
		g.Timeout = DefaultTimeout
	}
	if g.FailureThreshold <= 0 {
		g.FailureThreshold = DefaultFailureThreshold
	}
	if g.SuccessThreshold <= 0 {
		g.SuccessThreshold = DefaultSuccessThreshold
	}
	return g
}

// Validate checks a guard's settings.
func (g Guard) Validate() error {
	if strings.TrimSpace(g.Name) == "" {
		return fmt.Errorf("a guard needs a name")
	}
	if g.Severity != "" && g.Severity != Fatal && g.Severity != Warn {
		return fmt.Errorf("guard %q: severity %q is not valid; use \"fatal\" or \"warn\"", g.Name, g.Severity)
	}
	if g.Check == nil {
		return fmt.Errorf("guard %q has no check; set one of http, tcp, command", g.Name)
	}
	if err := g.Check.Validate(); err != nil {
		return fmt.Errorf("guard %q: %w", g.Name, err)
	}
	return nil
}

// Bound shortens s to at most n bytes, keeping its start and end.
func Bound(s string, n int) string {
	if len(s) <= n {
		return s
	}
	half := n / 2
	return s[:half] + fmt.Sprintf("\n[... %d bytes cut ...]\n", len(s)-2*half) + s[len(s)-half:]
}

// evidenceBytes bounds the evidence one check keeps.
const evidenceBytes = 2048
