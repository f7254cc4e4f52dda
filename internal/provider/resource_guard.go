package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/canaryops/terraform-provider-canary/runner/guard"
)

var (
	_ resource.Resource                   = (*guardResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*guardResource)(nil)
	_ resource.ResourceWithValidateConfig = (*guardResource)(nil)
)

// NewGuardResource is canary_guard: a health check that gates a rollout.
func NewGuardResource() resource.Resource { return &guardResource{} }

type guardResource struct{}

func (r *guardResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_guard"
}

// guardAttributes are a guard's attributes: as the canary_guard resource (with defaults), or
// nested in a release (guards = [canary_guard.health], or written inline), where unset values take
// the same defaults at apply.
func guardAttributes(nested bool) map[string]schema.Attribute {
	str := func(desc, def string, v ...validatorString) schema.StringAttribute {
		a := schema.StringAttribute{Optional: true, MarkdownDescription: desc, Validators: v}
		if !nested && def != "" {
			a.Computed, a.Default = true, stringdefault.StaticString(def)
			a.MarkdownDescription += " Default `" + def + "`."
		}
		return a
	}
	num := func(desc string, def int64) schema.Int64Attribute {
		a := schema.Int64Attribute{Optional: true, MarkdownDescription: desc}
		if !nested {
			a.Computed, a.Default = true, int64default.StaticInt64(def)
			a.MarkdownDescription += " Default `" + itoa(def) + "`."
		}
		return a
	}
	id := schema.StringAttribute{Computed: true, MarkdownDescription: "The guard's name."}
	if nested {
		id = schema.StringAttribute{Optional: true, MarkdownDescription: "The guard's id (its name)."}
	}
	return map[string]schema.Attribute{
		"id":                id,
		"name":              schema.StringAttribute{Required: !nested, Optional: nested, MarkdownDescription: "Name of the guard, shown in failures and warnings."},
		"severity":          str("`fatal` fails the stage (and reverts); `warn` means degraded but functional: the failure is recorded and shown, never silently dropped.", string(guard.Fatal), oneOfValidator{"fatal", "warn"}),
		"interval":          str("Time between checks of one host while a stage is observed.", "10s", durationValidator{}),
		"timeout":           str("Time limit of one check.", "10s", durationValidator{}),
		"failure_threshold": num("Consecutive failures on one host that fail the stage (fatal guards).", guard.DefaultFailureThreshold),
		"success_threshold": num("Consecutive successes a guard needs at the end of the observation window to pass.", guard.DefaultSuccessThreshold),
		"http": schema.SingleNestedAttribute{
			Optional:            true,
			MarkdownDescription: "Check an HTTP endpoint, dialed through the host's SSH connection (so `127.0.0.1` is the host's own loopback). Verifies the status and, with `expect_body`, the content of the answer.",
			Attributes: map[string]schema.Attribute{
				"url":           schema.StringAttribute{Required: !nested, Optional: nested, MarkdownDescription: "URL to request. Templates: `{{.Version}}`, `{{.Host.Name}}`, `{{.Host.Vars.name}}`."},
				"method":        schema.StringAttribute{Optional: true, MarkdownDescription: "HTTP method. Default `GET`."},
				"expect_status": schema.ListAttribute{Optional: true, ElementType: types.Int64Type, MarkdownDescription: "Status codes that pass. Default `[200]`."},
				"expect_body":   schema.StringAttribute{Optional: true, MarkdownDescription: "Text the body must contain, for example `\"version\":\"{{.Version}}\"`, where `{{.Version}}` is the version the host should run."},
				"headers":       schema.MapAttribute{Optional: true, ElementType: types.StringType, MarkdownDescription: "Request headers."},
			},
		},
		"tcp": schema.SingleNestedAttribute{
			Optional:            true,
			MarkdownDescription: "Check that a TCP port accepts connections, dialed through the host's SSH connection.",
			Attributes: map[string]schema.Attribute{
				"address": schema.StringAttribute{Required: !nested, Optional: nested, MarkdownDescription: "`host:port` as seen from the host, for example `127.0.0.1:5432`."},
			},
		},
		"log": schema.SingleNestedAttribute{
			Optional:            true,
			MarkdownDescription: "Watch the host's log since the deploy: a file (read from the offset recorded at deploy, surviving rotation and truncation) or a journald unit (since the deploy time), over the host's SSH connection. Failure messages carry the matching lines.",
			Attributes: map[string]schema.Attribute{
				"file":            schema.StringAttribute{Optional: true, MarkdownDescription: "Log file on the host: an absolute path or `~/...`. Exactly one of `file` and `journal_unit`."},
				"journal_unit":    schema.StringAttribute{Optional: true, MarkdownDescription: "systemd unit whose journal is read with `journalctl -u`."},
				"fail_pattern":    schema.StringAttribute{Optional: true, MarkdownDescription: "Regular expression (RE2) of lines that mean trouble, for example `(?i)panic|fatal`. Template values in it are matched literally."},
				"max_matches":     schema.Int64Attribute{Optional: true, MarkdownDescription: "Lines matching `fail_pattern` tolerated since the deploy. Default 0."},
				"require_pattern": schema.StringAttribute{Optional: true, MarkdownDescription: "Regular expression that must appear since the deploy, for example `started version {{.Version}}`."},
				"require_within":  schema.StringAttribute{Optional: true, MarkdownDescription: "How long after the deploy `require_pattern` may take to appear. Default `30s`.", Validators: []validatorString{durationValidator{}}},
			},
		},
		"sentry": schema.SingleNestedAttribute{
			Optional:            true,
			MarkdownDescription: "Watch the provider's Sentry project for regressions since the deploy: issues first seen in the release, and the error rate after the deploy against an equal window before it. Needs the provider's `sentry` settings.",
			Attributes: map[string]schema.Attribute{
				"max_new_issues":  schema.Int64Attribute{Optional: true, MarkdownDescription: "New issues in the release tolerated since the deploy. Default 0."},
				"max_error_ratio": schema.Float64Attribute{Optional: true, MarkdownDescription: "Largest allowed ratio of errors after the deploy to errors in an equal window before it, for example `2.0`. Unset: the rate is not judged."},
				"min_events":      schema.Int64Attribute{Optional: true, MarkdownDescription: "Errors after the deploy below which the ratio is not judged (too little evidence). Default 0."},
				"query":           schema.StringAttribute{Optional: true, MarkdownDescription: "Extra Sentry search terms, for example `server_name:{{.Host.Name}}` to judge each host by its own events."},
				"on_unavailable":  schema.StringAttribute{Optional: true, MarkdownDescription: "When Sentry cannot be reached: `fail` (default: no evidence is not health) or `warn` (pass with a recorded warning).", Validators: []validatorString{oneOfValidator{"fail", "warn"}}},
			},
		},
		"command": schema.SingleNestedAttribute{
			Optional:            true,
			MarkdownDescription: "Run a command on the host. Values in templates are shell-quoted for you: do not put quotes around `{{...}}`.",
			Attributes: map[string]schema.Attribute{
				"command":       schema.StringAttribute{Required: !nested, Optional: nested, MarkdownDescription: "Shell command; passes when it exits with `expect_exit`."},
				"expect_exit":   schema.Int64Attribute{Optional: true, MarkdownDescription: "Exit status that passes. Default 0."},
				"expect_output": schema.StringAttribute{Optional: true, MarkdownDescription: "Text stdout must contain."},
			},
		},
	}
}

