package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canaryops/terraform-provider-canary/internal/devfleet"
	"github.com/canaryops/terraform-provider-canary/runner"
	"github.com/canaryops/terraform-provider-canary/runner/guard"
	sshx "github.com/canaryops/terraform-provider-canary/runner/ssh"
)

func TestFollowupFindsRegressionAndRollsBack(t *testing.T) {
	f := devfleet.StartT(t, devfleet.Options{Hosts: 3, InitialVersion: "1.0.0", Logf: t.Logf})
	hosts := make([]runner.Host, len(f.Hosts))
	for i, h := range f.Hosts {
		hosts[i] = runner.Host{Name: h.Name, Address: h.SSHAddr(), Vars: map[string]string{"agent_port": fmt.Sprint(h.AgentPort)}}
	}
	spec := runner.Spec{
		Release: "agents", Version: "1.1.0", Hosts: hosts,
		Deploy:         runner.Action{Command: "agentctl install {{.Version}}"},
		Revert:         runner.Action{Command: "agentctl install {{.PreviousVersion}}"},
		VersionCommand: "agentctl version",
		Stages:         []runner.Stage{{Name: "canary", Hosts: "1"}, {Name: "fleet", Hosts: "100%"}},
		Guards: []guard.Guard{{Name: "not-broken", Interval: 200 * time.Millisecond, FailureThreshold: 1,
			Check: &guard.Command{Command: "test ! -e ~/broken-{{.Version}} || { echo {{.Version}} is broken here; exit 1; }"}}},
	}
	r := &runner.Runner{SSH: sshx.Config{User: f.User, PrivateKey: f.ClientKey, KnownHostsFile: f.KnownHostsFile}}
	res, err := r.Execute(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	ledger := t.TempDir()
	if err := runner.SaveRecord(ledger, runner.Record{Spec: spec, RunID: res.RunID, DeployedAt: res.FinishedAt, Hosts: res.Hosts, Followups: []string{"1h"}}); err != nil {
		t.Fatal(err)
	}
	followup := func(extra ...string) (int, string) {
		var out, errb bytes.Buffer
		args := append([]string{"followup", "--ledger-dir", ledger, "--ssh-user", f.User, "--ssh-key", f.ClientKeyFile, "--known-hosts", f.KnownHostsFile}, extra...)
		rc := run(context.Background(), args, &out, &errb)
		return rc, out.String() + errb.String()
	}
	if rc, out := followup(); rc != 0 || !strings.Contains(out, "healthy") {
		t.Fatalf("healthy fleet: rc %d\n%s", rc, out)
	}
	if err := os.WriteFile(filepath.Join(f.Host("host-2").Dir, "broken-1.1.0"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rc, out := followup()
	if rc != 1 || !strings.Contains(out, "REGRESSED") || !strings.Contains(out, "host-2") || !strings.Contains(out, "1.1.0 is broken here") || !strings.Contains(out, "--rollback") {
		t.Fatalf("regression: rc %d\n%s", rc, out)
	}
	for _, h := range f.Hosts {
		if v, _ := h.Version(); v != "1.1.0" {
			t.Fatalf("a check changed %s to %q", h.Name, v)
		}
	}
	rc, out = followup("--rollback")
	if rc != 1 || !strings.Contains(out, "reverted host-1 to 1.0.0") || !strings.Contains(out, "rolled back") {
		t.Fatalf("rollback: rc %d\n%s", rc, out)
	}
	for _, h := range f.Hosts {
		if v, _ := h.Version(); v != "1.0.0" {
			t.Errorf("%s runs %q after --rollback, want 1.0.0", h.Name, v)
		}
	}
	// Usage errors are exit 2 with a message.
	var errb bytes.Buffer
	if rc := run(context.Background(), []string{"followup", "--ledger-dir", t.TempDir()}, &bytes.Buffer{}, &errb); rc != 2 || !strings.Contains(errb.String(), "no release records") {
		t.Fatalf("empty ledger: rc %d: %s", rc, errb.String())
	}
}
