package guard

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestGuardJSONRoundTrip(t *testing.T) {
	in := []Guard{
		{Name: "h", Severity: Fatal, Interval: 10 * time.Second, Timeout: 2 * time.Second, FailureThreshold: 3, SuccessThreshold: 1,
			Check: &HTTP{URL: "http://127.0.0.1:{{.Host.Vars.port}}/healthz", ExpectStatus: []int{200, 204}, ExpectBody: `"version":"{{.Version}}"`}},
		{Name: "t", Check: &TCP{Address: "127.0.0.1:5432"}},
		{Name: "c", Severity: Warn, Check: &Command{Command: "test -e /ok", ExpectExit: 0}},
		{Name: "l", Check: &Log{File: "~/agent/agent.log", FailPattern: "(?i)panic", MaxMatches: 2, RequirePattern: "started version {{.Version}}", RequireWithin: 30 * time.Second}},
		{Name: "s", Check: &Sentry{MaxNewIssues: 1, MaxErrorRatio: 2, MinEvents: 10, Query: "server_name:{{.Host.Name}}", OnUnavailable: "warn"}},
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out []Guard
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip changed the guards:\n%s", b)
	}
	if err := json.Unmarshal([]byte(`[{"name":"x","kind":"smoke","check":{}}]`), &out); err == nil {
		t.Fatal("an unknown kind was accepted")
	}
}
