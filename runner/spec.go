package runner

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/canaryops/terraform-provider-canary/runner/guard"
	"github.com/canaryops/terraform-provider-canary/runner/tmpl"
)

// OnFailure says what a failed stage does.
type OnFailure string

const (
	// Rollback reverts every host the rollout changed, newest stage first.
	Rollback OnFailure = "rollback"
	// Halt changes nothing more and leaves the fleet as it is.
	Halt OnFailure = "halt"
)

// Defaults.
const (
	DefaultParallelism   = 10
	DefaultDeployTimeout = 10 * time.Minute
)

// File is a file uploaded to each host before the deploy command runs. The file it replaces is
// backed up and put back on revert.
type File struct {
	Destination string
	Content     []byte
	Mode        os.FileMode
}

// Action is what deploy or revert does on a host: upload files, then run a command.
type Action struct {
	Command string // shell template; values are shell-quoted
	Files   []File
	Timeout time.Duration
}

// Spec is a release to roll out over a fleet.
type Spec struct {
	Release string // stable identifier of the release; names host markers
	Fleet   string
	Version string
	Hosts   []Host
	Stages  []Stage
	Deploy  Action
	Revert  Action
	// VersionCommand prints the version a host runs; used to skip hosts already at the target and
	// to verify deploy and revert.
	VersionCommand string
	Guards         []guard.Guard
	OnFailure      OnFailure
	Parallelism    int
	// RunID identifies this rollout in events, markers and the ledger; generated when empty.
	RunID string
}

// Validate checks everything that can be checked without touching a host.
func (s Spec) Validate() error {
	var errs []error
	if strings.TrimSpace(s.Release) == "" {
		errs = append(errs, cfgErr("release", "the release needs an identifier"))
	}
	if strings.TrimSpace(s.Version) == "" {
		errs = append(errs, cfgErr("version", "the release needs a version"))
	}
	if _, err := PlanRollout(s.Hosts, s.Stages); err != nil {
		errs = append(errs, err)
	}
	if strings.TrimSpace(s.Deploy.Command) == "" && len(s.Deploy.Files) == 0 {
		errs = append(errs, cfgErr("deploy", "deploy needs a command or files"))
	}
	for _, a := range []struct {
		name string
		act  Action
	}{{"deploy", s.Deploy}, {"revert", s.Revert}} {
		if err := tmpl.Validate(a.act.Command, true); err != nil {
			errs = append(errs, cfgErr(a.name+".command", "%s", err))
		}
		if a.act.Timeout < 0 {
			errs = append(errs, cfgErr(a.name+".timeout", "must not be negative"))
		}
		for i, f := range a.act.Files {
			if strings.TrimSpace(f.Destination) == "" {
				errs = append(errs, cfgErr(fmt.Sprintf("%s.files[%d].destination", a.name, i), "a file needs a destination path"))
			}
		}
	}
	if err := tmpl.Validate(s.VersionCommand, true); err != nil {
		errs = append(errs, cfgErr("version_command", "%s", err))
	}
	switch s.OnFailure {
	case "", Rollback, Halt:
	default:
		errs = append(errs, cfgErr("on_failure", "%q is not valid; use \"rollback\" or \"halt\"", s.OnFailure))
	}
	if s.Parallelism < 0 {
		errs = append(errs, cfgErr("parallelism", "must be at least 1"))
	}
	names := map[string]bool{}
	for i, g := range s.Guards {
		if err := g.Validate(); err != nil {
			errs = append(errs, cfgErr(fmt.Sprintf("guards[%d]", i), "%s", err))
		}
		if names[g.Name] {
			errs = append(errs, cfgErr(fmt.Sprintf("guards[%d]", i), "guard %q is listed twice", g.Name))
		}
		names[g.Name] = true
	}
	return errors.Join(errs...)
}

func (s Spec) withDefaults() Spec {
	if s.OnFailure == "" {
		s.OnFailure = Rollback
	}
	if s.Parallelism <= 0 {
		s.Parallelism = DefaultParallelism
	}
	if s.Deploy.Timeout <= 0 {
		s.Deploy.Timeout = DefaultDeployTimeout
	}
	if s.Revert.Timeout <= 0 {
		s.Revert.Timeout = s.Deploy.Timeout
	}
	gs := make([]guard.Guard, len(s.Guards))
	for i, g := range s.Guards {
		gs[i] = g.WithDefaults()
	}
	s.Guards = gs
	return s
}
