// Package sentry speaks to Sentry for the rollout engine: a REST client (net/http) for the
// documented API the Sentry guard and the release markers need, and a Reporter that sends
// rollout events through sentry-go to the project DSN.
//
// The REST client uses only these documented endpoints (docs.sentry.io/api):
//
//   - GET  /api/0/projects/{org}/{project}/                       (project id, looked up once)
//   - GET  /api/0/organizations/{org}/issues/                     (new issues since the deploy)
//   - GET  /api/0/organizations/{org}/events/                     (error counts per window)
//   - POST /api/0/organizations/{org}/releases/                   (release marker)
//   - POST /api/0/organizations/{org}/releases/{version}/deploys/ (deploy marker)
//
// It authenticates with "Authorization: Bearer <token>", follows cursor pagination through the
// Link header, and retries 429 (honouring Retry-After) and 5xx answers a bounded number of
// times. The auth token never appears in an error, a log line or a formatted Config.
package sentry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	defaultTimeout    = 30 * time.Second
	defaultMaxRetries = 3
	defaultMaxPages   = 10
	// maxRetryWait caps one wait between attempts, whatever Retry-After asks for.
	maxRetryWait = 30 * time.Second
	// baseBackoff is the first wait after a 5xx without Retry-After; it doubles per attempt.
	baseBackoff = 500 * time.Millisecond
	// maxBody bounds how much of a response is read.
	maxBody = 8 << 20
	// userAgent identifies this client to Sentry.
	userAgent = "terraform-provider-canary"
)

// Config is what the client needs to reach one Sentry project.
type Config struct {
	// APIURL is the base URL, e.g. https://sentry.io or a self-hosted https://sentry.example.com;
	// the client appends /api/0/... (a trailing /api/0/ is tolerated and dropped).
	APIURL string
	// AuthToken is sent only as "Authorization: Bearer <token>". Sensitive: it never appears
	// in errors, logs, or Config's String/GoString.
	AuthToken string
	// Org is the organization slug.
	Org string
	// Project is the project slug. The organization endpoints filter by numeric project id,
	// which is looked up once through the project details endpoint (an all-digit Project is
	// taken to be the id already).
	Project string
	// Environment optionally restricts queries to one environment; deploys need it.
	Environment string
	// HTTPClient sends the requests; default: a client with a 30s timeout.
	HTTPClient *http.Client
	// MaxRetries bounds the retries of a request answered 429 or 5xx (and, for reads, of
	// network failures). 0 means the default 3; negative means no retries.
	MaxRetries int
	// MaxPages bounds how many pages a listing follows. 0 or negative means the default 10.
	MaxPages int
}

// String describes the configuration with the auth token redacted, so %v and %+v are safe.
func (c Config) String() string {
	tok := ""
	if c.AuthToken != "" {
		tok = "[redacted]"
	}
	return fmt.Sprintf("sentry.Config{APIURL:%q AuthToken:%s Org:%q Project:%q Environment:%q MaxRetries:%d MaxPages:%d}",
		redactURL(c.APIURL), tok, c.Org, c.Project, c.Environment, c.MaxRetries, c.MaxPages)
}

// GoString makes %#v as safe as %v.
func (c Config) GoString() string { return c.String() }

// Client is a Sentry REST API client for one organization and project. It is safe for
// concurrent use.
type Client struct {
	cfg        Config
	base       string // scheme://host[/prefix], no trailing slash
	hc         *http.Client
	maxRetries int
	maxPages   int

	// sleep waits between attempts; tests replace it to keep retries instant.
	sleep func(ctx context.Context, d time.Duration) error
	// now is the clock for the end of the issue search window; retries use the real clock.
	now func() time.Time

	mu        sync.Mutex
	projectID string
}

// New validates cfg and returns a client. Errors name the setting and the fix.
func New(cfg Config) (*Client, error) {
	base, err := validateAPIURL(cfg.APIURL)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(cfg.AuthToken) == "" {
		return nil, errors.New("sentry.auth_token is empty: set it to a Sentry auth token with the event:read, org:read and project:releases scopes (Settings > Developer Settings > Auth Tokens)")
	}
	if strings.ContainsAny(cfg.AuthToken, " \t\r\n") {
		return nil, errors.New("sentry.auth_token contains whitespace: paste the token alone, without the \"Bearer\" prefix or a trailing newline")
	}
	if strings.TrimSpace(cfg.Org) == "" {
		return nil, errors.New("sentry.org is empty: set it to the organization slug, as in https://sentry.io/organizations/<org>/")
	}
	if strings.TrimSpace(cfg.Project) == "" {
		return nil, errors.New("sentry.project is empty: set it to the project slug, as in Project Settings > General")
	}
	c := &Client{
		cfg:        cfg,
		base:       base,
		hc:         cfg.HTTPClient,
		maxRetries: cfg.MaxRetries,
		maxPages:   cfg.MaxPages,
		sleep:      sleepCtx,
		now:        time.Now,
	}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: defaultTimeout}
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = defaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if c.maxPages <= 0 {
		c.maxPages = defaultMaxPages
	}
	if isDigits(cfg.Project) {
		c.projectID = cfg.Project
	}
	return c, nil
}

