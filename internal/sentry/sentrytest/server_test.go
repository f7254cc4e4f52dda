package sentrytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// call sends a raw request and returns the status, headers and body.
func call(t *testing.T, method, target, token string, body string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestAuth(t *testing.T) {
	s := New(t, Options{})
	target := s.URL() + "/api/0/organizations/acme/issues/"
	code, _, body := call(t, "GET", target, "", "", nil)
	if code != 401 || !strings.Contains(body, `"detail":"Authentication credentials were not provided."`) {
		t.Errorf("no auth: %d %s", code, body)
	}
	code, _, body = call(t, "GET", target, "wrong", "", nil)
	if code != 401 || !strings.Contains(body, "Invalid token") {
		t.Errorf("bad token: %d %s", code, body)
	}
	code, _, _ = call(t, "GET", target, s.Token(), "", nil)
	if code != 200 {
		t.Errorf("good token: %d", code)
	}
	reqs := s.Requests()
	if len(reqs) != 3 || reqs[0].HasAuth || !reqs[1].HasAuth || reqs[1].AuthValid || !reqs[2].AuthValid || reqs[2].Status != 200 {
		t.Errorf("requests = %+v", reqs)
	}
	code, _, _ = call(t, "GET", s.URL()+"/api/0/organizations/other/issues/", s.Token(), "", nil)
	if code != 404 {
		t.Errorf("unknown org: %d", code)
	}
	code, _, _ = call(t, "POST", target, s.Token(), "{}", map[string]string{"Content-Type": "application/json"})
	if code != 405 {
		t.Errorf("POST issues: %d", code)
	}
}

func TestIssuesContract(t *testing.T) {
	s := New(t, Options{PageSize: 2})
	t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for i := range 3 {
		s.AddIssue(Issue{Title: fmt.Sprint("boom ", i), FirstSeen: t0.Add(time.Duration(i) * time.Minute), Release: "v2", Environment: "production", Count: 3})
	}
	s.AddIssue(Issue{Title: "old", FirstSeen: t0.Add(-time.Hour), Release: "v2", Environment: "production"})
	base := s.URL() + "/api/0/organizations/acme/issues/"
	q := url.Values{"project": {s.ProjectID()}, "environment": {"production"}, "start": {"2026-03-10T11:00:00"}, "end": {"2026-03-10T13:00:00"},
		"query": {"firstSeen:>=2026-03-10T12:00:00Z release:v2"}, "sort": {"new"}}

	code, hdr, body := call(t, "GET", base+"?"+q.Encode(), s.Token(), "", nil)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var page []map[string]any
	if err := json.Unmarshal([]byte(body), &page); err != nil || len(page) != 2 {
		t.Fatalf("page = %s (%v)", body, err)
	}
	if page[0]["count"] != "3" || page[0]["title"] != "boom 2" || page[0]["shortId"] == "" || page[0]["firstSeen"] != "2026-03-10T12:02:00.000000Z" {
		t.Errorf("issue = %v", page[0])
	}
	link := hdr.Get("Link")
	for _, want := range []string{`rel="previous"; results="false"; cursor="0:0:1"`, `rel="next"; results="true"; cursor="0:2:0"`, "cursor=0%3A2%3A0"} {
		if !strings.Contains(link, want) {
			t.Errorf("Link %q lacks %q", link, want)
		}
	}
	q.Set("cursor", "0:2:0")
	_, hdr, body = call(t, "GET", base+"?"+q.Encode(), s.Token(), "", nil)
	if err := json.Unmarshal([]byte(body), &page); err != nil || len(page) != 1 {
		t.Fatalf("second page = %s", body)
	}
	if l := hdr.Get("Link"); !strings.Contains(l, `rel="previous"; results="true"`) || !strings.Contains(l, `rel="next"; results="false"`) {
		t.Errorf("last page Link = %q", l)
	}

	bad := []struct {
		mut  func(url.Values)
		code int
	}{
		{func(v url.Values) { v.Set("project", "agent") }, 400},     // slugs are not accepted
		{func(v url.Values) { v.Set("project", "77") }, 403},        // another project
		{func(v url.Values) { v.Del("end") }, 400},                  // start needs end
		{func(v url.Values) { v.Set("cursor", "nonsense") }, 400},   // cursor format
		{func(v url.Values) { v.Set("query", `release:"v2`) }, 400}, // unterminated quote
		{func(v url.Values) { v.Set("query", "release:>v2") }, 400}, // operator on a text key
		{func(v url.Values) { v.Set("sort", "random") }, 400},
	}
	for i, b := range bad {
		v := url.Values{}
		for k, vs := range q {
			v[k] = append([]string(nil), vs...)
		}
		v.Del("cursor")
		b.mut(v)
		if code, _, body := call(t, "GET", base+"?"+v.Encode(), s.Token(), "", nil); code != b.code || !strings.Contains(body, `"detail"`) {
			t.Errorf("case %d (%v): %d %s, want %d", i, v, code, body, b.code)
		}
	}
}

func TestReleaseContract(t *testing.T) {
	s := New(t, Options{})
	target := s.URL() + "/api/0/organizations/acme/releases/"
	jsonCT := map[string]string{"Content-Type": "application/json"}
	if code, _, _ := call(t, "POST", target, s.Token(), `{"version":"v1","projects":["agent"]}`, map[string]string{"Content-Type": "text/plain"}); code != 415 {
		t.Errorf("text/plain body: %d", code)
	}
	if code, _, body := call(t, "POST", target, s.Token(), `{"version":"v1","projects":["other"]}`, jsonCT); code != 400 || !strings.Contains(body, "projects") {
		t.Errorf("foreign project: %d %s", code, body)
	}
	if code, _, _ := call(t, "POST", target, s.Token(), `{"version":"v1","projects":["agent"]}`, jsonCT); code != 201 {
		t.Errorf("create: %d", code)
	}
	if code, _, _ := call(t, "POST", target, s.Token(), `{"version":"v1","projects":["agent"]}`, jsonCT); code != 208 {
		t.Errorf("again: %d", code)
	}
	deploys := target + "v1/deploys/"
	if code, _, body := call(t, "POST", deploys, s.Token(), `{"name":"x"}`, jsonCT); code != 400 || !strings.Contains(body, "environment") {
		t.Errorf("deploy without environment: %d %s", code, body)
	}
	if code, _, body := call(t, "POST", deploys, s.Token(), `{"environment":"production","dateStarted":"yesterday"}`, jsonCT); code != 400 {
		t.Errorf("bad date: %d %s", code, body)
	}
	if code, _, body := call(t, "POST", deploys, s.Token(), `{"environment":"production"}`, jsonCT); code != 201 || !strings.Contains(body, `"dateFinished"`) {
		t.Errorf("deploy: %d %s", code, body)
	}
	if d := s.Deploys(); len(d) != 1 || d[0].DateFinished.IsZero() {
		t.Errorf("deploys = %+v", d)
	}
}

func TestFailNext(t *testing.T) {
	s := New(t, Options{})
	s.FailNext(1, 429, "7")
	code, hdr, body := call(t, "GET", s.URL()+"/api/0/projects/acme/agent/", s.Token(), "", nil)
	if code != 429 || hdr.Get("Retry-After") != "7" || !strings.Contains(body, "detail") {
		t.Errorf("injected: %d %v %s", code, hdr, body)
	}
	if code, _, body := call(t, "GET", s.URL()+"/api/0/projects/acme/agent/", s.Token(), "", nil); code != 200 || !strings.Contains(body, `"id":"4505"`) {
		t.Errorf("after: %d %s", code, body)
	}
}

func TestEnvelopeParsing(t *testing.T) {
	s := New(t, Options{})
	u, _ := url.Parse(s.DSN())
	key := u.User.Username()
	target := s.URL() + "/api/" + s.ProjectID() + "/envelope/"
	ev1 := `{"event_id":"aaa","level":"warning","message":"first","tags":{"run_id":"r1"},"release":"v1","environment":"prod","timestamp":"2026-03-10T12:00:00Z"}`
	ev2 := `{"event_id":"bbb","logentry":{"message":"second"},"tags":[["host","a1"]],"timestamp":1773144000.5}`
	report := `{"timestamp":1,"discarded_events":[]}`
	env := `{"event_id":"aaa","dsn":"` + s.DSN() + `"}` + "\n" +
		fmt.Sprintf(`{"type":"event","length":%d}`, len(ev1)) + "\n" + ev1 + "\n" +
		`{"type":"client_report"}` + "\n" + report + "\n" +
		`{"type":"event"}` + "\n" + ev2 + "\n"
	auth := map[string]string{"X-Sentry-Auth": "Sentry sentry_version=7, sentry_client=test/1, sentry_key=" + key, "Content-Type": "application/x-sentry-envelope"}
	if code, _, body := call(t, "POST", target, "", env, auth); code != 200 {
		t.Fatalf("envelope: %d %s (rejections %v)", code, body, s.EnvelopeRejections())
	}
	evs := s.Events()
	if len(evs) != 2 {
		t.Fatalf("events = %+v", evs)
	}
	if e := evs[0]; e.Level != "warning" || e.Message != "first" || e.Tags["run_id"] != "r1" || e.Release != "v1" || e.Environment != "prod" || e.Timestamp.IsZero() {
		t.Errorf("event 1 = %+v", e)
	}
	if e := evs[1]; e.Level != "error" || e.Message != "second" || e.Tags["host"] != "a1" || e.Timestamp.Unix() != 1773144000 {
		t.Errorf("event 2 = %+v", e)
	}

	// Authentication and framing failures.
	noDSN := `{"event_id":"c"}` + "\n" + `{"type":"event"}` + "\n" + `{"message":"x"}`
	cases := []struct {
		name, target, body string
		hdr                map[string]string
		code               int
	}{
		{"no key", target, noDSN, nil, 401},
		{"wrong key", target, noDSN, map[string]string{"X-Sentry-Auth": "Sentry sentry_version=7, sentry_key=nope"}, 401},
		{"query key", target + "?sentry_version=7&sentry_key=" + key, noDSN, nil, 200},
		{"wrong project", s.URL() + "/api/999/envelope/", noDSN, auth, 404},
		{"bad length", target, `{}` + "\n" + `{"type":"event","length":999}` + "\n" + `{}`, auth, 400},
		{"not json", target, "hello\n", auth, 400},
	}
	for _, c := range cases {
		if code, _, body := call(t, "POST", c.target, "", c.body, c.hdr); code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, code, body, c.code)
		}
	}
	if n := len(s.Events()); n != 3 {
		t.Errorf("events after the failure cases = %d, want 3", n)
	}
	// Envelope requests are not API requests.
	if n := len(s.Requests()); n != 0 {
		t.Errorf("envelopes recorded as API requests: %d", n)
	}
}

func TestSearchParsing(t *testing.T) {
	terms, err := parseSearch(`firstSeen:>=2026-03-10T12:00:00Z release:"a \"b\" c" !server_name:agent-2 free`)
	if err != nil {
		t.Fatal(err)
	}
	if len(terms) != 4 || terms[0].op != ">=" || terms[1].value != `a "b" c` || !terms[2].neg || terms[2].key != "server_name" || terms[3].key != "" {
		t.Errorf("terms = %+v", terms)
	}
	is := Issue{Title: "something free", FirstSeen: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC), Release: `a "b" c`, Tags: map[string]string{"server_name": "agent-1"}}
	if !matchIssue(terms, is) {
		t.Error("issue should match")
	}
	is.Tags["server_name"] = "agent-2"
	if matchIssue(terms, is) {
		t.Error("negated tag should exclude")
	}
	if !glob("1.2.*", "1.2.9") || glob("1.2.*", "1.3.0") || !glob("*rc*", "2.0rc1") {
		t.Error("glob")
	}
}
