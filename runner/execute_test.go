package runner_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canaryops/terraform-provider-canary/internal/devfleet"
	"github.com/canaryops/terraform-provider-canary/runner"
	"github.com/canaryops/terraform-provider-canary/runner/guard"
)

func TestHealthyRolloutThreeStages(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 6, devfleet.Options{})
	res, err := f.runner().Execute(ctxT(t, time.Minute), f.spec("1.1.0"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != runner.StatusSucceeded {
		t.Fatalf("status %s", res.Status)
	}
	f.expectVersions(f.all("1.1.0"))
	wantStage := map[string]string{"host-1": "canary", "host-2": "wave", "host-3": "wave", "host-4": "fleet", "host-5": "fleet", "host-6": "fleet"}
	for _, h := range f.Hosts {
		hr := res.Host(h.Name)
		if hr.Status != runner.HostDeployed || hr.Version != "1.1.0" || hr.PreviousVersion != "1.0.0" || hr.Stage != wantStage[h.Name] {
			t.Errorf("%s: %+v", h.Name, *hr)
		}
		m := marker(t, h)
		for _, want := range []string{`"version": "1.1.0"`, `"previous_version": "1.0.0"`, `"status": "deployed"`, `"run_id": "` + res.RunID + `"`, `"stage": "` + wantStage[h.Name] + `"`} {
			if !strings.Contains(m, want) {
				t.Errorf("%s marker lacks %s:\n%s", h.Name, want, m)
			}
		}
		if n := starts(t, h, "1.1.0"); n != 1 {
			t.Errorf("%s: agent log shows 1.1.0 started %d times", h.Name, n)
		}
	}
	if res.Connections != 6 {
		t.Errorf("opened %d SSH connections for 6 hosts, want one each", res.Connections)
	}
	// Canary first: every wave host is deployed after the canary passed its observation.
	promoted := f.eventsWhere("promote", "ok")
	if len(promoted) != 3 || promoted[0].Stage != "canary" {
		t.Fatalf("promotions: %+v", promoted)
	}
	for _, ev := range f.eventsWhere("deploy", "started") {
		if ev.Host != "host-1" && ev.Time.Before(promoted[0].Time) {
			t.Errorf("%s was deployed before the canary was promoted", ev.Host)
		}
	}
	// The locks are released.
	for _, h := range f.Hosts {
		if _, err := os.Stat(filepath.Join(h.Dir, ".canary", "lock")); !os.IsNotExist(err) {
			t.Errorf("%s: lock left behind (%v)", h.Name, err)
		}
	}

	// A second apply of the same version changes nothing.
	res, err = f.runner().Execute(ctxT(t, time.Minute), f.spec("1.1.0"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range f.Hosts {
		if hr := res.Host(h.Name); hr.Status != runner.HostUnchanged || hr.PreviousVersion != "1.0.0" {
			t.Errorf("re-apply: %s: %+v", h.Name, *hr)
		}
		if n := starts(t, h, "1.1.0"); n != 1 {
			t.Errorf("re-apply redeployed %s (%d starts)", h.Name, n)
		}
	}

	// Revert from the markers alone puts every host back.
	res, err = f.runner().Revert(ctxT(t, time.Minute), f.spec("1.1.0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != runner.StatusReverted || len(res.HostsWith(runner.HostReverted)) != 6 {
		t.Fatalf("revert: %s %+v", res.Status, res.Hosts)
	}
	f.expectVersions(f.all("1.0.0"))
	for _, h := range f.Hosts {
		if m := marker(t, h); !strings.Contains(m, `"status": "reverted"`) || !strings.Contains(m, `"version": "1.0.0"`) || !strings.Contains(m, `"previous_version": "1.1.0"`) {
			t.Errorf("%s marker after revert:\n%s", h.Name, m)
		}
	}
}

func TestUnhealthyCanaryIsRevertedAndNoOtherHostTouched(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 5, devfleet.Options{Behaviors: map[string]devfleet.Behavior{"1.1.0": devfleet.Unhealthy}})
	res, err := f.runner().Execute(ctxT(t, time.Minute), f.spec("1.1.0"))
	re := mustRolloutError(t, err)
	if res.Status != runner.StatusRolledBack {
		t.Fatalf("status %s: %v", res.Status, err)
	}
	msg := re.Error()
	for _, want := range []string{`stage "canary" failed on host "host-1"`, `guard "agent-health"`, "HTTP 503", `"status":"unhealthy"`, "rolled back: host-1", res.RunID} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	f.expectVersions(f.all("1.0.0"))
	if !strings.Contains(marker(t, f.Hosts[0]), `"status": "reverted"`) {
		t.Errorf("canary marker: %s", marker(t, f.Hosts[0]))
	}
	for _, h := range f.Hosts[1:] {
		if m := marker(t, h); m != "" {
			t.Errorf("%s was touched: marker %s", h.Name, m)
		}
		if n := starts(t, h, "1.1.0"); n != 0 {
			t.Errorf("%s started 1.1.0", h.Name)
		}
		if hr := res.Host(h.Name); hr.Status != runner.HostPending || hr.Changed {
			t.Errorf("%s: %+v", h.Name, *hr)
		}
	}
	if n := starts(t, f.Hosts[0], "1.0.0"); n != 2 {
		t.Errorf("canary should have restarted 1.0.0 once after the revert; log shows %d starts", n)
	}
}

// brokenOn fails on hosts that have a file broken-VERSION in their home while they run VERSION: a
// fault of one version on one host only.
func brokenOn() guard.Guard {
	return guard.Guard{Name: "not-broken", Interval: 200 * time.Millisecond, Timeout: 2 * time.Second, FailureThreshold: 1,
		Check: &guard.Command{Command: "test ! -e ~/broken-{{.Version}} || { echo {{.Version}} is broken here; exit 1; }"}}
}

func TestFailureInSecondStageRevertsEveryChangedHost(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 6, devfleet.Options{})
	if err := os.WriteFile(filepath.Join(f.Host("host-3").Dir, "broken-1.1.0"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	spec := f.spec("1.1.0")
	spec.Guards = append(spec.Guards, brokenOn())
	res, err := f.runner().Execute(ctxT(t, time.Minute), spec)
	re := mustRolloutError(t, err)
	if res.Status != runner.StatusRolledBack || res.Failure.Stage != "wave" || res.Failure.Host != "host-3" || res.Failure.Guard != "not-broken" {
		t.Fatalf("%s %+v", res.Status, res.Failure)
	}
	if !strings.Contains(re.Error(), "1.1.0 is broken here") {
		t.Errorf("evidence missing: %s", re.Error())
	}
	// The fleet is exactly as it started.
	f.expectVersions(f.all("1.0.0"))
	for _, name := range []string{"host-1", "host-2", "host-3"} {
		if hr := res.Host(name); hr.Status != runner.HostReverted || hr.Version != "1.0.0" || hr.Changed {
			t.Errorf("%s: %+v", name, *hr)
		}
	}
	for _, name := range []string{"host-4", "host-5", "host-6"} {
		if m := marker(t, f.Host(name)); m != "" || starts(t, f.Host(name), "1.1.0") != 0 {
			t.Errorf("%s was touched", name)
		}
	}
	// Newest stage first: the wave hosts are reverted before the canary.
	var order []string
	for _, ev := range f.eventsWhere("revert", "ok") {
		order = append(order, ev.Host)
	}
	if len(order) != 3 || order[2] != "host-1" {
		t.Errorf("revert order %v, want the canary (host-1) last", order)
	}
}

func TestHaltLeavesAnExactRecord(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 6, devfleet.Options{})
	if err := os.WriteFile(filepath.Join(f.Host("host-3").Dir, "broken-1.1.0"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	spec := f.spec("1.1.0")
	spec.Guards = append(spec.Guards, brokenOn())
	spec.OnFailure = runner.Halt
	res, err := f.runner().Execute(ctxT(t, time.Minute), spec)
	re := mustRolloutError(t, err)
	if res.Status != runner.StatusHalted {
		t.Fatalf("status %s", res.Status)
	}
	want := map[string]string{"host-1": "1.1.0", "host-2": "1.1.0", "host-3": "1.1.0", "host-4": "1.0.0", "host-5": "1.0.0", "host-6": "1.0.0"}
	f.expectVersions(want)
	for name, v := range want {
		hr := res.Host(name)
		if hr.Version != v || hr.Changed != (v == "1.1.0") {
			t.Errorf("%s: %+v", name, *hr)
		}
	}
	if !strings.Contains(re.Error(), "1.1.0 on host-1, host-2, host-3; 1.0.0 on host-4, host-5, host-6") {
		t.Errorf("halt message does not say who runs what:\n%s", re.Error())
	}
	// The next run (fixed host) resumes and finishes; the halted hosts are not redeployed.
	if err := os.Remove(filepath.Join(f.Host("host-3").Dir, "broken-1.1.0")); err != nil {
		t.Fatal(err)
	}
	res, err = f.runner().Execute(ctxT(t, time.Minute), spec)
	if err != nil {
		t.Fatal(err)
	}
	f.expectVersions(f.all("1.1.0"))
	for _, h := range f.Hosts {
		if hr := res.Host(h.Name); hr.PreviousVersion != "1.0.0" || starts(t, h, "1.1.0") != 1 {
			t.Errorf("%s: %+v, %d starts", h.Name, *hr, starts(t, h, "1.1.0"))
		}
	}
}

func TestUnhealthyFleetBeforeReleaseAbortsWithoutBlame(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 3, devfleet.Options{Behaviors: map[string]devfleet.Behavior{"1.0.0": devfleet.Unhealthy}})
	res, err := f.runner().Execute(ctxT(t, time.Minute), f.spec("1.1.0"))
	re := mustRolloutError(t, err)
	if res.Status != runner.StatusAborted || !strings.Contains(re.Error(), "unhealthy before the release") || !strings.Contains(re.Error(), "no host was changed") {
		t.Fatalf("%s: %v", res.Status, err)
	}
	f.expectUntouched()
}

func TestHostKeyMismatchIsRefusedBeforeAnyCommand(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 4, devfleet.Options{})
	if err := f.Host("host-4").ReplaceHostKey(); err != nil {
		t.Fatal(err)
	}
	res, err := f.runner().Execute(ctxT(t, time.Minute), f.spec("1.1.0"))
	re := mustRolloutError(t, err)
	if res.Status != runner.StatusAborted || res.Failure.Host != "host-4" || !strings.Contains(re.Error(), "mismatch") {
		t.Fatalf("%s: %v", res.Status, err)
	}
	f.expectUntouched()
	// The mismatched host ran nothing: the runner never got a session there.
	if _, err := os.Stat(filepath.Join(f.Host("host-4").Dir, ".canary")); !os.IsNotExist(err) {
		t.Errorf("host-4 has a .canary directory: a command ran despite the host key mismatch")
	}
}

func TestUnreachableHostStopsTheRolloutBeforeAnyChange(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 4, devfleet.Options{})
	if err := f.Host("host-3").StopSSHD(); err != nil {
		t.Fatal(err)
	}
	res, err := f.runner().Execute(ctxT(t, time.Minute), f.spec("1.1.0"))
	re := mustRolloutError(t, err)
	if res.Status != runner.StatusAborted || res.Failure.Host != "host-3" || !strings.Contains(re.Error(), "connect") {
		t.Fatalf("%s: %v", res.Status, err)
	}
	f.expectUntouched()
}

func TestHungDeployIsKilledAtItsTimeout(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 3, devfleet.Options{})
	spec := f.spec("1.1.0")
	spec.Deploy.Command = `if [ "$DEVFLEET_HOST" = host-2 ]; then sleep 317; fi; agentctl install {{.Version}}`
	spec.Deploy.Timeout = 2 * time.Second
	start := time.Now()
	res, err := f.runner().Execute(ctxT(t, time.Minute), spec)
	re := mustRolloutError(t, err)
	if res.Failure == nil || res.Failure.Host != "host-2" || !strings.Contains(re.Error(), "timed out") {
		t.Fatalf("%v", err)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("took %s", el)
	}
	f.expectVersions(f.all("1.0.0"))
	if out, _ := exec.Command("pgrep", "-f", "sleep 317").Output(); len(out) > 0 {
		t.Errorf("the hung command is still running: pids %s", out)
	}
}

func TestFrozenHostMidRolloutFailsWithinItsTimeoutAndIsNamed(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 4, devfleet.Options{})
	frozen := f.Host("host-3")
	t.Cleanup(func() { _ = frozen.Thaw() })
	f.onEvent(func(ev runner.Event) {
		if ev.Action == "promote" && ev.Stage == "canary" {
			if err := frozen.Freeze(); err != nil {
				t.Error(err)
			}
		}
	})
	spec := f.spec("1.1.0")
	spec.Deploy.Timeout = 3 * time.Second
	spec.Revert.Timeout = 3 * time.Second
	start := time.Now()
	res, err := f.runner().Execute(ctxT(t, time.Minute), spec)
	re := mustRolloutError(t, err)
	if el := time.Since(start); el > 30*time.Second {
		t.Errorf("took %s", el)
	}
	if res.Failure == nil || res.Failure.Host != "host-3" || res.Failure.Stage != "fleet" {
		t.Fatalf("%v", err)
	}
	// host-3 cannot be reverted while frozen: the result says so, the others are back.
	if hr := res.Host("host-3"); hr.Status != runner.HostRevertFailed {
		t.Errorf("host-3: %+v", *hr)
	}
	if !strings.Contains(re.Error(), "ROLLBACK INCOMPLETE") || !strings.Contains(re.Error(), "host-3") {
		t.Errorf("message: %s", re.Error())
	}
	_ = frozen.Thaw()
	f.expectVersions(map[string]string{"host-1": "1.0.0", "host-2": "1.0.0", "host-4": "1.0.0"})
}

