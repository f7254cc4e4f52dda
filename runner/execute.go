package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/canaryops/terraform-provider-canary/runner/guard"
	sshx "github.com/canaryops/terraform-provider-canary/runner/ssh"
	"github.com/canaryops/terraform-provider-canary/runner/tmpl"
)

// Execute rolls spec out: connect to every host (one SSH connection each, held for the whole run),
// lock and probe them, check the canary hosts' health, then deploy stage by stage, observing the
// updated hosts with the guards after each stage. On failure it reverts every host it changed
// (on_failure = "rollback") or stops (on_failure = "halt"). When ctx ends it starts nothing new,
// ends running commands and returns what every host runs.
//
// The Result is always returned and tells the truth about every host; the error is a
// *RolloutError unless the spec itself is invalid.
func (r *Runner) Execute(ctx context.Context, spec Spec) (*Result, error) {
	x, err := r.newExecution(spec)
	if err != nil {
		return nil, err
	}
	started := x.now()
	x.emit(Event{Action: "rollout", Result: "started", Message: fmt.Sprintf("rolling out %s %s to %d hosts in %d stages", spec.Release, spec.Version, len(x.hosts), len(x.plan.Stages))})
	defer x.closeAll(ctx)

	// Connect, lock and probe every host before anything changes: an unreachable, locked or
	// mistrusted host stops the rollout while the fleet is untouched.
	if errs := x.connectAll(ctx, x.hosts); len(errs) > 0 {
		return x.abort(ctx, started, errs)
	}
	defer x.refreshLocks(ctx)()

	// Preflight: the canary hosts must be healthy before the release, or the release would be
	// blamed for a fleet that was already broken.
	canary := x.hostsOf(x.plan.Stages[0].Hosts)
	var pre []checkTarget
	for _, h := range canary {
		if h.current != "" {
			pre = append(pre, checkTarget{h: h, version: h.current})
		}
	}
	if len(pre) > 0 && len(x.spec.Guards) > 0 {
		x.emit(Event{Stage: "preflight", Action: "preflight", Result: "started", Message: "checking the canary hosts before the release"})
		if f := x.runGuards(ctx, "preflight", pre, 0); f != nil {
			if ctx.Err() != nil {
				return x.interrupted(ctx, started)
			}
			f.Message = "the fleet was unhealthy before the release, so the release was not started: " + f.Message
			x.fail(*f)
			x.emit(Event{Stage: "preflight", Host: f.Host, Action: "preflight", Result: "failed", Message: f.Message, Evidence: f.Evidence})
			return x.finish(started, StatusAborted, nil)
		}
	}

	for si, st := range x.plan.Stages {
		if ctx.Err() != nil {
			return x.interrupted(ctx, started)
		}
		wave := x.hostsOf(st.Hosts)
		x.emit(Event{Stage: st.Name, Action: "stage", Result: "started", Message: fmt.Sprintf("stage %d/%d: %s", si+1, len(x.plan.Stages), strings.Join(st.Hosts, ", "))})
		x.deployWave(ctx, st.Name, wave)
		if ctx.Err() != nil {
			return x.interrupted(ctx, started)
		}
		if x.failed() {
			return x.onFailure(ctx, started)
		}
		// Observe every host updated so far: a later wave can reveal a problem in an earlier one.
		var obs []checkTarget
		for _, s := range x.plan.Stages[:si+1] {
			for _, h := range x.hostsOf(s.Hosts) {
				obs = append(obs, checkTarget{h: h, version: x.spec.Version})
			}
		}
		if len(x.spec.Guards) > 0 {
			x.emit(Event{Stage: st.Name, Action: "observe", Result: "started", Message: fmt.Sprintf("observing %d hosts for %s", len(obs), st.Observe)})
			if f := x.runGuards(ctx, st.Name, obs, st.Observe); f != nil {
				if ctx.Err() != nil {
					return x.interrupted(ctx, started)
				}
				x.fail(*f)
				x.emit(Event{Stage: st.Name, Host: f.Host, Action: "observe", Result: "failed", Message: f.Message, Evidence: f.Evidence})
				return x.onFailure(ctx, started)
			}
		} else if st.Observe > 0 {
			if !sleepCtx(ctx, st.Observe) {
				return x.interrupted(ctx, started)
			}
		}
		x.emit(Event{Stage: st.Name, Action: "promote", Result: "ok", Message: fmt.Sprintf("stage %s passed", st.Name)})
	}
	x.emit(Event{Action: "rollout", Result: "ok", Message: fmt.Sprintf("%s %s is on all %d hosts", spec.Release, spec.Version, len(x.hosts))})
	return x.finish(started, StatusSucceeded, nil)
}

