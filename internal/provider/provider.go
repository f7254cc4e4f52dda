// Package provider is the Terraform adapter of the canary rollout engine: schemas, plan-time
// validation and the rollout plan, and CRUD that calls runner/. It knows nothing of SSH beyond
// passing settings through.
package provider

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"
	gossh "golang.org/x/crypto/ssh"

	"github.com/canaryops/terraform-provider-canary/internal/ledger"
	"github.com/canaryops/terraform-provider-canary/internal/sentry"
	"github.com/canaryops/terraform-provider-canary/runner"
	"github.com/canaryops/terraform-provider-canary/runner/guard"
	sshx "github.com/canaryops/terraform-provider-canary/runner/ssh"
)

var _ provider.Provider = (*canaryProvider)(nil)

// New returns the provider factory for providerserver.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &canaryProvider{version: version} }
}

type canaryProvider struct {
	version string
}

// providerData is what Configure hands to resources.
type providerData struct {
	ssh       sshx.Config
	ledgerDir string
	// sentry is the Sentry API client, nil without sentry settings; sentryDSN and sentryEnv are
	// where rollout events go.
	sentry    *sentry.Client
	sentryDSN string
	sentryEnv string
	// signingKey signs the release index; nil means the local development key.
	signingKey ed25519.PrivateKey
	ledgerOpts ledger.Options
	ledgerMu   sync.Mutex
	ledger     *ledger.Ledger
	// newRunner builds the runner for one operation; events go to tflog and to also.
	newRunner func(ctx context.Context, also func(runner.Event)) *runner.Runner
}

func (p *canaryProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "canary"
	resp.Version = p.version
}

func (p *canaryProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Canary rollouts over SSH: roll a release out to one host first, watch its health and logs, then the rest of the fleet in waves, or revert. `terraform plan` is the dry run and `terraform destroy` rolls back.",
		Attributes: map[string]schema.Attribute{
			"ssh": schema.SingleNestedAttribute{
				MarkdownDescription: "How to reach the hosts of every fleet over SSH. Host keys are checked strictly against `known_hosts_file` unless a host pins its `host_key`.",
				Optional:            true,
				Attributes: map[string]schema.Attribute{
					"user":                     schema.StringAttribute{Optional: true, MarkdownDescription: "Login user. Defaults to the current OS user."},
					"private_key":              schema.StringAttribute{Optional: true, Sensitive: true, MarkdownDescription: "Private key in PEM or OpenSSH format, for example `file(\"~/.ssh/id_ed25519\")`. Sensitive: never logged."},
					"private_key_passphrase":   schema.StringAttribute{Optional: true, Sensitive: true, MarkdownDescription: "Passphrase of `private_key`, when it is encrypted."},
					"use_agent":                schema.BoolAttribute{Optional: true, MarkdownDescription: "Authenticate with the keys of the running ssh-agent (`SSH_AUTH_SOCK`)."},
					"known_hosts_file":         schema.StringAttribute{Optional: true, MarkdownDescription: "known_hosts file the host keys are checked against. Defaults to `~/.ssh/known_hosts`."},
					"insecure_ignore_host_key": schema.BoolAttribute{Optional: true, MarkdownDescription: "Accept any host key. **Insecure**: a man in the middle can take over the rollout. Only for throwaway test hosts; a warning is shown whenever it is set."},
					"connect_timeout":          schema.StringAttribute{Optional: true, MarkdownDescription: "Bound on TCP connect plus SSH handshake per host, as a duration (`15s`). Default `15s`.", Validators: []validatorString{durationValidator{}}},
					"bastion": schema.SingleNestedAttribute{
						Optional:            true,
						MarkdownDescription: "Jump host every connection goes through. Its host key is verified like the targets'.",
						Attributes: map[string]schema.Attribute{
							"host":     schema.StringAttribute{Required: true, MarkdownDescription: "Bastion address, `host` or `host:port`."},
							"user":     schema.StringAttribute{Optional: true, MarkdownDescription: "Login user on the bastion. Defaults to `ssh.user`."},
							"host_key": schema.StringAttribute{Optional: true, MarkdownDescription: "Pinned public key of the bastion (`ssh-ed25519 AAAA...`), instead of `known_hosts_file`."},
						},
					},
				},
			},
			"ledger_dir": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "Directory of the signed release index. Default `./.canary`.",
			},
			"trusted_keys": schema.ListAttribute{
				Optional: true, ElementType: types.StringType,
				MarkdownDescription: "Public keys (`ssh-ed25519 AAAA...`) whose signatures on the release index are accepted besides `signing_key`'s own, for example a previous key during rotation.",
			},
			"signing_key": schema.StringAttribute{
				Optional:            true,
				Sensitive:           true,
				MarkdownDescription: "ed25519 private key (PEM or OpenSSH format) that signs the release index. Without one a local development key is used, which production readiness refuses. Sensitive: never logged or written to the ledger.",
			},
			"sentry": schema.SingleNestedAttribute{
				Optional:            true,
				MarkdownDescription: "Sentry project the Sentry guard queries and rollout events are reported to.",
				Attributes: map[string]schema.Attribute{
					"api_url":     schema.StringAttribute{Optional: true, MarkdownDescription: "Base URL of the Sentry API, SaaS or self-hosted. Default `https://sentry.io`."},
					"auth_token":  schema.StringAttribute{Optional: true, Sensitive: true, MarkdownDescription: "Sentry auth token with `event:read` and `project:releases` scopes. Sensitive."},
					"org":         schema.StringAttribute{Optional: true, MarkdownDescription: "Organization slug."},
					"project":     schema.StringAttribute{Optional: true, MarkdownDescription: "Project slug."},
					"environment": schema.StringAttribute{Optional: true, MarkdownDescription: "Environment the guard filters on and events are tagged with."},
					"dsn":         schema.StringAttribute{Optional: true, Sensitive: true, MarkdownDescription: "Project DSN that rollout events are sent to. Sensitive."},
				},
			},
		},
	}
}

