package provider

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"

	"github.com/canaryops/terraform-provider-canary/internal/sentry"
	"github.com/canaryops/terraform-provider-canary/runner"
	"github.com/canaryops/terraform-provider-canary/runner/guard"
)

// now is the provider's clock; tests replace it to make follow-ups fall due.
var now = time.Now

// errNoSentry is what a Sentry guard reports when the provider has no sentry settings.
var errNoSentry = errors.New("the provider has no sentry settings: set sentry = { api_url, auth_token, org, project } in the provider block")

// unconfiguredSentry stands in where the provider's Sentry settings are not known (validation).
type unconfiguredSentry struct{}

func (unconfiguredSentry) NewIssues(context.Context, time.Time, string, string) ([]guard.SentryIssue, error) {
	return nil, errNoSentry
}

func (unconfiguredSentry) ErrorCount(context.Context, time.Time, time.Time, string) (int, error) {
	return 0, errNoSentry
}

func (unconfiguredSentry) Unavailable(error) bool { return false }

// eventReporter sends the rollout's promotions, failures and rollbacks to Sentry as events.
type eventReporter struct{ r *sentry.Reporter }

// reporter returns the event reporter for a rollout of version; without a DSN it reports nothing.
func (d *providerData) reporter(ctx context.Context, version string, diags *diag.Diagnostics) eventReporter {
	if d.sentryDSN == "" {
		return eventReporter{}
	}
	r, err := sentry.NewReporter(d.sentryDSN, d.sentryEnv, version)
	if err != nil {
		// Never echo the DSN: it carries the project key.
		diags.AddAttributeWarning(path.Root("sentry").AtName("dsn"), "Sentry Events Disabled", "Rollout events will not be sent to Sentry: the DSN was refused. "+strings.ReplaceAll(err.Error(), d.sentryDSN, "<dsn>"))
		return eventReporter{}
	}
	return eventReporter{r}
}

// event reports the steps operators want in Sentry: promotions, failures, rollbacks.
func (e eventReporter) event(ev runner.Event) {
	if e.r == nil {
		return
	}
	level := ""
	switch {
	case ev.Action == "promote" && ev.Result == "ok":
		level = "info"
	case ev.Action == "rollback" || ev.Action == "halt" || ev.Action == "interrupt":
		level = map[bool]string{true: "warning", false: "error"}[ev.Result == "started" || ev.Result == "ok"]
	case ev.Result == "failed" && (ev.Action == "rollout" || ev.Action == "observe" || ev.Action == "deploy" || ev.Action == "preflight"):
		level = "error"
	}
	if level == "" {
		return
	}
	e.r.Report(level, ev.Message, map[string]string{"release": ev.Release, "stage": ev.Stage, "host": ev.Host, "run_id": ev.RunID, "action": ev.Action})
}

func (e eventReporter) flush() {
	if e.r != nil {
		e.r.Close(5 * time.Second)
	}
}
