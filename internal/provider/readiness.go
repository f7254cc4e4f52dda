package provider

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/canaryops/terraform-provider-canary/runner"
	"github.com/canaryops/terraform-provider-canary/runner/guard"
)

// readinessModel is what a release declares about its readiness.
type readinessModel struct {
	Environment        types.String `tfsdk:"environment"`
	Owner              types.String `tfsdk:"owner"`
	OnCall             types.String `tfsdk:"on_call"`
	SLO                types.String `tfsdk:"slo"`
	MaxCanaryPercent   types.Int64  `tfsdk:"max_canary_percent"`
	MinObserve         types.String `tfsdk:"min_observe"`
	RequireLogGuard    types.Bool   `tfsdk:"require_log_guard"`
	RequireSentryGuard types.Bool   `tfsdk:"require_sentry_guard"`
}

func readinessAttribute() schema.SingleNestedAttribute {
	return schema.SingleNestedAttribute{
		Optional: true,
		MarkdownDescription: "The readiness gate: formal conditions checked at plan time, before anything changes. Any unmet item fails the plan with one error listing every unmet item. " +
			"The `canary_readiness` data source shows the checklist.",
		Attributes: map[string]schema.Attribute{
			"environment":          schema.StringAttribute{Required: true, MarkdownDescription: "Environment, for example `production`. In `production` a development signing key and unchecked host keys are not ready; elsewhere they are warnings."},
			"owner":                schema.StringAttribute{Optional: true, MarkdownDescription: "Team or person who owns the release. Required for readiness."},
			"on_call":              schema.StringAttribute{Optional: true, MarkdownDescription: "Who is on call during the rollout. Required for readiness."},
			"slo":                  schema.StringAttribute{Optional: true, MarkdownDescription: "The service level objective the guards protect, for example `99.9% of /healthz answers 200`. Required for readiness."},
			"max_canary_percent":   schema.Int64Attribute{Optional: true, MarkdownDescription: "Largest share of the fleet the first stage may expose, in percent. Default 5. A single canary host is always accepted."},
			"min_observe":          schema.StringAttribute{Optional: true, MarkdownDescription: "Shortest observation window of the first stage. Default `5m`.", Validators: []validatorString{durationValidator{}}},
			"require_log_guard":    schema.BoolAttribute{Optional: true, MarkdownDescription: "Require a log guard. Default true."},
			"require_sentry_guard": schema.BoolAttribute{Optional: true, MarkdownDescription: "Require a Sentry guard. Default false."},
		},
	}
}

var readinessType = types.ObjectType{AttrTypes: map[string]attr.Type{
	"environment": types.StringType, "owner": types.StringType, "on_call": types.StringType, "slo": types.StringType,
	"max_canary_percent": types.Int64Type, "min_observe": types.StringType, "require_log_guard": types.BoolType, "require_sentry_guard": types.BoolType,
}}

// readinessItem is one line of the checklist.
type readinessItem struct {
	Name     string
	OK       bool
	Blocking bool // an unmet blocking item makes the release not ready; others are warnings
	Detail   string
}

// readinessEnv is what the checklist needs from the provider.
type readinessEnv struct {
	signed          bool // a signing key is configured (not the development key)
	insecureHostKey bool
}

func (d *providerData) readinessEnv() readinessEnv {
	if d == nil {
		return readinessEnv{}
	}
	return readinessEnv{signed: d.signingKey != nil, insecureHostKey: d.ssh.InsecureIgnoreHostKey}
}

