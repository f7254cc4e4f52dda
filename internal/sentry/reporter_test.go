package sentry

import (
	"strings"
	"testing"
	"time"

	sentrygo "github.com/getsentry/sentry-go"

	"github.com/canaryops/terraform-provider-canary/internal/sentry/sentrytest"
)

func TestReporterEventsArriveWithTags(t *testing.T) {
	srv := sentrytest.New(t, sentrytest.Options{})
	r, err := NewReporter(srv.DSN(), "production", "agent@2.0.0")
	if err != nil {
		t.Fatalf("NewReporter: %v", err)
	}
	defer r.Close(time.Second)

	failTags := map[string]string{"release": "agent@2.0.0", "stage": "canary", "host": "agent-1", "run_id": "run-42", "action": "rollback"}
	r.Report("error", "canary failed: guard healthz on agent-1", failTags)
	r.Report("warning", "guard latency degraded", map[string]string{"stage": "canary", "host": "agent-1", "run_id": "run-42", "action": "warn", "empty": ""})
	r.Report("info", "promoted to 100%", map[string]string{"run_id": "run-42", "action": "promote"})
	if !r.Flush(10 * time.Second) {
		t.Fatal("Flush timed out")
	}

	evs := srv.Events()
	if len(evs) != 3 {
		t.Fatalf("events = %+v (rejections %v), want 3", evs, srv.EnvelopeRejections())
	}
	byMsg := map[string]sentrytest.Event{}
	for _, e := range evs {
		byMsg[e.Message] = e
	}
	fail, ok := byMsg["canary failed: guard healthz on agent-1"]
	if !ok {
		t.Fatalf("failure event missing: %+v", evs)
	}
	if fail.Level != "error" || fail.Release != "agent@2.0.0" || fail.Environment != "production" || fail.EventID == "" || fail.Timestamp.IsZero() {
		t.Errorf("failure event = %+v", fail)
	}
	for k, v := range failTags {
		if fail.Tags[k] != v {
			t.Errorf("tag %s = %q, want %q (tags %v)", k, fail.Tags[k], v, fail.Tags)
		}
	}
	warn := byMsg["guard latency degraded"]
	if warn.Level != "warning" || warn.Tags["action"] != "warn" {
		t.Errorf("warning event = %+v", warn)
	}
	if _, has := warn.Tags["empty"]; has {
		t.Errorf("empty tag sent: %v", warn.Tags)
	}
	if info := byMsg["promoted to 100%"]; info.Level != "info" || info.Tags["action"] != "promote" {
		t.Errorf("info event = %+v", info)
	}
	if rej := srv.EnvelopeRejections(); len(rej) != 0 {
		t.Errorf("rejections = %v", rej)
	}
}

func TestReporterUsesItsOwnHub(t *testing.T) {
	before := sentrygo.CurrentHub().Client()
	srv := sentrytest.New(t, sentrytest.Options{})
	r, err := NewReporter(srv.DSN(), "production", "v1")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(time.Second)
	if sentrygo.CurrentHub().Client() != before {
		t.Error("NewReporter changed the global hub's client")
	}
	sentrygo.CurrentHub().Scope().SetTag("global", "leak")
	r.Report("info", "isolated", nil)
	r.Flush(10 * time.Second)
	evs := srv.Events()
	if len(evs) != 1 {
		t.Fatalf("events = %+v", evs)
	}
	if _, has := evs[0].Tags["global"]; has {
		t.Errorf("global scope leaked into the reporter: %v", evs[0].Tags)
	}
}

func TestReporterWrongKeyIsRejected(t *testing.T) {
	srv := sentrytest.New(t, sentrytest.Options{})
	dsn := srv.DSN()
	at := strings.Index(dsn, "@")
	bad := "http://0000000000000000000000000000dead" + dsn[at:]
	r, err := NewReporter(bad, "production", "v1")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(time.Second)
	r.Report("error", "should not be stored", nil)
	r.Flush(10 * time.Second)
	if evs := srv.Events(); len(evs) != 0 {
		t.Errorf("events with a wrong key were stored: %+v", evs)
	}
	rej := srv.EnvelopeRejections()
	if len(rej) == 0 || !strings.Contains(rej[0], "invalid api key") {
		t.Errorf("rejections = %v", rej)
	}
}

func TestNewReporterErrors(t *testing.T) {
	if _, err := NewReporter("", "production", "v1"); err == nil || !strings.Contains(err.Error(), "sentry.dsn is empty") {
		t.Errorf("empty DSN: %v", err)
	}
	for _, dsn := range []string{"not a dsn", "https://o0.ingest.sentry.io/1", "ftp://key@host/1", "https://key:legacysecret@host/"} {
		_, err := NewReporter(dsn, "production", "v1")
		if err == nil || !strings.Contains(err.Error(), "sentry.dsn") {
			t.Errorf("NewReporter(%q) = %v", dsn, err)
		}
		if err != nil && strings.Contains(err.Error(), "legacysecret") {
			t.Errorf("error echoes the DSN secret: %v", err)
		}
	}
	// A nil reporter drops everything quietly.
	var r *Reporter
	r.Report("error", "nowhere", map[string]string{"a": "b"})
	if !r.Flush(time.Millisecond) || !r.Close(time.Millisecond) {
		t.Error("nil reporter Flush/Close returned false")
	}
}
