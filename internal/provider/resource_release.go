package provider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/canaryops/terraform-provider-canary/internal/gitaudit"
	"github.com/canaryops/terraform-provider-canary/internal/ledger"
	"github.com/canaryops/terraform-provider-canary/runner"
	"github.com/canaryops/terraform-provider-canary/runner/guard"
)

var (
	_ resource.Resource                   = (*releaseResource)(nil)
	_ resource.ResourceWithConfigure      = (*releaseResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*releaseResource)(nil)
	_ resource.ResourceWithValidateConfig = (*releaseResource)(nil)
)

// NewReleaseResource is canary_release: a version rolled out over a fleet in stages. Create and
// Update run the rollout; Delete rolls it back.
func NewReleaseResource() resource.Resource { return &releaseResource{} }

type releaseResource struct {
	data *providerData
}

// Release statuses kept in state.
const (
	statusSucceeded   = "succeeded"
	statusHalted      = "halted"
	statusInterrupted = "interrupted"
	statusFailed      = "failed"
	statusRegressed   = "regressed"
	statusDryRun      = "dry_run"
)

// settled reports whether a release status needs no further rollout.
func settled(status string) bool {
	return status == statusSucceeded || status == statusRegressed || status == statusDryRun
}

// Default time limits of a rollout and a rollback.
const (
	defaultApplyTimeout  = 60 * time.Minute
	defaultDeleteTimeout = 30 * time.Minute
)

func (r *releaseResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_release"
}

func (r *releaseResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	if req.ProviderData == nil {
		return
	}
	d, ok := req.ProviderData.(*providerData)
	if !ok {
		resp.Diagnostics.AddError("Unexpected Provider Data", fmt.Sprintf("Expected *providerData, got %T. This is a bug in the provider; please report it.", req.ProviderData))
		return
	}
	r.data = d
}

