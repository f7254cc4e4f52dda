package provider

import (
	"context"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

var (
	_ datasource.DataSource              = (*releaseIndexDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*releaseIndexDataSource)(nil)
)

// NewReleaseIndexDataSource is canary_release_index: the verified view of a release's signed index.
func NewReleaseIndexDataSource() datasource.DataSource { return &releaseIndexDataSource{} }

type releaseIndexDataSource struct{ data *providerData }

type releaseIndexModel struct {
	Fleet         types.String `tfsdk:"fleet"`
	Release       types.String `tfsdk:"release"`
	Sequence      types.Int64  `tfsdk:"sequence"`
	ActiveVersion types.String `tfsdk:"active_version"`
	Channel       types.String `tfsdk:"channel"`
	Insecure      types.Bool   `tfsdk:"insecure"`
	KeyID         types.String `tfsdk:"key_id"`
	Versions      types.List   `tfsdk:"versions"`
	Events        types.List   `tfsdk:"events"`
}

var indexVersionType = types.ObjectType{AttrTypes: map[string]attr.Type{
	"version": types.StringType, "manifest_sha256": types.StringType, "first_recorded": types.StringType,
}}

var indexEventType = types.ObjectType{AttrTypes: map[string]attr.Type{
	"sequence": types.Int64Type, "action": types.StringType, "version": types.StringType, "actor": types.StringType,
	"reason": types.StringType, "ticket": types.StringType, "run_id": types.StringType, "stage": types.StringType,
	"hosts": types.ListType{ElemType: types.StringType}, "result": types.StringType, "time": types.StringType, "insecure": types.BoolType,
}}

func (d *releaseIndexDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_release_index"
}

func (d *releaseIndexDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, _ *datasource.ConfigureResponse) {
	if pd, ok := req.ProviderData.(*providerData); ok {
		d.data = pd
	}
}

func (d *releaseIndexDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	str := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Computed: true, MarkdownDescription: desc}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "The signed release index of a release, verified on read: its signature must be valid and made by `signing_key` or one of `trusted_keys`. Shows the active version, the channel and the history (canary, promote, rollback... with actor, reason and ticket).",
		Attributes: map[string]schema.Attribute{
			"fleet":          schema.StringAttribute{Required: true, MarkdownDescription: "Fleet name."},
			"release":        schema.StringAttribute{Required: true, MarkdownDescription: "Release name (the canary_release's `name`)."},
			"sequence":       schema.Int64Attribute{Computed: true, MarkdownDescription: "Monotonic sequence number of the index."},
			"active_version": str("Version the fleet runs according to the last completed event."),
			"channel":        str("`canary` (rollout in progress, halted or interrupted), `stable` or `rolled_back`."),
			"insecure":       schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether the index was last signed with the local development key."},
			"key_id":         str("Fingerprint of the key that verifies the index (as `ssh-keygen -l` prints it)."),
			"versions": schema.ListNestedAttribute{Computed: true, MarkdownDescription: "Every version recorded, oldest first.", NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
				"version": str("Version."), "manifest_sha256": str("SHA-256 of its manifest."), "first_recorded": str("When it was first recorded (RFC 3339)."),
			}}},
			"events": schema.ListNestedAttribute{Computed: true, MarkdownDescription: "History, oldest first.", NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
				"sequence": schema.Int64Attribute{Computed: true, MarkdownDescription: "Index sequence the event was written at."},
				"action":   str("canary, promote, rollback, halt, interrupt, dry_run, destroy or followup."),
				"version":  str("Version."), "actor": str("Who."), "reason": str("Why."), "ticket": str("Change ticket."),
				"run_id": str("Rollout run."), "stage": str("Stage, when one failed."),
				"hosts":  schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Hosts changed."},
				"result": str("Outcome."), "time": str("When (RFC 3339)."),
				"insecure": schema.BoolAttribute{Computed: true, MarkdownDescription: "Written with the development key."},
			}}},
		},
	}
}

func (d *releaseIndexDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m releaseIndexModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || d.data == nil {
		return
	}
	l, err := d.data.openLedger()
	if err != nil {
		resp.Diagnostics.AddError("Release Index Unavailable", err.Error())
		return
	}
	idx, err := l.Load(m.Fleet.ValueString(), m.Release.ValueString(), 0)
	if err != nil {
		resp.Diagnostics.AddError("Release Index Refused", "The release index failed verification.\n\nOriginal Error: "+err.Error())
		return
	}
	m.Sequence = types.Int64Value(int64(idx.Sequence))
	m.ActiveVersion, m.Channel, m.Insecure, m.KeyID = types.StringValue(idx.ActiveVersion), types.StringValue(idx.Channel), types.BoolValue(idx.Insecure), types.StringValue(l.KeyID())
	vs := make([]attr.Value, 0, len(idx.Versions))
	for _, v := range idx.Versions {
		vs = append(vs, types.ObjectValueMust(indexVersionType.AttrTypes, map[string]attr.Value{
			"version": types.StringValue(v.Version), "manifest_sha256": types.StringValue(v.ManifestSHA256), "first_recorded": types.StringValue(v.FirstRecorded.UTC().Format(time.RFC3339)),
		}))
	}
	es := make([]attr.Value, 0, len(idx.Events))
	for _, e := range idx.Events {
		hosts := make([]attr.Value, 0, len(e.Hosts))
		for _, h := range e.Hosts {
			hosts = append(hosts, types.StringValue(h))
		}
		es = append(es, types.ObjectValueMust(indexEventType.AttrTypes, map[string]attr.Value{
			"sequence": types.Int64Value(int64(e.Sequence)), "action": types.StringValue(e.Action), "version": types.StringValue(e.Version),
			"actor": types.StringValue(e.Actor), "reason": types.StringValue(e.Reason), "ticket": types.StringValue(e.Ticket), "run_id": types.StringValue(e.RunID),
			"stage": types.StringValue(e.Stage), "hosts": types.ListValueMust(types.StringType, hosts), "result": types.StringValue(e.Result),
			"time": types.StringValue(e.Time.UTC().Format(time.RFC3339)), "insecure": types.BoolValue(e.Insecure),
		}))
	}
	m.Versions = types.ListValueMust(indexVersionType, vs)
	m.Events = types.ListValueMust(indexEventType, es)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
