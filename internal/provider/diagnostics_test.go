package provider

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

// releaseConfig is a release over four unreachable hosts with one substitution applied: plan
// must report bad input without connecting to anything.
func releaseConfig(replace ...string) string {
	c := `
provider "canary" {
  ssh = { user = "deploy", known_hosts_file = "/dev/null" }
}
resource "canary_fleet" "agents" {
  name  = "agents"
  hosts = [
    { name = "agent-1", address = "192.0.2.1" }, { name = "agent-2", address = "192.0.2.2" },
    { name = "agent-3", address = "192.0.2.3" }, { name = "agent-4", address = "192.0.2.4" },
  ]
}
resource "canary_guard" "health" {
  name = "agent-health"
  http = { url = "http://127.0.0.1:8080/healthz", expect_body = "{{.Version}}" }
}
resource "canary_release" "agent" {
  fleet           = canary_fleet.agents
  version         = "2.4.0"
  deploy          = { command = "sudo /opt/agent/install {{.Version}}" }
  revert          = { command = "sudo /opt/agent/install {{.PreviousVersion}}" }
  version_command = "cat /opt/agent/VERSION"
  guards          = [canary_guard.health]
  on_failure      = "rollback"
  stages = [
    { name = "canary", hosts = "1",    observe = "5m" },
    { name = "wave",   hosts = "50%",  observe = "2m" },
    { name = "fleet",  hosts = "100%", observe = "1m" },
  ]
}
`
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(c, replace[i]) {
			panic("releaseConfig: " + replace[i] + " not in the config")
		}
		c = strings.Replace(c, replace[i], replace[i+1], 1)
	}
	return c
}

// TestAccRelease_planDiagnostics: every kind of bad input is a plan-time error that names the
// attribute and says the fix.
func TestAccRelease_planDiagnostics(t *testing.T) {
	cases := []struct {
		name    string
		replace []string
		want    string
	}{
		{"bad duration", []string{`observe = "5m"`, `observe = "5 minutes"`}, `Invalid Duration.*stages\[0\]\.observe is "5 minutes", which is not a duration.*"30s", "5m"`},
		{"percent over 100", []string{`hosts = "50%"`, `hosts = "150%"`}, `stages\[1\]\.hosts: .*"150%" is out of range; a percentage must be above 0% and at most 100%`},
		{"stage adds no host", []string{`hosts = "50%"`, `hosts = "25%"`}, `stages\[1\]\.hosts: stage "wave" adds no host: "25%" is 1 of 4 hosts.*make it larger than the stage before`},
		{"last stage short of 100%", []string{`hosts = "100%"`, `hosts = "75%"`}, `stages\[2\]\.hosts: the last stage reaches 3 of 4 hosts; the last stage must reach the whole fleet \("100%"\)`},
		{"duplicate host names", []string{`name = "agent-4"`, `name = "agent-2"`}, `Duplicate Host Name.*"agent-2" is used by hosts\[1\] and hosts\[3\].*rename one`},
		{"unknown guard", []string{`[canary_guard.health]`, `[canary_guard.healht]`}, `Reference to undeclared resource.*canary_guard.*healht`},
		{"template error", []string{`install {{.Version}}`, `install {{.Vresion}}`}, `deploy\.command: template: .*can't evaluate field Vresion`},
		{"quoted template value", []string{`install {{.Version}}`, `install '{{.Version}}'`}, `deploy\.command: .*inside single quotes: values are shell-quoted for you, remove the quotes around it`},
		{"template syntax", []string{`cat /opt/agent/VERSION`, `cat {{.Host.Name`}, `version_command: template syntax`},
		{"bad on_failure", []string{`on_failure      = "rollback"`, `on_failure      = "retry"`}, `Invalid Value.*on_failure is "retry"; use "rollback" or "halt"`},
		{"bad severity", []string{`name = "agent-health"`, `name = "agent-health"` + "\n  severity = \"loud\""}, `severity is "loud"; use "fatal" or "warn"`},
		{"guard with no check", []string{`http = { url = "http://127.0.0.1:8080/healthz", expect_body = "{{.Version}}" }`, ``}, `Guard Checks Nothing.*Set exactly one`},
		{"guard url not http", []string{`http://127.0.0.1:8080/healthz`, `ftp://127.0.0.1/healthz`}, `http\.url "ftp://127\.0\.0\.1/healthz" is not an http:// or https:// URL`},
		{"no stages", []string{`stages = [`, `stages = [] #`}, `stages: a release needs at least one stage`},
	}
	var steps []resource.TestStep
	for _, tc := range cases {
		cfg := releaseConfig(tc.replace...)
		if tc.name == "no stages" {
			cfg = regexp.MustCompile(`(?s)stages = \[\] #.*?\n  \]\n`).ReplaceAllString(cfg, "stages = []\n")
		}
		steps = append(steps, resource.TestStep{
			ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
			Config:                   cfg,
			PlanOnly:                 true,
			ExpectError:              regexp.MustCompile(`(?s)` + strings.ReplaceAll(tc.want, " ", `\s+`)),
		})
	}
	resource.Test(t, resource.TestCase{Steps: steps})
}

func TestAccProvider_signingKeyMustBeEd25519(t *testing.T) {
	resource.Test(t, resource.TestCase{Steps: []resource.TestStep{{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Config: releaseConfig(`ssh = { user = "deploy", known_hosts_file = "/dev/null" }`,
			fmt.Sprintf("signing_key = %q", "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----\n")),
		PlanOnly:    true,
		ExpectError: regexp.MustCompile(`(?s)Invalid\s+Signing\s+Key.*ed25519`),
	}}})
}
