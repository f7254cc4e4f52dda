// Package sentrytest is a local contract server for the parts of Sentry the provider uses:
// the REST endpoints of the internal/sentry client and the envelope ingestion endpoint that
// sentry-go posts to. It follows Sentry's documented request and response shapes
// (docs.sentry.io/api, develop.sentry.dev/sdk/envelopes) and is strict where Sentry is:
// bearer auth, numeric project ids, start/end pairs, JSON bodies, DSN keys. Tests seed issues
// and error events, inject failures, and inspect what the client sent.
package sentrytest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configure a Server. Zero values get defaults.
type Options struct {
	Org       string // organization slug; default "acme"
	Project   string // project slug; default "agent"
	ProjectID string // numeric project id; default "4505"
	Token     string // the valid auth token; default a random one
	PageSize  int    // issues per page; default 25 (as Sentry's issue list)
}

// Issue is a seeded issue.
type Issue struct {
	ID, ShortID, Title, Level string
	FirstSeen, LastSeen       time.Time
	Release, Environment      string
	Tags                      map[string]string
	Count                     int
}

// Release is a release the server received.
type Release struct {
	Version  string
	Projects []string
	Created  time.Time
}

// Deploy is a deploy the server received.
type Deploy struct {
	Version, Environment, Name string
	Projects                   []string
	DateStarted, DateFinished  time.Time
}

// Event is an event that arrived in an envelope.
type Event struct {
	EventID, Level, Message, Release, Environment string
	Tags                                          map[string]string
	Timestamp                                     time.Time
}

// Request is one API request the server received (not envelopes). The token itself is not
// kept: only whether an Authorization header was present and whether it was the valid one.
type Request struct {
	Method, Path string
	Query        url.Values
	HasAuth      bool // an "Authorization: Bearer ..." header was sent
	AuthValid    bool // ... and it carried the server's token
	Status       int  // what the server answered
}

type errorEvents struct {
	n                    int
	at                   time.Time
	release, environment string
	tags                 map[string]string
}

type failure struct {
	status     int
	retryAfter string
}

// Server is the contract server.
type Server struct {
	srv  *httptest.Server
	opts Options
	key  string // DSN public key

	mu         sync.Mutex
	issues     []Issue
	errors     []errorEvents
	releases   []Release
	deploys    []Deploy
	events     []Event
	requests   []Request
	fail       []failure
	envelopes  int
	rejections []string
}

// New starts a server; t.Cleanup closes it.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Org == "" {
		opts.Org = "acme"
	}
	if opts.Project == "" {
		opts.Project = "agent"
	}
	if opts.ProjectID == "" {
		opts.ProjectID = "4505"
	}
	if opts.Token == "" {
		opts.Token = "sntryu_" + randHex(32)
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 25
	}
	s := &Server{opts: opts, key: randHex(16)}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// URL is the API base URL (the client appends /api/0/...).
func (s *Server) URL() string { return s.srv.URL }

// DSN is the project DSN sentry-go reports to.
func (s *Server) DSN() string {
	u, _ := url.Parse(s.srv.URL)
	return fmt.Sprintf("http://%s@%s/%s", s.key, u.Host, s.opts.ProjectID)
}

// Token is the valid auth token.
func (s *Server) Token() string { return s.opts.Token }

// Org, Project and ProjectID are the served organization and project.
func (s *Server) Org() string       { return s.opts.Org }
func (s *Server) Project() string   { return s.opts.Project }
func (s *Server) ProjectID() string { return s.opts.ProjectID }

// Close stops the server early (a test of an unreachable Sentry).
func (s *Server) Close() { s.srv.Close() }

// AddIssue seeds an issue. Missing ID, ShortID, Level, LastSeen and Count get defaults.
func (s *Server) AddIssue(i Issue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.issues) + 1
	if i.ID == "" {
		i.ID = strconv.Itoa(1000 + n)
	}
	if i.ShortID == "" {
		i.ShortID = strings.ToUpper(s.opts.Project) + "-" + strconv.Itoa(n)
	}
	if i.Level == "" {
		i.Level = "error"
	}
	if i.LastSeen.IsZero() {
		i.LastSeen = i.FirstSeen
	}
	if i.Count == 0 {
		i.Count = 1
	}
	i.Tags = cloneMap(i.Tags)
	s.issues = append(s.issues, i)
}

