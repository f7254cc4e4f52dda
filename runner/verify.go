package runner

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/canaryops/terraform-provider-canary/runner/guard"
	sshx "github.com/canaryops/terraform-provider-canary/runner/ssh"
)

// Verify runs every guard once on every host, as a follow-up check long after a rollout: the
// hosts are expected to run spec.Version, and guards whose baseline is a time (Sentry) look back
// to since, the deploy. It changes nothing on the hosts and takes no lock.
//
// The Result's Failure names the first fatal guard that failed; warnings are in Warnings and
// every verdict in Guards. The error is a *RolloutError when a fatal guard failed or a host could
// not be reached.
func (r *Runner) Verify(ctx context.Context, spec Spec, since time.Time) (*Result, error) {
	x, err := r.newExecution(spec)
	if err != nil {
		return nil, err
	}
	started := x.now()
	defer x.closeAll(ctx)
	x.emit(Event{Action: "followup", Result: "started", Message: fmt.Sprintf("checking %s %s on %d hosts (deployed %s)", spec.Release, spec.Version, len(x.hosts), since.UTC().Format(time.RFC3339))})
	var mu sync.Mutex
	var unreachable []*hostRun
	forEach(ctx, 32, x.hosts, nil, func(h *hostRun) {
		c, err := sshx.Dial(ctx, x.r.SSH, sshx.Endpoint{Address: h.Address, HostKey: h.HostKey})
		if err != nil {
			h.err = err.Error()
			mu.Lock()
			unreachable = append(unreachable, h)
			mu.Unlock()
			return
		}
		x.conns.Add(1)
		h.client = c
		h.current, h.status = x.spec.Version, HostUnchanged
		for i, g := range x.spec.Guards {
			if s, ok := g.Check.(guard.Sincer); ok {
				h.marks[i] = s.MarkSince(since)
			}
		}
	})
	if ctx.Err() != nil {
		return x.interrupted(ctx, started)
	}
	if len(unreachable) > 0 {
		h := unreachable[0]
		x.fail(Failure{Stage: "followup", Host: h.Name, Message: "could not connect: " + h.err})
		return x.finish(started, StatusFailed, nil)
	}
	var targets []checkTarget
	for _, h := range x.hosts {
		targets = append(targets, checkTarget{h: h, version: x.spec.Version})
	}
	if f := x.runGuards(ctx, "followup", targets, 0); f != nil {
		if ctx.Err() != nil {
			return x.interrupted(ctx, started)
		}
		x.fail(*f)
		x.emit(Event{Stage: "followup", Host: f.Host, Action: "followup", Result: "failed", Message: f.Message, Evidence: f.Evidence})
		return x.finish(started, StatusFailed, nil)
	}
	x.emit(Event{Action: "followup", Result: "ok", Message: "all guards pass"})
	return x.finish(started, StatusSucceeded, nil)
}
