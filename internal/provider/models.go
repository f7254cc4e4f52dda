package provider

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/canaryops/terraform-provider-canary/runner"
	"github.com/canaryops/terraform-provider-canary/runner/guard"
)

// Schema version 0 models.

type fleetModel struct {
	ID    types.String `tfsdk:"id"`
	Name  types.String `tfsdk:"name"`
	Hosts types.List   `tfsdk:"hosts"`
}

type hostModel struct {
	Name    types.String `tfsdk:"name"`
	Address types.String `tfsdk:"address"`
	Port    types.Int64  `tfsdk:"port"`
	HostKey types.String `tfsdk:"host_key"`
	Vars    types.Map    `tfsdk:"vars"`
}

type guardModel struct {
	ID               types.String `tfsdk:"id"`
	Name             types.String `tfsdk:"name"`
	Severity         types.String `tfsdk:"severity"`
	Interval         types.String `tfsdk:"interval"`
	Timeout          types.String `tfsdk:"timeout"`
	FailureThreshold types.Int64  `tfsdk:"failure_threshold"`
	SuccessThreshold types.Int64  `tfsdk:"success_threshold"`
	HTTP             types.Object `tfsdk:"http"`
	TCP              types.Object `tfsdk:"tcp"`
	Command          types.Object `tfsdk:"command"`
	Log              types.Object `tfsdk:"log"`
	Sentry           types.Object `tfsdk:"sentry"`
}

type logCheckModel struct {
	File           types.String `tfsdk:"file"`
	JournalUnit    types.String `tfsdk:"journal_unit"`
	FailPattern    types.String `tfsdk:"fail_pattern"`
	MaxMatches     types.Int64  `tfsdk:"max_matches"`
	RequirePattern types.String `tfsdk:"require_pattern"`
	RequireWithin  types.String `tfsdk:"require_within"`
}

type sentryCheckModel struct {
	MaxNewIssues  types.Int64   `tfsdk:"max_new_issues"`
	MaxErrorRatio types.Float64 `tfsdk:"max_error_ratio"`
	MinEvents     types.Int64   `tfsdk:"min_events"`
	Query         types.String  `tfsdk:"query"`
	OnUnavailable types.String  `tfsdk:"on_unavailable"`
}

type httpCheckModel struct {
	URL          types.String `tfsdk:"url"`
	Method       types.String `tfsdk:"method"`
	ExpectStatus types.List   `tfsdk:"expect_status"`
	ExpectBody   types.String `tfsdk:"expect_body"`
	Headers      types.Map    `tfsdk:"headers"`
}

type tcpCheckModel struct {
	Address types.String `tfsdk:"address"`
}

type commandCheckModel struct {
	Command      types.String `tfsdk:"command"`
	ExpectExit   types.Int64  `tfsdk:"expect_exit"`
	ExpectOutput types.String `tfsdk:"expect_output"`
}

type releaseModel struct {
	ID              types.String   `tfsdk:"id"`
	Name            types.String   `tfsdk:"name"`
	Fleet           types.Object   `tfsdk:"fleet"`
	Version         types.String   `tfsdk:"version"`
	Deploy          types.Object   `tfsdk:"deploy"`
	Revert          types.Object   `tfsdk:"revert"`
	VersionCommand  types.String   `tfsdk:"version_command"`
	Guards          types.List     `tfsdk:"guards"`
	Stages          types.List     `tfsdk:"stages"`
	OnFailure       types.String   `tfsdk:"on_failure"`
	OnDestroy       types.String   `tfsdk:"on_destroy"`
	Parallelism     types.Int64    `tfsdk:"parallelism"`
	RolloutPlan     types.List     `tfsdk:"rollout_plan"`
	Hosts           types.List     `tfsdk:"hosts"`
	Status          types.String   `tfsdk:"status"`
	RunID           types.String   `tfsdk:"run_id"`
	DeployedAt      types.String   `tfsdk:"deployed_at"`
	Followups       types.List     `tfsdk:"followups"`
	FollowupResults types.List     `tfsdk:"followup_results"`
	Warnings        types.List     `tfsdk:"warnings"`
	GuardResults    types.List     `tfsdk:"guard_results"`
	Readiness       types.Object   `tfsdk:"readiness"`
	DryRun          types.Bool     `tfsdk:"dry_run"`
	GitRevert       types.Object   `tfsdk:"git_revert"`
	Actor           types.String   `tfsdk:"actor"`
	Reason          types.String   `tfsdk:"reason"`
	Ticket          types.String   `tfsdk:"ticket"`
	LedgerSequence  types.Int64    `tfsdk:"ledger_sequence"`
	ManifestSHA256  types.String   `tfsdk:"manifest_sha256"`
	Timeouts        timeouts.Value `tfsdk:"timeouts"`
}