func (x *execution) hostsOf(names []string) []*hostRun {
	out := make([]*hostRun, 0, len(names))
	for _, n := range names {
		out = append(out, x.byName[n])
	}
	return out
}

func (x *execution) finish(started time.Time, status Status, cause error) (*Result, error) {
	res := x.result(status, started)
	if status == StatusSucceeded || status == StatusReverted {
		return res, nil
	}
	return res, &RolloutError{Result: res, Cause: cause}
}

func (x *execution) abort(ctx context.Context, started time.Time, errs map[*hostRun]error) (*Result, error) {
	if ctx.Err() != nil {
		return x.interrupted(ctx, started)
	}
	var first *hostRun
	for _, h := range x.hosts {
		if err, ok := errs[h]; ok {
			h.err = err.Error()
			if first == nil {
				first = h
			}
		}
	}
	msg := errs[first].Error()
	if len(errs) > 1 {
		msg += fmt.Sprintf(" (and %d more hosts failed to connect)", len(errs)-1)
	}
	x.fail(Failure{Stage: "connect", Host: first.Name, Message: msg})
	x.emit(Event{Host: first.Name, Action: "rollout", Result: "failed", Message: "no host was changed: " + msg})
	return x.finish(started, StatusAborted, errs[first])
}

// deployWave deploys the hosts of one stage, at most parallelism at once. After a failure it starts
// no more hosts; those already running finish.
func (x *execution) deployWave(ctx context.Context, stage string, wave []*hostRun) {
	forEach(ctx, x.spec.Parallelism, wave, x.failed, func(h *hostRun) {
		if h.current == x.spec.Version && h.status == HostUnchanged {
			x.emit(Event{Stage: stage, Host: h.Name, Action: "deploy", Result: "skipped", Message: "already at " + x.spec.Version})
			return
		}
		if err := x.deployHost(ctx, stage, h); err != nil {
			if ctx.Err() != nil {
				return
			}
			h.status = HostFailed
			h.err = err.Error()
			var f Failure
			if !errors.As(err, &f) {
				f = Failure{Message: err.Error()}
			}
			f.Stage, f.Host = stage, h.Name
			x.fail(f)
			x.emit(Event{Stage: stage, Host: h.Name, Action: "deploy", Result: "failed", Message: f.Message, Evidence: f.Evidence})
		}
	})
}

// Failure doubles as an error inside the runner.
func (f Failure) Error() string { return f.Message }

func (x *execution) deployHost(ctx context.Context, stage string, h *hostRun) error {
	d := x.data(h, stage, x.spec.Version)
	x.emit(Event{Stage: stage, Host: h.Name, Action: "deploy", Result: "started", Message: fmt.Sprintf("%s -> %s", versionOrNone(h.current), x.spec.Version)})
	if err := x.mark(ctx, h, d); err != nil {
		return err
	}
	// From here on the host may have changed: a rollback must include it.
	h.changed = true
	for _, f := range x.spec.Deploy.Files {
		res, err := h.client.Upload(ctx, f.Destination, f.Content, f.Mode, sshx.UploadOptions{Backup: true})
		if err != nil {
			return fmt.Errorf("upload %s: %w", f.Destination, err)
		}
		h.uploads = append(h.uploads, uploaded{path: f.Destination, res: res})
	}
	cmd := ""
	if x.spec.Deploy.Command != "" {
		var err error
		if cmd, err = tmpl.RenderShell(x.spec.Deploy.Command, d); err != nil {
			return fmt.Errorf("deploy.command: %w", err)
		}
	}
	if err := x.applyOn(ctx, h, stage, "deploy", cmd, x.spec.Version, x.marker(h, stage, "deployed"), x.spec.Deploy.Timeout); err != nil {
		return err
	}
	h.status = HostDeployed
	x.emit(Event{Stage: stage, Host: h.Name, Action: "deploy", Result: "ok", Message: fmt.Sprintf("%s -> %s", versionOrNone(h.previous), x.spec.Version)})
	return nil
}

