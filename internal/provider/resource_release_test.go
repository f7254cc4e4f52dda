package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/canaryops/terraform-provider-canary/internal/devfleet"
)

const release = "canary_release.agent"

// releaseConfigDir is the configuration of the lifecycle, halt and interrupted tests.
var releaseConfigDir = config.StaticDirectory("testdata/release")

// expectPriorValue checks a top-level string attribute of a resource's prior state in the plan.
type expectPriorValue struct{ addr, attr, want string }

func (e expectPriorValue) CheckPlan(_ context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	for _, rc := range req.Plan.ResourceChanges {
		if rc.Address != e.addr {
			continue
		}
		before, _ := rc.Change.Before.(map[string]any)
		if got := before[e.attr]; got != e.want {
			resp.Error = fmt.Errorf("%s.%s in the prior state is %v, want %q", e.addr, e.attr, got, e.want)
		}
		return
	}
	resp.Error = fmt.Errorf("%s not in the plan", e.addr)
}

func stagePlan(name string, hosts ...string) knownvalue.Check {
	hs := make([]knownvalue.Check, len(hosts))
	for i, h := range hosts {
		hs[i] = knownvalue.StringExact(h)
	}
	return knownvalue.ObjectPartial(map[string]knownvalue.Check{"name": knownvalue.StringExact(name), "hosts": knownvalue.ListExact(hs)})
}

func hostState(name, version, previous, status string) knownvalue.Check {
	return knownvalue.ObjectPartial(map[string]knownvalue.Check{
		"name": knownvalue.StringExact(name), "version": knownvalue.StringExact(version),
		"previous_version": knownvalue.StringExact(previous), "status": knownvalue.StringExact(status),
	})
}

// TestAccRelease_lifecycle: plan touches no host and names each stage's hosts; the first apply
// rolls out canary first and state agrees with the hosts; a bad version is caught on the canary,
// reverted, the state stands and the next plan proposes the same change; destroy puts every host
// back to the version it ran before the release.
func TestAccRelease_lifecycle(t *testing.T) {
	f := accFleet(t, 4, map[string]devfleet.Behavior{"1.2.0": devfleet.Unhealthy})
	dir := releaseConfigDir
	resource.Test(t, resource.TestCase{
		CheckDestroy: func(*terraform.State) error {
			return fleetRuns(f, map[string]string{"*": "1.0.0"})
		},
		Steps: []resource.TestStep{
			{
				// The dry run: the plan names every stage's hosts and touches no host.
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				ConfigDirectory:          dir,
				ConfigVariables:          fleetVariables(f, "1.1.0"),
				PlanOnly:                 true,
				ExpectNonEmptyPlan:       true,
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(release, plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue(release, tfjsonpath.New("rollout_plan"), knownvalue.ListExact([]knownvalue.Check{
						stagePlan("canary", "host-1"), stagePlan("wave", "host-2"), stagePlan("fleet", "host-3", "host-4"),
					})),
				}},
			},
			{
				PreConfig: func() {
					if err := untouched(f); err != nil {
						t.Fatalf("plan touched a host: %v", err)
					}
				},
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				ConfigDirectory:          dir,
				ConfigVariables:          fleetVariables(f, "1.1.0"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(release, tfjsonpath.New("status"), knownvalue.StringExact("succeeded")),
					statecheck.ExpectKnownValue(release, tfjsonpath.New("run_id"), knownvalue.StringRegexp(regexp.MustCompile(`^run-`))),
					statecheck.ExpectKnownValue(release, tfjsonpath.New("hosts"), knownvalue.ListExact([]knownvalue.Check{
						hostState("host-1", "1.1.0", "1.0.0", "deployed"), hostState("host-2", "1.1.0", "1.0.0", "deployed"),
						hostState("host-3", "1.1.0", "1.0.0", "deployed"), hostState("host-4", "1.1.0", "1.0.0", "deployed"),
					})),
				},
				Check: func(*terraform.State) error { return fleetRuns(f, map[string]string{"*": "1.1.0"}) },
			},
			{
				// A version change plans a staged upgrade with the exact hosts per stage.
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				ConfigDirectory:          dir,
				ConfigVariables:          fleetVariables(f, "1.2.0"),
				PlanOnly:                 true,
				ExpectNonEmptyPlan:       true,
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(release, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(release, tfjsonpath.New("rollout_plan"), knownvalue.ListExact([]knownvalue.Check{
						stagePlan("canary", "host-1"), stagePlan("wave", "host-2"), stagePlan("fleet", "host-3", "host-4"),
					})),
					plancheck.ExpectUnknownValue(release, tfjsonpath.New("status")),
				}},
			},
			{
				// 1.2.0 answers 503: caught on the canary, reverted, the apply fails with the evidence.
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				ConfigDirectory:          dir,
				ConfigVariables:          fleetVariables(f, "1.2.0"),
				ExpectError:              regexp.MustCompile(`(?s)Rollout Failed And Was Rolled Back.*stage "canary" failed on host "host-1".*guard "agent-health".*HTTP 503.*rolled back: host-1`),
			},
			{
				// The hosts are back at 1.1.0 and the next plan proposes the same change again.
				PreConfig: func() {
					if err := fleetRuns(f, map[string]string{"*": "1.1.0"}); err != nil {
						t.Fatal(err)
					}
					if n := starts(t, f.Hosts[1], "1.2.0"); n != 0 {
						t.Fatal("host-2 was touched by the failed rollout")
					}
				},
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				ConfigDirectory:          dir,
				ConfigVariables:          fleetVariables(f, "1.2.0"),
				PlanOnly:                 true,
				ExpectNonEmptyPlan:       true,
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(release, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(release, tfjsonpath.New("version"), knownvalue.StringExact("1.2.0")),
				}},
			},
			{
				// The state still says 1.1.0: planning 1.1.0 changes nothing.
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				ConfigDirectory:          dir,
				ConfigVariables:          fleetVariables(f, "1.1.0"),
				PlanOnly:                 true,
			},
		},
	})
}