type providerModel struct {
	SSH         *sshModel    `tfsdk:"ssh"`
	LedgerDir   types.String `tfsdk:"ledger_dir"`
	TrustedKeys types.List   `tfsdk:"trusted_keys"`
	SigningKey  types.String `tfsdk:"signing_key"`
	Sentry      *sentryModel `tfsdk:"sentry"`
}

type sshModel struct {
	User                  types.String  `tfsdk:"user"`
	PrivateKey            types.String  `tfsdk:"private_key"`
	PrivateKeyPassphrase  types.String  `tfsdk:"private_key_passphrase"`
	UseAgent              types.Bool    `tfsdk:"use_agent"`
	KnownHostsFile        types.String  `tfsdk:"known_hosts_file"`
	InsecureIgnoreHostKey types.Bool    `tfsdk:"insecure_ignore_host_key"`
	ConnectTimeout        types.String  `tfsdk:"connect_timeout"`
	Bastion               *bastionModel `tfsdk:"bastion"`
}

type bastionModel struct {
	Host    types.String `tfsdk:"host"`
	User    types.String `tfsdk:"user"`
	HostKey types.String `tfsdk:"host_key"`
}

type sentryModel struct {
	APIURL      types.String `tfsdk:"api_url"`
	AuthToken   types.String `tfsdk:"auth_token"`
	Org         types.String `tfsdk:"org"`
	Project     types.String `tfsdk:"project"`
	Environment types.String `tfsdk:"environment"`
	DSN         types.String `tfsdk:"dsn"`
}

func (p *canaryProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var m providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	data := &providerData{ledgerDir: ".canary"}
	if s := m.LedgerDir.ValueString(); s != "" {
		data.ledgerDir = s
	}
	cfg := sshx.Config{}
	if s := m.SSH; s != nil {
		cfg.User = s.User.ValueString()
		cfg.PrivateKey = []byte(s.PrivateKey.ValueString())
		cfg.PrivateKeyPassphrase = []byte(s.PrivateKeyPassphrase.ValueString())
		cfg.UseAgent = s.UseAgent.ValueBool()
		cfg.KnownHostsFile = s.KnownHostsFile.ValueString()
		cfg.InsecureIgnoreHostKey = s.InsecureIgnoreHostKey.ValueBool()
		if d, ok := parseDuration(s.ConnectTimeout); ok {
			cfg.ConnectTimeout = d
		}
		if b := s.Bastion; b != nil {
			cfg.Bastion = &sshx.Endpoint{Address: b.Host.ValueString(), HostKey: b.HostKey.ValueString()}
			cfg.BastionUser = b.User.ValueString()
		}
		if cfg.InsecureIgnoreHostKey {
			resp.Diagnostics.AddAttributeWarning(path.Root("ssh").AtName("insecure_ignore_host_key"), "Host Key Checking Is Off",
				"ssh.insecure_ignore_host_key = true accepts any host key, so anyone between Terraform and the hosts can take over the rollout. Remove it and list the hosts in known_hosts_file (ssh-keyscan) or pin each host's host_key.")
		}
	}
	if cfg.User == "" {
		cfg.User = os.Getenv("USER")
	}
	if len(cfg.PrivateKey) == 0 {
		cfg.PrivateKey = nil
	}
	if len(cfg.PrivateKeyPassphrase) == 0 {
		cfg.PrivateKeyPassphrase = nil
	}
	if !cfg.UseAgent && cfg.PrivateKey == nil && os.Getenv("SSH_AUTH_SOCK") != "" {
		cfg.UseAgent = true
	}
	if !m.SigningKey.IsNull() && !m.SigningKey.IsUnknown() {
		key, err := parseSigningKey(m.SigningKey.ValueString())
		data.signingKey = key
		if err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("signing_key"), "Invalid Signing Key",
				"signing_key must be an ed25519 private key in PEM or OpenSSH format, for example generated with `ssh-keygen -t ed25519`.\n\nOriginal Error: "+err.Error())
		}
	}
	if s := m.Sentry; s != nil {
		for _, a := range []struct {
			name string
			v    types.String
		}{{"api_url", s.APIURL}, {"dsn", s.DSN}} {
			if a.v.IsNull() || a.v.IsUnknown() {
				continue
			}
			if u, err := url.Parse(a.v.ValueString()); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				// Never echo a DSN: it carries the project key.
				resp.Diagnostics.AddAttributeError(path.Root("sentry").AtName(a.name), "Invalid Sentry URL",
					fmt.Sprintf("sentry.%s must be an http:// or https:// URL with a host.", a.name))
			}
		}
	}
	data.ledgerOpts = ledger.Options{Dir: data.ledgerDir, SigningKey: []byte(m.SigningKey.ValueString()), Now: now}
	if !m.TrustedKeys.IsNull() && !m.TrustedKeys.IsUnknown() {
		resp.Diagnostics.Append(m.TrustedKeys.ElementsAs(ctx, &data.ledgerOpts.TrustedKeys, false)...)
		for i, k := range data.ledgerOpts.TrustedKeys {
			if _, err := ledger.ParsePublicKey(k); err != nil {
				resp.Diagnostics.AddAttributeError(path.Root("trusted_keys").AtListIndex(i), "Invalid Trusted Key",
					"trusted_keys entries must be ed25519 public keys, for example the output of `ssh-keygen -y -f key`.\n\nOriginal Error: "+err.Error())
			}
		}
	}
	if s := m.Sentry; s != nil && !resp.Diagnostics.HasError() {
		data.sentryDSN, data.sentryEnv = s.DSN.ValueString(), s.Environment.ValueString()
		if !s.AuthToken.IsNull() || !s.Org.IsNull() || !s.Project.IsNull() {
			api := s.APIURL.ValueString()
			if api == "" {
				api = "https://sentry.io"
			}
			c, err := sentry.New(sentry.Config{APIURL: api, AuthToken: s.AuthToken.ValueString(), Org: s.Org.ValueString(), Project: s.Project.ValueString(), Environment: data.sentryEnv})
			if err != nil {
				resp.Diagnostics.AddAttributeError(path.Root("sentry"), "Invalid Sentry Settings", err.Error())
			}
			data.sentry = c
		}
	}
	if resp.Diagnostics.HasError() {
		return
	}
	data.ssh = cfg
	data.newRunner = func(ctx context.Context, also func(runner.Event)) *runner.Runner {
		return &runner.Runner{
			SSH: cfg,
			OnEvent: func(ev runner.Event) {
				logEvent(ctx, ev)
				if also != nil {
					also(ev)
				}
			},
		}
	}
	resp.ResourceData = data
	resp.DataSourceData = data
}

