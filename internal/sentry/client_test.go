package sentry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canaryops/terraform-provider-canary/internal/sentry/sentrytest"
)

const testToken = "sntryu_0123456789abcdef-super-secret"

// sleeps records the waits a client asked for, without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.d)
}

func newServer(t *testing.T, opts sentrytest.Options) *sentrytest.Server {
	t.Helper()
	if opts.Token == "" {
		opts.Token = testToken
	}
	return sentrytest.New(t, opts)
}

// newClient returns a client for srv whose retry waits are recorded, not slept.
func newClient(t *testing.T, srv *sentrytest.Server, mut func(*Config)) (*Client, *sleeps) {
	t.Helper()
	cfg := Config{APIURL: srv.URL(), AuthToken: srv.Token(), Org: srv.Org(), Project: srv.Project(), Environment: "production"}
	if mut != nil {
		mut(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	sl := &sleeps{}
	c.sleep = sl.sleep
	return c, sl
}

// requestsTo returns the recorded requests whose path ends in suffix.
func requestsTo(srv *sentrytest.Server, suffix string) []sentrytest.Request {
	var out []sentrytest.Request
	for _, r := range srv.Requests() {
		if strings.HasSuffix(r.Path, suffix) {
			out = append(out, r)
		}
	}
	return out
}

func noToken(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), testToken) {
		t.Fatalf("error leaks the auth token: %v", err)
	}
}

var deployAt = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func TestNewIssuesFilters(t *testing.T) {
	srv := newServer(t, sentrytest.Options{})
	seed := []sentrytest.Issue{
		{ID: "1", ShortID: "AGENT-1", Title: "panic: nil map", Level: "fatal", Count: 7, FirstSeen: deployAt.Add(10 * time.Minute), LastSeen: deployAt.Add(40 * time.Minute), Release: "v2", Environment: "production", Tags: map[string]string{"server_name": "agent-1"}},
		{ID: "2", Title: "old issue, still happening", FirstSeen: deployAt.Add(-2 * time.Hour), LastSeen: deployAt.Add(5 * time.Minute), Release: "v2", Environment: "production", Tags: map[string]string{"server_name": "agent-1"}},
		{ID: "3", Title: "previous release", FirstSeen: deployAt.Add(5 * time.Minute), Release: "v1", Environment: "production", Tags: map[string]string{"server_name": "agent-1"}},
		{ID: "4", Title: "staging only", FirstSeen: deployAt.Add(5 * time.Minute), Release: "v2", Environment: "staging", Tags: map[string]string{"server_name": "agent-1"}},
		{ID: "5", Title: "other host", FirstSeen: deployAt.Add(20 * time.Minute), Release: "v2", Environment: "production", Tags: map[string]string{"server_name": "agent-2"}},
	}
	for _, is := range seed {
		srv.AddIssue(is)
	}
	c, _ := newClient(t, srv, nil)
	c.now = func() time.Time { return deployAt.Add(time.Hour) }
	ctx := context.Background()

	got, err := c.NewIssues(ctx, deployAt, Query{Release: "v2", Extra: "server_name:agent-1"})
	if err != nil {
		t.Fatalf("NewIssues: %v", err)
	}
	if len(got) != 1 || got[0].ID != "1" {
		t.Fatalf("NewIssues = %+v, want only issue 1", got)
	}
	is := got[0]
	if is.ShortID != "AGENT-1" || is.Title != "panic: nil map" || is.Level != "fatal" || is.Count != 7 ||
		!is.FirstSeen.Equal(deployAt.Add(10*time.Minute)) || !is.LastSeen.Equal(deployAt.Add(40*time.Minute)) || is.Permalink == "" {
		t.Errorf("issue fields = %+v", is)
	}

	got, err = c.NewIssues(ctx, deployAt, Query{Release: "v2"})
	if err != nil {
		t.Fatalf("NewIssues without extra: %v", err)
	}
	var ids []string
	for _, is := range got {
		ids = append(ids, is.ID)
	}
	if want := []string{"5", "1"}; !slices.Equal(ids, want) {
		t.Errorf("NewIssues(release v2) ids = %v, want %v (newest first)", ids, want)
	}

	// The project id was looked up once and sent as the numeric project filter.
	if n := len(requestsTo(srv, "/projects/acme/agent/")); n != 1 {
		t.Errorf("project lookups = %d, want 1", n)
	}
	reqs := requestsTo(srv, "/organizations/acme/issues/")
	if len(reqs) != 2 {
		t.Fatalf("issue requests = %d, want 2", len(reqs))
	}
	q := reqs[0].Query
	if !reqs[0].HasAuth || !reqs[0].AuthValid || reqs[0].Method != http.MethodGet {
		t.Errorf("request auth/method = %+v", reqs[0])
	}
	if q.Get("project") != srv.ProjectID() || q.Get("environment") != "production" {
		t.Errorf("project/environment = %q/%q", q.Get("project"), q.Get("environment"))
	}
	if q.Get("start") != "2026-03-10T12:00:00.000" || q.Get("end") != "2026-03-10T13:00:00.000" {
		t.Errorf("start/end = %q/%q", q.Get("start"), q.Get("end"))
	}
	if want := "firstSeen:>=2026-03-10T12:00:00Z release:v2 server_name:agent-1"; q.Get("query") != want {
		t.Errorf("query = %q, want %q", q.Get("query"), want)
	}
}

