package sentry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Query narrows an issue or event search.
type Query struct {
	// Release restricts to one release version ("release:<v>").
	Release string
	// Extra is appended verbatim as further Sentry search terms, e.g. "server_name:agent-1".
	Extra string
}

// Issue is one Sentry issue (group) as the organization issues endpoint documents it.
type Issue struct {
	ID, ShortID, Title, Culprit, Level, Permalink string
	FirstSeen, LastSeen                           time.Time
	// Count is the issue's total number of events.
	Count int
}

// apiIssue is the documented JSON shape; count is a string in Sentry's answer.
type apiIssue struct {
	ID        string          `json:"id"`
	ShortID   string          `json:"shortId"`
	Title     string          `json:"title"`
	Culprit   string          `json:"culprit"`
	Level     string          `json:"level"`
	Permalink string          `json:"permalink"`
	FirstSeen string          `json:"firstSeen"`
	LastSeen  string          `json:"lastSeen"`
	Count     json.RawMessage `json:"count"`
}

// queryTime is how start and end are sent: ISO-8601 in UTC, as the documentation's
// 2001-12-14T12:34:56.7890 example (naive times are UTC to Sentry).
const queryTime = "2006-01-02T15:04:05.000"

func (c *Client) orgPath(rest string) string {
	return "/api/0/organizations/" + url.PathEscape(c.cfg.Org) + "/" + rest
}

// project returns the numeric project id the organization endpoints filter by, looking it up
// once through GET /api/0/projects/{org}/{project}/.
func (c *Client) project(ctx context.Context) (string, error) {
	c.mu.Lock()
	id := c.projectID
	c.mu.Unlock()
	if id != "" {
		return id, nil
	}
	var p struct {
		ID   json.RawMessage `json:"id"`
		Slug string          `json:"slug"`
	}
	path := "/api/0/projects/" + url.PathEscape(c.cfg.Org) + "/" + url.PathEscape(c.cfg.Project) + "/"
	if _, err := c.do(ctx, http.MethodGet, path, nil, nil, &p); err != nil {
		return "", err
	}
	id = strings.Trim(string(p.ID), `"`)
	if !isDigits(id) {
		return "", fmt.Errorf("sentry: GET %s: the project has no numeric id in the answer; check that sentry.api_url points at Sentry", path)
	}
	c.mu.Lock()
	c.projectID = id
	c.mu.Unlock()
	return id, nil
}

// filters are the parameters every organization query shares.
func (c *Client) filters(projectID string, start, end time.Time) url.Values {
	v := url.Values{}
	v.Set("project", projectID)
	if c.cfg.Environment != "" {
		v.Set("environment", c.cfg.Environment)
	}
	v.Set("start", start.UTC().Format(queryTime))
	v.Set("end", end.UTC().Format(queryTime))
	return v
}

// NewIssues lists the project's issues first seen at or after since (in the configured
// environment, filtered by q), newest first. It follows the Link header's next cursor up to
// MaxPages pages; past that the list is a lower bound.
func (c *Client) NewIssues(ctx context.Context, since time.Time, q Query) ([]Issue, error) {
	pid, err := c.project(ctx)
	if err != nil {
		return nil, err
	}
	end := c.now()
	if !end.After(since) {
		// The window is empty (or the clocks disagree); ask for a sliver so Sentry accepts
		// start < end, and the firstSeen term still decides.
		end = since.Add(time.Second)
	}
	params := c.filters(pid, since, end)
	params.Set("query", searchQuery("firstSeen:>="+since.UTC().Format(time.RFC3339), q))
	params.Set("sort", "new")
	path := c.orgPath("issues/")

	var out []Issue
	seen := map[string]bool{}
	for page := 0; page < c.maxPages; page++ {
		var batch []apiIssue
		resp, err := c.do(ctx, http.MethodGet, path, params, nil, &batch)
		if err != nil {
			return nil, err
		}
		for _, ai := range batch {
			if seen[ai.ID] {
				continue
			}
			seen[ai.ID] = true
			out = append(out, ai.issue())
		}
		cur, more := nextCursor(resp.header)
		if !more || len(batch) == 0 {
			break
		}
		params.Set("cursor", cur)
	}
	return out, nil
}

func (ai apiIssue) issue() Issue {
	is := Issue{ID: ai.ID, ShortID: ai.ShortID, Title: ai.Title, Culprit: ai.Culprit, Level: ai.Level, Permalink: ai.Permalink}
	is.FirstSeen, _ = time.Parse(time.RFC3339Nano, ai.FirstSeen)
	is.LastSeen, _ = time.Parse(time.RFC3339Nano, ai.LastSeen)
	is.Count = jsonInt(ai.Count)
	return is
}

