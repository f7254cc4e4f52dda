package runner

import (
	"fmt"
	"strings"
	"time"

	"github.com/canaryops/terraform-provider-canary/runner/guard"
)

// Status is the outcome of a rollout or revert.
type Status string

const (
	StatusSucceeded   Status = "succeeded"
	StatusRolledBack  Status = "rolled_back" // a stage failed and every changed host was reverted
	StatusHalted      Status = "halted"      // a stage failed and on_failure = "halt" left the fleet as it was
	StatusInterrupted Status = "interrupted" // the context ended; nothing new was started
	StatusAborted     Status = "aborted"     // stopped before any host changed (unreachable, locked, unhealthy)
	StatusFailed      Status = "failed"      // a rollback or revert could not complete
	StatusReverted    Status = "reverted"    // Revert completed
)

// HostStatus is what happened to one host.
type HostStatus string

const (
	HostPending      HostStatus = "pending"       // not reached
	HostUnchanged    HostStatus = "unchanged"     // already at the target version; not redeployed
	HostDeployed     HostStatus = "deployed"      // updated by this rollout
	HostFailed       HostStatus = "failed"        // deploy or verify failed
	HostReverted     HostStatus = "reverted"      // put back to its previous version
	HostRevertFailed HostStatus = "revert_failed" // revert did not complete; needs an operator
	HostUnknown      HostStatus = "unknown"       // interrupted mid-command and could not be probed
)

// HostResult says what a host runs after the rollout and how it got there.
type HostResult struct {
	Name  string
	Stage string // the stage that updates it
	// Version is what the host runs now, as last observed ("" when nothing is installed).
	Version string
	// PreviousVersion is what it ran before this release changed it.
	PreviousVersion string
	Status          HostStatus
	// Changed is true while the host runs a version this release put there (so a revert applies).
	Changed bool
	Error   string
}

// GuardReport is a guard's verdict on one host.
type GuardReport struct {
	Guard    string
	Severity guard.Severity
	Host     string
	Stage    string
	OK       bool
	Checks   int // checks run
	Failures int // failed checks
	Message  string
	Evidence string
	Time     time.Time
}

// Failure says what stopped a rollout: where, and the evidence.
type Failure struct {
	Stage    string
	Host     string
	Guard    string
	Message  string
	Evidence string
}

// Result is the outcome of Execute or Revert: the truth about every host.
type Result struct {
	RunID      string
	Release    string
	Version    string
	Status     Status
	StartedAt  time.Time
	FinishedAt time.Time
	Hosts      []HostResult
	Failure    *Failure
	// RollbackError is set when a rollback or revert left hosts it could not put back.
	RollbackError string
	// Warnings are failing warn-severity guards; they never block a rollout and are never dropped.
	Warnings []GuardReport
	// Guards holds the last verdict of every guard on every host it checked.
	Guards []GuardReport
	// Connections counts the SSH connections opened (one per host).
	Connections int
}

// Host returns the result for the named host, or nil.
func (r *Result) Host(name string) *HostResult {
	for i := range r.Hosts {
		if r.Hosts[i].Name == name {
			return &r.Hosts[i]
		}
	}
	return nil
}

// HostsWith lists the names of hosts with the given status.
func (r *Result) HostsWith(s HostStatus) []string {
	var out []string
	for _, h := range r.Hosts {
		if h.Status == s {
			out = append(out, h.Name)
		}
	}
	return out
}

// RolloutError is returned when a rollout does not succeed; Result tells exactly what every host
// runs.
type RolloutError struct {
	Result *Result
	Cause  error
}

func (e *RolloutError) Unwrap() error { return e.Cause }

func (e *RolloutError) Error() string {
	r := e.Result
	var b strings.Builder
	f := r.Failure
	switch {
	case f != nil && f.Stage != "" && f.Host != "":
		fmt.Fprintf(&b, "release %s %s: stage %q failed on host %q", r.Release, r.Version, f.Stage, f.Host)
	case f != nil && f.Host != "":
		fmt.Fprintf(&b, "release %s %s: host %q", r.Release, r.Version, f.Host)
	default:
		fmt.Fprintf(&b, "release %s %s", r.Release, r.Version)
	}
	if f != nil {
		if f.Guard != "" {
			fmt.Fprintf(&b, ": guard %q", f.Guard)
		}
		if f.Message != "" {
			fmt.Fprintf(&b, ": %s", f.Message)
		}
		if f.Evidence != "" && f.Evidence != f.Message {
			fmt.Fprintf(&b, "\nevidence: %s", f.Evidence)
		}
	} else if e.Cause != nil {
		fmt.Fprintf(&b, ": %v", e.Cause)
	}
	switch r.Status {
	case StatusRolledBack:
		fmt.Fprintf(&b, "\nrolled back: %s", listOrNone(r.HostsWith(HostReverted)))
	case StatusHalted:
		fmt.Fprintf(&b, "\nhalted (on_failure = \"halt\"): %s", summarizeVersions(r))
	case StatusInterrupted:
		fmt.Fprintf(&b, "\ninterrupted: %s", summarizeVersions(r))
	case StatusAborted:
		b.WriteString("\nno host was changed")
	}
	if r.RollbackError != "" {
		fmt.Fprintf(&b, "\nROLLBACK INCOMPLETE: %s", r.RollbackError)
	}
	fmt.Fprintf(&b, "\nrun_id: %s", r.RunID)
	return b.String()
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "no host"
	}
	return strings.Join(s, ", ")
}

// summarizeVersions says which hosts run which version, grouped.
func summarizeVersions(r *Result) string {
	var order []string
	by := map[string][]string{}
	for _, h := range r.Hosts {
		v := h.Version
		if h.Status == HostUnknown {
			v = "unknown"
		} else if v == "" {
			v = "(none)"
		}
		if _, ok := by[v]; !ok {
			order = append(order, v)
		}
		by[v] = append(by[v], h.Name)
	}
	parts := make([]string, 0, len(order))
	for _, v := range order {
		parts = append(parts, fmt.Sprintf("%s on %s", v, strings.Join(by[v], ", ")))
	}
	return strings.Join(parts, "; ")
}
