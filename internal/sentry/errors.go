package sentry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// APIError is a non-2xx answer from the Sentry API. Its message names the request, the
// status, Sentry's detail and what to check; it never contains the auth token.
type APIError struct {
	Status   int
	Method   string
	Endpoint string // the path, e.g. /api/0/organizations/acme/issues/ (no query)
	Detail   string // Sentry's "detail" message, redacted and shortened
	// Retries is how many times the request was retried before this answer.
	Retries int
	// DeadlineCut is set when a retry was abandoned because its wait would outlive the
	// caller's deadline.
	DeadlineCut bool

	org, project string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sentry: %s %s: %d %s", e.Method, e.Endpoint, e.Status, http.StatusText(e.Status))
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if h := e.hint(); h != "" {
		b.WriteString("; ")
		b.WriteString(h)
	}
	return b.String()
}

func (e *APIError) hint() string {
	retried := ""
	switch {
	case e.DeadlineCut:
		retried = fmt.Sprintf(" (gave up after %d retries: the next wait would pass the deadline)", e.Retries)
	case e.Retries > 0:
		retried = fmt.Sprintf(" after %d retries", e.Retries)
	}
	switch s := e.Status; {
	case s == http.StatusBadRequest:
		return "Sentry rejected the request: check the search terms in the guard's query and the sentry.environment value"
	case s == http.StatusUnauthorized:
		return "check sentry.auth_token: it is missing, mistyped, expired or revoked (create one under Settings > Developer Settings > Auth Tokens)"
	case s == http.StatusForbidden:
		return fmt.Sprintf("check that sentry.auth_token has the needed scopes (event:read and org:read for queries, project:releases for releases and deploys) and that its user can access organization %q and project %q", e.org, e.project)
	case s == http.StatusNotFound:
		return fmt.Sprintf("check sentry.org (%q) and sentry.project (%q): they must be slugs that exist and that the token can see; for self-hosted Sentry check sentry.api_url", e.org, e.project)
	case s == http.StatusTooManyRequests:
		return "rate limited by Sentry" + retried + ": lower how often the guard runs (interval) or retry later"
	case s >= 500:
		return "Sentry is unavailable" + retried + ": retry later; until it answers there is no evidence either way"
	}
	return ""
}

// TransportError is a request that got no HTTP answer: a network failure, a timeout, or the
// caller's context ending.
type TransportError struct {
	Method, Endpoint string
	Err              error
}

func (e *TransportError) Error() string {
	hint := "check sentry.api_url and that Sentry is reachable from here"
	if errors.Is(e.Err, context.Canceled) {
		hint = "the operation was cancelled"
	} else if errors.Is(e.Err, context.DeadlineExceeded) {
		hint = "Sentry did not answer in time"
	}
	return fmt.Sprintf("sentry: %s %s: %v; %s", e.Method, e.Endpoint, e.Err, hint)
}

func (e *TransportError) Unwrap() error { return e.Err }

// IsUnavailable reports whether err means Sentry could not give an answer, so there is no
// evidence either way: network errors, timeouts, 429 after the retries, and 5xx. Whether that
// fails a guard or only warns is the guard's decision. Configuration mistakes (401, 403, 404,
// 400) and cancellation are not "unavailable".
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Status == http.StatusTooManyRequests || apiErr.Status >= 500
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var terr *TransportError
	if errors.As(err, &terr) {
		return true
	}
	var nerr net.Error
	return errors.As(err, &nerr)
}