// AddErrorEvents seeds n error events at the given time.
func (s *Server) AddErrorEvents(n int, at time.Time, release, environment string, tags map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errors = append(s.errors, errorEvents{n: n, at: at, release: release, environment: environment, tags: cloneMap(tags)})
}

// FailNext makes the next n API requests answer status, with a Retry-After header when
// retryAfter is not empty (e.g. 429 with "1", or 503).
func (s *Server) FailNext(n int, status int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.fail = append(s.fail, failure{status: status, retryAfter: retryAfter})
	}
}

// Releases returns the releases received, oldest first.
func (s *Server) Releases() []Release {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.releases)
}

// Deploys returns the deploys received, oldest first.
func (s *Server) Deploys() []Deploy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deploys)
}

// Events returns the events received through the envelope endpoint, oldest first.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// EnvelopeRejections returns why envelopes were refused (bad key, bad format ...).
func (s *Server) EnvelopeRejections() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.rejections)
}

// Requests returns the API requests received, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Query = cloneValues(r.Query)
		out[i] = r
	}
	return out
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// writeJSON answers status with a JSON body, plus the rate-limit headers Sentry documents.
func writeJSON(w http.ResponseWriter, status int, body any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Sentry-Rate-Limit-Limit", "40")
	h.Set("X-Sentry-Rate-Limit-Remaining", "39")
	h.Set("X-Sentry-Rate-Limit-Reset", strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10))
	h.Set("X-Sentry-Rate-Limit-ConcurrentLimit", "25")
	h.Set("X-Sentry-Rate-Limit-ConcurrentRemaining", "24")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func detail(msg string) map[string]string { return map[string]string{"detail": msg} }

const notFound = "The requested resource does not exist"

// statusRecorder notes the status the handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/api/") && strings.HasSuffix(r.URL.Path, "/envelope/") && !strings.HasPrefix(r.URL.Path, "/api/0/") {
		s.serveEnvelope(w, r)
		return
	}
	rec := &statusRecorder{ResponseWriter: w}
	req := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query()}
	auth := r.Header.Get("Authorization")
	tok, isBearer := strings.CutPrefix(auth, "Bearer ")
	req.HasAuth = isBearer && tok != ""
	req.AuthValid = req.HasAuth && tok == s.opts.Token
	defer func() {
		req.Status = rec.status
		s.mu.Lock()
		s.requests = append(s.requests, req)
		s.mu.Unlock()
	}()
	s.serveAPI(rec, r, req)
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, req Request) {
	if !strings.HasPrefix(r.URL.Path, "/api/0/") {
		writeJSON(w, http.StatusNotFound, detail(notFound))
		return
	}
	// Injected failures come first, as an overloaded or rate-limiting Sentry answers before
	// looking at the request.
	s.mu.Lock()
	var f *failure
	if len(s.fail) > 0 {
		f = &s.fail[0]
		s.fail = s.fail[1:]
	}
	s.mu.Unlock()
	if f != nil {
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		msg := http.StatusText(f.status)
		if f.status == http.StatusTooManyRequests {
			msg = "You are attempting to use this endpoint too frequently. Limit is 40 requests in 1 seconds"
		}
		writeJSON(w, f.status, detail(msg))
		return
	}
	if !req.HasAuth {
		writeJSON(w, http.StatusUnauthorized, detail("Authentication credentials were not provided."))
		return
	}
	if !req.AuthValid {
		writeJSON(w, http.StatusUnauthorized, detail("Invalid token"))
		return
	}

	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.EscapedPath(), "/api/0/"), "/"), "/")
	for i, p := range parts {
		if u, err := url.PathUnescape(p); err == nil {
			parts[i] = u
		}
	}
	if !strings.HasSuffix(r.URL.Path, "/") {
		// Sentry's routes all end in a slash.
		writeJSON(w, http.StatusNotFound, detail(notFound))
		return
	}
	switch {
	case len(parts) == 3 && parts[0] == "projects":
		if !s.allow(w, r, http.MethodGet) || !s.org(w, parts[1]) {
			return
		}
		s.projectDetails(w, parts[2])
	case len(parts) == 3 && parts[0] == "organizations" && parts[2] == "issues":
		if !s.allow(w, r, http.MethodGet) || !s.org(w, parts[1]) {
			return
		}
		s.listIssues(w, r)
	case len(parts) == 3 && parts[0] == "organizations" && parts[2] == "events":
		if !s.allow(w, r, http.MethodGet) || !s.org(w, parts[1]) {
			return
		}
		s.countEvents(w, r)
	case len(parts) == 3 && parts[0] == "organizations" && parts[2] == "releases":
		if !s.allow(w, r, http.MethodPost) || !s.org(w, parts[1]) {
			return
		}
		s.createRelease(w, r)
	case len(parts) == 5 && parts[0] == "organizations" && parts[2] == "releases" && parts[4] == "deploys":
		if !s.allow(w, r, http.MethodPost) || !s.org(w, parts[1]) {
			return
		}
		s.createDeploy(w, r, parts[3])
	default:
		writeJSON(w, http.StatusNotFound, detail(notFound))
	}
}