func TestInterruptedRolloutReportsExactHostsAndResumes(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 5, devfleet.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.onEvent(func(ev runner.Event) {
		if ev.Action == "deploy" && ev.Result == "ok" && ev.Stage == "wave" {
			cancel()
		}
	})
	spec := f.spec("1.1.0")
	spec.Parallelism = 1
	res, err := f.runner().Execute(ctx, spec)
	_ = mustRolloutError(t, err)
	if res.Status != runner.StatusInterrupted || !errors.Is(err, context.Canceled) {
		t.Fatalf("status %s, err %v", res.Status, err)
	}
	changed := map[string]bool{}
	for _, hr := range res.Hosts {
		if hr.Changed {
			changed[hr.Name] = true
		}
	}
	if len(changed) != 2 || !changed["host-1"] || !changed["host-2"] {
		t.Fatalf("changed hosts %v, want host-1 and host-2; %+v", changed, res.Hosts)
	}
	f.expectVersions(map[string]string{"host-1": "1.1.0", "host-2": "1.1.0", "host-3": "1.0.0", "host-4": "1.0.0", "host-5": "1.0.0"})

	f.onEvent(nil)
	res, err = f.runner().Execute(ctxT(t, time.Minute), spec)
	if err != nil {
		t.Fatal(err)
	}
	f.expectVersions(f.all("1.1.0"))
	for _, h := range f.Hosts {
		hr := res.Host(h.Name)
		if hr.PreviousVersion != "1.0.0" || starts(t, h, "1.1.0") != 1 {
			t.Errorf("%s: %+v (%d starts of 1.1.0)", h.Name, *hr, starts(t, h, "1.1.0"))
		}
	}
	if hr := res.Host("host-1"); hr.Status != runner.HostUnchanged {
		t.Errorf("host-1 was redeployed on resume: %+v", *hr)
	}
	// A destroy after the resumed rollout reverts every host it changed, across both runs.
	if _, err := f.runner().Revert(ctxT(t, time.Minute), spec, nil); err != nil {
		t.Fatal(err)
	}
	f.expectVersions(f.all("1.0.0"))
}