func TestNewIssuesWithoutEnvironmentAndQuotedRelease(t *testing.T) {
	srv := newServer(t, sentrytest.Options{})
	srv.AddIssue(sentrytest.Issue{ID: "1", Title: "a", FirstSeen: deployAt.Add(time.Minute), Release: "agent 2.0 rc1", Environment: "production"})
	srv.AddIssue(sentrytest.Issue{ID: "2", Title: "b", FirstSeen: deployAt.Add(time.Minute), Release: "agent 2.0 rc1", Environment: "staging"})
	c, _ := newClient(t, srv, func(c *Config) { c.Environment = "" })
	c.now = func() time.Time { return deployAt.Add(time.Hour) }
	got, err := c.NewIssues(context.Background(), deployAt, Query{Release: "agent 2.0 rc1"})
	if err != nil {
		t.Fatalf("NewIssues: %v", err)
	}
	if len(got) != 2 {
		t.Errorf("got %d issues, want 2 (no environment filter)", len(got))
	}
	r := requestsTo(srv, "/issues/")[0]
	if _, has := r.Query["environment"]; has {
		t.Errorf("environment sent although unset: %v", r.Query)
	}
	if want := `firstSeen:>=2026-03-10T12:00:00Z release:"agent 2.0 rc1"`; r.Query.Get("query") != want {
		t.Errorf("query = %q, want %q", r.Query.Get("query"), want)
	}
}

func TestNewIssuesPagination(t *testing.T) {
	srv := newServer(t, sentrytest.Options{PageSize: 2})
	for i := range 5 {
		srv.AddIssue(sentrytest.Issue{ID: fmt.Sprint(i + 1), Title: fmt.Sprint("issue ", i+1), FirstSeen: deployAt.Add(time.Duration(i+1) * time.Minute), Release: "v2", Environment: "production"})
	}
	c, _ := newClient(t, srv, nil)
	c.now = func() time.Time { return deployAt.Add(time.Hour) }

	got, err := c.NewIssues(context.Background(), deployAt, Query{Release: "v2"})
	if err != nil {
		t.Fatalf("NewIssues: %v", err)
	}
	var ids []string
	for _, is := range got {
		ids = append(ids, is.ID)
	}
	if want := []string{"5", "4", "3", "2", "1"}; !slices.Equal(ids, want) {
		t.Errorf("ids = %v, want %v", ids, want)
	}
	reqs := requestsTo(srv, "/issues/")
	var cursors []string
	for _, r := range reqs {
		cursors = append(cursors, r.Query.Get("cursor"))
		if r.Query.Get("query") != reqs[0].Query.Get("query") || r.Query.Get("project") != srv.ProjectID() {
			t.Errorf("page request lost its filters: %v", r.Query)
		}
	}
	if want := []string{"", "0:2:0", "0:4:0"}; !slices.Equal(cursors, want) {
		t.Errorf("cursors = %q, want %q (3 pages)", cursors, want)
	}

	// MaxPages bounds the walk.
	c2, _ := newClient(t, srv, func(c *Config) { c.MaxPages = 2 })
	c2.now = c.now
	got, err = c2.NewIssues(context.Background(), deployAt, Query{Release: "v2"})
	if err != nil {
		t.Fatalf("NewIssues with MaxPages 2: %v", err)
	}
	if len(got) != 4 {
		t.Errorf("MaxPages 2 returned %d issues, want 4", len(got))
	}
}

