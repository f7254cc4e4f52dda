// Package runner is the rollout engine: it plans a release over a fleet, rolls it out over SSH one
// stage at a time while guards watch the updated hosts, and reverts or halts on failure. It knows
// nothing of Terraform.
package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	sshx "github.com/canaryops/terraform-provider-canary/runner/ssh"
	"github.com/canaryops/terraform-provider-canary/runner/tmpl"
)

// Runner executes rollouts. The zero value is not usable: set SSH.
type Runner struct {
	SSH sshx.Config
	// Logger receives structured logs (run_id, stage, host); default: none.
	Logger hclog.Logger
	// OnEvent receives every event, one at a time.
	OnEvent func(Event)
	// Now is the clock; default time.Now.
	Now func() time.Time
	// CommandTimeout bounds the runner's own short commands (lock, probe, marker); default 30s.
	CommandTimeout time.Duration
	// ConnectParallelism bounds concurrent SSH handshakes; default 32.
	ConnectParallelism int
	// LockStaleAfter is how long a lock may go unrefreshed before another rollout takes it over;
	// default 10m. The holder refreshes it every LockStaleAfter/4.
	LockStaleAfter time.Duration
	// CleanupTimeout bounds the work done after the context ends (probing hosts whose command was
	// cut short, writing markers, releasing locks); default 20s.
	CleanupTimeout time.Duration
}

type execution struct {
	r     *Runner
	spec  Spec
	plan  Plan
	runID string
	owner string
	log   hclog.Logger
	evMu  sync.Mutex

	hosts  []*hostRun
	byName map[string]*hostRun
	dryRun bool // look at locks, take none, change nothing
	conns  atomic.Int64

	mu       sync.Mutex
	failure  *Failure
	warnings []GuardReport
	reports  map[string]GuardReport // guard/host -> last verdict
}

// hostRun is one host's state during a run. Its fields are written by one goroutine at a time.
type hostRun struct {
	Host
	idx      int
	stage    string
	client   *sshx.Client
	shell    *sshx.Shell // the runner's own bookkeeping: lock, markers, probes
	locked   bool
	current  string // what it runs now, as last observed
	previous string // what it ran before this release changed it
	status   HostStatus
	changed  bool // runs a version this release put there
	marks    []any
	uploads  []uploaded
	prior    *Marker // this release's marker as the run found it
	err      string
}

