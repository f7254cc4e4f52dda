package runner

import (
	"context"
	"fmt"
	"strings"
)

// RevertTarget is a host to put back: from the version the release put there to the one it ran
// before.
type RevertTarget struct {
	Host string
	// To is the version to put back ("" when nothing was installed before).
	To string
	// From is the version the release put there. A host that runs something else now was changed by
	// someone else and is left alone. Empty means "whatever it runs".
	From string
}

// Revert rolls back the last rollout of spec's release: every target goes back to its To version,
// in waves of parallelism and without a canary phase, then the guards confirm the reverted hosts.
// With targets nil the hosts' markers say which hosts the release changed and what they ran before.
// An unreachable host does not stop the others; the error lists what could not be reverted.
func (r *Runner) Revert(ctx context.Context, spec Spec, targets []RevertTarget) (*Result, error) {
	x, err := r.newExecution(spec)
	if err != nil {
		return nil, err
	}
	started := x.now()
	defer x.closeAll(ctx)

	involved := x.hosts
	byHost := map[string]RevertTarget{}
	if targets != nil {
		involved = nil
		for _, t := range targets {
			h, ok := x.byName[t.Host]
			if !ok {
				return nil, fmt.Errorf("revert: host %q is not in the fleet", t.Host)
			}
			byHost[t.Host] = t
			involved = append(involved, h)
		}
	}
	for _, h := range x.hosts {
		h.status = HostUnchanged
	}
	x.emit(Event{Action: "revert", Result: "started", Message: fmt.Sprintf("reverting %s on %d hosts", spec.Release, len(involved))})
	errs := x.connectAll(ctx, involved)
	defer x.refreshLocks(ctx)()
	if ctx.Err() != nil {
		return x.interrupted(ctx, started)
	}
	var problems []string
	var todo []*hostRun
	for _, h := range involved {
		if err := errs[h]; err != nil {
			h.status, h.err = HostRevertFailed, err.Error()
			problems = append(problems, fmt.Sprintf("%s: %v", h.Name, err))
			continue
		}
		h.status = HostUnchanged
		to, from, want := h.previous, "", h.changed
		if t, ok := byHost[h.Name]; ok {
			to, from, want = t.To, t.From, true
		}
		switch {
		case !want:
			// The markers say this release did not change the host (or already reverted it).
		case h.current == to:
			h.previous, h.changed, h.status = to, false, HostReverted
		case from != "" && h.current != from:
			msg := fmt.Sprintf("runs %s, not %s that the release put there: someone else changed it, so it was left alone", versionOrNone(h.current), from)
			h.err = msg
			x.emit(Event{Host: h.Name, Action: "revert", Result: "warning", Message: msg})
		default:
			h.previous, h.changed = to, true
			todo = append(todo, h)
		}
	}
	if s := x.revertHosts(ctx, todo, false); s != "" {
		problems = append(problems, s)
	}
	if ctx.Err() != nil {
		return x.interrupted(ctx, started)
	}
	if len(problems) > 0 {
		res := x.result(StatusFailed, started)
		res.RollbackError = strings.Join(problems, "; ")
		x.emit(Event{Action: "revert", Result: "failed", Message: res.RollbackError})
		return res, &RolloutError{Result: res}
	}
	x.emit(Event{Action: "revert", Result: "ok", Message: fmt.Sprintf("reverted %d hosts", len(todo))})
	return x.finish(started, StatusReverted, nil)
}
