package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

var (
	_ resource.Resource                   = (*fleetResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*fleetResource)(nil)
	_ resource.ResourceWithValidateConfig = (*fleetResource)(nil)
)

// NewFleetResource is canary_fleet: a named inventory of hosts. It changes nothing on the hosts;
// releases roll out over it.
func NewFleetResource() resource.Resource { return &fleetResource{} }

type fleetResource struct{}

func (r *fleetResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_fleet"
}

// fleetAttributes are the fleet's attributes: as the canary_fleet resource, or nested in a release
// (fleet = canary_fleet.agents).
func fleetAttributes(nested bool) map[string]schema.Attribute {
	id := schema.StringAttribute{Computed: true, MarkdownDescription: "The fleet's name."}
	if nested {
		id = schema.StringAttribute{Optional: true, MarkdownDescription: "The fleet's id (its name)."}
	}
	return map[string]schema.Attribute{
		"id":   id,
		"name": schema.StringAttribute{Required: !nested, Optional: nested, MarkdownDescription: "Name of the fleet."},
		"hosts": schema.ListNestedAttribute{
			Required:            !nested,
			Optional:            nested,
			MarkdownDescription: "The hosts, in rollout order: the first hosts are the canaries. The order decides which hosts each stage updates, so `plan` and `apply` always agree.",
			NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
				"name":     schema.StringAttribute{Required: !nested, Optional: nested, MarkdownDescription: "Unique name of the host, used in the rollout plan, state and messages."},
				"address":  schema.StringAttribute{Required: !nested, Optional: nested, MarkdownDescription: "Address to reach the host over SSH: `host`, `host:port` or an IP address."},
				"port":     schema.Int64Attribute{Optional: true, MarkdownDescription: "SSH port, when not part of `address`. Default 22."},
				"host_key": schema.StringAttribute{Optional: true, MarkdownDescription: "Pinned public host key (`ssh-ed25519 AAAA...`). When set it is the only key accepted for this host, instead of the known_hosts file."},
				"vars":     schema.MapAttribute{Optional: true, ElementType: types.StringType, MarkdownDescription: "Per-host values for templates, as `{{.Host.Vars.name}}` (for example a port that differs per host)."},
			}},
		},
	}
}

func (r *fleetResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Version:             0,
		MarkdownDescription: "A fleet of hosts reached over SSH. Creating or changing a fleet touches no host; a `canary_release` rolls a version out over it (`fleet = canary_fleet.agents`).",
		Attributes:          fleetAttributes(false),
	}
}

func (r *fleetResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var hosts types.List
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("hosts"), &hosts)...)
	if hosts.IsNull() || hosts.IsUnknown() {
		return
	}
	var hs []hostModel
	resp.Diagnostics.Append(hosts.ElementsAs(ctx, &hs, false)...)
	validateHostList(hs, path.Root("hosts"), &resp.Diagnostics)
}

func (r *fleetResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	planIDFromName(ctx, req, resp)
}

// Create stores the definition as planned (ModifyPlan set its id); no host is touched.
func (r *fleetResource) Create(_ context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	resp.State.Raw = req.Plan.Raw
}

func (r *fleetResource) Read(context.Context, resource.ReadRequest, *resource.ReadResponse) {}

func (r *fleetResource) Update(_ context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	resp.State.Raw = req.Plan.Raw
}

func (r *fleetResource) Delete(context.Context, resource.DeleteRequest, *resource.DeleteResponse) {}

// planIDFromName plans a definition resource's id as its name, so it is known at plan time.
func planIDFromName(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		return
	}
	var name types.String
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("name"), &name)...)
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("id"), name)...)
}

// validateHostList reports duplicate host names, with the index of the first use.
func validateHostList(hs []hostModel, base path.Path, diags interface {
	AddAttributeError(path.Path, string, string)
}) {
	seen := map[string]int{}
	for i, h := range hs {
		if h.Name.IsUnknown() {
			continue
		}
		n := h.Name.ValueString()
		if j, dup := seen[n]; dup {
			diags.AddAttributeError(base.AtListIndex(i).AtName("name"), "Duplicate Host Name",
				fmt.Sprintf("Host name %q is used by hosts[%d] and hosts[%d]. Host names identify hosts in the rollout plan and the state, so each must be unique: rename one of them.", n, j, i))
			continue
		}
		seen[n] = i
	}
}