func (r *releaseResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	tmplNote := " Runtime values use Go template syntax: `{{.Version}}`, `{{.PreviousVersion}}`, `{{.Host.Name}}`, `{{.Host.Address}}`, `{{.Host.Vars.name}}`, `{{.RunID}}`; they are shell-quoted for you, so do not put quotes around them."
	resp.Schema = schema.Schema{
		Version:             0,
		MarkdownDescription: "A release rolled out over a fleet, canary first: each stage updates more hosts, then the guards watch every updated host for the stage's `observe` window before the next stage starts. A failing fatal guard reverts every host the rollout changed (`on_failure = \"rollback\"`) or stops (`\"halt\"`). `terraform plan` shows which hosts change in which stage (`rollout_plan`) without touching any host; `terraform destroy` puts every host the last rollout changed back to its previous version.",
		Attributes: map[string]schema.Attribute{
			"id":   schema.StringAttribute{Computed: true, MarkdownDescription: "The release's name."},
			"name": schema.StringAttribute{Optional: true, Computed: true, MarkdownDescription: "Name of the release; it names the marker each host keeps for it (`~/.canary/releases/<name>.json`). Defaults to the fleet's name: set it when several releases (services) share a fleet."},
			"fleet": schema.SingleNestedAttribute{
				Required:            true,
				MarkdownDescription: "The fleet to roll out over: `fleet = canary_fleet.agents`.",
				Attributes:          fleetAttributes(true),
			},
			"version": schema.StringAttribute{Required: true, MarkdownDescription: "The version to roll out. Changing it rolls the new version out, canary first."},
			"deploy": schema.SingleNestedAttribute{
				Required:            true,
				MarkdownDescription: "How a host is updated: files are uploaded (the files they replace are backed up), then the command runs.",
				Attributes: map[string]schema.Attribute{
					"command": schema.StringAttribute{Optional: true, MarkdownDescription: "Shell command that installs `{{.Version}}`, for example `sudo /opt/agent/install {{.Version}}`." + tmplNote},
					"timeout": schema.StringAttribute{Optional: true, MarkdownDescription: "Time limit of the deploy on one host; the command is killed when it passes. Default `10m`.", Validators: []validatorString{durationValidator{}}},
					"files": schema.ListNestedAttribute{
						Optional:            true,
						MarkdownDescription: "Files written atomically before the command; what they replace is backed up and restored on revert.",
						NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
							"destination": schema.StringAttribute{Required: true, MarkdownDescription: "Absolute path on the host, or `~/...`."},
							"content":     schema.StringAttribute{Required: true, MarkdownDescription: "File content."},
							"mode":        schema.StringAttribute{Optional: true, MarkdownDescription: "Octal file mode. Default `0644`."},
						}},
					},
				},
			},
			"revert": schema.SingleNestedAttribute{
				Optional:            true,
				MarkdownDescription: "How a host is put back: uploaded files are restored, then the command runs with `{{.PreviousVersion}}` (empty when nothing was installed before).",
				Attributes: map[string]schema.Attribute{
					"command": schema.StringAttribute{Optional: true, MarkdownDescription: "Shell command that reinstalls `{{.PreviousVersion}}`." + tmplNote},
					"timeout": schema.StringAttribute{Optional: true, MarkdownDescription: "Time limit of the revert on one host. Default: the deploy timeout.", Validators: []validatorString{durationValidator{}}},
				},
			},
			"version_command": schema.StringAttribute{Optional: true, MarkdownDescription: "Command that prints the version a host runs, for example `cat /opt/agent/VERSION`. Hosts already at `version` are not redeployed, and every deploy and revert is verified with it. A command that fails means nothing is installed."},
			"guards": schema.ListNestedAttribute{
				Optional:            true,
				MarkdownDescription: "Guards that watch every updated host: `guards = [canary_guard.health, canary_guard.logs]`. Before the first stage they also run once on the canary hosts, so a fleet that was already unhealthy stops the release without blaming it.",
				NestedObject:        schema.NestedAttributeObject{Attributes: guardAttributes(true)},
			},
			"stages": schema.ListNestedAttribute{
				Required:            true,
				MarkdownDescription: "Canary stages in order. Sizes are cumulative exposure: `\"1\"`, `\"25%\"`, `\"100%\"` mean 1 host, then a quarter of the fleet, then all of it. Percentages round up; each stage must add at least one host and the last must reach `100%`.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"name":    schema.StringAttribute{Required: true, MarkdownDescription: "Name of the stage."},
					"hosts":   schema.StringAttribute{Required: true, MarkdownDescription: "Hosts updated once this stage is done, counting earlier stages: a number (`\"1\"`) or a percentage of the fleet (`\"25%\"`)."},
					"observe": schema.StringAttribute{Optional: true, MarkdownDescription: "How long the guards watch the updated hosts before the next stage. Default `0s`: one round of checks.", Validators: []validatorString{durationValidator{allowZero: true}}},
				}},
			},
			"on_failure": schema.StringAttribute{
				Optional: true, Computed: true, Default: stringdefault.StaticString(string(runner.Rollback)),
				Validators:          []validatorString{oneOfValidator{"rollback", "halt"}},
				MarkdownDescription: "What a failed stage does: `rollback` reverts every host this rollout changed, newest stage first, then the guards confirm recovery; `halt` changes nothing more and the state says which hosts run what. Default `rollback`.",
			},
			"on_destroy": schema.StringAttribute{
				Optional: true, Computed: true, Default: stringdefault.StaticString("revert"),
				Validators:          []validatorString{oneOfValidator{"revert", "keep"}},
				MarkdownDescription: "What `terraform destroy` does: `revert` puts every host the last rollout changed back to its previous version; `keep` forgets the release and leaves the hosts as they are. Default `revert`.",
			},
			"parallelism": schema.Int64Attribute{
				Optional: true, Computed: true, Default: int64default.StaticInt64(runner.DefaultParallelism),
				MarkdownDescription: "Hosts updated at once within a stage, and reverted at once on destroy. Default `10`.",
			},
			"rollout_plan": schema.ListNestedAttribute{
				Computed:            true,
				MarkdownDescription: "The stages resolved against the fleet: which hosts each stage updates. Known at plan time.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"name":    schema.StringAttribute{Computed: true, MarkdownDescription: "Stage name."},
					"hosts":   schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Hosts this stage updates."},
					"observe": schema.StringAttribute{Computed: true, MarkdownDescription: "Observation window."},
				}},
			},
			"hosts": schema.ListNestedAttribute{
				Computed:            true,
				MarkdownDescription: "What each host runs after the last rollout.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"name":             schema.StringAttribute{Computed: true, MarkdownDescription: "Host name."},
					"address":          schema.StringAttribute{Computed: true, MarkdownDescription: "SSH address."},
					"stage":            schema.StringAttribute{Computed: true, MarkdownDescription: "Stage that updates the host."},
					"version":          schema.StringAttribute{Computed: true, MarkdownDescription: "Version the host runs (empty when nothing is installed)."},
					"previous_version": schema.StringAttribute{Computed: true, MarkdownDescription: "Version it ran before this release changed it; destroy puts it back."},
					"status":           schema.StringAttribute{Computed: true, MarkdownDescription: "`deployed`, `unchanged` (already at the version), `pending` (not reached), `failed`, `reverted`, `revert_failed` or `unknown`."},
				}},
			},
			"actor":           schema.StringAttribute{Optional: true, MarkdownDescription: "Who makes the change, recorded in the signed release index. Default: the OS user running Terraform."},
			"reason":          schema.StringAttribute{Optional: true, MarkdownDescription: "Why, recorded in the release index."},
			"ticket":          schema.StringAttribute{Optional: true, MarkdownDescription: "Change ticket, recorded in the release index."},
			"ledger_sequence": schema.Int64Attribute{Computed: true, MarkdownDescription: "Sequence number of the release index after the last change. The provider keeps the highest it has seen and refuses an older signed index put back in its place."},
			"manifest_sha256": schema.StringAttribute{Computed: true, MarkdownDescription: "SHA-256 of this version's manifest (canonical JSON of version, deploy, revert and the uploaded files' hashes), as recorded in the release index."},
			"readiness":       readinessAttribute(),
			"git_revert": schema.SingleNestedAttribute{
				Optional: true,
				MarkdownDescription: "After an automatic rollback, prepare an audited revert in the configuration's git repository: a branch holding a revert of the commit that introduced the failing version, with the evidence and `run_id` in its message, for review. When the culprit is ambiguous (several commits, or the commit also changes other releases) nothing is created and the apply says \"manual triage needed\" with the candidates. " +
					"The operator's working tree and index are never touched.",
				Attributes: map[string]schema.Attribute{
					"address":       schema.StringAttribute{Required: true, MarkdownDescription: "This release's address in the configuration, for example `canary_release.agent`: the block whose version history is searched."},
					"dir":           schema.StringAttribute{Optional: true, MarkdownDescription: "Terraform configuration directory inside the git work tree. Default: the current directory."},
					"branch_prefix": schema.StringAttribute{Optional: true, MarkdownDescription: "Prefix of the branch. Default `canary/revert-`."},
					"push":          schema.BoolAttribute{Optional: true, MarkdownDescription: "Push the branch. Default false."},
					"remote":        schema.StringAttribute{Optional: true, MarkdownDescription: "Remote to push to. Default `origin`."},
				},
			},
			"dry_run": schema.BoolAttribute{
				Optional:            true,
				MarkdownDescription: "Apply as a dry run: connect to every host, check the locks, probe the versions, run the guards and check that a revert would be possible, changing nothing. The state then says `status = \"dry_run\"` and which hosts would be deployed; set it back to false (or remove it) to roll out.",
			},
			"followups": schema.ListAttribute{
				Optional: true, ElementType: types.StringType,
				Validators:          []validator.List{listvalidator.ValueStringsAre(durationValidator{})},
				MarkdownDescription: "Follow-up checks after a successful rollout, as delays since it, for example `[\"1h\", \"4h\", \"12h\"]`. The first refresh (plan, apply, refresh) after one falls due runs every guard once on every host, Sentry since the deploy; a fatal failure sets `status = \"regressed\"` and a warning says how to roll back. `canary-runner followup` runs the same from cron.",
			},
			"followup_results": schema.ListNestedAttribute{
				Computed:            true,
				MarkdownDescription: "The follow-up checks: when each falls due and what it found.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"after":      schema.StringAttribute{Computed: true, MarkdownDescription: "Delay after the rollout."},
					"due_at":     schema.StringAttribute{Computed: true, MarkdownDescription: "When it falls due (RFC 3339)."},
					"status":     schema.StringAttribute{Computed: true, MarkdownDescription: "`pending`, `passed`, `warning` or `failed`."},
					"checked_at": schema.StringAttribute{Computed: true, MarkdownDescription: "When it ran (RFC 3339), empty while pending."},
					"message":    schema.StringAttribute{Computed: true, MarkdownDescription: "What it found."},
				}},
			},
			"warnings": schema.ListNestedAttribute{
				Computed:            true,
				MarkdownDescription: "Warnings of the last rollout: failing `warn` guards and checks that passed with a warning. They never block a rollout and are never dropped; the apply also shows them.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"guard":    schema.StringAttribute{Computed: true, MarkdownDescription: "Guard name."},
					"host":     schema.StringAttribute{Computed: true, MarkdownDescription: "Host."},
					"stage":    schema.StringAttribute{Computed: true, MarkdownDescription: "Stage being observed."},
					"message":  schema.StringAttribute{Computed: true, MarkdownDescription: "What failed."},
					"evidence": schema.StringAttribute{Computed: true, MarkdownDescription: "The evidence (response body, log lines, output)."},
				}},
			},
			"guard_results": schema.ListNestedAttribute{
				Computed:            true,
				MarkdownDescription: "The last verdict of every guard on every host it checked in the last rollout.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"guard":    schema.StringAttribute{Computed: true, MarkdownDescription: "Guard name."},
					"host":     schema.StringAttribute{Computed: true, MarkdownDescription: "Host."},
					"stage":    schema.StringAttribute{Computed: true, MarkdownDescription: "Stage of the last check."},
					"ok":       schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether the last check passed."},
					"checks":   schema.Int64Attribute{Computed: true, MarkdownDescription: "Checks run in that stage."},
					"failures": schema.Int64Attribute{Computed: true, MarkdownDescription: "Checks that failed in that stage."},
					"message":  schema.StringAttribute{Computed: true, MarkdownDescription: "The last check's result."},
					"evidence": schema.StringAttribute{Computed: true, MarkdownDescription: "The last check's evidence."},
				}},
			},
			"status":      schema.StringAttribute{Computed: true, MarkdownDescription: "`succeeded`; `regressed` when a follow-up check failed; or after a failed apply `halted`, `interrupted` or `failed`, which make the next plan propose finishing the rollout."},
			"run_id":      schema.StringAttribute{Computed: true, MarkdownDescription: "Identifier of the last rollout, in logs, host markers and the ledger."},
			"deployed_at": schema.StringAttribute{Computed: true, MarkdownDescription: "When the last rollout finished (RFC 3339)."},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
		},
	}
}

