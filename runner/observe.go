package runner

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/canaryops/terraform-provider-canary/runner/guard"
)

// checkTarget is a host and the version it is expected to run while it is checked.
type checkTarget struct {
	h       *hostRun
	version string
}

// runGuards checks every guard on every target: every guard's interval for at least window, then
// until each fatal guard passes SuccessThreshold times in a row. A fatal guard failing
// FailureThreshold times in a row on any host ends the observation at once and is returned as the
// failure. Warn guards never fail the stage; their failures are kept as warnings.
func (x *execution) runGuards(parent context.Context, stage string, targets []checkTarget, window time.Duration) *Failure {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var once sync.Once
	var failure *Failure
	// Bound concurrent checks: each is an SSH session on a host's connection.
	sem := make(chan struct{}, max(x.spec.Parallelism*len(x.spec.Guards), 16))
	deadline := x.now().Add(window)
	var wg sync.WaitGroup
	for _, t := range targets {
		for gi, g := range x.spec.Guards {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if f := x.watch(ctx, stage, t, gi, g, deadline, sem); f != nil {
					once.Do(func() { failure = f; cancel() })
				}
			}()
		}
	}
	wg.Wait()
	if failure == nil && parent.Err() != nil {
		return &Failure{Stage: stage, Message: "interrupted"}
	}
	return failure
}

// watch runs one guard on one host until it settles.
func (x *execution) watch(ctx context.Context, stage string, t checkTarget, gi int, g guard.Guard, deadline time.Time, sem chan struct{}) *Failure {
	h := t.h
	d := x.data(h, stage, t.version)
	rep := GuardReport{Guard: g.Name, Severity: g.Severity, Host: h.Name, Stage: stage}
	fails, oks := 0, 0
	// A warn guard that failed, or a check that passed with a warning, is reported whatever
	// happens next.
	var lastFail *GuardReport
	defer func() {
		if lastFail != nil {
			x.warn(*lastFail)
		}
	}()
	// After the window, a fatal guard that has not settled gets a bounded number of extra checks.
	extra := 2 * (g.FailureThreshold + g.SuccessThreshold)
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		cctx, cancel := context.WithTimeout(ctx, g.Timeout)
		res := g.Check.Check(cctx, guard.SSHTarget{Client: h.client}, d, h.marks[gi])
		cancel()
		<-sem
		if ctx.Err() != nil {
			return nil
		}
		rep.Checks++
		rep.OK, rep.Message, rep.Evidence, rep.Time = res.OK, res.Message, res.Evidence, x.now()
		if res.Pending {
			// Undecided: no success and no failure; keep checking (the checker bounds how long).
			x.report(rep)
			if !sleepCtx(ctx, g.Interval) {
				return nil
			}
			continue
		}
		if res.Warning {
			x.emit(Event{Stage: stage, Host: h.Name, Action: "guard", Result: "warning", Message: fmt.Sprintf("guard %q: %s", g.Name, res.Message), Evidence: res.Evidence})
			r := rep
			lastFail = &r
		}
		if res.OK {
			oks++
			fails = 0
		} else {
			rep.Failures++
			fails++
			oks = 0
		}
		x.report(rep)
		if !res.OK {
			if g.Severity == guard.Warn {
				x.emit(Event{Stage: stage, Host: h.Name, Action: "guard", Result: "warning", Message: fmt.Sprintf("guard %q (warn): %s", g.Name, res.Message), Evidence: res.Evidence})
				r := rep
				lastFail = &r
			} else {
				x.emit(Event{Stage: stage, Host: h.Name, Action: "guard", Result: "failed", Message: fmt.Sprintf("guard %q failed (%d/%d in a row): %s", g.Name, fails, g.FailureThreshold, res.Message), Evidence: res.Evidence})
				if fails >= g.FailureThreshold {
					return &Failure{Stage: stage, Host: h.Name, Guard: g.Name,
						Message:  fmt.Sprintf("failed %d times in a row: %s", fails, res.Message),
						Evidence: res.Evidence}
				}
			}
		}
		if !x.now().Before(deadline) {
			if g.Severity == guard.Warn {
				return nil
			}
			if oks >= g.SuccessThreshold {
				x.emit(Event{Stage: stage, Host: h.Name, Action: "guard", Result: "ok", Message: fmt.Sprintf("guard %q passed: %s", g.Name, res.Message)})
				return nil
			}
			if extra--; extra < 0 {
				return &Failure{Stage: stage, Host: h.Name, Guard: g.Name,
					Message:  fmt.Sprintf("did not settle: %d of %d checks failed and it never passed %d times in a row; last: %s", rep.Failures, rep.Checks, g.SuccessThreshold, res.Message),
					Evidence: res.Evidence}
			}
		}
		wait := g.Interval
		if left := deadline.Sub(x.now()); left > 0 && left < wait && oks >= g.SuccessThreshold {
			wait = left
		}
		if !sleepCtx(ctx, wait) {
			return nil
		}
	}
}

func (x *execution) report(rep GuardReport) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.reports[rep.Guard+"\x00"+rep.Host] = rep
}

func (x *execution) warn(rep GuardReport) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.warnings = append(x.warnings, rep)
}