type uploaded struct {
	path string
	res  *sshx.UploadResult
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (x *execution) now() time.Time { return x.r.now() }

func (r *Runner) cmdTimeout() time.Duration {
	if r.CommandTimeout > 0 {
		return r.CommandTimeout
	}
	return 30 * time.Second
}

func (r *Runner) staleAfter() time.Duration {
	if r.LockStaleAfter > 0 {
		return r.LockStaleAfter
	}
	return 10 * time.Minute
}

func (r *Runner) cleanupTimeout() time.Duration {
	if r.CleanupTimeout > 0 {
		return r.CleanupTimeout
	}
	return 20 * time.Second
}

// NewRunID returns a fresh run identifier: time-ordered and unique.
func NewRunID(now time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "run-" + now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

func (r *Runner) newExecution(spec Spec) (*execution, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	spec = spec.withDefaults()
	plan, err := PlanRollout(spec.Hosts, spec.Stages)
	if err != nil {
		return nil, err
	}
	x := &execution{r: r, spec: spec, plan: plan, runID: spec.RunID, byName: map[string]*hostRun{}, reports: map[string]GuardReport{}}
	if x.runID == "" {
		x.runID = NewRunID(r.now())
	}
	hn, _ := os.Hostname()
	x.owner = fmt.Sprintf("run_id=%s release=%s from=%s since=%s", x.runID, unsafeName.ReplaceAllString(spec.Release, "_"), unsafeName.ReplaceAllString(hn, "_"), r.now().UTC().Format(time.RFC3339))
	x.log = r.Logger
	if x.log == nil {
		x.log = hclog.NewNullLogger()
	}
	x.log = x.log.With("run_id", x.runID)
	for i, h := range spec.Hosts {
		hr := &hostRun{Host: h, idx: i, stage: plan.StageOf(h.Name), status: HostPending, marks: make([]any, len(spec.Guards))}
		x.hosts = append(x.hosts, hr)
		x.byName[h.Name] = hr
	}
	return x, nil
}

// data is what templates see for host h expected to run version.
func (x *execution) data(h *hostRun, stage, version string) tmpl.Data {
	return tmpl.Data{
		Version: version, PreviousVersion: h.previous, Release: x.spec.Release, Fleet: x.spec.Fleet,
		Stage: stage, RunID: x.runID, Host: tmpl.Host{Name: h.Name, Address: h.Address, Vars: h.Vars},
	}
}

func (x *execution) result(status Status, started time.Time) *Result {
	res := &Result{
		RunID: x.runID, Release: x.spec.Release, Version: x.spec.Version, Status: status,
		StartedAt: started, FinishedAt: x.now(), Connections: int(x.conns.Load()),
	}
	for _, h := range x.hosts {
		res.Hosts = append(res.Hosts, HostResult{
			Name: h.Name, Stage: h.stage, Version: h.current, PreviousVersion: h.previous,
			Status: h.status, Changed: h.changed, Error: h.err,
		})
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	res.Failure = x.failure
	res.Warnings = append(res.Warnings, x.warnings...)
	for _, h := range x.hosts {
		for _, g := range x.spec.Guards {
			if rep, ok := x.reports[g.Name+"\x00"+h.Name]; ok {
				res.Guards = append(res.Guards, rep)
			}
		}
	}
	return res
}

func (x *execution) fail(f Failure) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.failure == nil {
		x.failure = &f
	}
}

func (x *execution) failed() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.failure != nil
}

// forEach runs fn for each host with at most n at once. It starts nothing new once ctx is done or
// stop reports true; it always waits for what it started.
func forEach(ctx context.Context, n int, hosts []*hostRun, stop func() bool, fn func(*hostRun)) {
	if n <= 0 {
		n = 1
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, h := range hosts {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil || (stop != nil && stop()) {
			break
		}
		wg.Add(1)
		go func(h *hostRun) {
			defer func() { <-sem; wg.Done() }()
			fn(h)
		}(h)
	}
	wg.Wait()
}

// connect opens the host's one SSH connection for the run, takes its lock and probes its version.
func (x *execution) connect(ctx context.Context, h *hostRun) error {
	to := x.r.cmdTimeout()
	x.emit(Event{Host: h.Name, Action: "connect", Result: "started", Message: "connecting to " + h.Address})
	c, err := sshx.Dial(ctx, x.r.SSH, sshx.Endpoint{Address: h.Address, HostKey: h.HostKey})
	if err != nil {
		return fmt.Errorf("connect to %s: %w", h.Address, err)
	}
	x.conns.Add(1)
	h.client = c
	if h.shell, err = c.StartShell(ctx); err != nil {
		return err
	}
	vcmd, err := x.versionCommand(h)
	if err != nil {
		return err
	}
	p, err := prepare(ctx, h.shell, h.Name, x.owner, x.spec.Release, vcmd, x.r.staleAfter(), to, !x.dryRun)
	if err != nil {
		return err
	}
	h.locked = !x.dryRun
	if p.stale != nil {
		x.emit(Event{Host: h.Name, Action: "lock", Result: "warning", Message: fmt.Sprintf("took over a stale lock held by run_id %s (%s)", p.stale.RunID, p.stale.Raw)})
	}
	x.probed(h, p.version, p.marker)
	return nil
}

// probed records what a host runs. A host at the version that this release's marker says it
// deployed keeps the marker's previous version, so a resumed rollout and a later revert know
// where it came from.
func (x *execution) probed(h *hostRun, v string, m *Marker) {
	h.prior = m
	if x.spec.VersionCommand == "" && m != nil && m.Status == "deployed" {
		v = m.Version
	}
	h.current = v
	h.previous = v
	// Resuming: the host already runs the target because an earlier, unfinished run of this
	// release put it there. It counts as changed by this rollout, coming from the marker's
	// previous version. A host that runs what an earlier, finished rollout deployed is simply
	// at its current version.
	if m != nil && m.Status == "deployed" && m.Version == v && v == x.spec.Version {
		h.previous = m.PreviousVersion
		h.changed = true
	}
	if v == x.spec.Version {
		h.status = HostUnchanged
	}
	x.emit(Event{Host: h.Name, Action: "probe", Result: "ok", Message: fmt.Sprintf("runs %s", versionOrNone(v))})
}

// versionCommand renders version_command for h ("" when unset).
func (x *execution) versionCommand(h *hostRun) (string, error) {
	if x.spec.VersionCommand == "" {
		return "", nil
	}
	cmd, err := tmpl.RenderShell(x.spec.VersionCommand, x.data(h, h.stage, x.spec.Version))
	if err != nil {
		return "", fmt.Errorf("version_command: %w", err)
	}
	return cmd, nil
}

// version runs version_command. A failing command means nothing is installed ("").
func (x *execution) version(ctx context.Context, h *hostRun) (string, error) {
	cmd, err := x.versionCommand(h)
	if cmd == "" || err != nil {
		return "", err
	}
	res, err := h.client.Run(ctx, versionSnippet(cmd), sshx.RunOptions{Timeout: x.r.cmdTimeout()})
	if err != nil {
		return "", fmt.Errorf("version_command: %w", err)
	}
	return strings.TrimSpace(res.Stdout), nil
}

func versionOrNone(v string) string {
	if v == "" {
		return "nothing (no version installed)"
	}
	return v
}

// connectAll connects to hosts in parallel. It returns the first error per host.
func (x *execution) connectAll(ctx context.Context, hosts []*hostRun) map[*hostRun]error {
	n := x.r.ConnectParallelism
	if n <= 0 {
		n = 32
	}
	var mu sync.Mutex
	errs := map[*hostRun]error{}
	forEach(ctx, n, hosts, nil, func(h *hostRun) {
		if err := x.connect(ctx, h); err != nil {
			mu.Lock()
			errs[h] = err
			mu.Unlock()
			x.emit(Event{Host: h.Name, Action: "connect", Result: "failed", Message: err.Error()})
		}
	})
	for _, h := range hosts {
		if h.client == nil && errs[h] == nil {
			errs[h] = ctx.Err()
		}
	}
	return errs
}

// refreshLocks keeps the host locks fresh in the background (even once ctx has ended, until the
// run has cleaned up) and returns the function that stops it; call it before closeAll.
func (x *execution) refreshLocks(ctx context.Context) (stop func()) {
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); x.keepLocks(lctx) }()
	return func() { cancel(); <-done }
}