// applyOn runs a deploy or revert command on h, verifies that the host then reports version and
// records the marker. The command runs through the control shell (Shell.Exec: killable, no
// session of its own), then the verification runs on the shell. h.current follows what the host
// reports.
func (x *execution) applyOn(ctx context.Context, h *hostRun, stage, action, cmd, version string, m Marker, timeout time.Duration) error {
	vcmd, err := x.versionCommand(h)
	if err != nil {
		return err
	}
	m.Version = version
	sh, err := x.shellOf(ctx, h)
	if err != nil {
		return Failure{Message: fmt.Sprintf("%s: %v", action, err)}
	}
	output := ""
	if cmd != "" {
		res, err := sh.Exec(ctx, cmd, sshx.RunOptions{Timeout: timeout})
		if err != nil {
			return Failure{Message: fmt.Sprintf("%s command: %v", action, err)}
		}
		if res.ExitStatus != 0 {
			return Failure{Message: fmt.Sprintf("%s command exited %d", action, res.ExitStatus), Evidence: outputEvidence(res)}
		}
		output = res.Stdout
	}
	v, err := verify(ctx, sh, vcmd, version, m, x.r.cmdTimeout())
	if err != nil {
		return Failure{Message: fmt.Sprintf("verifying the %s: %v", action, err)}
	}
	h.current = v.version
	if !v.ok {
		if vcmd != "" && v.version != version {
			return Failure{Message: fmt.Sprintf("after %s the host reports version %s, expected %s", action, versionOrNone(v.version), versionOrNone(version)), Evidence: guard.Bound(strings.TrimSpace(output), 2048)}
		}
		return Failure{Message: "writing the host marker failed", Evidence: guard.Bound(v.output, 2048)}
	}
	if vcmd != "" {
		x.emit(Event{Stage: stage, Host: h.Name, Action: "verify", Result: "ok", Message: "runs " + versionOrNone(v.version)})
	}
	return nil
}

// mark takes each guard's baseline on h (a log offset, the deploy time) just before its version
// changes, so the guards judge only what the new version does.
func (x *execution) mark(ctx context.Context, h *hostRun, d tmpl.Data) error {
	t := guard.SSHTarget{Client: h.client}
	for i, g := range x.spec.Guards {
		if m, ok := g.Check.(guard.Marker); ok {
			v, err := m.Mark(ctx, t, d)
			if err != nil {
				return Failure{Guard: g.Name, Message: fmt.Sprintf("guard %q could not take its baseline: %v", g.Name, err)}
			}
			h.marks[i] = v
		}
	}
	return nil
}

func (x *execution) marker(h *hostRun, stage, status string) Marker {
	m := Marker{
		Release: x.spec.Release, Fleet: x.spec.Fleet, Version: h.current, PreviousVersion: h.previous,
		RunID: x.runID, Stage: stage, Status: status, Time: x.now().UTC(),
	}
	for _, u := range h.uploads {
		m.Files = append(m.Files, MarkerFile{Path: u.path, Existed: u.res.Existed, Backup: u.res.BackupPath})
	}
	return m
}

func outputEvidence(res *sshx.Result) string {
	out := strings.TrimSpace(strings.TrimSpace(res.Stdout) + "\n" + strings.TrimSpace(res.Stderr))
	return guard.Bound(out, 2048)
}

// onFailure applies on_failure after a failed stage.
func (x *execution) onFailure(ctx context.Context, started time.Time) (*Result, error) {
	f := x.failure
	if x.spec.OnFailure == Halt {
		x.emit(Event{Stage: f.Stage, Host: f.Host, Action: "halt", Result: "failed", Message: "halted: no further host will be changed (on_failure = \"halt\")"})
		return x.finish(started, StatusHalted, nil)
	}
	var changed []*hostRun
	for _, h := range x.hosts {
		if h.changed {
			changed = append(changed, h)
		}
	}
	x.emit(Event{Stage: f.Stage, Action: "rollback", Result: "started", Message: fmt.Sprintf("reverting %d hosts", len(changed))})
	incomplete := x.revertHosts(ctx, changed, true)
	if ctx.Err() != nil {
		return x.interrupted(ctx, started)
	}
	res := x.result(StatusRolledBack, started)
	if incomplete != "" {
		res.Status = StatusFailed
		res.RollbackError = incomplete
	}
	x.emit(Event{Stage: f.Stage, Action: "rollback", Result: map[bool]string{true: "ok", false: "failed"}[incomplete == ""], Message: "rollback finished: " + summarizeVersions(res)})
	return res, &RolloutError{Result: res}
}

// revertHosts reverts hosts, newest stage first when staged (a rollback) or in waves of
// parallelism (a destroy), then runs the guards once on the reverted hosts to confirm recovery. It
// returns a description of what could not be reverted or confirmed, or "".
func (x *execution) revertHosts(ctx context.Context, hosts []*hostRun, staged bool) string {
	var groups [][]*hostRun
	if staged {
		for i := len(x.plan.Stages) - 1; i >= 0; i-- {
			var g []*hostRun
			for _, h := range x.hostsOf(x.plan.Stages[i].Hosts) {
				if slices.Contains(hosts, h) {
					g = append(g, h)
				}
			}
			if len(g) > 0 {
				groups = append(groups, g)
			}
		}
	} else {
		groups = [][]*hostRun{hosts}
	}
	var mu sync.Mutex
	var problems []string
	for _, g := range groups {
		forEach(ctx, x.spec.Parallelism, g, nil, func(h *hostRun) {
			if err := x.revertHost(ctx, h); err != nil {
				h.status = HostRevertFailed
				h.err = err.Error()
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s: %v", h.Name, err))
				mu.Unlock()
				x.emit(Event{Stage: h.stage, Host: h.Name, Action: "revert", Result: "failed", Message: err.Error()})
			}
		})
		if ctx.Err() != nil {
			return "interrupted"
		}
	}
	var confirm []checkTarget
	for _, h := range hosts {
		if h.status == HostReverted && h.current != "" {
			confirm = append(confirm, checkTarget{h: h, version: h.current})
		}
	}
	if len(confirm) > 0 && len(x.spec.Guards) > 0 {
		if f := x.runGuards(ctx, "revert", confirm, 0); f != nil {
			problems = append(problems, fmt.Sprintf("%s did not recover after the revert: guard %q: %s", f.Host, f.Guard, f.Message))
		} else {
			x.emit(Event{Stage: "revert", Action: "confirm", Result: "ok", Message: fmt.Sprintf("%d reverted hosts are healthy", len(confirm))})
		}
	}
	return strings.Join(problems, "; ")
}

