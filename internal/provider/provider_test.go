package provider

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/config"

	"github.com/canaryops/terraform-provider-canary/internal/devfleet"
)

// testAccProtoV6ProviderFactories runs the provider in-process for acceptance tests.
var testAccProtoV6ProviderFactories = map[string]func() (tfprotov6.ProviderServer, error){
	"canary": providerserver.NewProtocol6WithError(New("test")()),
}

// accFleet starts real sshd hosts for an acceptance test. Acceptance tests need TF_ACC (set by
// make test); without it resource.Test skips them, and no fleet is started.
func accFleet(t *testing.T, n int, behaviors map[string]devfleet.Behavior) *devfleet.Fleet {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance test: set TF_ACC=1 (make test does)")
	}
	return devfleet.StartT(t, devfleet.Options{Hosts: n, InitialVersion: "1.0.0", Behaviors: behaviors, Logf: t.Logf})
}

// fleetVariables are the testdata configurations' variables for fleet f and version v.
func fleetVariables(f *devfleet.Fleet, v string) config.Variables {
	hosts := make([]config.Variable, len(f.Hosts))
	for i, h := range f.Hosts {
		hosts[i] = config.ObjectVariable(map[string]config.Variable{
			"name":    config.StringVariable(h.Name),
			"address": config.StringVariable(h.Address),
			"port":    config.IntegerVariable(h.Port),
			"vars":    config.MapVariable(map[string]config.Variable{"agent_port": config.StringVariable(fmt.Sprint(h.AgentPort))}),
		})
	}
	return config.Variables{
		"hosts":                config.ListVariable(hosts...),
		"ssh_user":             config.StringVariable(f.User),
		"ssh_private_key_file": config.StringVariable(f.ClientKeyFile),
		"known_hosts_file":     config.StringVariable(f.KnownHostsFile),
		"agent_version":        config.StringVariable(v),
	}
}

// fleetRuns fails unless every host runs the version in want (host name -> version; "*" for all).
func fleetRuns(f *devfleet.Fleet, want map[string]string) error {
	var bad []string
	for _, h := range f.Hosts {
		w, ok := want[h.Name]
		if !ok {
			w, ok = want["*"]
		}
		if !ok {
			continue
		}
		got, err := h.Version()
		if err != nil {
			return err
		}
		if got != w {
			bad = append(bad, fmt.Sprintf("%s runs %q, want %q", h.Name, got, w))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return nil
}

// untouched fails if any host has a release marker: no rollout ever reached it.
func untouched(f *devfleet.Fleet) error {
	for _, h := range f.Hosts {
		if _, err := os.Stat(filepath.Join(h.Dir, ".canary")); !os.IsNotExist(err) {
			return fmt.Errorf("%s was touched: it has a .canary directory", h.Name)
		}
	}
	return nil
}

// starts counts how often the agent log of h says version v started.
func starts(t *testing.T, h *devfleet.Host, v string) int {
	log, err := h.AgentLog()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(log, "started version "+v+" ")
}