func TestErrorCount(t *testing.T) {
	srv := newServer(t, sentrytest.Options{})
	srv.AddErrorEvents(3, deployAt.Add(-30*time.Minute), "v1", "production", map[string]string{"server_name": "agent-1"})
	srv.AddErrorEvents(100, deployAt.Add(-3*time.Hour), "v1", "production", nil) // outside both windows
	srv.AddErrorEvents(5, deployAt.Add(10*time.Minute), "v2", "production", map[string]string{"server_name": "agent-1"})
	srv.AddErrorEvents(4, deployAt.Add(20*time.Minute), "v2", "production", map[string]string{"server_name": "agent-2"})
	srv.AddErrorEvents(2, deployAt.Add(10*time.Minute), "v2", "staging", map[string]string{"server_name": "agent-1"})
	srv.AddErrorEvents(6, deployAt.Add(time.Hour), "v2", "production", nil) // at end: [start, end) excludes it
	c, _ := newClient(t, srv, nil)
	ctx := context.Background()

	cases := []struct {
		name       string
		start, end time.Time
		q          Query
		want       int
	}{
		{"before", deployAt.Add(-time.Hour), deployAt, Query{}, 3},
		{"after", deployAt, deployAt.Add(time.Hour), Query{}, 9},
		{"after, release", deployAt, deployAt.Add(time.Hour), Query{Release: "v2"}, 9},
		{"after, old release", deployAt, deployAt.Add(time.Hour), Query{Release: "v1"}, 0},
		{"after, one host", deployAt, deployAt.Add(time.Hour), Query{Extra: "server_name:agent-2"}, 4},
		{"before, one host", deployAt.Add(-time.Hour), deployAt, Query{Extra: "server_name:agent-1"}, 3},
	}
	for _, tc := range cases {
		got, err := c.ErrorCount(ctx, tc.start, tc.end, tc.q)
		if err != nil {
			t.Fatalf("%s: ErrorCount: %v", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s: ErrorCount = %d, want %d", tc.name, got, tc.want)
		}
	}
	r := requestsTo(srv, "/organizations/acme/events/")[0]
	if r.Query.Get("field") != "count()" || r.Query.Get("dataset") != "errors" || r.Query.Get("project") != srv.ProjectID() ||
		r.Query.Get("environment") != "production" || r.Query.Get("start") == "" || r.Query.Get("end") == "" {
		t.Errorf("events request = %v", r.Query)
	}
	if _, has := r.Query["query"]; has {
		t.Errorf("empty query sent: %v", r.Query)
	}
	if _, err := c.ErrorCount(ctx, deployAt, deployAt, Query{}); err == nil {
		t.Error("ErrorCount accepted an empty window")
	}
}

func TestUnauthorized(t *testing.T) {
	srv := newServer(t, sentrytest.Options{})
	c, sl := newClient(t, srv, func(c *Config) { c.AuthToken = testToken + "-revoked" })
	_, err := c.NewIssues(context.Background(), deployAt, Query{})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
		t.Fatalf("err = %v, want a 401 APIError", err)
	}
	msg := err.Error()
	for _, want := range []string{"GET /api/0/projects/acme/agent/", "401 Unauthorized", "Invalid token", "sentry.auth_token"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	noToken(t, err)
	if IsUnavailable(err) {
		t.Error("a 401 counted as unavailable; it is a configuration error")
	}
	if len(sl.all()) != 0 {
		t.Error("a 401 was retried")
	}
}

func TestForbiddenAndNotFound(t *testing.T) {
	srv := newServer(t, sentrytest.Options{})
	ctx := context.Background()

	c, _ := newClient(t, srv, func(c *Config) { c.Org = "nope" })
	_, err := c.ErrorCount(ctx, deployAt, deployAt.Add(time.Hour), Query{})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Fatalf("unknown org: err = %v, want 404", err)
	}
	if !strings.Contains(err.Error(), `sentry.org ("nope")`) || IsUnavailable(err) {
		t.Errorf("unknown org error = %v", err)
	}

	// An unknown org also fails the write endpoints the same way.
	if err := c.CreateRelease(ctx, "v1"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Errorf("CreateRelease in unknown org: %v", err)
	}

	c, _ = newClient(t, srv, func(c *Config) { c.Project = "ghost" })
	_, err = c.NewIssues(ctx, deployAt, Query{})
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound || !strings.Contains(err.Error(), `sentry.project ("ghost")`) {
		t.Errorf("unknown project: err = %v", err)
	}

	// A numeric project is taken as the id: a foreign one is refused with 403.
	c, _ = newClient(t, srv, func(c *Config) { c.Project = "99" })
	_, err = c.NewIssues(ctx, deployAt, Query{})
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden || !strings.Contains(err.Error(), "scopes") {
		t.Errorf("foreign project id: err = %v", err)
	}
	if n := len(requestsTo(srv, "/projects/acme/99/")); n != 0 {
		t.Errorf("numeric project looked up %d times, want 0", n)
	}
}