// keepLocks refreshes the host locks until ctx ends.
func (x *execution) keepLocks(ctx context.Context) {
	every := x.r.staleAfter() / 4
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		forEach(ctx, 32, x.hosts, nil, func(h *hostRun) {
			if h.locked && h.client != nil {
				_ = refreshLock(ctx, h.client, x.owner, x.r.cmdTimeout())
			}
		})
	}
}

// shellOf returns h's control shell, starting a new one on the same connection when a command
// that could not be stopped has closed it.
func (x *execution) shellOf(ctx context.Context, h *hostRun) (*sshx.Shell, error) {
	if h.shell != nil && h.shell.Err() == nil {
		return h.shell, nil
	}
	if h.shell != nil {
		_ = h.shell.Close()
	}
	sh, err := h.client.StartShell(ctx)
	if err != nil {
		return nil, err
	}
	h.shell = sh
	return sh, nil
}

// closeAll releases locks and closes connections, within the cleanup timeout even when ctx ended.
func (x *execution) closeAll(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), x.r.cleanupTimeout())
	defer cancel()
	forEach(cctx, 32, x.hosts, nil, func(h *hostRun) {
		if h.client == nil {
			return
		}
		if h.locked {
			sh, err := x.shellOf(cctx, h)
			if err == nil {
				err = releaseLock(cctx, sh, x.owner, x.r.cmdTimeout())
			}
			if err != nil {
				x.emit(Event{Host: h.Name, Action: "unlock", Result: "warning", Message: "could not release the host lock: " + err.Error()})
			}
			h.locked = false
		}
		if h.shell != nil {
			_ = h.shell.Close()
		}
		_ = h.client.Close()
		h.client = nil
	})
}

var errInterrupted = errors.New("interrupted")