func TestConcurrentRolloutFailsFastNamingTheHolder(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 3, devfleet.Options{})
	first := f.spec("1.1.0")
	first.RunID = "run-first"
	first.Stages[0].Observe = 4 * time.Second
	second := f.spec("1.2.0")
	second.Release = "other-service"

	locked := make(chan struct{})
	f.onEvent(func(ev runner.Event) {
		if ev.Action == "stage" && ev.Result == "started" && ev.RunID == "run-first" {
			select {
			case <-locked:
			default:
				close(locked)
			}
		}
	})
	done := make(chan error, 1)
	go func() {
		_, err := f.runner().Execute(ctxT(t, time.Minute), first)
		done <- err
	}()
	<-locked
	start := time.Now()
	res, err := f.runner().Execute(ctxT(t, time.Minute), second)
	re := mustRolloutError(t, err)
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("the second rollout took %s to fail", el)
	}
	if res.Status != runner.StatusAborted || !strings.Contains(re.Error(), "locked by run_id run-first") {
		t.Fatalf("%s: %v", res.Status, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the first rollout failed: %v", err)
	}
	f.expectVersions(f.all("1.1.0"))
}

func TestShellMetacharactersInVersionCannotRunAnything(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 3, devfleet.Options{})
	pwned := filepath.Join(t.TempDir(), "pwned")
	for _, v := range []string{"1.1.0; touch " + pwned, "$(touch " + pwned + ")", "`touch " + pwned + "`", "1.1.0' && touch " + pwned + " '"} {
		spec := f.spec(v)
		res, err := f.runner().Execute(ctxT(t, time.Minute), spec)
		_ = mustRolloutError(t, err)
		if res.Failure == nil || !strings.Contains(res.Failure.Evidence+res.Failure.Message, "invalid version") {
			t.Errorf("%q: want the install to refuse the version, got %+v", v, res.Failure)
		}
		if _, err := os.Stat(pwned); !os.IsNotExist(err) {
			t.Fatalf("version %q ran a command", v)
		}
	}
	f.expectVersions(f.all("1.0.0"))
	// Quoting a value in the template would defeat the quoting; the spec is refused.
	spec := f.spec("1.1.0")
	spec.Deploy.Command = `agentctl install "{{.Version}}"`
	if _, err := f.runner().Execute(ctxT(t, time.Minute), spec); err == nil || !strings.Contains(err.Error(), "deploy.command") || !strings.Contains(err.Error(), "inside double quotes") {
		t.Fatalf("want a deploy.command error, got %v", err)
	}
}

