package provider

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/canaryops/terraform-provider-canary/internal/devfleet"
	"github.com/canaryops/terraform-provider-canary/internal/sentry/sentrytest"
)

// guardConfig is a release of version over fleet f with the given guard resources (HCL) listed in
// guards, plus extra provider settings and release attributes.
func guardConfig(f *devfleet.Fleet, version, providerExtra, guardsHCL, guards, releaseExtra string) string {
	var hosts []string
	for _, h := range f.Hosts {
		hosts = append(hosts, fmt.Sprintf(`{ name = %q, address = %q, port = %d, vars = { agent_port = "%d" } }`, h.Name, h.Address, h.Port, h.AgentPort))
	}
	return fmt.Sprintf(`
provider "canary" {
  ssh = { user = %q, private_key = file(%q), known_hosts_file = %q }
  ledger_dir = %q
  %s
}
resource "canary_fleet" "agents" {
  name  = "agents"
  hosts = [%s]
}
resource "canary_guard" "health" {
  name              = "agent-health"
  interval          = "300ms"
  failure_threshold = 2
  http = { url = "http://127.0.0.1:{{.Host.Vars.agent_port}}/healthz", expect_body = "\"version\":\"{{.Version}}\"" }
}
%s
resource "canary_release" "agent" {
  fleet           = canary_fleet.agents
  version         = %q
  deploy          = { command = "agentctl install {{.Version}}" }
  revert          = { command = "agentctl install {{.PreviousVersion}}" }
  version_command = "agentctl version"
  guards          = [canary_guard.health, %s]
  stages = [
    { name = "canary", hosts = "1", observe = "3s" },
    { name = "fleet", hosts = "100%%", observe = "500ms" },
  ]
  %s
}
`, f.User, f.ClientKeyFile, f.KnownHostsFile, filepath.Join(f.Dir, "ledger"), providerExtra, strings.Join(hosts, ",\n    "), guardsHCL, version, guards, releaseExtra)
}

// TestAccRelease_logGuard: a version that logs panic lines a second after it starts is caught by
// the log guard on the canary and reverted; the error carries the log lines.
func TestAccRelease_logGuard(t *testing.T) {
	f := accFleet(t, 3, map[string]devfleet.Behavior{"1.2.0": devfleet.PanicLater})
	logGuard := `
resource "canary_guard" "logs" {
  name     = "agent-logs"
  interval = "300ms"
  log      = { file = "~/agent/agent.log", fail_pattern = "(?i)panic|fatal", require_pattern = "started version {{.Version}}" }
}`
	resource.Test(t, resource.TestCase{
		CheckDestroy: func(*terraform.State) error { return fleetRuns(f, map[string]string{"*": "1.0.0"}) },
		Steps: []resource.TestStep{
			{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   guardConfig(f, "1.1.0", "", logGuard, "canary_guard.logs", ""),
				Check:                    func(*terraform.State) error { return fleetRuns(f, map[string]string{"*": "1.1.0"}) },
			},
			{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   guardConfig(f, "1.2.0", "", logGuard, "canary_guard.logs", ""),
				ExpectError:              regexp.MustCompile(`(?s)Rollout\s+Failed\s+And\s+Was\s+Rolled\s+Back.*host\s+"host-1".*guard\s+"agent-logs".*panic:\s+simulated\s+failure\s+in\s+version\s+1\.2\.0`),
			},
			{
				PreConfig: func() {
					if err := fleetRuns(f, map[string]string{"*": "1.1.0"}); err != nil {
						t.Fatal(err)
					}
				},
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   guardConfig(f, "1.1.0", "", logGuard, "canary_guard.logs", ""),
				PlanOnly:                 true,
			},
		},
	})
}