// checklist evaluates readiness for a release spec. It is a pure function of its inputs.
func checklist(r readinessModel, spec runner.Spec, env readinessEnv) []readinessItem {
	prod := strings.EqualFold(r.Environment.ValueString(), "production") || strings.EqualFold(r.Environment.ValueString(), "prod")
	var items []readinessItem
	add := func(name string, ok, blocking bool, okDetail, failDetail string) {
		d := okDetail
		if !ok {
			d = failDetail
		}
		items = append(items, readinessItem{Name: name, OK: ok, Blocking: blocking, Detail: d})
	}
	set := func(v types.String) bool { return strings.TrimSpace(v.ValueString()) != "" }
	add("owner", set(r.Owner), true, "owner: "+r.Owner.ValueString(), "no owner: set readiness.owner to the team that owns the release")
	add("on_call", set(r.OnCall), true, "on call: "+r.OnCall.ValueString(), "no on-call: set readiness.on_call to who answers pages during the rollout")
	add("slo", set(r.SLO), true, "SLO: "+r.SLO.ValueString(), "no SLO: set readiness.slo to the objective the guards protect")
	add("rollback_plan", spec.Revert.Command != "" || len(spec.Deploy.Files) > 0, true,
		"revert.command puts hosts back", "no rollback plan: set revert.command (for example \"install {{.PreviousVersion}}\") or deploy files that are backed up")
	var fatal, logGuard, sentryGuard bool
	for _, g := range spec.Guards {
		if g.Severity == "" || g.Severity == guard.Fatal {
			fatal = true
		}
		switch g.Check.(type) {
		case *guard.Log:
			logGuard = true
		case *guard.Sentry:
			sentryGuard = true
		}
	}
	add("fatal_guard", fatal, true, "at least one fatal guard", "no fatal guard: a rollout nothing can stop is not a canary; add a guard with severity = \"fatal\"")
	if r.RequireLogGuard.IsNull() || r.RequireLogGuard.ValueBool() {
		add("log_guard", logGuard, true, "a log guard watches the logs", "no log guard: add a canary_guard with log = { file = ..., fail_pattern = ... } (or set require_log_guard = false)")
	}
	if r.RequireSentryGuard.ValueBool() {
		add("sentry_guard", sentryGuard, true, "a Sentry guard watches for regressions", "no Sentry guard: add a canary_guard with sentry = { max_new_issues = 0 }")
	}
	maxPct := int64(5)
	if !r.MaxCanaryPercent.IsNull() {
		maxPct = r.MaxCanaryPercent.ValueInt64()
	}
	if plan, err := runner.PlanRollout(spec.Hosts, spec.Stages); err == nil && len(plan.Stages) > 0 {
		first := plan.Stages[0]
		n := len(spec.Hosts)
		pct := 100 * float64(len(first.Hosts)) / float64(n)
		canary := len(plan.Stages) > 1 || n == 1
		ok := canary && (len(first.Hosts) == 1 || pct <= float64(maxPct))
		add("canary_first", ok, true,
			fmt.Sprintf("the first stage %q exposes %d of %d hosts (%.0f%%)", first.Name, len(first.Hosts), n, math.Ceil(pct)),
			fmt.Sprintf("the first stage %q exposes %d of %d hosts (%.1f%%): a canary must come first and expose one host or at most %d%% of the fleet", first.Name, len(first.Hosts), n, pct, maxPct))
		minObs := 5 * time.Minute
		if d, ok := parseDuration(r.MinObserve); ok {
			minObs = d
		}
		add("observe_window", first.Observe >= minObs, true,
			fmt.Sprintf("the canary is observed for %s", first.Observe),
			fmt.Sprintf("the canary is observed for %s, less than readiness.min_observe %s", first.Observe, minObs))
	}
	add("strict_host_keys", !env.insecureHostKey, prod, "host keys are checked", "ssh.insecure_ignore_host_key is set: anyone in the middle could take the rollout over")
	add("signed_ledger", env.signed, prod, "the release index is signed with the configured key",
		"no signing_key: the release index would be signed with a local development key, which production refuses; set the provider's signing_key")
	return items
}

// unmet lists the unmet items, blocking ones first.
func unmet(items []readinessItem) (blocking, warnings []string) {
	for _, it := range items {
		if it.OK {
			continue
		}
		line := fmt.Sprintf("- %s: %s", it.Name, it.Detail)
		if it.Blocking {
			blocking = append(blocking, line)
		} else {
			warnings = append(warnings, line)
		}
	}
	return blocking, warnings
}