func (s *Server) allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method != method {
		w.Header().Set("Allow", method)
		writeJSON(w, http.StatusMethodNotAllowed, detail(fmt.Sprintf("Method %q not allowed.", r.Method)))
		return false
	}
	return true
}

func (s *Server) org(w http.ResponseWriter, slug string) bool {
	if slug != s.opts.Org {
		writeJSON(w, http.StatusNotFound, detail(notFound))
		return false
	}
	return true
}

func (s *Server) projectDetails(w http.ResponseWriter, slug string) {
	if slug != s.opts.Project && slug != s.opts.ProjectID {
		writeJSON(w, http.StatusNotFound, detail(notFound))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id":           s.opts.ProjectID,
		"slug":         s.opts.Project,
		"name":         s.opts.Project,
		"platform":     "go",
		"status":       "active",
		"isMember":     true,
		"organization": map[string]any{"id": "1", "slug": s.opts.Org, "name": s.opts.Org},
	})
}

// checkProjects enforces the documented project parameter: numeric ids (or -1); an id the
// token cannot see is a 403, as in Sentry.
func (s *Server) checkProjects(w http.ResponseWriter, q url.Values) bool {
	for _, p := range q["project"] {
		if _, err := strconv.Atoi(p); err != nil {
			writeJSON(w, http.StatusBadRequest, detail("Invalid project parameter. Values must be numbers."))
			return false
		}
		if p != "-1" && p != s.opts.ProjectID {
			writeJSON(w, http.StatusForbidden, detail("You do not have permission to perform this action."))
			return false
		}
	}
	return true
}

// timeRange reads start/end (both or neither) or statsPeriod. The zero range means "all".
func timeRange(q url.Values) (start, end time.Time, msg string) {
	st, en, period := q.Get("start"), q.Get("end"), q.Get("statsPeriod")
	switch {
	case (st == "") != (en == ""):
		return start, end, "start and end are both required"
	case st != "":
		var err error
		if start, err = parseTime(st); err != nil {
			return start, end, fmt.Sprintf("start: %v", err)
		}
		if end, err = parseTime(en); err != nil {
			return start, end, fmt.Sprintf("end: %v", err)
		}
		if !start.Before(end) {
			return start, end, "start must be before end"
		}
		return start, end, ""
	case period != "":
		d, err := parsePeriod(period)
		if err != nil {
			return start, end, fmt.Sprintf("Invalid statsPeriod: %q", period)
		}
		end = time.Now().UTC()
		return end.Add(-d), end, ""
	}
	return start, end, ""
}

// parseTime accepts ISO-8601 as Sentry does: with a zone, or naive (UTC).
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO-8601 time", s)
}