// TestAccRelease_sentryGuard: a healthy release gets a Sentry deploy marker and promotion events;
// a new Sentry issue first seen after the canary's deploy fails the canary, which is reverted.
func TestAccRelease_sentryGuard(t *testing.T) {
	f := accFleet(t, 3, nil)
	srv := sentrytest.New(t, sentrytest.Options{Org: "acme", Project: "agents", ProjectID: "42", Token: "sntrys_test_token"})
	providerSentry := fmt.Sprintf(`sentry = { api_url = %q, auth_token = %q, org = "acme", project = "agents", environment = "production", dsn = %q }`, srv.URL(), srv.Token(), srv.DSN())
	sentryGuard := `
resource "canary_guard" "errors" {
  name     = "sentry-regression"
  interval = "300ms"
  sentry   = { max_new_issues = 0, query = "server_name:{{.Host.Name}}" }
}`
	// Seed a new issue on the canary as soon as 1.2.0 is deployed there.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		marker := filepath.Join(f.Host("host-1").Dir, ".canary", "releases", "agents.json")
		for ctx.Err() == nil {
			if b, _ := os.ReadFile(marker); strings.Contains(string(b), `"version": "1.2.0"`) {
				srv.AddIssue(sentrytest.Issue{ID: "9001", ShortID: "AGENTS-7", Title: "TypeError: cannot read properties of undefined", Level: "error",
					FirstSeen: time.Now(), LastSeen: time.Now(), Release: "1.2.0", Environment: "production", Tags: map[string]string{"server_name": "host-1"}, Count: 12})
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	resource.Test(t, resource.TestCase{
		Steps: []resource.TestStep{
			{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   guardConfig(f, "1.1.0", providerSentry, sentryGuard, "canary_guard.errors", ""),
				Check: func(*terraform.State) error {
					if !hasDeploy(srv, "1.1.0") {
						return fmt.Errorf("no Sentry deploy marker for 1.1.0: %+v", srv.Deploys())
					}
					if !hasEvent(srv, "promote", "canary") {
						return fmt.Errorf("no promotion event in Sentry: %+v", srv.Events())
					}
					return fleetRuns(f, map[string]string{"*": "1.1.0"})
				},
			},
			{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   guardConfig(f, "1.2.0", providerSentry, sentryGuard, "canary_guard.errors", ""),
				ExpectError:              regexp.MustCompile(`(?s)Rolled\s+Back.*host\s+"host-1".*guard\s+"sentry-regression".*1\s+new\s+Sentry\s+issues.*AGENTS-7`),
			},
			{
				PreConfig: func() {
					if err := fleetRuns(f, map[string]string{"*": "1.1.0"}); err != nil {
						t.Fatal(err)
					}
					if !hasEvent(srv, "rollback", "") {
						t.Errorf("no rollback event in Sentry: %+v", srv.Events())
					}
				},
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   guardConfig(f, "1.1.0", providerSentry, sentryGuard, "canary_guard.errors", ""),
				PlanOnly:                 true,
			},
		},
	})
}

func hasDeploy(srv *sentrytest.Server, version string) bool {
	for _, d := range srv.Deploys() {
		if d.Version == version && d.Environment == "production" {
			return true
		}
	}
	return false
}

func hasEvent(srv *sentrytest.Server, action, stage string) bool {
	for _, e := range srv.Events() {
		if e.Tags["action"] == action && (stage == "" || e.Tags["stage"] == stage) && strings.HasPrefix(e.Tags["run_id"], "run-") {
			return true
		}
	}
	return false
}

// TestAccRelease_warnGuard: a failing warn guard lets the rollout finish; the warning is kept in
// state with its evidence.
func TestAccRelease_warnGuard(t *testing.T) {
	f := accFleet(t, 3, nil)
	if err := os.WriteFile(filepath.Join(f.Host("host-2").Dir, "degraded"), []byte("queue depth 4096\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	warn := `
resource "canary_guard" "queue" {
  name     = "queue-depth"
  severity = "warn"
  interval = "300ms"
  command  = { command = "if [ -e ~/degraded ]; then cat ~/degraded; exit 1; fi" }
}`
	resource.Test(t, resource.TestCase{
		Steps: []resource.TestStep{{
			ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
			Config:                   guardConfig(f, "1.1.0", "", warn, "canary_guard.queue", ""),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(release, tfjsonpath.New("status"), knownvalue.StringExact("succeeded")),
				statecheck.ExpectKnownValue(release, tfjsonpath.New("warnings").AtSliceIndex(0), knownvalue.ObjectPartial(map[string]knownvalue.Check{
					"guard": knownvalue.StringExact("queue-depth"), "host": knownvalue.StringExact("host-2"),
					"evidence": knownvalue.StringRegexp(regexp.MustCompile("queue depth 4096")),
				})),
			},
			Check: func(*terraform.State) error { return fleetRuns(f, map[string]string{"*": "1.1.0"}) },
		}},
	})
}

// TestAccRelease_followup: a follow-up check that falls due finds a regression on a later
// refresh; the state says regressed and which follow-up failed, and nothing is changed.
func TestAccRelease_followup(t *testing.T) {
	f := accFleet(t, 3, nil)
	broken := `
resource "canary_guard" "not_broken" {
  name              = "not-broken"
  interval          = "200ms"
  failure_threshold = 1
  command           = { command = "test ! -e ~/broken-{{.Version}} || { echo {{.Version}} is broken here; exit 1; }" }
}`
	cfg := guardConfig(f, "1.1.0", "", broken, "canary_guard.not_broken", `followups = ["1h", "4h"]`)
	t.Cleanup(func() { now = time.Now })
	resource.Test(t, resource.TestCase{
		Steps: []resource.TestStep{
			{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   cfg,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(release, tfjsonpath.New("followup_results"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.ObjectPartial(map[string]knownvalue.Check{"after": knownvalue.StringExact("1h"), "status": knownvalue.StringExact("pending")}),
						knownvalue.ObjectPartial(map[string]knownvalue.Check{"after": knownvalue.StringExact("4h"), "status": knownvalue.StringExact("pending")}),
					})),
				},
			},
			{
				// Ninety minutes later host-3 has gone bad: the 1h follow-up runs on refresh.
				PreConfig: func() {
					later := time.Now().Add(90 * time.Minute)
					now = func() time.Time { return later }
					if err := os.WriteFile(filepath.Join(f.Host("host-3").Dir, "broken-1.1.0"), nil, 0o644); err != nil {
						t.Fatal(err)
					}
				},
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   cfg,
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttr(release, "status", "regressed"),
					resource.TestCheckResourceAttr(release, "followup_results.0.after", "1h"),
					resource.TestCheckResourceAttr(release, "followup_results.0.status", "failed"),
					resource.TestMatchResourceAttr(release, "followup_results.0.message", regexp.MustCompile(`host-3.*not-broken.*1\.1\.0 is broken here`)),
					resource.TestCheckResourceAttr(release, "followup_results.1.status", "pending"),
					func(*terraform.State) error { return fleetRuns(f, map[string]string{"*": "1.1.0"}) },
				),
			},
			{
				// A regressed release proposes no change of its own: rolling back is the operator's call.
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   cfg,
				PlanOnly:                 true,
			},
		},
	})
}

// TestAccRelease_dryRun: dry_run = true connects, checks and changes nothing; the state says which
// hosts would be deployed; turning it off rolls out.
func TestAccRelease_dryRun(t *testing.T) {
	f := accFleet(t, 3, nil)
	resource.Test(t, resource.TestCase{
		CheckDestroy: func(*terraform.State) error { return fleetRuns(f, map[string]string{"*": "1.0.0"}) },
		Steps: []resource.TestStep{
			{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   guardConfig(f, "1.1.0", "", "", "", "dry_run = true"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(release, tfjsonpath.New("status"), knownvalue.StringExact("dry_run")),
					statecheck.ExpectKnownValue(release, tfjsonpath.New("hosts"), knownvalue.ListExact([]knownvalue.Check{
						hostState("host-1", "1.0.0", "1.0.0", "pending"), hostState("host-2", "1.0.0", "1.0.0", "pending"), hostState("host-3", "1.0.0", "1.0.0", "pending"),
					})),
				},
				Check: func(*terraform.State) error {
					if err := untouched(f); err != nil {
						return err
					}
					// The dry run is on the record (signed with the development key: no signing_key here).
					b, err := os.ReadFile(filepath.Join(f.Dir, "ledger", "index", "agents", "agents.json"))
					if err != nil || !strings.Contains(string(b), `"action": "dry_run"`) || !strings.Contains(string(b), `"insecure": true`) {
						return fmt.Errorf("no dry_run event in the release index (%v):\n%s", err, b)
					}
					return fleetRuns(f, map[string]string{"*": "1.0.0"})
				},
			},
			{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   guardConfig(f, "1.1.0", "", "", "", "dry_run = false"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(release, tfjsonpath.New("status"), knownvalue.StringExact("succeeded")),
				},
				Check: func(*terraform.State) error { return fleetRuns(f, map[string]string{"*": "1.1.0"}) },
			},
		},
	})
}

// gitRepo makes a git repository whose main.tf history introduces version 1.2.0 of the release in
// its last commit; also names another release's change in that commit when other is set.
func gitRepo(t *testing.T, other bool) string {
	dir := t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "commit.gpgsign=false", "-c", "user.name=Ops", "-c", "user.email=ops@example.com"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(agent, sidecar string) {
		tf := fmt.Sprintf("resource \"canary_release\" \"agent\" {\n  version = %q\n}\n\nresource \"canary_release\" \"sidecar\" {\n  version = %q\n}\n", agent, sidecar)
		if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(tf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("init", "-q", "-b", "main")
	write("1.1.0", "0.9.0")
	git("add", "main.tf")
	git("commit", "-q", "-m", "release agent 1.1.0")
	if other {
		write("1.2.0", "0.9.1")
	} else {
		write("1.2.0", "0.9.0")
	}
	git("commit", "-q", "-am", "release agent 1.2.0")
	return dir
}

func gitShow(t *testing.T, dir string, args ...string) (string, error) {
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	return string(out), err
}

// TestAccRelease_gitRevert: after an automatic rollback a reviewed revert of the commit that
// introduced the failing version is prepared on a branch; when that commit also changes another
// release, nothing is created and the apply asks for manual triage.
func TestAccRelease_gitRevert(t *testing.T) {
	f := accFleet(t, 3, map[string]devfleet.Behavior{"1.2.0": devfleet.Unhealthy})
	clean, mixed := gitRepo(t, false), gitRepo(t, true)
	cfg := func(v, dir string) string {
		return guardConfig(f, v, "", "", "", fmt.Sprintf(`git_revert = { address = "canary_release.agent", dir = %q }`, dir))
	}
	resource.Test(t, resource.TestCase{
		Steps: []resource.TestStep{
			{ProtoV6ProviderFactories: testAccProtoV6ProviderFactories, Config: cfg("1.1.0", clean)},
			{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   cfg("1.2.0", clean),
				ExpectError:              regexp.MustCompile(`(?s)Rolled\s+Back.*Git:\s+an\s+audited\s+revert\s+of\s+commit\s+[0-9a-f]{12},\s+which\s+introduced\s+1\.2\.0,\s+is\s+on\s+branch\s+canary/revert-`),
			},
			{
				PreConfig: func() {
					branches, _ := gitShow(t, clean, "branch", "--list", "canary/revert-*", "--format=%(refname:short)")
					branch := strings.TrimSpace(branches)
					if branch == "" {
						t.Fatal("no revert branch")
					}
					tf, err := gitShow(t, clean, "show", branch+":main.tf")
					if err != nil || !strings.Contains(tf, `version = "1.1.0"`) {
						t.Fatalf("the branch's main.tf:\n%s %v", tf, err)
					}
					msg, _ := gitShow(t, clean, "log", "-1", "--format=%B", branch)
					for _, want := range []string{"1.2.0 failed its canary", "run-", "agent-health", "HTTP 503"} {
						if !strings.Contains(msg, want) {
							t.Errorf("revert message lacks %q:\n%s", want, msg)
						}
					}
					if head, _ := gitShow(t, clean, "show", "HEAD:main.tf"); !strings.Contains(head, `"1.2.0"`) {
						t.Error("the revert touched the checked-out branch")
					}
				},
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   cfg("1.2.0", mixed),
				ExpectError:              regexp.MustCompile(`(?s)Rolled\s+Back.*Git:\s+manual\s+triage\s+needed.*canary_release\.sidecar`),
			},
			{
				PreConfig: func() {
					if b, _ := gitShow(t, mixed, "branch", "--list", "canary/revert-*"); strings.TrimSpace(b) != "" {
						t.Errorf("a branch was created for an ambiguous culprit: %s", b)
					}
					if err := fleetRuns(f, map[string]string{"*": "1.1.0"}); err != nil {
						t.Fatal(err)
					}
				},
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   cfg("1.1.0", clean),
				PlanOnly:                 true,
			},
		},
	})
}

// TestAccRelease_tcpGuard: a version that crashes on start leaves its port closed; a tcp guard
// alone catches it on the canary and the canary is reverted.
func TestAccRelease_tcpGuard(t *testing.T) {
	f := accFleet(t, 3, map[string]devfleet.Behavior{"1.2.0": devfleet.CrashOnStart})
	port := `
resource "canary_guard" "port" {
  name              = "agent-port"
  interval          = "300ms"
  failure_threshold = 2
  tcp               = { address = "127.0.0.1:{{.Host.Vars.agent_port}}" }
}`
	cfg := func(v string) string {
		return strings.Replace(guardConfig(f, v, "", port, "canary_guard.port", ""), "guards          = [canary_guard.health, ", "guards          = [", 1)
	}
	resource.Test(t, resource.TestCase{
		CheckDestroy: func(*terraform.State) error { return fleetRuns(f, map[string]string{"*": "1.0.0"}) },
		Steps: []resource.TestStep{
			{ProtoV6ProviderFactories: testAccProtoV6ProviderFactories, Config: cfg("1.1.0")},
			{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   cfg("1.2.0"),
				ExpectError:              regexp.MustCompile(`(?s)Rolled\s+Back.*host\s+"host-1".*guard\s+"agent-port".*connect\s+127\.0\.0\.1:\d+`),
			},
			{
				PreConfig: func() {
					if err := fleetRuns(f, map[string]string{"*": "1.1.0"}); err != nil {
						t.Fatal(err)
					}
				},
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   cfg("1.1.0"),
				PlanOnly:                 true,
			},
		},
	})
}