func TestRateLimitRetried(t *testing.T) {
	srv := newServer(t, sentrytest.Options{})
	srv.AddErrorEvents(2, deployAt.Add(time.Minute), "v2", "production", nil)
	c, sl := newClient(t, srv, nil)
	srv.FailNext(2, http.StatusTooManyRequests, "1")
	n, err := c.ErrorCount(context.Background(), deployAt, deployAt.Add(time.Hour), Query{})
	if err != nil || n != 2 {
		t.Fatalf("ErrorCount = %d, %v; want 2 after the retries", n, err)
	}
	if got := sl.all(); !slices.Equal(got, []time.Duration{time.Second, time.Second}) {
		t.Errorf("waits = %v, want Retry-After's 1s twice", got)
	}
	var statuses []int
	for _, r := range srv.Requests() {
		statuses = append(statuses, r.Status)
	}
	if want := []int{429, 429, 200, 200}; !slices.Equal(statuses, want) {
		t.Errorf("statuses = %v, want %v", statuses, want)
	}
}

func TestRateLimitGivesUp(t *testing.T) {
	srv := newServer(t, sentrytest.Options{})
	c, sl := newClient(t, srv, func(c *Config) { c.MaxRetries = 2 })
	srv.FailNext(10, http.StatusTooManyRequests, "120")
	_, err := c.NewIssues(context.Background(), deployAt, Query{})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusTooManyRequests || apiErr.Retries != 2 {
		t.Fatalf("err = %v, want 429 after 2 retries", err)
	}
	if !IsUnavailable(err) {
		t.Error("429 after retries is not unavailable")
	}
	if !strings.Contains(err.Error(), "rate limited by Sentry after 2 retries") {
		t.Errorf("error = %v", err)
	}
	if got := sl.all(); !slices.Equal(got, []time.Duration{maxRetryWait, maxRetryWait}) {
		t.Errorf("waits = %v, want Retry-After capped at %v", got, maxRetryWait)
	}
	if n := len(srv.Requests()); n != 3 {
		t.Errorf("attempts = %d, want 3", n)
	}
}