func parsePeriod(s string) (time.Duration, error) {
	if len(s) < 2 {
		return 0, fmt.Errorf("bad period")
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad period")
	}
	unit := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[s[len(s)-1]]
	if unit == 0 {
		return 0, fmt.Errorf("bad period")
	}
	return time.Duration(n) * unit, nil
}

func envAllowed(q url.Values, env string) bool {
	envs := q["environment"]
	return len(envs) == 0 || slices.Contains(envs, env)
}

func (s *Server) listIssues(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !s.checkProjects(w, q) {
		return
	}
	start, end, msg := timeRange(q)
	if msg != "" {
		writeJSON(w, http.StatusBadRequest, detail(msg))
		return
	}
	query := "is:unresolved" // Sentry's documented default
	if _, set := q["query"]; set {
		query = q.Get("query")
	}
	terms, err := parseSearch(query)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, detail("Error parsing search query: "+err.Error()))
		return
	}
	limit := s.opts.PageSize
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100 {
			writeJSON(w, http.StatusBadRequest, detail("limit must be between 1 and 100"))
			return
		}
		limit = n
	}
	offset, ok := parseCursor(q.Get("cursor"))
	if !ok {
		writeJSON(w, http.StatusBadRequest, detail("Invalid cursor parameter."))
		return
	}

	s.mu.Lock()
	var match []Issue
	for _, is := range s.issues {
		if !envAllowed(q, is.Environment) {
			continue
		}
		if !start.IsZero() && (is.LastSeen.Before(start) || !is.FirstSeen.Before(end)) {
			continue
		}
		if !matchIssue(terms, is) {
			continue
		}
		match = append(match, is)
	}
	s.mu.Unlock()

	switch sortBy := q.Get("sort"); sortBy {
	case "", "date":
		slices.SortStableFunc(match, func(a, b Issue) int { return b.LastSeen.Compare(a.LastSeen) })
	case "new":
		slices.SortStableFunc(match, func(a, b Issue) int { return b.FirstSeen.Compare(a.FirstSeen) })
	case "freq":
		slices.SortStableFunc(match, func(a, b Issue) int { return b.Count - a.Count })
	case "user", "trends", "inbox", "priority":
		// Accepted; the seeded data has nothing to rank by, so keep date order.
		slices.SortStableFunc(match, func(a, b Issue) int { return b.LastSeen.Compare(a.LastSeen) })
	default:
		writeJSON(w, http.StatusBadRequest, detail(fmt.Sprintf("Invalid sort: %q", sortBy)))
		return
	}

	lo := min(offset, len(match))
	hi := min(lo+limit, len(match))
	page := make([]map[string]any, 0, hi-lo)
	for _, is := range match[lo:hi] {
		page = append(page, s.issueJSON(is))
	}
	s.link(w, r, offset, limit, hi < len(match))
	writeJSON(w, http.StatusOK, page)
}

// parseCursor reads Sentry's "value:offset:is_prev" cursor; only the offset matters here.
func parseCursor(c string) (int, bool) {
	if c == "" {
		return 0, true
	}
	f := strings.Split(c, ":")
	if len(f) != 3 {
		return 0, false
	}
	off, err := strconv.Atoi(f[1])
	if err != nil || off < 0 || (f[2] != "0" && f[2] != "1") {
		return 0, false
	}
	if _, err := strconv.ParseFloat(f[0], 64); err != nil {
		return 0, false
	}
	return off, true
}

