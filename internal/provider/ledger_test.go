package provider

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

// TestAccRelease_ledger: every rollout leaves a signed record with actor, reason and ticket that
// the canary_release_index data source shows verified; a replayed older index and a tampered one
// are refused before any host changes.
func TestAccRelease_ledger(t *testing.T) {
	f := accFleet(t, 3, nil)
	key := fmt.Sprintf("signing_key = %q", testSigningKey(t))
	audit := `actor = "alice"
  reason = "weekly agent update"
  ticket = "CHG-42"`
	cfg := func(v string) string { return guardConfig(f, v, key, "", "", audit) }
	withIndex := func(v string) string {
		return cfg(v) + `
data "canary_release_index" "agent" {
  fleet   = "agents"
  release = canary_release.agent.name
}`
	}
	index := filepath.Join(f.Dir, "ledger", "index", "agents", "agents.json")
	var atSeq2, latest []byte
	save := func(dst *[]byte) func(*terraform.State) error {
		return func(*terraform.State) error {
			b, err := os.ReadFile(index)
			*dst = b
			return err
		}
	}
	restore := func(b *[]byte) {
		if err := os.WriteFile(index, *b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const idx = "data.canary_release_index.agent"
	resource.Test(t, resource.TestCase{
		Steps: []resource.TestStep{
			{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   cfg("1.1.0"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(release, tfjsonpath.New("ledger_sequence"), knownvalue.Int64Exact(2)),
					statecheck.ExpectKnownValue(release, tfjsonpath.New("manifest_sha256"), knownvalue.StringRegexp(regexp.MustCompile(`^[0-9a-f]{64}$`))),
				},
				Check: save(&atSeq2),
			},
			{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   withIndex("1.2.0"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(release, tfjsonpath.New("ledger_sequence"), knownvalue.Int64Exact(4)),
				},
				Check: save(&latest),
			},
			{
				// The data source read at plan time shows the verified index of the last apply.
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   withIndex("1.2.0"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(idx, tfjsonpath.New("active_version"), knownvalue.StringExact("1.2.0")),
					statecheck.ExpectKnownValue(idx, tfjsonpath.New("channel"), knownvalue.StringExact("stable")),
					statecheck.ExpectKnownValue(idx, tfjsonpath.New("insecure"), knownvalue.Bool(false)),
					statecheck.ExpectKnownValue(idx, tfjsonpath.New("sequence"), knownvalue.Int64Exact(4)),
					statecheck.ExpectKnownValue(idx, tfjsonpath.New("versions"), knownvalue.ListSizeExact(2)),
					statecheck.ExpectKnownValue(idx, tfjsonpath.New("events"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.ObjectPartial(map[string]knownvalue.Check{"action": knownvalue.StringExact("canary"), "version": knownvalue.StringExact("1.1.0"), "actor": knownvalue.StringExact("alice")}),
						knownvalue.ObjectPartial(map[string]knownvalue.Check{"action": knownvalue.StringExact("promote"), "version": knownvalue.StringExact("1.1.0"), "result": knownvalue.StringExact("succeeded"),
							"ticket": knownvalue.StringExact("CHG-42"), "reason": knownvalue.StringExact("weekly agent update"), "hosts": knownvalue.ListSizeExact(3)}),
						knownvalue.ObjectPartial(map[string]knownvalue.Check{"action": knownvalue.StringExact("canary"), "version": knownvalue.StringExact("1.2.0")}),
						knownvalue.ObjectPartial(map[string]knownvalue.Check{"action": knownvalue.StringExact("promote"), "version": knownvalue.StringExact("1.2.0"), "run_id": knownvalue.StringRegexp(regexp.MustCompile(`^run-`))}),
					})),
				},
			},
			{
				// An older signed index put back is a replay: refused before any host changes.
				PreConfig:                func() { restore(&atSeq2) },
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   cfg("1.3.0"),
				ExpectError:              regexp.MustCompile(`(?s)Release\s+Index\s+Refused.*nothing\s+was\s+changed.*sequence`),
			},
			{
				// A hand-edited index fails its signature: refused too.
				PreConfig: func() {
					if err := fleetRuns(f, map[string]string{"*": "1.2.0"}); err != nil {
						t.Fatal(err)
					}
					tampered := []byte(strings.Replace(string(latest), `"active_version": "1.2.0"`, `"active_version": "1.1.9"`, 1))
					if string(tampered) == string(latest) {
						t.Fatal("the index does not hold the expected text; the tamper test proves nothing")
					}
					restore(&tampered)
				},
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   cfg("1.3.0"),
				ExpectError:              regexp.MustCompile(`(?s)Release\s+Index\s+Refused.*nothing\s+was\s+changed`),
			},
			{
				PreConfig: func() {
					if err := fleetRuns(f, map[string]string{"*": "1.2.0"}); err != nil {
						t.Fatal(err)
					}
					restore(&latest)
				},
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Config:                   cfg("1.2.0"),
				PlanOnly:                 true,
			},
		},
	})
}
