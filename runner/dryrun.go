package runner

import (
	"context"
	"fmt"
	"strings"
)

// StatusDryRun is the status of a dry run that found nothing in the way.
const StatusDryRun Status = "dry_run"

// DryRun does everything a rollout does before it changes anything, on every host: connect, take
// and release the lock, probe the version, run the guards once (against the version each host
// runs now) and check that a revert would be possible. It changes nothing on the hosts: no deploy,
// no marker. Hosts that would be deployed are reported with status pending, the rest unchanged.
func (r *Runner) DryRun(ctx context.Context, spec Spec) (*Result, error) {
	x, err := r.newExecution(spec)
	if err != nil {
		return nil, err
	}
	x.dryRun = true
	started := x.now()
	defer x.closeAll(ctx)
	x.emit(Event{Action: "dry_run", Result: "started", Message: fmt.Sprintf("dry run of %s %s on %d hosts", spec.Release, spec.Version, len(x.hosts))})
	if errs := x.connectAll(ctx, x.hosts); len(errs) > 0 {
		return x.abort(ctx, started, errs)
	}
	var problems []string
	var checks []checkTarget
	for _, h := range x.hosts {
		if h.current != "" {
			checks = append(checks, checkTarget{h: h, version: h.current})
		}
		if h.status == HostUnchanged {
			continue
		}
		// A revert needs a way back: a revert command, or uploaded files to restore.
		if x.spec.Revert.Command == "" && len(x.spec.Deploy.Files) == 0 {
			problems = append(problems, fmt.Sprintf("%s would change from %s but revert has no command and deploy uploads no files: nothing could put it back", h.Name, versionOrNone(h.current)))
		}
	}
	if len(checks) > 0 && len(x.spec.Guards) > 0 {
		if f := x.runGuards(ctx, "dry_run", checks, 0); f != nil {
			if ctx.Err() != nil {
				return x.interrupted(ctx, started)
			}
			problems = append(problems, fmt.Sprintf("guard %q fails on %s before any change: %s", f.Guard, f.Host, f.Message))
			x.fail(*f)
		}
	}
	would := 0
	for _, h := range x.hosts {
		if h.status != HostUnchanged {
			would++
		}
	}
	if len(problems) > 0 {
		if x.failure == nil {
			x.fail(Failure{Stage: "dry_run", Message: strings.Join(problems, "; ")})
		} else {
			x.failure.Message = strings.Join(problems, "; ")
		}
		x.emit(Event{Action: "dry_run", Result: "failed", Message: strings.Join(problems, "; ")})
		return x.finish(started, StatusAborted, nil)
	}
	x.emit(Event{Action: "dry_run", Result: "ok", Message: fmt.Sprintf("%d of %d hosts would be deployed; locks, versions, guards and revert are in order", would, len(x.hosts))})
	res := x.result(StatusDryRun, started)
	return res, nil
}