type gitRevertModel struct {
	Address      types.String `tfsdk:"address"`
	Dir          types.String `tfsdk:"dir"`
	BranchPrefix types.String `tfsdk:"branch_prefix"`
	Push         types.Bool   `tfsdk:"push"`
	Remote       types.String `tfsdk:"remote"`
}

type followupModel struct {
	After     types.String `tfsdk:"after"`
	DueAt     types.String `tfsdk:"due_at"`
	Status    types.String `tfsdk:"status"`
	CheckedAt types.String `tfsdk:"checked_at"`
	Message   types.String `tfsdk:"message"`
}

type warningModel struct {
	Guard    types.String `tfsdk:"guard"`
	Host     types.String `tfsdk:"host"`
	Stage    types.String `tfsdk:"stage"`
	Message  types.String `tfsdk:"message"`
	Evidence types.String `tfsdk:"evidence"`
}

type guardResultModel struct {
	Guard    types.String `tfsdk:"guard"`
	Host     types.String `tfsdk:"host"`
	Stage    types.String `tfsdk:"stage"`
	OK       types.Bool   `tfsdk:"ok"`
	Checks   types.Int64  `tfsdk:"checks"`
	Failures types.Int64  `tfsdk:"failures"`
	Message  types.String `tfsdk:"message"`
	Evidence types.String `tfsdk:"evidence"`
}

var followupType = types.ObjectType{AttrTypes: map[string]attr.Type{
	"after": types.StringType, "due_at": types.StringType, "status": types.StringType, "checked_at": types.StringType, "message": types.StringType,
}}

var warningType = types.ObjectType{AttrTypes: map[string]attr.Type{
	"guard": types.StringType, "host": types.StringType, "stage": types.StringType, "message": types.StringType, "evidence": types.StringType,
}}

var guardResultType = types.ObjectType{AttrTypes: map[string]attr.Type{
	"guard": types.StringType, "host": types.StringType, "stage": types.StringType, "ok": types.BoolType,
	"checks": types.Int64Type, "failures": types.Int64Type, "message": types.StringType, "evidence": types.StringType,
}}

type actionModel struct {
	Command types.String `tfsdk:"command"`
	Timeout types.String `tfsdk:"timeout"`
}

type stageModel struct {
	Name    types.String `tfsdk:"name"`
	Hosts   types.String `tfsdk:"hosts"`
	Observe types.String `tfsdk:"observe"`
}

type plannedStageModel struct {
	Name    types.String `tfsdk:"name"`
	Hosts   types.List   `tfsdk:"hosts"`
	Observe types.String `tfsdk:"observe"`
}

type hostStateModel struct {
	Name            types.String `tfsdk:"name"`
	Address         types.String `tfsdk:"address"`
	Stage           types.String `tfsdk:"stage"`
	Version         types.String `tfsdk:"version"`
	PreviousVersion types.String `tfsdk:"previous_version"`
	Status          types.String `tfsdk:"status"`
}

var plannedStageType = types.ObjectType{AttrTypes: map[string]attr.Type{
	"name": types.StringType, "hosts": types.ListType{ElemType: types.StringType}, "observe": types.StringType,
}}

var hostStateType = types.ObjectType{AttrTypes: map[string]attr.Type{
	"name": types.StringType, "address": types.StringType, "stage": types.StringType,
	"version": types.StringType, "previous_version": types.StringType, "status": types.StringType,
}}

// known reports whether an attribute value is fully known (also inside lists and objects).
func known(v attr.Value) bool {
	if v == nil || v.IsUnknown() {
		return false
	}
	switch t := v.(type) {
	case basetypes.ObjectValue:
		for _, a := range t.Attributes() {
			if !known(a) {
				return false
			}
		}
	case basetypes.ListValue:
		for _, e := range t.Elements() {
			if !known(e) {
				return false
			}
		}
	case basetypes.MapValue:
		for _, e := range t.Elements() {
			if !known(e) {
				return false
			}
		}
	}
	return true
}

