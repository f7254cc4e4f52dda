package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/canaryops/terraform-provider-canary/runner"
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
)

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
			"status":      schema.StringAttribute{Computed: true, MarkdownDescription: "`succeeded`, or after a failed apply `halted`, `interrupted` or `failed`; any other than `succeeded` makes the next plan propose finishing the rollout."},
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
func (m releaseModel) spec(ctx context.Context) (runner.Spec, diag.Diagnostics) {
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
			spec, d := guardSpec(ctx, g)
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
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		return
	}
	spec, d := plan.spec(ctx)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	if err := spec.Validate(); err != nil {
		addConfigErrors(&resp.Diagnostics, err, releaseField)
		return
	}
	rp, err := runner.PlanRollout(spec.Hosts, spec.Stages)
	if err != nil {
		addConfigErrors(&resp.Diagnostics, err, releaseField)
		return
	}
	plan.RolloutPlan, d = rolloutPlanValue(ctx, rp)
	resp.Diagnostics.Append(d...)

	if prior != nil && prior.Status.ValueString() == statusSucceeded && !rolloutChanges(plan, *prior) {
		// Nothing to roll out (on_destroy, timeouts and the like may still change).
		plan.Hosts, plan.Status, plan.RunID, plan.DeployedAt = prior.Hosts, prior.Status, prior.RunID, prior.DeployedAt
	} else {
		hosts := make([]hostStateModel, 0, len(spec.Hosts))
		for _, h := range spec.Hosts {
			hosts = append(hosts, hostStateModel{
				Name: types.StringValue(h.Name), Address: types.StringValue(h.Address), Stage: types.StringValue(rp.StageOf(h.Name)),
				Version: types.StringValue(spec.Version), PreviousVersion: types.StringUnknown(), Status: types.StringUnknown(),
			})
		}
		plan.Hosts, d = types.ListValueFrom(ctx, hostStateType, hosts)
		resp.Diagnostics.Append(d...)
		plan.Status, plan.RunID, plan.DeployedAt = types.StringUnknown(), types.StringUnknown(), types.StringUnknown()
		if prior != nil && prior.Status.ValueString() != statusSucceeded && !prior.Status.IsNull() {
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
	st, ok := r.rollout(ctx, plan, timeout, &resp.Diagnostics, true)
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
	st, ok := r.rollout(ctx, plan, timeout, &resp.Diagnostics, false)
	if ok {
		resp.Diagnostics.Append(resp.State.Set(ctx, st)...)
	}
}

// rollout runs the release and returns the state to save, or false when the state must not
// change (the fleet is as it was before the apply).
func (r *releaseResource) rollout(ctx context.Context, plan releaseModel, timeout time.Duration, diags *diag.Diagnostics, create bool) (*releaseModel, bool) {
	if r.data == nil {
		diags.AddError("Provider Not Configured", "The canary provider was not configured; this is a bug in the provider.")
		return nil, false
	}
	spec, d := plan.spec(ctx)
	diags.Append(d...)
	if diags.HasError() {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := r.data.newRunner(ctx).Execute(ctx, spec)
	if res == nil {
		addConfigErrors(diags, err, releaseField)
		return nil, false
	}
	st := plan
	st.RunID = types.StringValue(res.RunID)
	st.DeployedAt = types.StringValue(res.FinishedAt.UTC().Format(time.RFC3339))
	hosts := make([]hostStateModel, 0, len(res.Hosts))
	addr := map[string]string{}
	for _, h := range spec.Hosts {
		addr[h.Name] = h.Address
	}
	for _, h := range res.Hosts {
		hosts = append(hosts, hostStateModel{
			Name: types.StringValue(h.Name), Address: types.StringValue(addr[h.Name]), Stage: types.StringValue(h.Stage),
			Version: types.StringValue(h.Version), PreviousVersion: types.StringValue(h.PreviousVersion), Status: types.StringValue(string(h.Status)),
		})
	}
	st.Hosts, d = types.ListValueFrom(ctx, hostStateType, hosts)
	diags.Append(d...)
	if err == nil {
		st.Status = types.StringValue(statusSucceeded)
		return &st, true
	}
	var re *runner.RolloutError
	if !errors.As(err, &re) {
		diags.AddError("Rollout Failed", err.Error())
		return nil, false
	}
	switch res.Status {
	case runner.StatusAborted:
		diags.AddError("Rollout Stopped Before Any Change",
			"No host was changed. Fix the cause below and apply again.\n\nOriginal Error: "+err.Error())
		return nil, false
	case runner.StatusRolledBack:
		next := "The state is unchanged, so the next plan proposes the same change; fix the release, then apply again."
		if create {
			next = "The release was not created; fix it and apply again."
		}
		diags.AddError("Rollout Failed And Was Rolled Back",
			"Every host this rollout changed was reverted and the guards confirmed recovery. "+next+"\n\nOriginal Error: "+err.Error())
		return nil, false
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
	return &st, true
}

func taintNote(create bool) string {
	if create {
		return " Because this was the release's first apply, Terraform marks it tainted: the next apply reverts the changed hosts, then rolls the release out again."
	}
	return ""
}

func (r *releaseResource) Read(context.Context, resource.ReadRequest, *resource.ReadResponse) {
	// The state is the record of the last rollout; reading it touches no host, so plan never does.
}

func (r *releaseResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var st releaseModel
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if st.OnDestroy.ValueString() == "keep" {
		return
	}
	targets, d := revertTargets(ctx, st)
	resp.Diagnostics.Append(d...)
	if len(targets) == 0 || resp.Diagnostics.HasError() {
		return
	}
	if r.data == nil {
		resp.Diagnostics.AddError("Provider Not Configured", "The canary provider was not configured; this is a bug in the provider.")
		return
	}
	spec, d := st.spec(ctx)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := st.Timeouts.Delete(ctx, defaultDeleteTimeout)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := r.data.newRunner(ctx).Revert(ctx, spec, targets); err != nil {
		resp.Diagnostics.AddError("Rollback Incomplete",
			"Destroying the release could not revert every host it changed, so it stays in the state. Fix the cause (see below) and run destroy again, or set on_destroy = \"keep\" to forget it.\n\nOriginal Error: "+err.Error())
	}
}
