package guard

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/canaryops/terraform-provider-canary/runner/tmpl"
)

// SentryIssue is an issue as the Sentry guard sees it.
type SentryIssue struct {
	ShortID   string
	Title     string
	Permalink string
	FirstSeen time.Time
	Count     int
}

// SentrySource is the part of Sentry's API the guard needs; internal/sentry provides it.
type SentrySource interface {
	// NewIssues lists issues first seen at or after since, for release (when set) and the extra
	// search terms.
	NewIssues(ctx context.Context, since time.Time, release, extra string) ([]SentryIssue, error)
	// ErrorCount counts error events in [start, end) matching the extra search terms.
	ErrorCount(ctx context.Context, start, end time.Time, extra string) (int, error)
	// Unavailable reports whether err means Sentry could not answer (as opposed to a bad request).
	Unavailable(err error) bool
}

// Sentry watches Sentry for regressions since the deploy: new issues of the release, and the
// error rate after the deploy against an equal window before it.
type Sentry struct {
	Source SentrySource `json:"-"`
	// MaxNewIssues fails the check when more issues than this were first seen since the deploy.
	MaxNewIssues int
	// MaxErrorRatio fails the check when errors after the deploy exceed this multiple of the
	// errors in an equal window before it; 0 turns the ratio check off.
	MaxErrorRatio float64
	// MinEvents is the least number of errors after the deploy before the ratio is judged.
	MinEvents int
	// Query holds extra search terms (template), for example "server_name:{{.Host.Name}}".
	Query string
	// OnUnavailable says what an unreachable Sentry means: "fail" (default: no evidence is not
	// health) or "warn" (pass, with a warning that is recorded).
	OnUnavailable string
	// Now is the clock; default time.Now.
	Now func() time.Time `json:"-"`
}

type sentryMark struct{ since time.Time }

func (s *Sentry) Kind() string { return "sentry" }

func (s *Sentry) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Sentry) Validate() error {
	if s.Source == nil {
		return fmt.Errorf("sentry guard needs the provider's sentry settings (api_url, auth_token, org, project)")
	}
	if s.MaxNewIssues < 0 || s.MaxErrorRatio < 0 || s.MinEvents < 0 {
		return fmt.Errorf("sentry.max_new_issues, max_error_ratio and min_events must not be negative")
	}
	switch s.OnUnavailable {
	case "", "fail", "warn":
	default:
		return fmt.Errorf("sentry.on_unavailable %q is not valid; use \"fail\" or \"warn\"", s.OnUnavailable)
	}
	if err := tmpl.Validate(s.Query, false); err != nil {
		return fmt.Errorf("sentry.query: %w", err)
	}
	return nil
}

// Mark records the deploy time.
func (s *Sentry) Mark(context.Context, Target, tmpl.Data) (any, error) {
	return sentryMark{since: s.now()}, nil
}

// MarkSince is the baseline of a follow-up check: the deploy time.
func (s *Sentry) MarkSince(t time.Time) any { return sentryMark{since: t} }

func (s *Sentry) Check(ctx context.Context, _ Target, d tmpl.Data, mark any) Result {
	m, ok := mark.(sentryMark)
	if !ok {
		// Before any deploy (preflight): look at the last 10 minutes.
		m = sentryMark{since: s.now().Add(-10 * time.Minute)}
	}
	extra, err := tmpl.Render(s.Query, d)
	if err != nil {
		return Result{Message: "sentry.query: " + err.Error()}
	}
	now := s.now()
	issues, err := s.Source.NewIssues(ctx, m.since, d.Version, extra)
	if err != nil {
		return s.unavailable(err)
	}
	if len(issues) > s.MaxNewIssues {
		var ev []string
		for i, is := range issues {
			if i == 10 {
				ev = append(ev, fmt.Sprintf("and %d more", len(issues)-10))
				break
			}
			ev = append(ev, fmt.Sprintf("%s %q first seen %s %s", is.ShortID, is.Title, is.FirstSeen.UTC().Format(time.RFC3339), is.Permalink))
		}
		return Result{
			Message:  fmt.Sprintf("%d new Sentry issues in release %s since the deploy at %s (at most %d allowed)", len(issues), d.Version, m.since.UTC().Format(time.RFC3339), s.MaxNewIssues),
			Evidence: strings.Join(ev, "\n"),
		}
	}
	msg := fmt.Sprintf("%d new Sentry issues since the deploy", len(issues))
	if s.MaxErrorRatio > 0 {
		window := now.Sub(m.since)
		if window < time.Second {
			window = time.Second
		}
		after, err := s.Source.ErrorCount(ctx, m.since, now, extra)
		if err != nil {
			return s.unavailable(err)
		}
		before, err := s.Source.ErrorCount(ctx, m.since.Add(-window), m.since, extra)
		if err != nil {
			return s.unavailable(err)
		}
		ratio := float64(after) / float64(max(before, 1))
		msg += fmt.Sprintf("; %d errors in the %s since the deploy against %d before (%.1fx)", after, window.Round(time.Second), before, ratio)
		if after >= s.MinEvents && ratio > s.MaxErrorRatio {
			return Result{Message: fmt.Sprintf("error rate rose %.1fx after the deploy (at most %.1fx allowed): %d errors in the %s since it, %d in the %s before", ratio, s.MaxErrorRatio, after, window.Round(time.Second), before, window.Round(time.Second)),
				Evidence: msg}
		}
	}
	return Result{OK: true, Message: msg}
}

func (s *Sentry) unavailable(err error) Result {
	if s.Source.Unavailable(err) && s.OnUnavailable == "warn" {
		return Result{OK: true, Warning: true, Message: "Sentry could not be checked (on_unavailable = \"warn\"): " + err.Error()}
	}
	if s.Source.Unavailable(err) {
		return Result{Message: "Sentry could not be checked, and no evidence is not health (set on_unavailable = \"warn\" to accept that): " + err.Error(), Evidence: err.Error()}
	}
	return Result{Message: "Sentry query failed: " + err.Error(), Evidence: err.Error()}
}