type deployModel struct {
	Command types.String `tfsdk:"command"`
	Timeout types.String `tfsdk:"timeout"`
	Files   types.List   `tfsdk:"files"`
}

type fileModel struct {
	Destination types.String `tfsdk:"destination"`
	Content     types.String `tfsdk:"content"`
	Mode        types.String `tfsdk:"mode"`
}

func (r *releaseResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var guards types.List
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("guards"), &guards)...)
	if known(guards) && !guards.IsNull() {
		var gs []guardModel
		resp.Diagnostics.Append(guards.ElementsAs(ctx, &gs, false)...)
		for i, g := range gs {
			validateGuard(ctx, g, path.Root("guards").AtListIndex(i), &resp.Diagnostics)
		}
	}
	var fleet types.Object
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("fleet"), &fleet)...)
	if known(fleet) && !fleet.IsNull() {
		var f fleetModel
		resp.Diagnostics.Append(fleet.As(ctx, &f, basetypes.ObjectAsOptions{})...)
		var hs []hostModel
		resp.Diagnostics.Append(f.Hosts.ElementsAs(ctx, &hs, false)...)
		validateHostList(hs, path.Root("fleet").AtName("hosts"), &resp.Diagnostics)
	}
}

// releaseField maps a runner configuration field to the release attribute it comes from.
func releaseField(field string) path.Path {
	switch {
	case field == "release":
		return path.Root("name")
	case strings.HasPrefix(field, "hosts"):
		return configPath(path.Root("fleet"), field)
	}
	return configPath(path.Empty(), field)
}

// spec builds the runner spec from a fully known model.
func (m releaseModel) spec(ctx context.Context, src guard.SentrySource) (runner.Spec, diag.Diagnostics) {
	var diags diag.Diagnostics
	fleetName, hosts, d := fleetHosts(ctx, m.Fleet)
	diags.Append(d...)
	s := runner.Spec{
		Release: m.Name.ValueString(), Fleet: fleetName, Version: m.Version.ValueString(), Hosts: hosts,
		VersionCommand: m.VersionCommand.ValueString(), OnFailure: runner.OnFailure(m.OnFailure.ValueString()),
		Parallelism: int(m.Parallelism.ValueInt64()),
	}
	if s.Release == "" {
		s.Release = fleetName
	}
	var stages []stageModel
	diags.Append(m.Stages.ElementsAs(ctx, &stages, false)...)
	for _, st := range stages {
		obs, _ := parseDuration(st.Observe)
		s.Stages = append(s.Stages, runner.Stage{Name: st.Name.ValueString(), Hosts: st.Hosts.ValueString(), Observe: obs})
	}
	var dep deployModel
	diags.Append(m.Deploy.As(ctx, &dep, basetypes.ObjectAsOptions{})...)
	s.Deploy.Command = dep.Command.ValueString()
	s.Deploy.Timeout, _ = parseDuration(dep.Timeout)
	if !dep.Files.IsNull() {
		var files []fileModel
		diags.Append(dep.Files.ElementsAs(ctx, &files, false)...)
		for i, f := range files {
			mode := uint64(0o644)
			if ms := f.Mode.ValueString(); ms != "" {
				if _, err := fmt.Sscanf(ms, "%o", &mode); err != nil || mode > 0o7777 {
					diags.AddAttributeError(path.Root("deploy").AtName("files").AtListIndex(i).AtName("mode"), "Invalid File Mode",
						fmt.Sprintf("mode %q is not an octal file mode; write it like \"0644\" or \"0755\".", ms))
				}
			}
			s.Deploy.Files = append(s.Deploy.Files, runner.File{Destination: f.Destination.ValueString(), Content: []byte(f.Content.ValueString()), Mode: osMode(mode)})
		}
	}
	if !m.Revert.IsNull() {
		var rev actionModel
		diags.Append(m.Revert.As(ctx, &rev, basetypes.ObjectAsOptions{})...)
		s.Revert.Command = rev.Command.ValueString()
		s.Revert.Timeout, _ = parseDuration(rev.Timeout)
	}
	if !m.Guards.IsNull() {
		var gs []guardModel
		diags.Append(m.Guards.ElementsAs(ctx, &gs, false)...)
		for _, g := range gs {
			spec, d := guardSpec(ctx, g, src)
			diags.Append(d...)
			s.Guards = append(s.Guards, spec)
		}
	}
	return s, diags
}