// revertHost puts the host back to its previous version: restore uploaded files, run the revert
// command with {{.PreviousVersion}}, verify.
func (x *execution) revertHost(ctx context.Context, h *hostRun) error {
	if h.client == nil {
		return errors.New("not connected")
	}
	to := h.previous
	x.emit(Event{Stage: h.stage, Host: h.Name, Action: "revert", Result: "started", Message: fmt.Sprintf("%s -> %s", versionOrNone(h.current), versionOrNone(to))})
	if len(h.uploads) == 0 && h.prior != nil && h.prior.Status == "deployed" && h.prior.Version == h.current {
		// Deployed by an earlier run (a destroy, or a resumed rollout): its marker lists the files.
		for _, f := range h.prior.Files {
			h.uploads = append(h.uploads, uploaded{path: f.Path, res: &sshx.UploadResult{Existed: f.Existed, BackupPath: f.Backup}})
		}
	}
	for i := len(h.uploads) - 1; i >= 0; i-- {
		u := h.uploads[i]
		if err := h.client.Restore(ctx, u.path, u.res); err != nil {
			return fmt.Errorf("restore %s: %w", u.path, err)
		}
	}
	h.uploads = nil
	// The guards that confirm the revert judge the reverted version from here on, not the lines
	// the failed version logged.
	if err := x.mark(ctx, h, x.data(h, h.stage, to)); err != nil {
		return err
	}
	cmd := ""
	if x.spec.Revert.Command != "" {
		var err error
		if cmd, err = tmpl.RenderShell(x.spec.Revert.Command, x.data(h, h.stage, to)); err != nil {
			return fmt.Errorf("revert.command: %w", err)
		}
	}
	m := x.marker(h, h.stage, "reverted")
	m.PreviousVersion = h.current // what it is reverted from
	if p := h.prior; p != nil && p.Status == "deployed" && p.Version == to {
		// Rolled back to what an earlier, finished rollout of this release deployed: its marker is
		// the truth again, so a later destroy still knows where that rollout came from.
		m = *p
	}
	if err := x.applyOn(ctx, h, h.stage, "revert", cmd, to, m, x.spec.Revert.Timeout); err != nil {
		return err
	}
	h.status = HostReverted
	h.changed = false
	x.emit(Event{Stage: h.stage, Host: h.Name, Action: "revert", Result: "ok", Message: "runs " + versionOrNone(to)})
	return nil
}

// interrupted finishes a run whose context ended: hosts whose command was cut short are probed
// (within the cleanup timeout) so the result says what they run.
func (x *execution) interrupted(ctx context.Context, started time.Time) (*Result, error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), x.r.cleanupTimeout())
	defer cancel()
	var unsure []*hostRun
	for _, h := range x.hosts {
		if h.client != nil && h.changed && h.status != HostDeployed && h.status != HostUnchanged && h.status != HostReverted {
			unsure = append(unsure, h)
		}
	}
	forEach(cctx, 32, unsure, nil, func(h *hostRun) {
		v, err := x.version(cctx, h)
		switch {
		case err != nil || x.spec.VersionCommand == "":
			h.status = HostUnknown
		case v == x.spec.Version:
			h.current, h.status = v, HostDeployed
			_ = writeMarker(cctx, h.client, x.marker(h, h.stage, "deployed"), x.r.cmdTimeout())
		case v == h.previous:
			h.current, h.status, h.changed = v, HostPending, false
		default:
			h.current, h.status = v, HostUnknown
		}
	})
	x.emit(Event{Action: "interrupt", Result: "failed", Message: "interrupted: " + summarizeVersions(x.result(StatusInterrupted, started))})
	return x.finish(started, StatusInterrupted, fmt.Errorf("%w: %w", errInterrupted, context.Cause(ctx)))
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
