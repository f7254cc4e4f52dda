package provider

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

func testSigningKey(t *testing.T) string {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// readyConfig is a release that meets every readiness item, with substitutions applied.
func readyConfig(t *testing.T, replace ...string) string {
	base := []string{
		`ssh = { user = "deploy", known_hosts_file = "/dev/null" }`,
		`ssh = { user = "deploy", known_hosts_file = "/dev/null" }` + "\n  signing_key = " + fmt.Sprintf("%q", testSigningKey(t)),
		`resource "canary_release" "agent" {`,
		`resource "canary_guard" "logs" {
  name = "agent-logs"
  log  = { file = "/var/log/agent.log", fail_pattern = "(?i)panic" }
}
resource "canary_release" "agent" {
  readiness = {
    environment = "production"
    owner       = "team-agents"
    on_call     = "agents-oncall"
    slo         = "99.9% of /healthz answers 200"
  }`,
		`guards          = [canary_guard.health]`, `guards          = [canary_guard.health, canary_guard.logs]`,
	}
	return releaseConfig(append(base, replace...)...)
}

// TestAccRelease_readiness: an unready release fails at plan with every unmet item listed; each
// item fails alone with its own message; a ready release plans.
func TestAccRelease_readiness(t *testing.T) {
	steps := []resource.TestStep{
		{
			// Ready: the plan goes through.
			ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
			Config:                   readyConfig(t),
			PlanOnly:                 true,
			ExpectNonEmptyPlan:       true,
		},
		{
			// Nothing declared: one error lists every unmet item.
			ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
			Config: releaseConfig(`resource "canary_release" "agent" {`, `resource "canary_release" "agent" {
  readiness = { environment = "production" }`),
			PlanOnly:    true,
			ExpectError: regexp.MustCompile(`(?s)Release Not Ready.*- owner: no owner.*- on_call: no on-call.*- slo: no SLO.*- log_guard: no log guard.*- signed_ledger: no signing_key`),
		},
	}
	for _, tc := range []struct {
		name    string
		replace []string
		want    string
	}{
		{"owner", []string{`owner       = "team-agents"`, ``}, `- owner: no owner: set readiness.owner`},
		{"on-call", []string{`on_call     = "agents-oncall"`, ``}, `- on_call: no on-call`},
		{"slo", []string{`slo         = "99.9% of /healthz answers 200"`, ``}, `- slo: no SLO`},
		{"rollback plan", []string{`revert          = { command = "sudo /opt/agent/install {{.PreviousVersion}}" }`, ``}, `- rollback_plan: no rollback plan: set revert.command`},
		{"fatal guard", []string{`name = "agent-health"`, `name = "agent-health"` + "\n  severity = \"warn\"", `name = "agent-logs"`, `name = "agent-logs"` + "\n  severity = \"warn\""}, `- fatal_guard: no fatal guard`},
		{"log guard", []string{`[canary_guard.health, canary_guard.logs]`, `[canary_guard.health]`}, `- log_guard: no log guard`},
		{"sentry guard", []string{`environment = "production"`, `environment = "production"` + "\n    require_sentry_guard = true"}, `- sentry_guard: no Sentry guard`},
		{"canary first", []string{`hosts = "1",    observe = "5m"`, `hosts = "2",    observe = "5m"`, `hosts = "50%"`, `hosts = "75%"`, `environment = "production"`, `environment = "production"` + "\n    max_canary_percent = 5"}, `- canary_first: the first stage "canary" exposes 2 of 4 hosts \(50\.0%\).*at most 5%`},
		{"observe window", []string{`observe = "5m"`, `observe = "30s"`}, `- observe_window: the canary is observed for 30s, less than readiness\.min_observe 5m0s`},
		{"signed ledger", []string{`signing_key =`, `# signing_key =`}, `- signed_ledger: no signing_key: .*production refuses`},
		{"strict host keys", []string{`known_hosts_file = "/dev/null" }`, `known_hosts_file = "/dev/null", insecure_ignore_host_key = true }`}, `- strict_host_keys: ssh\.insecure_ignore_host_key is set`},
	} {
		cfg := readyConfig(t)
		for i := 0; i+1 < len(tc.replace); i += 2 {
			if !strings.Contains(cfg, tc.replace[i]) {
				t.Fatalf("%s: %q not in the config", tc.name, tc.replace[i])
			}
			cfg = strings.Replace(cfg, tc.replace[i], tc.replace[i+1], 1)
		}
		steps = append(steps, resource.TestStep{
			ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
			Config:                   cfg,
			PlanOnly:                 true,
			ExpectError:              regexp.MustCompile(`(?s)Release\s+Not\s+Ready.*` + strings.ReplaceAll(tc.want, " ", `\s+`)),
		})
	}
	// Outside production a development key is a warning, not a blocker.
	steps = append(steps, resource.TestStep{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Config:                   strings.Replace(strings.Replace(readyConfig(t), `environment = "production"`, `environment = "staging"`, 1), `signing_key =`, `# signing_key =`, 1),
		PlanOnly:                 true,
		ExpectNonEmptyPlan:       true,
	})
	resource.Test(t, resource.TestCase{Steps: steps})
}

// TestAccReadinessDataSource: the data source shows a release's checklist and verdict, as the
// plan-time gate evaluates it, without touching any host.
func TestAccReadinessDataSource(t *testing.T) {
	f := accFleet(t, 3, nil)
	cfg := guardConfig(f, "1.1.0", "", "", "", "") + `
data "canary_readiness" "agent" {
  release = canary_release.agent
}
`
	item := func(name string, ok bool, detail string) knownvalue.Check {
		return knownvalue.ObjectPartial(map[string]knownvalue.Check{"name": knownvalue.StringExact(name), "ok": knownvalue.Bool(ok),
			"detail": knownvalue.StringRegexp(regexp.MustCompile(detail))})
	}
	resource.Test(t, resource.TestCase{Steps: []resource.TestStep{{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Config:                   cfg,
		ConfigStateChecks: []statecheck.StateCheck{
			statecheck.ExpectKnownValue("data.canary_readiness.agent", tfjsonpath.New("ready"), knownvalue.Bool(false)),
			statecheck.ExpectKnownValue("data.canary_readiness.agent", tfjsonpath.New("verdict"), knownvalue.StringExact("not ready: 6 unmet items")),
			statecheck.ExpectKnownValue("data.canary_readiness.agent", tfjsonpath.New("items"), knownvalue.ListExact([]knownvalue.Check{
				item("owner", false, "no owner"), item("on_call", false, "no on-call"), item("slo", false, "no SLO"),
				item("rollback_plan", true, "revert.command"), item("fatal_guard", true, "fatal guard"), item("log_guard", false, "no log guard"),
				item("canary_first", true, `exposes 1 of 3 hosts`), item("observe_window", false, `observed for 3s, less than`),
				item("strict_host_keys", true, "checked"), item("signed_ledger", false, "no signing_key"),
			})),
		},
	}}})
}