func TestServerErrorsRetried(t *testing.T) {
	srv := newServer(t, sentrytest.Options{})
	c, sl := newClient(t, srv, nil)
	srv.FailNext(1, http.StatusInternalServerError, "")
	if _, err := c.NewIssues(context.Background(), deployAt, Query{}); err != nil {
		t.Fatalf("NewIssues after one 500: %v", err)
	}
	waits := sl.all()
	if len(waits) != 1 || waits[0] < baseBackoff || waits[0] > baseBackoff*6/5 {
		t.Errorf("waits = %v, want one backoff of about %v", waits, baseBackoff)
	}

	srv.FailNext(4, http.StatusServiceUnavailable, "")
	_, err := c.NewIssues(context.Background(), deployAt, Query{})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable || !IsUnavailable(err) {
		t.Fatalf("err = %v, want unavailable 503", err)
	}
	if !strings.Contains(err.Error(), "Sentry is unavailable after 3 retries") {
		t.Errorf("error = %v", err)
	}
	if got := sl.all()[1:]; len(got) != 3 || got[1] <= got[0] || got[2] <= got[1] {
		t.Errorf("backoff waits = %v, want 3 growing waits", got)
	}

	// A Retry-After date is honoured too.
	srv.FailNext(1, http.StatusServiceUnavailable, time.Now().Add(3*time.Second).UTC().Format(http.TimeFormat))
	if _, err := c.NewIssues(context.Background(), deployAt, Query{}); err != nil {
		t.Fatalf("NewIssues after a 503 with a date: %v", err)
	}
	if w := sl.all()[4]; w <= time.Second || w > 3*time.Second {
		t.Errorf("wait for a Retry-After date 3s ahead = %v", w)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1", time.Second, true},
		{"0", 0, true},
		{"2.5", 2500 * time.Millisecond, true},
		{"3600", maxRetryWait, true},
		{now.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second, true},
		{now.Add(-10 * time.Second).Format(http.TimeFormat), 0, true},
		{"", 0, false},
		{"soon", 0, false},
		{"-4", 0, false},
	}
	for _, tc := range cases {
		got, ok := retryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestContextCancellation(t *testing.T) {
	srv := newServer(t, sentrytest.Options{})

	// Cancelled before the call.
	c, _ := newClient(t, srv, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.NewIssues(ctx, deployAt, Query{})
	if !errors.Is(err, context.Canceled) || IsUnavailable(err) {
		t.Errorf("cancelled: err = %v, IsUnavailable = %v", err, IsUnavailable(err))
	}
	noToken(t, err)

	// Cancelled while waiting out a Retry-After, with the real clock.
	c, _ = newClient(t, srv, nil)
	c.sleep = sleepCtx
	srv.FailNext(1, http.StatusTooManyRequests, "20")
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	began := time.Now()
	_, err = c.ErrorCount(ctx, deployAt, deployAt.Add(time.Hour), Query{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled during the wait: err = %v", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("cancellation took %v", d)
	}

	// A deadline shorter than Retry-After: give up at once, as unavailable.
	srv.FailNext(1, http.StatusTooManyRequests, "20")
	ctx, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	began = time.Now()
	_, err = c.ErrorCount(ctx, deployAt, deployAt.Add(time.Hour), Query{})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || !apiErr.DeadlineCut || !IsUnavailable(err) {
		t.Errorf("deadline: err = %v", err)
	}
	if d := time.Since(began); d > time.Second {
		t.Errorf("deadline cut took %v", d)
	}
}

func TestNetworkFailure(t *testing.T) {
	srv := newServer(t, sentrytest.Options{})
	c, sl := newClient(t, srv, nil)
	srv.Close()
	_, err := c.NewIssues(context.Background(), deployAt, Query{})
	if err == nil || !IsUnavailable(err) {
		t.Fatalf("err = %v, want unavailable", err)
	}
	if !strings.Contains(err.Error(), "sentry.api_url") {
		t.Errorf("error %q does not point at sentry.api_url", err)
	}
	if n := len(sl.all()); n != 3 {
		t.Errorf("GET retried %d times, want 3", n)
	}
	noToken(t, err)

	// Writes are not retried after a network failure.
	c, sl = newClient(t, srv, nil)
	if err := c.CreateRelease(context.Background(), "v1"); err == nil || !IsUnavailable(err) {
		t.Errorf("CreateRelease err = %v", err)
	}
	if n := len(sl.all()); n != 0 {
		t.Errorf("POST retried %d times after a network failure", n)
	}
}

func TestReleaseAndDeploy(t *testing.T) {
	srv := newServer(t, sentrytest.Options{})
	c, _ := newClient(t, srv, nil)
	ctx := context.Background()
	const version = "agent@2.0.0 rc1+b7"

	for range 2 {
		if err := c.CreateRelease(ctx, version); err != nil {
			t.Fatalf("CreateRelease: %v", err)
		}
	}
	rels := srv.Releases()
	if len(rels) != 1 || rels[0].Version != version || !slices.Equal(rels[0].Projects, []string{"agent"}) {
		t.Fatalf("releases = %+v, want one for project agent", rels)
	}
	var statuses []int
	for _, r := range requestsTo(srv, "/organizations/acme/releases/") {
		statuses = append(statuses, r.Status)
	}
	if !slices.Equal(statuses, []int{201, 208}) {
		t.Errorf("release statuses = %v, want [201 208]", statuses)
	}

	started, finished := deployAt, deployAt.Add(90*time.Second+123*time.Millisecond)
	if err := c.CreateDeploy(ctx, version, "canary stage 1", started, finished); err != nil {
		t.Fatalf("CreateDeploy: %v", err)
	}
	deps := srv.Deploys()
	if len(deps) != 1 {
		t.Fatalf("deploys = %+v", deps)
	}
	d := deps[0]
	if d.Version != version || d.Environment != "production" || d.Name != "canary stage 1" ||
		!d.DateStarted.Equal(started) || !d.DateFinished.Equal(finished) || !slices.Equal(d.Projects, []string{"agent"}) {
		t.Errorf("deploy = %+v", d)
	}

	// A deploy of a release Sentry does not know is a 404.
	err := c.CreateDeploy(ctx, "never-released", "", time.Time{}, time.Time{})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Errorf("deploy of unknown release: %v", err)
	}

	// Local checks: Sentry needs an environment, and valid versions.
	cNoEnv, _ := newClient(t, srv, func(c *Config) { c.Environment = "" })
	if err := cNoEnv.CreateDeploy(ctx, version, "", time.Time{}, time.Time{}); err == nil || !strings.Contains(err.Error(), "sentry.environment") {
		t.Errorf("deploy without environment: %v", err)
	}
	for _, bad := range []string{"", "a/b", "latest", "..", "x\ny"} {
		if err := c.CreateRelease(ctx, bad); err == nil {
			t.Errorf("CreateRelease(%q) accepted", bad)
		}
	}
	if n := len(srv.Releases()); n != 1 {
		t.Errorf("invalid versions reached the server: %d releases", n)
	}
}

func TestTokenNeverLeaks(t *testing.T) {
	cfg := Config{APIURL: "https://sentry.example.com", AuthToken: testToken, Org: "acme", Project: "agent"}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(f, cfg); strings.Contains(s, testToken) || !strings.Contains(s, "[redacted]") {
			t.Errorf("Sprintf(%q, cfg) = %s", f, s)
		}
		if s := fmt.Sprintf(f, &cfg); strings.Contains(s, testToken) {
			t.Errorf("Sprintf(%q, &cfg) leaks the token", f)
		}
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"%v", "%+v", "%#v"} {
		if s := fmt.Sprintf(f, c); strings.Contains(s, testToken) {
			t.Errorf("Sprintf(%q, client) leaks the token: %s", f, s)
		}
	}

	// A server that echoes the Authorization header in its error detail.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"detail": "token %s lacks scope event:read"}`, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	}))
	defer echo.Close()
	cfg.APIURL = echo.URL
	c, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.NewIssues(context.Background(), deployAt, Query{})
	if err == nil || !strings.Contains(err.Error(), "token [redacted] lacks scope") {
		t.Errorf("err = %v, want the echoed token redacted", err)
	}
	noToken(t, err)

	// And none of the failure paths against the contract server mention it.
	srv := newServer(t, sentrytest.Options{})
	cl, _ := newClient(t, srv, nil)
	srv.FailNext(4, http.StatusBadGateway, "")
	_, err = cl.NewIssues(context.Background(), deployAt, Query{})
	noToken(t, err)
	_, err = cl.ErrorCount(context.Background(), deployAt, deployAt.Add(time.Hour), Query{Extra: "bad:\"unterminated"})
	if err == nil {
		t.Error("a malformed search query was accepted")
	}
	noToken(t, err)
}

func TestNewValidation(t *testing.T) {
	ok := Config{APIURL: "https://sentry.io", AuthToken: testToken, Org: "acme", Project: "agent"}
	cases := []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.APIURL = "" }, "sentry.api_url is empty"},
		{func(c *Config) { c.APIURL = "sentry.io" }, "sentry.api_url"},
		{func(c *Config) { c.APIURL = "ftp://sentry.io" }, "sentry.api_url"},
		{func(c *Config) { c.APIURL = "https://user:pw@sentry.io" }, "must not contain credentials"},
		{func(c *Config) { c.AuthToken = "" }, "sentry.auth_token is empty"},
		{func(c *Config) { c.AuthToken = "Bearer " + testToken }, "sentry.auth_token contains whitespace"},
		{func(c *Config) { c.Org = " " }, "sentry.org is empty"},
		{func(c *Config) { c.Project = "" }, "sentry.project is empty"},
	}
	for _, tc := range cases {
		cfg := ok
		tc.mut(&cfg)
		_, err := New(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%v) = %v, want an error with %q", cfg, err, tc.want)
		}
		noToken(t, err)
		if err != nil && strings.Contains(err.Error(), "pw@") {
			t.Errorf("error leaks URL credentials: %v", err)
		}
	}
	for in, want := range map[string]string{
		"https://sentry.io":                     "https://sentry.io",
		"https://sentry.io/":                    "https://sentry.io",
		"https://sentry.io/api/0/":              "https://sentry.io",
		"http://127.0.0.1:9000/sentry/api/0":    "http://127.0.0.1:9000/sentry",
		"https://sentry.example.com/prefix//":   "https://sentry.example.com/prefix",
		"https://sentry.example.com:8443/api/0": "https://sentry.example.com:8443",
	} {
		cfg := ok
		cfg.APIURL = in
		c, err := New(cfg)
		if err != nil || c.base != want {
			t.Errorf("APIURL %q: base = %v, %v; want %q", in, c, err, want)
		}
	}
}