// fleetHosts decodes the fleet object into runner hosts.
func fleetHosts(ctx context.Context, obj types.Object) (string, []runner.Host, diag.Diagnostics) {
	var diags diag.Diagnostics
	var f fleetModel
	diags.Append(obj.As(ctx, &f, basetypes.ObjectAsOptions{})...)
	var hs []hostModel
	diags.Append(f.Hosts.ElementsAs(ctx, &hs, false)...)
	if diags.HasError() {
		return "", nil, diags
	}
	hosts := make([]runner.Host, len(hs))
	for i, h := range hs {
		addr := h.Address.ValueString()
		if !h.Port.IsNull() {
			addr = fmt.Sprintf("%s:%d", bracketIPv6(addr), h.Port.ValueInt64())
		}
		vars := map[string]string{}
		diags.Append(h.Vars.ElementsAs(ctx, &vars, false)...)
		hosts[i] = runner.Host{Name: h.Name.ValueString(), Address: addr, HostKey: h.HostKey.ValueString(), Vars: vars}
	}
	return f.Name.ValueString(), hosts, diags
}

func bracketIPv6(a string) string {
	for _, c := range a {
		if c == ':' {
			return "[" + a + "]"
		}
	}
	return a
}

// guardSpec turns a guard object (from canary_guard or written inline) into a runner guard.
func guardSpec(ctx context.Context, g guardModel, src guard.SentrySource) (guard.Guard, diag.Diagnostics) {
	var diags diag.Diagnostics
	out := guard.Guard{
		Name:             g.Name.ValueString(),
		Severity:         guard.Severity(g.Severity.ValueString()),
		FailureThreshold: int(g.FailureThreshold.ValueInt64()),
		SuccessThreshold: int(g.SuccessThreshold.ValueInt64()),
	}
	out.Interval, _ = parseDuration(g.Interval)
	out.Timeout, _ = parseDuration(g.Timeout)
	n := 0
	if !g.HTTP.IsNull() {
		n++
		var h httpCheckModel
		diags.Append(g.HTTP.As(ctx, &h, basetypes.ObjectAsOptions{})...)
		c := &guard.HTTP{URL: h.URL.ValueString(), Method: h.Method.ValueString(), ExpectBody: h.ExpectBody.ValueString()}
		var st []int64
		diags.Append(h.ExpectStatus.ElementsAs(ctx, &st, false)...)
		for _, s := range st {
			c.ExpectStatus = append(c.ExpectStatus, int(s))
		}
		if !h.Headers.IsNull() {
			c.Headers = map[string]string{}
			diags.Append(h.Headers.ElementsAs(ctx, &c.Headers, false)...)
		}
		out.Check = c
	}
	if !g.TCP.IsNull() {
		n++
		var t tcpCheckModel
		diags.Append(g.TCP.As(ctx, &t, basetypes.ObjectAsOptions{})...)
		out.Check = &guard.TCP{Address: t.Address.ValueString()}
	}
	if !g.Command.IsNull() {
		n++
		var c commandCheckModel
		diags.Append(g.Command.As(ctx, &c, basetypes.ObjectAsOptions{})...)
		out.Check = &guard.Command{Command: c.Command.ValueString(), ExpectExit: int(c.ExpectExit.ValueInt64()), ExpectOutput: c.ExpectOutput.ValueString()}
	}
	if !g.Log.IsNull() {
		n++
		var l logCheckModel
		diags.Append(g.Log.As(ctx, &l, basetypes.ObjectAsOptions{})...)
		lg := &guard.Log{File: l.File.ValueString(), JournalUnit: l.JournalUnit.ValueString(), FailPattern: l.FailPattern.ValueString(),
			MaxMatches: int(l.MaxMatches.ValueInt64()), RequirePattern: l.RequirePattern.ValueString()}
		lg.RequireWithin, _ = parseDuration(l.RequireWithin)
		out.Check = lg
	}
	if !g.Sentry.IsNull() {
		n++
		var sm sentryCheckModel
		diags.Append(g.Sentry.As(ctx, &sm, basetypes.ObjectAsOptions{})...)
		out.Check = &guard.Sentry{Source: src, MaxNewIssues: int(sm.MaxNewIssues.ValueInt64()), MaxErrorRatio: sm.MaxErrorRatio.ValueFloat64(),
			MinEvents: int(sm.MinEvents.ValueInt64()), Query: sm.Query.ValueString(), OnUnavailable: sm.OnUnavailable.ValueString(), Now: now}
	}
	if n > 1 {
		diags.AddError("Invalid Guard", fmt.Sprintf("guard %q sets more than one of http, tcp, command, log and sentry; a guard checks one thing, so split it into several guards.", out.Name))
	}
	return out, diags
}

func durationString(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	return d.String()
}

func osMode(m uint64) os.FileMode { return os.FileMode(m) }