// TestAccRelease_halt: with on_failure = "halt" a failure in the second stage leaves the state
// partial (status halted, each host's true version), and the next apply finishes the rollout
// without redeploying the hosts that already run it.
func TestAccRelease_halt(t *testing.T) {
	f := accFleet(t, 4, nil)
	dir := releaseConfigDir
	haltVariables := func(f *devfleet.Fleet, v string) config.Variables {
		vs := fleetVariables(f, v)
		vs["on_failure"] = config.StringVariable("halt")
		return vs
	}
	broken := filepath.Join(f.Host("host-2").Dir, "broken-1.2.0")
	resource.Test(t, resource.TestCase{
		CheckDestroy: func(*terraform.State) error {
			// Destroy reverts the last rollout (1.1.0 -> 1.2.0).
			return fleetRuns(f, map[string]string{"*": "1.1.0"})
		},
		Steps: []resource.TestStep{
			{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				ConfigDirectory:          dir,
				ConfigVariables:          haltVariables(f, "1.1.0"),
				Check:                    func(*terraform.State) error { return fleetRuns(f, map[string]string{"*": "1.1.0"}) },
			},
			{
				PreConfig: func() {
					if err := os.WriteFile(broken, nil, 0o644); err != nil {
						t.Fatal(err)
					}
				},
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				ConfigDirectory:          dir,
				ConfigVariables:          haltVariables(f, "1.2.0"),
				ExpectError:              regexp.MustCompile(`(?s)Rollout Halted.*stage "wave" failed on host "host-2".*guard "not-broken".*1\.2\.0 is broken here.*1\.2\.0 on host-1,\s+host-2;\s+1\.1\.0\s+on\s+host-3,\s+host-4`),
			},
			{
				// The halted state is partial and the plan proposes finishing.
				PreConfig: func() {
					if err := fleetRuns(f, map[string]string{"host-1": "1.2.0", "host-2": "1.2.0", "host-3": "1.1.0", "host-4": "1.1.0"}); err != nil {
						t.Fatal(err)
					}
					if err := os.Remove(broken); err != nil {
						t.Fatal(err)
					}
				},
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				ConfigDirectory:          dir,
				ConfigVariables:          haltVariables(f, "1.2.0"),
				PlanOnly:                 true,
				ExpectNonEmptyPlan:       true,
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(release, plancheck.ResourceActionUpdate),
					expectPriorValue{release, "status", "halted"},
					plancheck.ExpectUnknownValue(release, tfjsonpath.New("status")),
				}},
			},
			{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				ConfigDirectory:          dir,
				ConfigVariables:          haltVariables(f, "1.2.0"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(release, tfjsonpath.New("status"), knownvalue.StringExact("succeeded")),
					statecheck.ExpectKnownValue(release, tfjsonpath.New("hosts"), knownvalue.ListExact([]knownvalue.Check{
						hostState("host-1", "1.2.0", "1.1.0", "unchanged"), hostState("host-2", "1.2.0", "1.1.0", "unchanged"),
						hostState("host-3", "1.2.0", "1.1.0", "deployed"), hostState("host-4", "1.2.0", "1.1.0", "deployed"),
					})),
				},
				Check: func(*terraform.State) error {
					for _, h := range f.Hosts {
						if n := starts(t, h, "1.2.0"); n != 1 {
							t.Errorf("%s started 1.2.0 %d times, want once", h.Name, n)
						}
					}
					return fleetRuns(f, map[string]string{"*": "1.2.0"})
				},
			},
		},
	})
}

