package guard

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/canaryops/terraform-provider-canary/runner/tmpl"
)

// HTTP checks an HTTP endpoint dialed through the host's SSH connection: the status must be one of
// ExpectStatus and the body must contain ExpectBody (after rendering), so the check verifies what
// the service answers, not only that it is up.
type HTTP struct {
	URL          string // template
	Method       string // default GET
	ExpectStatus []int  // default [200]
	ExpectBody   string // template; substring the body must contain
	Headers      map[string]string
}

func (h *HTTP) Kind() string { return "http" }

func (h *HTTP) Validate() error {
	if err := tmpl.Validate(h.URL, false); err != nil {
		return fmt.Errorf("http.url: %w", err)
	}
	// Values are not known until a host is checked: stand a digit in for each, valid in a host
	// name, a port or a path alike.
	u, err := url.Parse(actions.ReplaceAllString(h.URL, "1"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("http.url %q is not an http:// or https:// URL with a host", h.URL)
	}
	if err := tmpl.Validate(h.ExpectBody, false); err != nil {
		return fmt.Errorf("http.expect_body: %w", err)
	}
	for _, s := range h.ExpectStatus {
		if s < 100 || s > 599 {
			return fmt.Errorf("http.expect_status: %d is not an HTTP status code (100-599)", s)
		}
	}
	return nil
}

func (h *HTTP) Check(ctx context.Context, t Target, d tmpl.Data, _ any) Result {
	u, err := tmpl.Render(h.URL, d)
	if err != nil {
		return Result{Message: "http.url: " + err.Error()}
	}
	want, err := tmpl.Render(h.ExpectBody, d)
	if err != nil {
		return Result{Message: "http.expect_body: " + err.Error()}
	}
	method := h.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return Result{Message: fmt.Sprintf("%s %s: %v", method, u, err)}
	}
	for k, v := range h.Headers {
		req.Header.Set(k, v)
	}
	tr := &http.Transport{DialContext: t.DialContext, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return Result{Message: fmt.Sprintf("%s %s: %v", method, u, unwrapURLError(err))}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	expect := h.ExpectStatus
	if len(expect) == 0 {
		expect = []int{http.StatusOK}
	}
	evidence := fmt.Sprintf("HTTP %d from %s: %s", resp.StatusCode, u, Bound(strings.TrimSpace(string(body)), evidenceBytes))
	if !slices.Contains(expect, resp.StatusCode) {
		return Result{Message: fmt.Sprintf("%s %s answered %d, expected %v", method, u, resp.StatusCode, expect), Evidence: evidence}
	}
	if want != "" && !strings.Contains(string(body), want) {
		return Result{Message: fmt.Sprintf("%s %s: body does not contain %q", method, u, want), Evidence: evidence}
	}
	return Result{OK: true, Message: fmt.Sprintf("%s %s answered %d", method, u, resp.StatusCode), Evidence: evidence}
}

var actions = regexp.MustCompile(`{{.*?}}`)

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