func TestParseLinks(t *testing.T) {
	// The example from docs.sentry.io/api/pagination.
	h := `<https://sentry.io/api/0/organizations/acme/issues/123456/events/?&cursor=0:0:1>; rel="previous"; results="false"; cursor="0:0:1", ` +
		`<https://sentry.io/api/0/organizations/acme/issues/123456/events/?&cursor=0:100:0>; rel="next"; results="true"; cursor="0:100:0"`
	links := parseLinks(h)
	if len(links) != 2 || links[0].params["rel"] != "previous" || links[1].params["cursor"] != "0:100:0" ||
		links[1].url != "https://sentry.io/api/0/organizations/acme/issues/123456/events/?&cursor=0:100:0" {
		t.Fatalf("parseLinks = %+v", links)
	}
	hdr := http.Header{"Link": {h}}
	if cur, ok := nextCursor(hdr); !ok || cur != "0:100:0" {
		t.Errorf("nextCursor = %q, %v", cur, ok)
	}
	hdr = http.Header{"Link": {strings.Replace(h, `results="true"`, `results="false"`, 1)}}
	if _, ok := nextCursor(hdr); ok {
		t.Error("results=false still paged")
	}
	// No cursor attribute: fall back to the URL's cursor parameter.
	hdr = http.Header{"Link": {`<https://sentry.io/x/?cursor=1:2:0>; rel="next"; results="true"`}}
	if cur, ok := nextCursor(hdr); !ok || cur != "1:2:0" {
		t.Errorf("nextCursor from URL = %q, %v", cur, ok)
	}
	if _, ok := nextCursor(http.Header{}); ok {
		t.Error("no Link header still paged")
	}
}

func TestIsUnavailable(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("plain"), false},
		{&APIError{Status: 400}, false},
		{&APIError{Status: 401}, false},
		{&APIError{Status: 403}, false},
		{&APIError{Status: 404}, false},
		{&APIError{Status: 429}, true},
		{&APIError{Status: 500}, true},
		{&APIError{Status: 504}, true},
		{fmt.Errorf("wrapped: %w", &APIError{Status: 502}), true},
		{&TransportError{Err: errors.New("connection refused")}, true},
		{&TransportError{Err: context.DeadlineExceeded}, true},
		{&TransportError{Err: context.Canceled}, false},
		{context.DeadlineExceeded, true},
	}
	for _, tc := range cases {
		if got := IsUnavailable(tc.err); got != tc.want {
			t.Errorf("IsUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