// TestAccRelease_interrupted: an update that runs out of time mid-stage starts nothing new, saves
// state that says exactly which hosts run what (status interrupted), and the next apply resumes
// without redeploying the hosts already at the new version.
func TestAccRelease_interrupted(t *testing.T) {
	f := accFleet(t, 4, nil)
	dir := releaseConfigDir
	vars := func(v, timeout string) config.Variables {
		vs := fleetVariables(f, v)
		vs["update_timeout"] = config.StringVariable(timeout)
		vs["canary_observe"] = config.StringVariable("6s")
		return vs
	}
	resource.Test(t, resource.TestCase{
		CheckDestroy: func(*terraform.State) error { return fleetRuns(f, map[string]string{"*": "1.1.0"}) },
		Steps: []resource.TestStep{
			{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				ConfigDirectory:          dir,
				ConfigVariables:          vars("1.1.0", "1m"),
			},
			{
				// The canary is observed for 6s, but the update may take 3s.
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				ConfigDirectory:          dir,
				ConfigVariables:          vars("1.2.0", "3s"),
				ExpectError:              regexp.MustCompile(`(?s)Rollout\s+Interrupted.*interrupted:\s+1\.2\.0\s+on\s+host-1;\s+1\.1\.0\s+on\s+host-2,\s+host-3,\s+host-4`),
			},
			{
				PreConfig: func() {
					if err := fleetRuns(f, map[string]string{"host-1": "1.2.0", "host-2": "1.1.0", "host-3": "1.1.0", "host-4": "1.1.0"}); err != nil {
						t.Fatal(err)
					}
				},
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				ConfigDirectory:          dir,
				ConfigVariables:          vars("1.2.0", "1m"),
				PlanOnly:                 true,
				ExpectNonEmptyPlan:       true,
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(release, plancheck.ResourceActionUpdate),
					expectPriorValue{release, "status", "interrupted"},
				}},
			},
			{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				ConfigDirectory:          dir,
				ConfigVariables:          vars("1.2.0", "1m"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(release, tfjsonpath.New("status"), knownvalue.StringExact("succeeded")),
					statecheck.ExpectKnownValue(release, tfjsonpath.New("hosts"), knownvalue.ListExact([]knownvalue.Check{
						hostState("host-1", "1.2.0", "1.1.0", "unchanged"), hostState("host-2", "1.2.0", "1.1.0", "deployed"),
						hostState("host-3", "1.2.0", "1.1.0", "deployed"), hostState("host-4", "1.2.0", "1.1.0", "deployed"),
					})),
				},
				Check: func(*terraform.State) error {
					if n := starts(t, f.Hosts[0], "1.2.0"); n != 1 {
						t.Errorf("host-1 started 1.2.0 %d times, want once", n)
					}
					return fleetRuns(f, map[string]string{"*": "1.2.0"})
				},
			},
		},
	})
}