// link writes Sentry's Link header: always both a previous and a next link, each with
// results="true|false" and its cursor.
func (s *Server) link(w http.ResponseWriter, r *http.Request, offset, limit int, more bool) {
	mk := func(cursor string) string {
		q := r.URL.Query()
		q.Set("cursor", cursor)
		return s.srv.URL + r.URL.Path + "?" + q.Encode()
	}
	prev := fmt.Sprintf("0:%d:1", max(offset-limit, 0))
	next := fmt.Sprintf("0:%d:0", offset+limit)
	w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="previous"; results="%t"; cursor="%s", <%s>; rel="next"; results="%t"; cursor="%s"`,
		mk(prev), offset > 0, prev, mk(next), more, next))
}

func (s *Server) issueJSON(is Issue) map[string]any {
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }
	return map[string]any{
		"id":                  is.ID,
		"shortId":             is.ShortID,
		"title":               is.Title,
		"culprit":             is.Tags["culprit"],
		"permalink":           fmt.Sprintf("%s/organizations/%s/issues/%s/", s.srv.URL, s.opts.Org, is.ID),
		"logger":              nil,
		"level":               is.Level,
		"status":              "unresolved",
		"statusDetails":       map[string]any{},
		"substatus":           "new",
		"isPublic":            false,
		"platform":            "go",
		"project":             map[string]any{"id": s.opts.ProjectID, "name": s.opts.Project, "slug": s.opts.Project, "platform": "go"},
		"type":                "error",
		"metadata":            map[string]any{"title": is.Title},
		"numComments":         0,
		"assignedTo":          nil,
		"isBookmarked":        false,
		"isSubscribed":        false,
		"subscriptionDetails": nil,
		"hasSeen":             false,
		"annotations":         []any{},
		"issueType":           "error",
		"issueCategory":       "error",
		"isUnhandled":         false,
		"count":               strconv.Itoa(is.Count),
		"userCount":           0,
		"firstSeen":           ts(is.FirstSeen),
		"lastSeen":            ts(is.LastSeen),
		"stats":               map[string]any{},
	}
}

func (s *Server) countEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	fields := q["field"]
	if len(fields) == 0 {
		writeJSON(w, http.StatusBadRequest, detail("No columns selected"))
		return
	}
	for _, f := range fields {
		if f != "count()" {
			writeJSON(w, http.StatusBadRequest, detail(fmt.Sprintf("the contract server supports field=count() only, not %q", f)))
			return
		}
	}
	if ds := q.Get("dataset"); ds != "" && ds != "errors" && ds != "discover" {
		writeJSON(w, http.StatusBadRequest, detail(fmt.Sprintf("the contract server serves dataset=errors only, not %q", ds)))
		return
	}
	if !s.checkProjects(w, q) {
		return
	}
	start, end, msg := timeRange(q)
	if msg != "" {
		writeJSON(w, http.StatusBadRequest, detail(msg))
		return
	}
	terms, err := parseSearch(q.Get("query"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, detail("Error parsing search query: "+err.Error()))
		return
	}
	n := 0
	s.mu.Lock()
	for _, e := range s.errors {
		if !envAllowed(q, e.environment) {
			continue
		}
		if !start.IsZero() && (e.at.Before(start) || !e.at.Before(end)) {
			continue
		}
		if !matchEvent(terms, e) {
			continue
		}
		n += e.n
	}
	s.mu.Unlock()
	s.link(w, r, 0, 100, false)
	writeJSON(w, http.StatusOK, map[string]any{
		"data": []map[string]any{{"count()": n}},
		"meta": map[string]any{
			"fields":        map[string]string{"count()": "integer"},
			"units":         map[string]any{"count()": nil},
			"isMetricsData": false,
			"tips":          map[string]any{},
			"datasetReason": "unchanged",
			"dataset":       "errors",
		},
	})
}

// decodeBody requires a JSON body, as Sentry's API does.
func decodeBody(w http.ResponseWriter, r *http.Request, out any) bool {
	ct := r.Header.Get("Content-Type")
	if mt, _, _ := strings.Cut(ct, ";"); strings.TrimSpace(mt) != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, detail(fmt.Sprintf("Unsupported media type %q in request.", ct)))
		return false
	}
	if err := json.NewDecoder(r.Body).Decode(out); err != nil {
		writeJSON(w, http.StatusBadRequest, detail("JSON parse error - "+err.Error()))
		return false
	}
	return true
}

func validVersion(v string) string {
	switch {
	case strings.TrimSpace(v) == "":
		return "This field may not be blank."
	case len(v) > 200:
		return "Ensure this field has no more than 200 characters."
	case v == "." || v == ".." || v == "latest" || strings.ContainsAny(v, "\n\r\t/\\"):
		return "Release with name " + v + " is not allowed"
	}
	return ""
}

func (s *Server) createRelease(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Version  string   `json:"version"`
		Projects []string `json:"projects"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if m := validVersion(body.Version); m != "" {
		writeJSON(w, http.StatusBadRequest, map[string][]string{"version": {m}})
		return
	}
	if len(body.Projects) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string][]string{"projects": {"This field is required."}})
		return
	}
	for _, p := range body.Projects {
		if p != s.opts.Project && p != s.opts.ProjectID {
			writeJSON(w, http.StatusBadRequest, map[string][]string{"projects": {"Invalid project ids or slugs"}})
			return
		}
	}
	s.mu.Lock()
	status := http.StatusCreated
	var rel Release
	found := false
	for i := range s.releases {
		if s.releases[i].Version == body.Version {
			status, rel, found = http.StatusAlreadyReported, s.releases[i], true
			break
		}
	}
	if !found {
		rel = Release{Version: body.Version, Projects: slices.Clone(body.Projects), Created: time.Now().UTC()}
		s.releases = append(s.releases, rel)
	}
	id := slices.IndexFunc(s.releases, func(x Release) bool { return x.Version == rel.Version }) + 1
	s.mu.Unlock()
	writeJSON(w, status, map[string]any{
		"id":           id,
		"version":      rel.Version,
		"shortVersion": rel.Version,
		"ref":          nil,
		"url":          nil,
		"dateCreated":  rel.Created.Format(time.RFC3339Nano),
		"dateReleased": nil,
		"newGroups":    0,
		"commitCount":  0,
		"deployCount":  0,
		"authors":      []any{},
		"projects":     []map[string]any{{"id": s.opts.ProjectID, "name": s.opts.Project, "slug": s.opts.Project}},
		"data":         map[string]any{},
	})
}