// jsonInt reads a count Sentry may send as a string ("12") or a number (12).
func jsonInt(raw json.RawMessage) int {
	s := strings.Trim(strings.TrimSpace(string(raw)), `"`)
	if s == "" || s == "null" {
		return 0
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return int(n)
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return int(f)
	}
	return 0
}

// ErrorCount counts the project's error events in [start, end) (configured environment,
// filtered by q) with the events endpoint: field=count(), dataset=errors.
func (c *Client) ErrorCount(ctx context.Context, start, end time.Time, q Query) (int, error) {
	if !end.After(start) {
		return 0, fmt.Errorf("sentry: error count window is empty (start %s is not before end %s)", start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
	}
	pid, err := c.project(ctx)
	if err != nil {
		return 0, err
	}
	params := c.filters(pid, start, end)
	params.Set("field", "count()")
	params.Set("dataset", "errors")
	if s := searchQuery("", q); s != "" {
		params.Set("query", s)
	}
	var body struct {
		Data []map[string]json.RawMessage `json:"data"`
		Meta json.RawMessage              `json:"meta"`
	}
	path := c.orgPath("events/")
	if _, err := c.do(ctx, http.MethodGet, path, params, nil, &body); err != nil {
		return 0, err
	}
	if len(body.Data) == 0 {
		return 0, nil
	}
	raw, ok := body.Data[0]["count()"]
	if !ok {
		return 0, fmt.Errorf("sentry: GET %s: the answer has no count() column; check that sentry.api_url points at Sentry", path)
	}
	return jsonInt(raw), nil
}

// searchQuery joins the search terms, leaving out empty ones.
func searchQuery(first string, q Query) string {
	var terms []string
	if first != "" {
		terms = append(terms, first)
	}
	if q.Release != "" {
		terms = append(terms, "release:"+searchValue(q.Release))
	}
	if x := strings.TrimSpace(q.Extra); x != "" {
		terms = append(terms, x)
	}
	return strings.Join(terms, " ")
}

// searchValue quotes a search value unless it is a plain token.
func searchValue(v string) string {
	plain := v != ""
	for i, r := range v {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			(i > 0 && strings.ContainsRune("._@+-/:", r))
		if !ok {
			plain = false
			break
		}
	}
	if plain {
		return v
	}
	return `"` + strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), `"`, `\"`) + `"`
}

// validVersion applies Sentry's rules for release versions, so a bad one is reported here
// with a reason rather than as a bare 400.
func validVersion(v string) error {
	switch {
	case strings.TrimSpace(v) == "":
		return errors.New("the release version is empty")
	case len(v) > 200:
		return fmt.Errorf("release version %q is longer than Sentry's 200 characters", v[:40]+"...")
	case v == "." || v == ".." || v == "latest":
		return fmt.Errorf("release version %q is reserved by Sentry", v)
	case strings.ContainsAny(v, "\n\r\t/\\"):
		return fmt.Errorf("release version %q contains a newline, tab or slash, which Sentry does not allow", v)
	}
	return nil
}

// CreateRelease records the release for the project. A release that already exists (208
// Already Reported, or 409) is success, so the call is idempotent.
func (c *Client) CreateRelease(ctx context.Context, version string) error {
	if err := validVersion(version); err != nil {
		return fmt.Errorf("sentry: creating release: %w", err)
	}
	body := map[string]any{"version": version, "projects": []string{c.cfg.Project}}
	_, err := c.do(ctx, http.MethodPost, c.orgPath("releases/"), nil, body, nil)
	var apiErr *APIError
	if errors.As(err, &apiErr) && (apiErr.Status == http.StatusConflict || apiErr.Status == http.StatusAlreadyReported) {
		return nil
	}
	return err
}

// CreateDeploy records a deploy of the release to the configured environment. name is
// optional (e.g. "canary/stage-1"); zero times are left for Sentry to fill (dateFinished
// defaults to now).
func (c *Client) CreateDeploy(ctx context.Context, version, name string, started, finished time.Time) error {
	if err := validVersion(version); err != nil {
		return fmt.Errorf("sentry: creating deploy: %w", err)
	}
	if c.cfg.Environment == "" {
		return errors.New("sentry: creating deploy: sentry.environment is empty; Sentry needs the environment a deploy went to, so set it (for example \"production\")")
	}
	body := map[string]any{
		"environment": c.cfg.Environment,
		"projects":    []string{c.cfg.Project},
	}
	if name != "" {
		body["name"] = name
	}
	if !started.IsZero() {
		body["dateStarted"] = started.UTC().Format(time.RFC3339Nano)
	}
	if !finished.IsZero() {
		body["dateFinished"] = finished.UTC().Format(time.RFC3339Nano)
	}
	_, err := c.do(ctx, http.MethodPost, c.orgPath("releases/"+url.PathEscape(version)+"/deploys/"), nil, body, nil)
	return err
}