func (r *guardResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Version:             0,
		MarkdownDescription: "A guard: a check that runs on every updated host while a stage is observed. Exactly one of `http`, `tcp`, `command`, `log` or `sentry`. Creating a guard touches no host; releases list it in `guards`.",
		Attributes:          guardAttributes(false),
	}
}

func (r *guardResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m guardModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	validateGuard(ctx, m, path.Empty(), &resp.Diagnostics)
}

func (r *guardResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	planIDFromName(ctx, req, resp)
}

// Create stores the definition as planned (ModifyPlan set its id); no host is touched.
func (r *guardResource) Create(_ context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	resp.State.Raw = req.Plan.Raw
}

func (r *guardResource) Read(context.Context, resource.ReadRequest, *resource.ReadResponse) {}

func (r *guardResource) Update(_ context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	resp.State.Raw = req.Plan.Raw
}

func (r *guardResource) Delete(context.Context, resource.DeleteRequest, *resource.DeleteResponse) {}

// validateGuard checks a guard whose values are known: exactly one check, valid templates.
func validateGuard(ctx context.Context, m guardModel, base path.Path, diags *diagsT) {
	if !known(m.HTTP) || !known(m.TCP) || !known(m.Command) || !known(m.Log) || !known(m.Sentry) || m.Name.IsUnknown() {
		return
	}
	if m.HTTP.IsNull() && m.TCP.IsNull() && m.Command.IsNull() && m.Log.IsNull() && m.Sentry.IsNull() {
		diags.AddAttributeError(base, "Guard Checks Nothing",
			"Guard "+m.Name.String()+" sets none of http, tcp, command, log and sentry. Set exactly one, for example http = { url = \"http://127.0.0.1:8080/healthz\" }.")
		return
	}
	g, d := guardSpec(ctx, m, unconfiguredSentry{})
	diags.Append(d...)
	if d.HasError() {
		return
	}
	if err := g.Validate(); err != nil {
		diags.AddAttributeError(base, "Invalid Guard", err.Error()+".\n\nTemplates use Go template syntax with {{.Version}}, {{.PreviousVersion}}, {{.Host.Name}}, {{.Host.Address}} and {{.Host.Vars.name}}.")
	}
}