// logEvent sends a runner event to tflog with its fields.
func logEvent(ctx context.Context, ev runner.Event) {
	fields := map[string]any{"run_id": ev.RunID, "release": ev.Release, "action": ev.Action, "result": ev.Result}
	if ev.Stage != "" {
		fields["stage"] = ev.Stage
	}
	if ev.Host != "" {
		fields["host"] = ev.Host
	}
	if ev.Evidence != "" {
		fields["evidence"] = ev.Evidence
	}
	switch ev.Result {
	case "failed":
		tflog.Error(ctx, ev.Message, fields)
	case "warning":
		tflog.Warn(ctx, ev.Message, fields)
	case "started":
		tflog.Debug(ctx, ev.Message, fields)
	default:
		tflog.Info(ctx, ev.Message, fields)
	}
}

func parseSigningKey(pemText string) (ed25519.PrivateKey, error) {
	k, err := gossh.ParseRawPrivateKey([]byte(strings.TrimSpace(pemText) + "\n"))
	if err != nil {
		return nil, fmt.Errorf("cannot parse the key: %s", strings.TrimPrefix(err.Error(), "ssh: "))
	}
	switch k := k.(type) {
	case ed25519.PrivateKey:
		return k, nil
	case *ed25519.PrivateKey:
		return *k, nil
	default:
		return nil, fmt.Errorf("the key is a %T, not ed25519", k)
	}
}

func (p *canaryProvider) Resources(_ context.Context) []func() resource.Resource {
	return []func() resource.Resource{NewFleetResource, NewGuardResource, NewReleaseResource}
}

func (p *canaryProvider) DataSources(_ context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{NewReadinessDataSource, NewReleaseIndexDataSource}
}

// openLedger opens the release index on first use, so a plan never creates files.
func (d *providerData) openLedger() (*ledger.Ledger, error) {
	d.ledgerMu.Lock()
	defer d.ledgerMu.Unlock()
	if d.ledger != nil {
		return d.ledger, nil
	}
	l, err := ledger.Open(d.ledgerOpts)
	if err != nil {
		return nil, err
	}
	d.ledger = l
	return l, nil
}

// sentrySource is what Sentry guards query: the configured client, or a stand-in that says
// the settings are missing.
func (d *providerData) sentrySource() guard.SentrySource {
	if d == nil || d.sentry == nil {
		return unconfiguredSentry{}
	}
	return sentry.GuardSource(d.sentry)
}

// parseDuration reads a known, non-empty duration attribute.
func parseDuration(v types.String) (time.Duration, bool) {
	if v.IsNull() || v.IsUnknown() || v.ValueString() == "" {
		return 0, false
	}
	d, err := time.ParseDuration(v.ValueString())
	return d, err == nil
}