// String describes the client without its token.
func (c *Client) String() string { return "sentry.Client{" + c.cfg.String() + "}" }

// GoString makes %#v as safe as %v.
func (c *Client) GoString() string { return c.String() }

func validateAPIURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", errors.New("sentry.api_url is empty: set it to the Sentry base URL, https://sentry.io for SaaS or your self-hosted URL such as https://sentry.example.com")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("sentry.api_url %q is not an http:// or https:// URL with a host: use the Sentry base URL, such as https://sentry.io", redactURL(raw))
	}
	if u.User != nil {
		return "", errors.New("sentry.api_url must not contain credentials: put the token in sentry.auth_token")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("sentry.api_url %q must not have a query or fragment: use the Sentry base URL, such as https://sentry.io", redactURL(raw))
	}
	p := strings.TrimRight(u.Path, "/")
	p = strings.TrimSuffix(p, "/api/0")
	p = strings.TrimRight(p, "/")
	return u.Scheme + "://" + u.Host + p, nil
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparsable URL]"
	}
	return u.Redacted()
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// response is what a successful call hands back besides the decoded body.
type response struct {
	header http.Header
	status int
}

// do sends one API call with retries. path is the escaped path below the base URL
// ("/api/0/..."); body, when not nil, is sent as JSON; out, when not nil, receives the JSON
// answer of a 2xx response.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) (*response, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("sentry: %s %s: encoding request: %w", method, path, err)
		}
	}
	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, &TransportError{Method: method, Endpoint: path, Err: err}
		}
		req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(payload))
		if err != nil {
			return nil, fmt.Errorf("sentry: %s %s: building request: %w", method, path, err)
		}
		if payload == nil {
			req.Body, req.ContentLength, req.GetBody = http.NoBody, 0, nil
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Authorization", "Bearer "+c.cfg.AuthToken)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", userAgent)

		resp, err := c.hc.Do(req)
		if err != nil {
			terr := &TransportError{Method: method, Endpoint: path, Err: unwrapURLError(err)}
			// Reads are safe to repeat after a network failure; writes are not retried
			// blindly (a deploy marker could be recorded twice).
			if method == http.MethodGet && attempt < c.maxRetries && ctx.Err() == nil {
				if werr := c.wait(ctx, backoff(attempt)); werr == nil {
					continue
				}
			}
			return nil, terr
		}
		data, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		_ = resp.Body.Close()
		if rerr != nil {
			return nil, &TransportError{Method: method, Endpoint: path, Err: fmt.Errorf("reading response: %w", unwrapURLError(rerr))}
		}

		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			if out != nil && resp.StatusCode != http.StatusNoContent {
				if err := json.Unmarshal(data, out); err != nil {
					return nil, fmt.Errorf("sentry: %s %s: the %d response is not the JSON Sentry documents (%v); check that sentry.api_url points at Sentry", method, path, resp.StatusCode, err)
				}
			}
			return &response{header: resp.Header, status: resp.StatusCode}, nil
		}

		apiErr := &APIError{
			Status:   resp.StatusCode,
			Method:   method,
			Endpoint: path,
			Detail:   c.redact(errorDetail(data)),
			Retries:  attempt,
			org:      c.cfg.Org,
			project:  c.cfg.Project,
		}
		if retryable(resp.StatusCode) && attempt < c.maxRetries {
			wait, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now())
			if !ok {
				wait = backoff(attempt)
			}
			if wait > maxRetryWait {
				wait = maxRetryWait
			}
			if dl, has := ctx.Deadline(); has && time.Until(dl) < wait {
				// Waiting would outlive the caller: give up now with what Sentry said.
				apiErr.DeadlineCut = true
				return nil, apiErr
			}
			if err := c.wait(ctx, wait); err != nil {
				return nil, &TransportError{Method: method, Endpoint: path, Err: err}
			}
			continue
		}
		return nil, apiErr
	}
}

func (c *Client) wait(ctx context.Context, d time.Duration) error { return c.sleep(ctx, d) }

func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// backoff is the wait before retry number attempt+1 when the server did not say: 0.5s, 1s,
// 2s, ... with up to 20% jitter, capped.
func backoff(attempt int) time.Duration {
	d := baseBackoff << min(attempt, 8)
	d += time.Duration(rand.Int64N(int64(d)/5 + 1))
	return min(d, maxRetryWait)
}