func (s *Server) createDeploy(w http.ResponseWriter, r *http.Request, version string) {
	s.mu.Lock()
	exists := slices.ContainsFunc(s.releases, func(rel Release) bool { return rel.Version == version })
	s.mu.Unlock()
	if !exists {
		writeJSON(w, http.StatusNotFound, detail(notFound))
		return
	}
	var body struct {
		Environment  string   `json:"environment"`
		Name         string   `json:"name"`
		URL          string   `json:"url"`
		Projects     []string `json:"projects"`
		DateStarted  string   `json:"dateStarted"`
		DateFinished string   `json:"dateFinished"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if strings.TrimSpace(body.Environment) == "" {
		writeJSON(w, http.StatusBadRequest, map[string][]string{"environment": {"This field is required."}})
		return
	}
	for _, p := range body.Projects {
		if p != s.opts.Project {
			writeJSON(w, http.StatusBadRequest, map[string][]string{"projects": {"Invalid projects"}})
			return
		}
	}
	d := Deploy{Version: version, Environment: body.Environment, Name: body.Name, Projects: body.Projects}
	for _, f := range []struct {
		name, v string
		dst     *time.Time
	}{{"dateStarted", body.DateStarted, &d.DateStarted}, {"dateFinished", body.DateFinished, &d.DateFinished}} {
		if f.v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, f.v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string][]string{f.name: {"Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."}})
			return
		}
		*f.dst = t
	}
	if d.DateFinished.IsZero() {
		d.DateFinished = time.Now().UTC()
	}
	s.mu.Lock()
	s.deploys = append(s.deploys, d)
	id := len(s.deploys)
	s.mu.Unlock()
	var started any
	if !d.DateStarted.IsZero() {
		started = d.DateStarted.Format(time.RFC3339Nano)
	}
	var name any
	if d.Name != "" {
		name = d.Name
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"id":           strconv.Itoa(id),
		"environment":  d.Environment,
		"name":         name,
		"url":          nil,
		"dateStarted":  started,
		"dateFinished": d.DateFinished.Format(time.RFC3339Nano),
	})
}
