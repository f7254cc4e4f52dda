package runner_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/canaryops/terraform-provider-canary/internal/devfleet"
	"github.com/canaryops/terraform-provider-canary/runner"
	"github.com/canaryops/terraform-provider-canary/runner/guard"
	sshx "github.com/canaryops/terraform-provider-canary/runner/ssh"
)

// testFleet is a devfleet with a runner configured for it and the events it saw.
type testFleet struct {
	*devfleet.Fleet
	t      testing.TB
	mu     sync.Mutex
	events []runner.Event
	hook   func(runner.Event)
}

func startFleet(t testing.TB, n int, opts devfleet.Options) *testFleet {
	t.Helper()
	opts.Hosts = n
	if opts.InitialVersion == "" {
		opts.InitialVersion = "1.0.0"
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	return &testFleet{Fleet: devfleet.StartT(t, opts), t: t}
}

func (f *testFleet) runner() *runner.Runner {
	return &runner.Runner{
		SSH: sshx.Config{
			User: f.User, PrivateKey: f.ClientKey, KnownHostsFile: f.KnownHostsFile,
			ConnectTimeout: 5 * time.Second, KeepaliveInterval: time.Second, KeepaliveCountMax: 3,
		},
		Logger:         hclog.New(&hclog.LoggerOptions{Name: "runner", Level: hclog.Debug, Output: testWriter{f.t}}),
		CommandTimeout: 10 * time.Second,
		CleanupTimeout: 10 * time.Second,
		OnEvent: func(ev runner.Event) {
			f.mu.Lock()
			f.events = append(f.events, ev)
			hook := f.hook
			f.mu.Unlock()
			if hook != nil {
				hook(ev)
			}
		},
	}
}

func (f *testFleet) onEvent(fn func(runner.Event)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hook = fn
}

func (f *testFleet) eventsWhere(action, result string) []runner.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []runner.Event
	for _, ev := range f.events {
		if ev.Action == action && ev.Result == result {
			out = append(out, ev)
		}
	}
	return out
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// healthGuard checks that the demo agent answers 200 and reports the expected version.
func healthGuard() guard.Guard {
	return guard.Guard{
		Name: "agent-health", Severity: guard.Fatal, Interval: 300 * time.Millisecond, Timeout: 2 * time.Second,
		FailureThreshold: 2,
		Check: &guard.HTTP{
			URL:          "http://127.0.0.1:{{.Host.Vars.agent_port}}/healthz",
			ExpectStatus: []int{200},
			ExpectBody:   `"version":"{{.Version}}"`,
		},
	}
}

// spec is the release of version to the fleet, canary first.
func (f *testFleet) spec(version string) runner.Spec {
	hosts := make([]runner.Host, len(f.Hosts))
	for i, h := range f.Hosts {
		hosts[i] = runner.Host{Name: h.Name, Address: h.SSHAddr(), Vars: map[string]string{"agent_port": fmt.Sprint(h.AgentPort)}}
	}
	return runner.Spec{
		Release:        "agent",
		Fleet:          "devfleet",
		Version:        version,
		Hosts:          hosts,
		Deploy:         runner.Action{Command: "agentctl install {{.Version}}", Timeout: 20 * time.Second},
		Revert:         runner.Action{Command: "agentctl install {{.PreviousVersion}}", Timeout: 20 * time.Second},
		VersionCommand: "agentctl version",
		Guards:         []guard.Guard{healthGuard()},
		Stages: []runner.Stage{
			{Name: "canary", Hosts: "1", Observe: 500 * time.Millisecond},
			{Name: "wave", Hosts: "50%", Observe: 300 * time.Millisecond},
			{Name: "fleet", Hosts: "100%", Observe: 0},
		},
		OnFailure: runner.Rollback,
	}
}

// versions reads every host's installed version from its directory.
func (f *testFleet) versions() map[string]string {
	f.t.Helper()
	out := map[string]string{}
	for _, h := range f.Hosts {
		v, err := h.Version()
		if err != nil {
			f.t.Fatalf("%s: %v", h.Name, err)
		}
		out[h.Name] = v
	}
	return out
}

func (f *testFleet) expectVersions(want map[string]string) {
	f.t.Helper()
	got := f.versions()
	for name, v := range want {
		if got[name] != v {
			f.t.Errorf("%s runs %q, want %q (fleet: %v)", name, got[name], v, got)
		}
	}
}

// expectUntouched checks that no host was changed: every host at 1.0.0 with no marker and no lock.
func (f *testFleet) expectUntouched() {
	f.t.Helper()
	f.expectVersions(f.all("1.0.0"))
	for _, h := range f.Hosts {
		if m := marker(f.t, h); m != "" {
			f.t.Errorf("%s has a marker:\n%s", h.Name, m)
		}
		if n := starts(f.t, h, "1.1.0"); n != 0 {
			f.t.Errorf("%s started 1.1.0", h.Name)
		}
		if _, err := os.Stat(filepath.Join(h.Dir, ".canary", "lock")); !os.IsNotExist(err) {
			f.t.Errorf("%s: lock left behind (%v)", h.Name, err)
		}
	}
}

// all maps every host to v.
func (f *testFleet) all(v string) map[string]string {
	m := map[string]string{}
	for _, h := range f.Hosts {
		m[h.Name] = v
	}
	return m
}

// marker reads a host's marker for the release, or "" when there is none.
func marker(t testing.TB, h *devfleet.Host) string {
	b, err := os.ReadFile(filepath.Join(h.Dir, ".canary", "releases", "agent.json"))
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// starts counts how often the agent log says version v started.
func starts(t testing.TB, h *devfleet.Host, v string) int {
	log, err := h.AgentLog()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(log, "started version "+v+" ")
}

func mustRolloutError(t testing.TB, err error) *runner.RolloutError {
	t.Helper()
	re, ok := err.(*runner.RolloutError)
	if !ok {
		t.Fatalf("want *runner.RolloutError, got %T: %v", err, err)
	}
	return re
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