// retryAfter reads a Retry-After value: delay seconds (integer, or decimal as some proxies
// send) or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs < 0 || secs != secs {
			return 0, false
		}
		if secs > maxRetryWait.Seconds() {
			return maxRetryWait, true
		}
		return time.Duration(secs * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// errorDetail extracts Sentry's error message from a response body: {"detail": "..."} (the
// detail may also be an object with a message), or DRF field errors {"field": ["msg"]}.
func errorDetail(body []byte) string {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return ""
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err == nil {
		if raw, ok := obj["detail"]; ok {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				return truncate(s)
			}
			var d struct {
				Message string `json:"message"`
				Code    string `json:"code"`
			}
			if json.Unmarshal(raw, &d) == nil && d.Message != "" {
				return truncate(d.Message)
			}
			return truncate(string(raw))
		}
		var parts []string
		for k, raw := range obj {
			var msgs []string
			if json.Unmarshal(raw, &msgs) == nil {
				parts = append(parts, k+": "+strings.Join(msgs, " "))
			} else {
				parts = append(parts, k+": "+string(raw))
			}
		}
		slices.Sort(parts)
		return truncate(strings.Join(parts, "; "))
	}
	// Not JSON (a proxy's HTML page, say): keep a short, single-line excerpt.
	s := strings.Join(strings.Fields(string(body)), " ")
	return truncate(s)
}

func truncate(s string) string {
	const n = 300
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// redact removes the auth token from text that came from elsewhere (a server's message).
func (c *Client) redact(s string) string {
	if c.cfg.AuthToken == "" {
		return s
	}
	return strings.ReplaceAll(s, c.cfg.AuthToken, "[redacted]")
}

// unwrapURLError drops *url.Error's "Get \"https://...\":" prefix: the endpoint is already
// named by the caller, and the full URL (with its query) only adds noise.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// link is one entry of a Link header.
type link struct {
	url    string
	params map[string]string
}

// parseLinks reads an RFC 8288 Link header such as Sentry's
//
//	<https://sentry.io/api/0/...&cursor=0:0:1>; rel="previous"; results="false"; cursor="0:0:1",
//	<https://sentry.io/api/0/...&cursor=0:100:0>; rel="next"; results="true"; cursor="0:100:0"
func parseLinks(h string) []link {
	var out []link
	i := 0
	for i < len(h) {
		// Find the next "<".
		for i < len(h) && h[i] != '<' {
			i++
		}
		if i >= len(h) {
			break
		}
		end := strings.IndexByte(h[i+1:], '>')
		if end < 0 {
			break
		}
		l := link{url: h[i+1 : i+1+end], params: map[string]string{}}
		i += end + 2
		// Parameters until a comma outside quotes, or the end.
		for i < len(h) {
			for i < len(h) && (h[i] == ' ' || h[i] == '\t') {
				i++
			}
			if i >= len(h) {
				break
			}
			if h[i] == ',' {
				i++
				break
			}
			if h[i] != ';' {
				// Malformed: skip to the next link.
				for i < len(h) && h[i] != ',' {
					i++
				}
				continue
			}
			i++
			for i < len(h) && (h[i] == ' ' || h[i] == '\t') {
				i++
			}
			ks := i
			for i < len(h) && h[i] != '=' && h[i] != ';' && h[i] != ',' {
				i++
			}
			key := strings.ToLower(strings.TrimSpace(h[ks:i]))
			val := ""
			if i < len(h) && h[i] == '=' {
				i++
				if i < len(h) && h[i] == '"' {
					i++
					var b strings.Builder
					for i < len(h) && h[i] != '"' {
						if h[i] == '\\' && i+1 < len(h) {
							i++
						}
						b.WriteByte(h[i])
						i++
					}
					i++ // closing quote
					val = b.String()
				} else {
					vs := i
					for i < len(h) && h[i] != ';' && h[i] != ',' {
						i++
					}
					val = strings.TrimSpace(h[vs:i])
				}
			}
			if key != "" {
				l.params[key] = val
			}
		}
		out = append(out, l)
	}
	return out
}

// nextCursor returns the cursor of the rel="next" link when it says results="true".
func nextCursor(h http.Header) (string, bool) {
	for _, v := range h.Values("Link") {
		for _, l := range parseLinks(v) {
			if l.params["rel"] != "next" {
				continue
			}
			if l.params["results"] != "true" {
				return "", false
			}
			if cur := l.params["cursor"]; cur != "" {
				return cur, true
			}
			if u, err := url.Parse(l.url); err == nil {
				if cur := u.Query().Get("cursor"); cur != "" {
					return cur, true
				}
			}
			return "", false
		}
	}
	return "", false
}
