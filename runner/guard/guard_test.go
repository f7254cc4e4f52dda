package guard_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/canaryops/terraform-provider-canary/internal/devfleet"
	"github.com/canaryops/terraform-provider-canary/runner/guard"
	sshx "github.com/canaryops/terraform-provider-canary/runner/ssh"
	"github.com/canaryops/terraform-provider-canary/runner/tmpl"
)

func TestGuardsAgainstARealAgent(t *testing.T) {
	f := devfleet.StartT(t, devfleet.Options{Hosts: 2, InitialVersion: "1.0.0", Logf: t.Logf,
		Behaviors: map[string]devfleet.Behavior{"2.0.0": devfleet.Unhealthy}})
	cfg := sshx.Config{User: f.User, PrivateKey: f.ClientKey, KnownHostsFile: f.KnownHostsFile}
	ctx := context.Background()
	conn := func(h *devfleet.Host) guard.Target {
		c, err := sshx.Dial(ctx, cfg, sshx.Endpoint{Address: h.SSHAddr()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return guard.SSHTarget{Client: c}
	}
	healthy, sick := f.Hosts[0], f.Hosts[1]
	if _, err := sick.Run(ctx, "agentctl install 2.0.0"); err != nil {
		t.Fatal(err)
	}
	data := func(h *devfleet.Host, v string) tmpl.Data {
		return tmpl.Data{Version: v, Host: tmpl.Host{Name: h.Name, Vars: map[string]string{"agent_port": fmt.Sprint(h.AgentPort)}}}
	}
	health := &guard.HTTP{URL: "http://127.0.0.1:{{.Host.Vars.agent_port}}/healthz", ExpectBody: `"version":"{{.Version}}"`}
	if err := health.Validate(); err != nil {
		t.Fatal(err)
	}

	// The URL is dialed through the host's SSH connection, so 127.0.0.1 is the host's loopback.
	if r := health.Check(ctx, conn(healthy), data(healthy, "1.0.0"), nil); !r.OK {
		t.Fatalf("healthy agent failed: %+v", r)
	}
	// Up, but not the expected version: the check verifies the answer, not only that it is up.
	r := health.Check(ctx, conn(healthy), data(healthy, "1.1.0"), nil)
	if r.OK || !strings.Contains(r.Message, `does not contain "\"version\":\"1.1.0\""`) || !strings.Contains(r.Evidence, `"version":"1.0.0"`) {
		t.Fatalf("wrong version passed or evidence missing: %+v", r)
	}
	r = health.Check(ctx, conn(sick), data(sick, "2.0.0"), nil)
	if r.OK || !strings.Contains(r.Evidence, "HTTP 503") || !strings.Contains(r.Evidence, "unhealthy") {
		t.Fatalf("503 passed or evidence missing: %+v", r)
	}

	tcp := &guard.TCP{Address: "127.0.0.1:{{.Host.Vars.agent_port}}"}
	if r := tcp.Check(ctx, conn(healthy), data(healthy, "1.0.0"), nil); !r.OK {
		t.Fatalf("tcp to the agent failed: %+v", r)
	}
	if r := (&guard.TCP{Address: "127.0.0.1:1"}).Check(ctx, conn(healthy), data(healthy, "1.0.0"), nil); r.OK {
		t.Fatalf("tcp to a closed port passed")
	}

	cmd := &guard.Command{Command: "agentctl version", ExpectOutput: "{{.Version}}"}
	if r := cmd.Check(ctx, conn(healthy), data(healthy, "1.0.0"), nil); !r.OK {
		t.Fatalf("command failed: %+v", r)
	}
	r = (&guard.Command{Command: "echo disk full >&2; exit 3"}).Check(ctx, conn(healthy), data(healthy, "1.0.0"), nil)
	if r.OK || !strings.Contains(r.Message, "exited 3") || !strings.Contains(r.Evidence, "disk full") {
		t.Fatalf("failing command: %+v", r)
	}
}

func TestGuardValidation(t *testing.T) {
	for _, tc := range []struct {
		g    guard.Guard
		want string
	}{
		{guard.Guard{Name: "h", Check: &guard.HTTP{URL: "ftp://x/"}}, "not an http:// or https:// URL"},
		{guard.Guard{Name: "h", Check: &guard.HTTP{URL: "http://x/", ExpectStatus: []int{700}}}, "700 is not an HTTP status"},
		{guard.Guard{Name: "h", Check: &guard.HTTP{URL: "http://x/{{.Nope}}"}}, "http.url"},
		{guard.Guard{Name: "c", Check: &guard.Command{Command: `echo "{{.Version}}"`}}, "inside double quotes"},
		{guard.Guard{Name: "t", Check: &guard.TCP{Address: "localhost"}}, "must be host:port"},
		{guard.Guard{Name: "s", Severity: "loud", Check: &guard.TCP{Address: "a:1"}}, `use "fatal" or "warn"`},
		{guard.Guard{Name: "n"}, "has no check"},
	} {
		err := tc.g.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.g, err, tc.want)
		}
	}
}