func (r *releaseResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		r.warnDestroy(ctx, req, resp)
		return
	}
	var plan releaseModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var prior *releaseModel
	if !req.State.Raw.IsNull() {
		prior = &releaseModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, prior)...)
	}
	if (plan.Name.IsNull() || plan.Name.IsUnknown()) && known(plan.Fleet) {
		var f fleetModel
		resp.Diagnostics.Append(plan.Fleet.As(ctx, &f, basetypes.ObjectAsOptions{})...)
		plan.Name = f.Name
	}
	plan.ID = plan.Name
	if !known(plan.Fleet) || !known(plan.Stages) || !known(plan.Version) || !known(plan.Deploy) || !known(plan.Guards) || !known(plan.Revert) || !known(plan.VersionCommand) {
		// Values from resources not yet created: the plan is known after apply.
		plan.RolloutPlan = types.ListUnknown(plannedStageType)
		plan.Hosts = types.ListUnknown(hostStateType)
		plan.Status, plan.RunID, plan.DeployedAt = types.StringUnknown(), types.StringUnknown(), types.StringUnknown()
		plan.FollowupResults, plan.Warnings, plan.GuardResults = types.ListUnknown(followupType), types.ListUnknown(warningType), types.ListUnknown(guardResultType)
		plan.LedgerSequence, plan.ManifestSHA256 = types.Int64Unknown(), types.StringUnknown()
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		return
	}
	spec, d := plan.spec(ctx, r.data.sentrySource())
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	if err := spec.Validate(); err != nil {
		addConfigErrors(&resp.Diagnostics, err, releaseField)
		return
	}
	for i, g := range spec.Guards {
		if _, ok := g.Check.(*guard.Sentry); ok && (r.data == nil || r.data.sentry == nil) {
			resp.Diagnostics.AddAttributeError(path.Root("guards").AtListIndex(i), "Sentry Not Configured",
				fmt.Sprintf("Guard %q checks Sentry, but the provider has no sentry settings. Set sentry = { api_url, auth_token, org, project } in the provider block, or remove the guard.", g.Name))
		}
	}
	if resp.Diagnostics.HasError() {
		return
	}
	if !plan.Readiness.IsNull() {
		var rm readinessModel
		resp.Diagnostics.Append(plan.Readiness.As(ctx, &rm, basetypes.ObjectAsOptions{})...)
		blocking, warnings := unmet(checklist(rm, spec, r.data.readinessEnv()))
		if len(blocking) > 0 {
			resp.Diagnostics.AddAttributeError(path.Root("readiness"), "Release Not Ready",
				fmt.Sprintf("%s %s is not ready for %s; every unmet item:\n%s\n\nMeet them, or change the readiness block if the gate is wrong. Nothing was changed.",
					plan.Name.ValueString(), spec.Version, rm.Environment.ValueString(), strings.Join(append(blocking, warnings...), "\n")))
			return
		}
		if len(warnings) > 0 {
			resp.Diagnostics.AddAttributeWarning(path.Root("readiness"), "Readiness Warnings",
				fmt.Sprintf("Not blocking outside production, but would be in production:\n%s", strings.Join(warnings, "\n")))
		}
	}
	rp, err := runner.PlanRollout(spec.Hosts, spec.Stages)
	if err != nil {
		addConfigErrors(&resp.Diagnostics, err, releaseField)
		return
	}
	plan.RolloutPlan, d = rolloutPlanValue(ctx, rp)
	resp.Diagnostics.Append(d...)

	if prior != nil && settled(prior.Status.ValueString()) && !rolloutChanges(plan, *prior) {
		// Nothing to roll out (on_destroy, followups, timeouts and the like may still change).
		plan.Hosts, plan.Status, plan.RunID, plan.DeployedAt = prior.Hosts, prior.Status, prior.RunID, prior.DeployedAt
		plan.Warnings, plan.GuardResults = prior.Warnings, prior.GuardResults
		plan.LedgerSequence, plan.ManifestSHA256 = prior.LedgerSequence, prior.ManifestSHA256
		plan.FollowupResults, d = followupResults(ctx, plan.Followups, prior.DeployedAt, prior.FollowupResults)
		resp.Diagnostics.Append(d...)
	} else {
		hosts := make([]hostStateModel, 0, len(spec.Hosts))
		target := types.StringValue(spec.Version)
		if plan.DryRun.ValueBool() {
			target = types.StringUnknown() // a dry run leaves every host at what it runs
		}
		for _, h := range spec.Hosts {
			hosts = append(hosts, hostStateModel{
				Name: types.StringValue(h.Name), Address: types.StringValue(h.Address), Stage: types.StringValue(rp.StageOf(h.Name)),
				Version: target, PreviousVersion: types.StringUnknown(), Status: types.StringUnknown(),
			})
		}
		plan.Hosts, d = types.ListValueFrom(ctx, hostStateType, hosts)
		resp.Diagnostics.Append(d...)
		plan.Status, plan.RunID, plan.DeployedAt = types.StringUnknown(), types.StringUnknown(), types.StringUnknown()
		plan.FollowupResults, plan.Warnings, plan.GuardResults = types.ListUnknown(followupType), types.ListUnknown(warningType), types.ListUnknown(guardResultType)
		plan.LedgerSequence = types.Int64Unknown()
		if sum, err := ledger.ManifestSHA256(manifestOf(spec)); err == nil {
			plan.ManifestSHA256 = types.StringValue(sum)
		}
		if prior != nil && !settled(prior.Status.ValueString()) && !prior.Status.IsNull() {
			resp.Diagnostics.AddWarning("Unfinished Rollout Will Be Resumed",
				fmt.Sprintf("The last rollout of %s ended %s. Applying resumes it: hosts already at %s are not redeployed.", plan.Name.ValueString(), prior.Status.ValueString(), spec.Version))
		}
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

// rolloutChanges reports whether applying plan over prior rolls anything out.
func rolloutChanges(plan, prior releaseModel) bool {
	for _, p := range [][2]attr.Value{
		{plan.Name, prior.Name}, {plan.Fleet, prior.Fleet}, {plan.Version, prior.Version}, {plan.Deploy, prior.Deploy},
		{plan.Revert, prior.Revert}, {plan.VersionCommand, prior.VersionCommand}, {plan.Guards, prior.Guards},
		{plan.Stages, prior.Stages}, {plan.OnFailure, prior.OnFailure}, {plan.Parallelism, prior.Parallelism},
		{types.BoolValue(plan.DryRun.ValueBool()), types.BoolValue(prior.DryRun.ValueBool())},
	} {
		if !p[0].Equal(p[1]) {
			return true
		}
	}
	return false
}

func rolloutPlanValue(ctx context.Context, rp runner.Plan) (types.List, diag.Diagnostics) {
	var diags diag.Diagnostics
	out := make([]plannedStageModel, 0, len(rp.Stages))
	for _, st := range rp.Stages {
		hs, d := types.ListValueFrom(ctx, types.StringType, st.Hosts)
		diags.Append(d...)
		out = append(out, plannedStageModel{Name: types.StringValue(st.Name), Hosts: hs, Observe: types.StringValue(durationString(st.Observe))})
	}
	l, d := types.ListValueFrom(ctx, plannedStageType, out)
	diags.Append(d...)
	return l, diags
}

// warnDestroy says, in the destroy plan, which hosts will be rolled back to what.
func (r *releaseResource) warnDestroy(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	var st releaseModel
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	targets, d := revertTargets(ctx, st)
	resp.Diagnostics.Append(d...)
	if st.OnDestroy.ValueString() == "keep" {
		resp.Diagnostics.AddWarning("Release Will Be Forgotten, Hosts Kept",
			fmt.Sprintf("on_destroy = \"keep\": destroying %s removes it from the state and leaves every host running what it runs now.", st.Name.ValueString()))
		return
	}
	if len(targets) == 0 {
		return
	}
	lines := make([]string, 0, len(targets))
	for i, t := range targets {
		if i == 20 {
			lines = append(lines, fmt.Sprintf("... and %d more hosts", len(targets)-20))
			break
		}
		lines = append(lines, fmt.Sprintf("%s: %s -> %s", t.Host, t.From, versionOrNothing(t.To)))
	}
	resp.Diagnostics.AddWarning("Destroy Rolls Hosts Back",
		fmt.Sprintf("Destroying %s reverts %d hosts to the version they ran before its last rollout:\n%s\n\nSet on_destroy = \"keep\" and apply first to forget the release without touching the hosts.",
			st.Name.ValueString(), len(targets), strings.Join(lines, "\n")))
}

func versionOrNothing(v string) string {
	if v == "" {
		return "(nothing installed)"
	}
	return v
}

// revertTargets lists the hosts the last rollout changed, from the state.
func revertTargets(ctx context.Context, st releaseModel) ([]runner.RevertTarget, diag.Diagnostics) {
	var hosts []hostStateModel
	diags := st.Hosts.ElementsAs(ctx, &hosts, false)
	var out []runner.RevertTarget
	for _, h := range hosts {
		v, prev := h.Version.ValueString(), h.PreviousVersion.ValueString()
		switch h.Status.ValueString() {
		case string(runner.HostPending), string(runner.HostReverted):
			continue
		}
		if v == prev || (v == "" && h.Status.ValueString() != string(runner.HostUnknown)) {
			continue
		}
		out = append(out, runner.RevertTarget{Host: h.Name.ValueString(), To: prev, From: v})
	}
	return out, diags
}

func (r *releaseResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan releaseModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := plan.Timeouts.Create(ctx, defaultApplyTimeout)
	resp.Diagnostics.Append(d...)
	st, ok, seq := r.rollout(ctx, plan, nil, 0, timeout, &resp.Diagnostics)
	resp.Diagnostics.Append(setLedgerSeq(ctx, resp.Private, seq)...)
	if ok {
		resp.Diagnostics.Append(resp.State.Set(ctx, st)...)
	}
}

func (r *releaseResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan releaseModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if !plan.Status.IsUnknown() {
		// Nothing to roll out: only settings such as on_destroy or timeouts changed.
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
		return
	}
	timeout, d := plan.Timeouts.Update(ctx, defaultApplyTimeout)
	resp.Diagnostics.Append(d...)
	// On a rollout that left the fleet as it was, the prior state (already in resp.State) stands,
	// so the next plan proposes the same change.
	var prior releaseModel
	resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
	minSeq := ledgerSeq(ctx, req.Private)
	st, ok, seq := r.rollout(ctx, plan, &prior, minSeq, timeout, &resp.Diagnostics)
	resp.Diagnostics.Append(setLedgerSeq(ctx, resp.Private, max(seq, minSeq))...)
	if ok {
		resp.Diagnostics.Append(resp.State.Set(ctx, st)...)
	}
}

// rollout runs the release and returns the state to save, or false when the state must not
// change (the fleet is as it was before the apply).
func (r *releaseResource) rollout(ctx context.Context, plan releaseModel, prior *releaseModel, minSeq uint64, timeout time.Duration, diags *diag.Diagnostics) (*releaseModel, bool, uint64) {
	create := prior == nil
	var seq uint64
	if r.data == nil {
		diags.AddError("Provider Not Configured", "The canary provider was not configured; this is a bug in the provider.")
		return nil, false, seq
	}
	spec, d := plan.spec(ctx, r.data.sentrySource())
	diags.Append(d...)
	if diags.HasError() {
		return nil, false, seq
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := r.data.verifyLedger(spec, minSeq); err != nil {
		ledgerError(diags, "Before the rollout", err)
		return nil, false, seq
	}
	if plan.DryRun.ValueBool() {
		return r.dryRun(ctx, plan, spec, minSeq, diags)
	}
	spec.RunID = runner.NewRunID(now())
	who := plan.audit()
	seq, lerr := r.data.record(spec, minSeq, who, ledger.Event{Action: ledger.ActionCanary, RunID: spec.RunID, Result: "started"}, true, nil)
	if lerr != nil {
		ledgerError(diags, "Recording the start of the rollout", lerr)
		return nil, false, seq
	}
	rep := r.data.reporter(ctx, spec.Version, diags)
	if r.data.sentry != nil {
		if err := r.data.sentry.CreateRelease(ctx, spec.Version); err != nil {
			diags.AddWarning("Sentry Release Not Recorded", fmt.Sprintf("The release %s could not be created in Sentry, so its deploy marker will be missing; the rollout goes on.\n\nOriginal Error: %s", spec.Version, err))
		}
	}
	res, err := r.data.newRunner(ctx, rep.event).Execute(ctx, spec)
	rep.flush()
	if res == nil {
		addConfigErrors(diags, err, releaseField)
		return nil, false, seq
	}
	seq = r.recordOutcome(spec, res, prior, seq, who, diags)
	st := plan
	st.LedgerSequence = types.Int64Value(int64(seq))
	if res.Status == runner.StatusSucceeded && r.data.sentry != nil {
		if err := r.data.sentry.CreateDeploy(ctx, spec.Version, res.RunID, res.StartedAt, res.FinishedAt); err != nil {
			diags.AddWarning("Sentry Deploy Marker Not Recorded", fmt.Sprintf("The rollout succeeded, but Sentry did not record its deploy: Sentry guards and follow-ups compare against the deploy time the provider keeps, so they still work.\n\nOriginal Error: %s", err))
		}
	}
	st.RunID = types.StringValue(res.RunID)
	st.DeployedAt = types.StringValue(res.FinishedAt.UTC().Format(time.RFC3339))
	hosts := make([]hostStateModel, 0, len(res.Hosts))
	addr := map[string]string{}
	for _, h := range spec.Hosts {
		addr[h.Name] = h.Address
	}
	// A host this rollout did not reach was last changed by an earlier one: keep where that one
	// took it from, so a destroy still puts it back.
	earlier := map[string]hostStateModel{}
	if prior != nil && !prior.Hosts.IsNull() && !prior.Hosts.IsUnknown() {
		var ph []hostStateModel
		diags.Append(prior.Hosts.ElementsAs(ctx, &ph, false)...)
		for _, h := range ph {
			earlier[h.Name.ValueString()] = h
		}
	}
	for i, h := range res.Hosts {
		if e, ok := earlier[h.Name]; ok && h.Status == runner.HostPending && e.Version.ValueString() == h.Version {
			res.Hosts[i].PreviousVersion = e.PreviousVersion.ValueString()
			h = res.Hosts[i]
		}
		hosts = append(hosts, hostStateModel{
			Name: types.StringValue(h.Name), Address: types.StringValue(addr[h.Name]), Stage: types.StringValue(h.Stage),
			Version: types.StringValue(h.Version), PreviousVersion: types.StringValue(h.PreviousVersion), Status: types.StringValue(string(h.Status)),
		})
	}
	st.Hosts, d = types.ListValueFrom(ctx, hostStateType, hosts)
	diags.Append(d...)
	if res.Status != runner.StatusAborted && res.Status != runner.StatusRolledBack {
		r.saveRecord(spec, res, plan.Followups, diags)
	}
	st.Warnings, st.GuardResults, d = guardReports(ctx, res)
	diags.Append(d...)
	st.FollowupResults, d = followupResults(ctx, st.Followups, st.DeployedAt, types.ListNull(followupType))
	diags.Append(d...)
	warnDiagnostic(res, diags)
	if err == nil {
		st.Status = types.StringValue(statusSucceeded)
		return &st, true, seq
	}
	var re *runner.RolloutError
	if !errors.As(err, &re) {
		diags.AddError("Rollout Failed", err.Error())
		return nil, false, seq
	}
	switch res.Status {
	case runner.StatusAborted:
		diags.AddError("Rollout Stopped Before Any Change",
			"No host was changed. Fix the cause below and apply again.\n\nOriginal Error: "+err.Error())
		return nil, false, seq
	case runner.StatusRolledBack:
		next := "The state is unchanged, so the next plan proposes the same change; fix the release, then apply again."
		if create {
			next = "The release was not created; fix it and apply again."
		}
		diags.AddError("Rollout Failed And Was Rolled Back",
			"Every host this rollout changed was reverted and the guards confirmed recovery. "+next+r.auditRevert(ctx, plan, spec, res, prior)+"\n\nOriginal Error: "+err.Error())
		return nil, false, seq
	case runner.StatusHalted:
		st.Status = types.StringValue(statusHalted)
		diags.AddError("Rollout Halted",
			"A stage failed and on_failure = \"halt\" stopped the rollout; no further host was changed. The state records exactly which hosts run which version (status \"halted\"). Fix the cause and apply to finish the rollout, or destroy to revert the changed hosts."+taintNote(create)+"\n\nOriginal Error: "+err.Error())
	case runner.StatusInterrupted:
		st.Status = types.StringValue(statusInterrupted)
		diags.AddError("Rollout Interrupted",
			"The rollout was interrupted (cancelled or timed out): nothing new was started and running commands were ended. The state records exactly which hosts run which version (status \"interrupted\"); apply again to resume, or destroy to revert the changed hosts."+taintNote(create)+"\n\nOriginal Error: "+err.Error())
	default:
		st.Status = types.StringValue(statusFailed)
		diags.AddError("Rollback Incomplete",
			"The rollout failed and not every changed host could be reverted. The state records each host's status; hosts marked revert_failed need an operator. Apply again to retry, or destroy to revert what the state lists."+taintNote(create)+"\n\nOriginal Error: "+err.Error())
	}
	return &st, true, seq
}

// dryRun applies the release as a dry run: the state records what each host runs and would get.
func (r *releaseResource) dryRun(ctx context.Context, plan releaseModel, spec runner.Spec, minSeq uint64, diags *diag.Diagnostics) (*releaseModel, bool, uint64) {
	res, err := r.data.newRunner(ctx, nil).DryRun(ctx, spec)
	if res == nil {
		addConfigErrors(diags, err, releaseField)
		return nil, false, 0
	}
	result := "passed"
	if err != nil {
		result = "failed"
	}
	seq, lerr := r.data.record(spec, minSeq, plan.audit(), ledger.Event{Action: ledger.ActionDryRun, RunID: res.RunID, Result: result}, false, nil)
	if lerr != nil {
		ledgerError(diags, "Recording the dry run", lerr)
	}
	if err != nil {
		diags.AddError("Dry Run Found Problems", "The dry run changed nothing. Fix what it found, then apply again.\n\nOriginal Error: "+err.Error())
		return nil, false, seq
	}
	st := plan
	st.LedgerSequence = types.Int64Value(int64(seq))
	st.Status, st.RunID = types.StringValue(statusDryRun), types.StringValue(res.RunID)
	st.DeployedAt = types.StringValue("")
	hosts := make([]hostStateModel, 0, len(res.Hosts))
	would := 0
	for i, h := range res.Hosts {
		if h.Status == runner.HostPending {
			would++
		}
		hosts = append(hosts, hostStateModel{Name: types.StringValue(h.Name), Address: types.StringValue(spec.Hosts[i].Address), Stage: types.StringValue(h.Stage),
			Version: types.StringValue(h.Version), PreviousVersion: types.StringValue(h.PreviousVersion), Status: types.StringValue(string(h.Status))})
	}
	var d diag.Diagnostics
	st.Hosts, d = types.ListValueFrom(ctx, hostStateType, hosts)
	diags.Append(d...)
	st.Warnings, st.GuardResults, d = guardReports(ctx, res)
	diags.Append(d...)
	st.FollowupResults = types.ListValueMust(followupType, nil)
	diags.AddWarning("Dry Run: Nothing Was Changed",
		fmt.Sprintf("%d of %d hosts would be deployed with %s (status pending in hosts); locks, versions, guards and the way back are in order. Set dry_run = false to roll out.", would, len(res.Hosts), spec.Version))
	return &st, true, seq
}

// recordOutcome records how the rollout ended in the release index.
func (r *releaseResource) recordOutcome(spec runner.Spec, res *runner.Result, prior *releaseModel, seq uint64, who audit, diags *diag.Diagnostics) uint64 {
	e := ledger.Event{RunID: res.RunID, Hosts: changedHosts(res)}
	if f := res.Failure; f != nil {
		e.Stage = f.Stage
	}
	previous := ""
	if prior != nil {
		previous = prior.Version.ValueString()
	}
	var apply func(*ledger.Index)
	switch res.Status {
	case runner.StatusSucceeded:
		e.Action, e.Result = ledger.ActionPromote, ledger.ResultSucceeded
		apply = func(i *ledger.Index) { i.ActiveVersion, i.Channel = spec.Version, ledger.ChannelStable }
	case runner.StatusRolledBack:
		e.Action, e.Result = ledger.ActionRollback, ledger.ResultRolledBack
		apply = func(i *ledger.Index) { i.ActiveVersion, i.Channel = previous, ledger.ChannelRolledBack }
	case runner.StatusHalted:
		e.Action, e.Result = ledger.ActionHalt, ledger.ResultHalted
		apply = func(i *ledger.Index) { i.Channel = ledger.ChannelCanary }
	case runner.StatusInterrupted:
		e.Action, e.Result = ledger.ActionInterrupt, ledger.ResultInterrupted
		apply = func(i *ledger.Index) { i.Channel = ledger.ChannelCanary }
	case runner.StatusAborted:
		e.Action, e.Result = ledger.ActionCanary, "aborted"
	default:
		e.Action, e.Result = ledger.ActionRollback, ledger.ResultFailed
		apply = func(i *ledger.Index) { i.Channel = ledger.ChannelCanary }
	}
	n, err := r.data.record(spec, seq, who, e, false, apply)
	if err != nil {
		diags.AddWarning("Release Index Not Updated", fmt.Sprintf("The rollout ended (%s) but its outcome could not be recorded in the release index.\n\nOriginal Error: %s", res.Status, err))
		return seq
	}
	return n
}

// guardReports turns the runner's guard verdicts into state.
func guardReports(ctx context.Context, res *runner.Result) (types.List, types.List, diag.Diagnostics) {
	var diags diag.Diagnostics
	ws := make([]warningModel, 0, len(res.Warnings))
	for _, w := range res.Warnings {
		ws = append(ws, warningModel{Guard: types.StringValue(w.Guard), Host: types.StringValue(w.Host), Stage: types.StringValue(w.Stage),
			Message: types.StringValue(w.Message), Evidence: types.StringValue(w.Evidence)})
	}
	gs := make([]guardResultModel, 0, len(res.Guards))
	for _, g := range res.Guards {
		gs = append(gs, guardResultModel{Guard: types.StringValue(g.Guard), Host: types.StringValue(g.Host), Stage: types.StringValue(g.Stage),
			OK: types.BoolValue(g.OK), Checks: types.Int64Value(int64(g.Checks)), Failures: types.Int64Value(int64(g.Failures)),
			Message: types.StringValue(g.Message), Evidence: types.StringValue(g.Evidence)})
	}
	wl, d := types.ListValueFrom(ctx, warningType, ws)
	diags.Append(d...)
	gl, d := types.ListValueFrom(ctx, guardResultType, gs)
	diags.Append(d...)
	return wl, gl, diags
}

// warnDiagnostic shows the rollout's warnings at the end of the apply.
func warnDiagnostic(res *runner.Result, diags *diag.Diagnostics) {
	if len(res.Warnings) == 0 {
		return
	}
	lines := make([]string, 0, len(res.Warnings))
	for i, w := range res.Warnings {
		if i == 20 {
			lines = append(lines, fmt.Sprintf("... and %d more (see the release's warnings attribute)", len(res.Warnings)-20))
			break
		}
		line := fmt.Sprintf("- guard %q on %s (stage %s): %s", w.Guard, w.Host, w.Stage, w.Message)
		if w.Evidence != "" && w.Evidence != w.Message {
			line += "\n  evidence: " + strings.ReplaceAll(guard.Bound(w.Evidence, 500), "\n", "\n  ")
		}
		lines = append(lines, line)
	}
	diags.AddWarning("Guard Warnings",
		fmt.Sprintf("The rollout went on, but %d checks reported a degraded service (warn guards do not stop a rollout). They are kept in the release's warnings attribute:\n%s",
			len(res.Warnings), strings.Join(lines, "\n")))
}

// followupResults lays out the follow-up checks for a rollout that finished at deployedAt,
// keeping what earlier results say for the same delays.
func followupResults(ctx context.Context, followups types.List, deployedAt types.String, prior types.List) (types.List, diag.Diagnostics) {
	var diags diag.Diagnostics
	var afters []string
	if !followups.IsNull() && !followups.IsUnknown() {
		diags.Append(followups.ElementsAs(ctx, &afters, false)...)
	}
	var old []followupModel
	if !prior.IsNull() && !prior.IsUnknown() {
		diags.Append(prior.ElementsAs(ctx, &old, false)...)
	}
	at, err := time.Parse(time.RFC3339, deployedAt.ValueString())
	if err != nil {
		return types.ListValueMust(followupType, nil), diags
	}
	out := make([]followupModel, 0, len(afters))
	for _, a := range afters {
		kept := false
		for _, o := range old {
			if o.After.ValueString() == a {
				out, kept = append(out, o), true
				break
			}
		}
		if kept {
			continue
		}
		d, _ := time.ParseDuration(a)
		out = append(out, followupModel{After: types.StringValue(a), DueAt: types.StringValue(at.Add(d).UTC().Format(time.RFC3339)),
			Status: types.StringValue("pending"), CheckedAt: types.StringValue(""), Message: types.StringValue("")})
	}
	l, d := types.ListValueFrom(ctx, followupType, out)
	diags.Append(d...)
	return l, diags
}

// auditRevert prepares the reviewed git revert of the failing version when git_revert is set,
// and says what it did.
func (r *releaseResource) auditRevert(ctx context.Context, plan releaseModel, spec runner.Spec, res *runner.Result, prior *releaseModel) string {
	if plan.GitRevert.IsNull() || plan.GitRevert.IsUnknown() {
		return ""
	}
	var g gitRevertModel
	if d := plan.GitRevert.As(ctx, &g, basetypes.ObjectAsOptions{}); d.HasError() {
		return ""
	}
	dir := g.Dir.ValueString()
	if dir == "" {
		dir, _ = os.Getwd()
	}
	req := gitaudit.Request{Dir: dir, Resource: g.Address.ValueString(), FailedVersion: spec.Version, RunID: res.RunID,
		BranchPrefix: g.BranchPrefix.ValueString(), Push: g.Push.ValueBool(), Remote: g.Remote.ValueString()}
	if prior != nil {
		req.Previous = prior.Version.ValueString()
	}
	if f := res.Failure; f != nil {
		req.Stage, req.Host, req.Guard, req.Evidence = f.Stage, f.Host, f.Guard, strings.TrimSpace(f.Message+"\n"+f.Evidence)
	}
	out, err := gitaudit.Revert(ctx, req)
	switch {
	case out != nil && out.ManualTriage:
		return "\n\nGit: " + out.Reason
	case err != nil && out != nil && out.Branch != "":
		return fmt.Sprintf("\n\nGit: an audited revert is on branch %s (commit %s, reverting %s), but: %v", out.Branch, shortSHA(out.Commit), shortSHA(out.Reverted), err)
	case err != nil:
		return "\n\nGit: no audited revert was prepared: " + err.Error()
	}
	pushed := "; it was not pushed (git_revert.push = false)"
	if out.Pushed {
		pushed = "; it was pushed"
	}
	return fmt.Sprintf("\n\nGit: an audited revert of commit %s, which introduced %s, is on branch %s (commit %s)%s. Review and merge it so the configuration matches the fleet.",
		shortSHA(out.Reverted), spec.Version, out.Branch, shortSHA(out.Commit), pushed)
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// saveRecord leaves the release as applied in ledger_dir for canary-runner. File contents are
// left out: they may hold secrets.
func (r *releaseResource) saveRecord(spec runner.Spec, res *runner.Result, followups types.List, diags *diag.Diagnostics) {
	rec := runner.Record{Spec: spec, RunID: res.RunID, DeployedAt: res.FinishedAt, Hosts: res.Hosts}
	rec.Spec.Deploy.Files = nil
	for _, e := range followups.Elements() {
		if s, ok := e.(types.String); ok {
			rec.Followups = append(rec.Followups, s.ValueString())
		}
	}
	if err := runner.SaveRecord(r.data.ledgerDir, rec); err != nil {
		diags.AddWarning("Release Record Not Written",
			fmt.Sprintf("The rollout finished, but its record could not be written to ledger_dir %q, so canary-runner cannot check it. Make the directory writable.\n\nOriginal Error: %s", r.data.ledgerDir, err))
	}
}

// forgetRecord removes the release's record for canary-runner once the release is gone.
func (r *releaseResource) forgetRecord(st releaseModel) {
	if r.data == nil {
		return
	}
	name := st.Name.ValueString()
	_ = os.Remove(runner.RecordPath(r.data.ledgerDir, name))
}

func taintNote(create bool) string {
	if create {
		return " Because this was the release's first apply, Terraform marks it tainted: the next apply reverts the changed hosts, then rolls the release out again."
	}
	return ""
}

// Read returns the state as the last rollout left it, touching no host, with one exception: a
// follow-up check that has fallen due runs once (read-only guards on every host, Sentry since the
// deploy) and its result is recorded.
func (r *releaseResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var st releaseModel
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() || !settled(st.Status.ValueString()) || st.FollowupResults.IsNull() || st.FollowupResults.IsUnknown() || r.data == nil {
		return
	}
	var fus []followupModel
	resp.Diagnostics.Append(st.FollowupResults.ElementsAs(ctx, &fus, false)...)
	t := now()
	var due []int
	for i, f := range fus {
		at, err := time.Parse(time.RFC3339, f.DueAt.ValueString())
		if f.Status.ValueString() == "pending" && err == nil && !t.Before(at) {
			due = append(due, i)
		}
	}
	deployed, err := time.Parse(time.RFC3339, st.DeployedAt.ValueString())
	if len(due) == 0 || err != nil {
		return
	}
	spec, d := st.spec(ctx, r.data.sentrySource())
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	res, verr := r.data.newRunner(ctx, nil).Verify(ctx, spec, deployed)
	status, msg := "passed", "every guard passed on every host"
	switch {
	case res == nil:
		status, msg = "failed", verr.Error()
	case verr != nil:
		status, msg = "failed", verr.Error()
	case len(res.Warnings) > 0:
		status, msg = "warning", fmt.Sprintf("%d warnings: guard %q on %s: %s", len(res.Warnings), res.Warnings[0].Guard, res.Warnings[0].Host, res.Warnings[0].Message)
	}
	for _, i := range due {
		fus[i].Status, fus[i].CheckedAt, fus[i].Message = types.StringValue(status), types.StringValue(t.UTC().Format(time.RFC3339)), types.StringValue(msg)
	}
	st.FollowupResults, d = types.ListValueFrom(ctx, followupType, fus)
	resp.Diagnostics.Append(d...)
	afters := make([]string, len(due))
	for i, j := range due {
		afters[i] = fus[j].After.ValueString()
	}
	result := ledger.ResultPassed
	if status == "failed" {
		result = ledger.ResultRegressed
	}
	runID := ""
	if res != nil {
		runID = res.RunID
	}
	if seq, lerr := r.data.record(spec, ledgerSeq(ctx, req.Private), st.audit(), ledger.Event{Action: ledger.ActionFollowup, RunID: runID, Result: result, Reason: "follow-up " + strings.Join(afters, ", ")}, false, nil); lerr == nil {
		st.LedgerSequence = types.Int64Value(int64(seq))
		resp.Diagnostics.Append(setLedgerSeq(ctx, resp.Private, seq)...)
	} else {
		resp.Diagnostics.AddWarning("Release Index Not Updated", "The follow-up check could not be recorded in the release index.\n\nOriginal Error: "+lerr.Error())
	}
	switch status {
	case "failed":
		st.Status = types.StringValue(statusRegressed)
		resp.Diagnostics.AddWarning("Release Regressed",
			fmt.Sprintf("The follow-up check of %s %s due %s after the rollout failed:\n\n%s\n\nTo roll back: run terraform destroy (every host goes back to the version it ran before), or apply the previous version, or run `canary-runner followup --rollback` from the ledger directory.",
				st.Name.ValueString(), st.Version.ValueString(), strings.Join(afters, ", "), msg))
	case "warning":
		resp.Diagnostics.AddWarning("Follow-up Check Warnings", fmt.Sprintf("The follow-up check of %s %s due %s after the rollout passed with warnings: %s", st.Name.ValueString(), st.Version.ValueString(), strings.Join(afters, ", "), msg))
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &st)...)
}

func (r *releaseResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var st releaseModel
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	targets, d := revertTargets(ctx, st)
	resp.Diagnostics.Append(d...)
	if st.OnDestroy.ValueString() == "keep" || len(targets) == 0 {
		// Nothing to put back: the release is only forgotten.
		r.forgetRecord(st)
		return
	}
	if resp.Diagnostics.HasError() {
		return
	}
	if r.data == nil {
		resp.Diagnostics.AddError("Provider Not Configured", "The canary provider was not configured; this is a bug in the provider.")
		return
	}
	spec, d := st.spec(ctx, r.data.sentrySource())
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := st.Timeouts.Delete(ctx, defaultDeleteTimeout)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	minSeq := ledgerSeq(ctx, req.Private)
	if err := r.data.verifyLedger(spec, minSeq); err != nil {
		ledgerError(&resp.Diagnostics, "Before the rollback", err)
		return
	}
	res, err := r.data.newRunner(ctx, nil).Revert(ctx, spec, targets)
	if res != nil {
		result, to := ledger.ResultSucceeded, targets[0].To
		if err != nil {
			result = ledger.ResultFailed
		}
		if _, lerr := r.data.record(spec, minSeq, st.audit(), ledger.Event{Action: ledger.ActionDestroy, RunID: res.RunID, Result: result, Hosts: changedHosts(res)}, false,
			func(i *ledger.Index) { i.ActiveVersion, i.Channel = to, ledger.ChannelRolledBack }); lerr != nil {
			resp.Diagnostics.AddWarning("Release Index Not Updated", "The rollback could not be recorded in the release index.\n\nOriginal Error: "+lerr.Error())
		}
	}
	if err != nil {
		resp.Diagnostics.AddError("Rollback Incomplete",
			"Destroying the release could not revert every host it changed, so it stays in the state. Fix the cause (see below) and run destroy again, or set on_destroy = \"keep\" to forget it.\n\nOriginal Error: "+err.Error())
		return
	}
	r.forgetRecord(st)
}
