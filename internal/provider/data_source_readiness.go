package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

var (
	_ datasource.DataSource              = (*readinessDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*readinessDataSource)(nil)
)

// NewReadinessDataSource is canary_readiness: a release's readiness checklist and verdict.
func NewReadinessDataSource() datasource.DataSource { return &readinessDataSource{} }

type readinessDataSource struct{ data *providerData }

type readinessDataModel struct {
	Release types.Dynamic `tfsdk:"release"`
	Ready   types.Bool    `tfsdk:"ready"`
	Verdict types.String  `tfsdk:"verdict"`
	Items   types.List    `tfsdk:"items"`
}

var readinessItemType = types.ObjectType{AttrTypes: map[string]attr.Type{
	"name": types.StringType, "ok": types.BoolType, "blocking": types.BoolType, "detail": types.StringType,
}}

func (d *readinessDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_readiness"
}

func (d *readinessDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, _ *datasource.ConfigureResponse) {
	if pd, ok := req.ProviderData.(*providerData); ok {
		d.data = pd
	}
}

func (d *readinessDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The readiness checklist of a release and its verdict, as the plan-time gate evaluates it: `release = canary_release.agent`. Reading it touches no host.",
		Attributes: map[string]schema.Attribute{
			"release": schema.DynamicAttribute{Required: true, MarkdownDescription: "The release to check: `canary_release.agent`. Its `readiness` block sets the environment and the requirements; without one, production defaults apply."},
			"ready":   schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether every blocking item is met."},
			"verdict": schema.StringAttribute{Computed: true, MarkdownDescription: "`ready`, `ready with warnings` or `not ready: <items>`."},
			"items": schema.ListNestedAttribute{
				Computed:            true,
				MarkdownDescription: "The checklist.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"name":     schema.StringAttribute{Computed: true, MarkdownDescription: "Item: owner, on_call, slo, rollback_plan, fatal_guard, log_guard, sentry_guard, canary_first, observe_window, strict_host_keys, signed_ledger."},
					"ok":       schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether it is met."},
					"blocking": schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether an unmet item blocks the release (false: a warning)."},
					"detail":   schema.StringAttribute{Computed: true, MarkdownDescription: "What was found, or what to do."},
				}},
			},
		},
	}
}

func (d *readinessDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m readinessDataModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	obj, ok := m.Release.UnderlyingValue().(basetypes.ObjectValue)
	if !ok {
		resp.Diagnostics.AddAttributeError(path.Root("release"), "Not A Release", "release must be a canary_release, for example release = canary_release.agent.")
		return
	}
	// A dynamic value carries Terraform's own types (numbers are Number); convert the parts the
	// checklist reads to the release schema's types.
	var rs resource.SchemaResponse
	(&releaseResource{}).Schema(ctx, resource.SchemaRequest{}, &rs)
	a := map[string]attr.Value{}
	for name, v := range obj.Attributes() {
		sa, ok := rs.Schema.Attributes[name]
		if !ok {
			continue
		}
		cv, err := convertValue(ctx, v, sa.GetType())
		if err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("release").AtName(name), "Not A Release", "release must be a canary_release: "+err.Error())
			return
		}
		a[name] = cv
	}
	rel := releaseModel{Name: types.StringNull(), VersionCommand: types.StringNull(), OnFailure: types.StringNull(), Parallelism: types.Int64Null(),
		Revert: types.ObjectNull(nil), Guards: types.ListNull(nil), Readiness: types.ObjectNull(readinessType.AttrTypes)}
	get := func(name string, dst any) bool {
		v, ok := a[name]
		if !ok {
			return false
		}
		switch p := dst.(type) {
		case *types.Object:
			o, ok := v.(basetypes.ObjectValue)
			*p = o
			return ok
		case *types.List:
			l, ok := v.(basetypes.ListValue)
			*p = l
			return ok
		case *types.String:
			s, ok := v.(basetypes.StringValue)
			*p = s
			return ok
		}
		return false
	}
	if !get("fleet", &rel.Fleet) || !get("stages", &rel.Stages) || !get("deploy", &rel.Deploy) || !get("version", &rel.Version) {
		resp.Diagnostics.AddAttributeError(path.Root("release"), "Not A Release", "release must be a canary_release (fleet, version, deploy and stages), for example release = canary_release.agent.")
		return
	}
	get("revert", &rel.Revert)
	get("guards", &rel.Guards)
	get("readiness", &rel.Readiness)
	spec, diags := rel.spec(ctx, d.data.sentrySource())
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	rm := readinessModel{Environment: types.StringValue("production")}
	if !rel.Readiness.IsNull() {
		resp.Diagnostics.Append(rel.Readiness.As(ctx, &rm, basetypes.ObjectAsOptions{})...)
	}
	items := checklist(rm, spec, d.data.readinessEnv())
	blocking, warnings := unmet(items)
	m.Ready = types.BoolValue(len(blocking) == 0)
	switch {
	case len(blocking) > 0:
		m.Verdict = types.StringValue(fmt.Sprintf("not ready: %d unmet items", len(blocking)))
	case len(warnings) > 0:
		m.Verdict = types.StringValue("ready with warnings")
	default:
		m.Verdict = types.StringValue("ready")
	}
	vals := make([]attr.Value, 0, len(items))
	for _, it := range items {
		vals = append(vals, types.ObjectValueMust(readinessItemType.AttrTypes, map[string]attr.Value{
			"name": types.StringValue(it.Name), "ok": types.BoolValue(it.OK), "blocking": types.BoolValue(it.Blocking), "detail": types.StringValue(it.Detail),
		}))
	}
	m.Items = types.ListValueMust(readinessItemType, vals)
	// The state already holds the configuration (release); set only what was computed.
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("ready"), m.Ready)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("verdict"), m.Verdict)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("items"), m.Items)...)
}