func TestStaleLockIsTakenOverWithAWarning(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 3, devfleet.Options{})
	lock := filepath.Join(f.Host("host-2").Dir, ".canary", "lock")
	if err := os.MkdirAll(filepath.Dir(lock), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lock, []byte("run_id=run-dead release=agent from=gone since=2026-01-01T00:00:00Z\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := f.runner()
	r.LockStaleAfter = 2 * time.Second
	// A fresh lock is respected.
	res, err := r.Execute(ctxT(t, time.Minute), f.spec("1.1.0"))
	if re := mustRolloutError(t, err); res.Status != runner.StatusAborted || !strings.Contains(re.Error(), "locked by run_id run-dead") {
		t.Fatalf("%s: %v", res.Status, err)
	}
	// Once it has not been refreshed for LockStaleAfter, it is taken over and the takeover is reported.
	old := time.Now().Add(-time.Minute)
	if err := os.Chtimes(lock, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Execute(ctxT(t, time.Minute), f.spec("1.1.0")); err != nil {
		t.Fatal(err)
	}
	warned := false
	for _, ev := range f.eventsWhere("lock", "warning") {
		warned = warned || (ev.Host == "host-2" && strings.Contains(ev.Message, "run-dead"))
	}
	if !warned {
		t.Error("no warning about the stale lock")
	}
	f.expectVersions(f.all("1.1.0"))
}

func TestFailedUpgradeRevertsToTheVersionJustBefore(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 4, devfleet.Options{Behaviors: map[string]devfleet.Behavior{"1.2.0": devfleet.Unhealthy}})
	if _, err := f.runner().Execute(ctxT(t, time.Minute), f.spec("1.1.0")); err != nil {
		t.Fatal(err)
	}
	res, err := f.runner().Execute(ctxT(t, time.Minute), f.spec("1.2.0"))
	_ = mustRolloutError(t, err)
	if res.Status != runner.StatusRolledBack {
		t.Fatalf("status %s", res.Status)
	}
	// Only the canary was changed by this rollout, and it goes back to 1.1.0, not 1.0.0.
	f.expectVersions(f.all("1.1.0"))
	if got := res.HostsWith(runner.HostReverted); len(got) != 1 || got[0] != "host-1" {
		t.Errorf("reverted %v, want only the canary", got)
	}
	for _, h := range f.Hosts[1:] {
		if hr := res.Host(h.Name); hr.Status != runner.HostPending || hr.Version != "1.1.0" || hr.PreviousVersion != "1.1.0" || hr.Changed {
			t.Errorf("%s: %+v", h.Name, *hr)
		}
		if n := starts(t, h, "1.0.0"); n != 1 {
			t.Errorf("%s was put back to 1.0.0", h.Name)
		}
	}
	// A destroy now reverts the last successful rollout: every host back to 1.0.0.
	if _, err := f.runner().Revert(ctxT(t, time.Minute), f.spec("1.1.0"), nil); err != nil {
		t.Fatal(err)
	}
	f.expectVersions(f.all("1.0.0"))
}

func TestVerifyFindsALaterRegressionWithoutChangingAnything(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 3, devfleet.Options{})
	spec := f.spec("1.1.0")
	spec.Guards = append(spec.Guards, brokenOn())
	res, err := f.runner().Execute(ctxT(t, time.Minute), spec)
	if err != nil {
		t.Fatal(err)
	}
	deployed := res.FinishedAt
	if res, err := f.runner().Verify(ctxT(t, time.Minute), spec, deployed); err != nil || res.Status != runner.StatusSucceeded {
		t.Fatalf("healthy fleet: %v", err)
	}
	// Hours later host-3 goes bad.
	if err := os.WriteFile(filepath.Join(f.Host("host-3").Dir, "broken-1.1.0"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err = f.runner().Verify(ctxT(t, time.Minute), spec, deployed)
	re := mustRolloutError(t, err)
	if res.Status != runner.StatusFailed || res.Failure.Host != "host-3" || res.Failure.Guard != "not-broken" || !strings.Contains(re.Error(), "1.1.0 is broken here") {
		t.Fatalf("%s: %v", res.Status, err)
	}
	f.expectVersions(f.all("1.1.0"))
	for _, h := range f.Hosts {
		if _, err := os.Stat(filepath.Join(h.Dir, ".canary", "lock")); !os.IsNotExist(err) {
			t.Errorf("%s: Verify left a lock", h.Name)
		}
	}
}

func TestWarnGuardLetsTheRolloutFinishAndTheWarningIsKept(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 3, devfleet.Options{})
	if err := os.WriteFile(filepath.Join(f.Host("host-2").Dir, "broken-1.1.0"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	spec := f.spec("1.1.0")
	degraded := brokenOn()
	degraded.Name, degraded.Severity = "degraded", guard.Warn
	spec.Guards = append(spec.Guards, degraded)
	res, err := f.runner().Execute(ctxT(t, time.Minute), spec)
	if err != nil {
		t.Fatal(err)
	}
	f.expectVersions(f.all("1.1.0"))
	if len(res.Warnings) == 0 {
		t.Fatal("the warn guard's failure was dropped")
	}
	for _, w := range res.Warnings {
		if w.Guard != "degraded" || w.Host != "host-2" || w.Severity != guard.Warn || !strings.Contains(w.Evidence, "1.1.0 is broken here") {
			t.Errorf("warning %+v", w)
		}
	}
}

// TestThresholdsTellSlowStartFromBroken: a version that answers 503 for its first seconds while
// it starts passes with a failure_threshold that covers the start; one that stays at 503 fails.
func TestThresholdsTellSlowStartFromBroken(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 2, devfleet.Options{SlowStartDelay: 2 * time.Second,
		Behaviors: map[string]devfleet.Behavior{"1.1.0": devfleet.SlowStart, "1.2.0": devfleet.Unhealthy}})
	spec := f.spec("1.1.0")
	spec.Stages = []runner.Stage{{Name: "canary", Hosts: "1", Observe: 500 * time.Millisecond}, {Name: "fleet", Hosts: "100%"}}
	spec.Guards[0].Interval = 500 * time.Millisecond
	spec.Guards[0].FailureThreshold = 8 // 4s of failures in a row before the stage fails
	res, err := f.runner().Execute(ctxT(t, time.Minute), spec)
	if err != nil {
		t.Fatalf("a slow start within the threshold failed the rollout: %v", err)
	}
	var failures int
	for _, g := range res.Guards {
		failures += g.Failures
	}
	if failures == 0 {
		t.Error("the slow start never answered 503: the test proves nothing")
	}
	f.expectVersions(f.all("1.1.0"))

	spec.Version = "1.2.0"
	start := time.Now()
	res, err = f.runner().Execute(ctxT(t, time.Minute), spec)
	re := mustRolloutError(t, err)
	if res.Status != runner.StatusRolledBack || !strings.Contains(re.Error(), "failed 8 times in a row") || !strings.Contains(re.Error(), `"status":"unhealthy"`) {
		t.Fatalf("%s: %v", res.Status, err)
	}
	if el := time.Since(start); el > 15*time.Second {
		t.Errorf("took %s", el)
	}
	f.expectVersions(f.all("1.1.0"))
}

func TestDryRunChecksEverythingAndChangesNothing(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 3, devfleet.Options{})
	res, err := f.runner().DryRun(ctxT(t, time.Minute), f.spec("1.1.0"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != runner.StatusDryRun || len(res.HostsWith(runner.HostPending)) != 3 || res.Connections != 3 {
		t.Fatalf("%s %+v", res.Status, res.Hosts)
	}
	f.expectUntouched()
	for _, h := range f.Hosts {
		if _, err := os.Stat(filepath.Join(h.Dir, ".canary")); !os.IsNotExist(err) {
			t.Errorf("%s: the dry run created ~/.canary", h.Name)
		}
	}
	// Guards ran (against what the hosts run now).
	if len(res.Guards) != 3 {
		t.Errorf("guard verdicts: %+v", res.Guards)
	}
	// Without a way back, the dry run says so.
	spec := f.spec("1.1.0")
	spec.Revert = runner.Action{}
	res, err = f.runner().DryRun(ctxT(t, time.Minute), spec)
	if re := mustRolloutError(t, err); res.Status != runner.StatusAborted || !strings.Contains(re.Error(), "nothing could put it back") {
		t.Fatalf("%s: %v", res.Status, err)
	}
	// A held lock is found.
	lock := filepath.Join(f.Host("host-2").Dir, ".canary", "lock")
	if err := os.MkdirAll(filepath.Dir(lock), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lock, []byte("run_id=run-busy release=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = f.runner().DryRun(ctxT(t, time.Minute), f.spec("1.1.0"))
	if err == nil || !strings.Contains(err.Error(), "locked by run_id run-busy") {
		t.Fatalf("want the held lock reported, got %v", err)
	}
	f.expectVersions(f.all("1.0.0"))
	for _, h := range f.Hosts {
		if m := marker(t, h); m != "" {
			t.Errorf("%s got a marker from a dry run", h.Name)
		}
	}
}

// TestDestroyRestoresUploadedFiles: files a rollout uploaded are put back by a later revert in
// another run (a destroy): the replaced file gets its old content, a new file goes away.
func TestDestroyRestoresUploadedFiles(t *testing.T) {
	t.Parallel()
	f := startFleet(t, 2, devfleet.Options{})
	conf := func(h *devfleet.Host) string { return filepath.Join(h.Dir, "agent.conf") }
	if err := os.WriteFile(conf(f.Hosts[0]), []byte("original\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	spec := f.spec("1.1.0")
	spec.Stages = []runner.Stage{{Name: "canary", Hosts: "1"}, {Name: "fleet", Hosts: "100%"}}
	spec.Deploy.Files = []runner.File{{Destination: "~/agent.conf", Content: []byte("tuned for 1.1.0\n"), Mode: 0o644}}
	if _, err := f.runner().Execute(ctxT(t, time.Minute), spec); err != nil {
		t.Fatal(err)
	}
	for _, h := range f.Hosts {
		if b, _ := os.ReadFile(conf(h)); string(b) != "tuned for 1.1.0\n" {
			t.Fatalf("%s: deployed file %q", h.Name, b)
		}
	}
	if _, err := f.runner().Revert(ctxT(t, time.Minute), spec, nil); err != nil {
		t.Fatal(err)
	}
	f.expectVersions(f.all("1.0.0"))
	if b, err := os.ReadFile(conf(f.Hosts[0])); err != nil || string(b) != "original\n" {
		t.Errorf("host-1: the replaced file came back as %q (%v)", b, err)
	}
	if _, err := os.Stat(conf(f.Hosts[1])); !os.IsNotExist(err) {
		t.Errorf("host-2: the file the rollout created is still there (%v)", err)
	}
}
