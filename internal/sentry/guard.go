package sentry

import (
	"context"
	"time"

	"github.com/canaryops/terraform-provider-canary/runner/guard"
)

// GuardSource adapts the client to what the Sentry guard queries.
func GuardSource(c *Client) guard.SentrySource { return guardSource{c} }

type guardSource struct{ c *Client }

func (s guardSource) NewIssues(ctx context.Context, since time.Time, release, extra string) ([]guard.SentryIssue, error) {
	issues, err := s.c.NewIssues(ctx, since, Query{Release: release, Extra: extra})
	if err != nil {
		return nil, err
	}
	out := make([]guard.SentryIssue, len(issues))
	for i, is := range issues {
		out[i] = guard.SentryIssue{ShortID: is.ShortID, Title: is.Title, Permalink: is.Permalink, FirstSeen: is.FirstSeen, Count: is.Count}
	}
	return out, nil
}

func (s guardSource) ErrorCount(ctx context.Context, start, end time.Time, extra string) (int, error) {
	return s.c.ErrorCount(ctx, start, end, Query{Extra: extra})
}

func (s guardSource) Unavailable(err error) bool { return IsUnavailable(err) }