// convertValue converts v (as a dynamic value carries it) to type t.
func convertValue(ctx context.Context, v attr.Value, t attr.Type) (attr.Value, error) {
	tv, err := v.ToTerraformValue(ctx)
	if err != nil {
		return nil, err
	}
	conv, err := convertTF(tv, t.TerraformType(ctx))
	if err != nil {
		return nil, err
	}
	return t.ValueFromTerraform(ctx, conv)
}

// convertTF rebuilds a terraform value with the wanted type: numbers stay numbers, tuples become
// lists, objects keep the wanted attributes (missing ones null).
func convertTF(v tftypes.Value, want tftypes.Type) (tftypes.Value, error) {
	if !v.IsKnown() {
		return tftypes.NewValue(want, tftypes.UnknownValue), nil
	}
	if v.IsNull() {
		return tftypes.NewValue(want, nil), nil
	}
	switch w := want.(type) {
	case tftypes.Object:
		var in map[string]tftypes.Value
		if err := v.As(&in); err != nil {
			return tftypes.Value{}, err
		}
		out := map[string]tftypes.Value{}
		for name, at := range w.AttributeTypes {
			if iv, ok := in[name]; ok {
				cv, err := convertTF(iv, at)
				if err != nil {
					return tftypes.Value{}, fmt.Errorf("%s: %w", name, err)
				}
				out[name] = cv
			} else {
				out[name] = tftypes.NewValue(at, nil)
			}
		}
		return tftypes.NewValue(w, out), nil
	case tftypes.List, tftypes.Set:
		var in []tftypes.Value
		if err := v.As(&in); err != nil {
			return tftypes.Value{}, err
		}
		var et tftypes.Type
		if l, ok := w.(tftypes.List); ok {
			et = l.ElementType
		} else {
			et = w.(tftypes.Set).ElementType
		}
		out := make([]tftypes.Value, 0, len(in))
		for _, iv := range in {
			cv, err := convertTF(iv, et)
			if err != nil {
				return tftypes.Value{}, err
			}
			out = append(out, cv)
		}
		return tftypes.NewValue(w, out), nil
	case tftypes.Map:
		var in map[string]tftypes.Value
		if err := v.As(&in); err != nil {
			return tftypes.Value{}, err
		}
		out := map[string]tftypes.Value{}
		for k, iv := range in {
			cv, err := convertTF(iv, w.ElementType)
			if err != nil {
				return tftypes.Value{}, err
			}
			out[k] = cv
		}
		return tftypes.NewValue(w, out), nil
	}
	// Primitives: String, Number, Bool keep their value.
	if !v.Type().Equal(want) {
		return tftypes.Value{}, fmt.Errorf("expected %s, got %s", want, v.Type())
	}
	return v, nil
}
