package ledger

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestCanonicalJSON(t *testing.T) {
	type inner struct {
		Z string `json:"z"`
		A []int  `json:"a"`
	}
	type outer struct {
		B     inner          `json:"b"`
		A     map[string]any `json:"a"`
		Empty []string       `json:"empty,omitempty"`
	}
	cases := []struct {
		name string
		in   any
		want string
	}{
		{"key order", map[string]int{"b": 2, "a": 1, "c": 3, "B": 0, "aa": 4}, `{"B":0,"a":1,"aa":4,"b":2,"c":3}`},
		{"nested struct and map", outer{B: inner{Z: "z", A: []int{3, 1, 2}}, A: map[string]any{"y": nil, "x": true}},
			`{"a":{"x":true,"y":null},"b":{"a":[3,1,2],"z":"z"}}`},
		{"whitespace removed", json.RawMessage("{ \"b\" : [ 1 , 2 ] ,\n\t\"a\" : { } }"), `{"a":{},"b":[1,2]}`},
		{"raw numbers kept exactly", json.RawMessage(`{"one":1,"frac":1.5,"big":1e21,"huge":123456789012345678901234567890,"neg":-0.000001,"tr":1.50}`),
			`{"big":1e21,"frac":1.5,"huge":123456789012345678901234567890,"neg":-0.000001,"one":1,"tr":1.50}`},
		{"json.Number", map[string]json.Number{"n": "18446744073709551617", "e": "1E+400"}, `{"e":1E+400,"n":18446744073709551617}`},
		{"go numbers", map[string]any{"i": 1, "f": 1.5, "g": 1e21, "u": uint64(math.MaxUint64), "neg": int64(math.MinInt64)},
			`{"f":1.5,"g":1e+21,"i":1,"neg":-9223372036854775808,"u":18446744073709551615}`},
		{"html not escaped", "<a href=\"x\">&</a>", `"<a href=\"x\">&</a>"`},
		{"unicode verbatim", "é漢字🚀\u2028\u2029\u007f", "\"é漢字🚀\u2028\u2029\u007f\""},
		{"control escapes", "\b\t\n\f\r\x00\x01\x1f\"\\/", `"\b\t\n\f\r\u0000\u0001\u001f\"\\/"`},
		{"escaped input decoded", json.RawMessage(`"\u00e9\ud83d\ude80\u003c\/"`), `"é🚀</"`},
		{"invalid utf8 replaced", "a\xffb", "\"a\uFFFDb\""},
		{"unicode keys sorted by bytes", map[string]int{"é": 1, "z": 2, "🚀": 3, "\uffff": 4}, "{\"z\":2,\"é\":1,\"\uffff\":4,\"🚀\":3}"},
		{"scalars", []any{nil, true, false, "", 0}, `[null,true,false,"",0]`},
		{"time", time.Date(2024, 5, 6, 7, 8, 9, 500, time.UTC), `"2024-05-06T07:08:09.0000005Z"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := CanonicalJSON(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Fatalf("got  %s\nwant %s", got, c.want)
			}
			// Canonical output is a fixed point.
			again, err := CanonicalJSON(json.RawMessage(got))
			if err != nil || string(again) != c.want {
				t.Fatalf("not idempotent: %s (%v)", again, err)
			}
		})
	}
}

func TestCanonicalJSONRejects(t *testing.T) {
	for name, in := range map[string]any{
		"duplicate key": json.RawMessage(`{"a":1,"a":2}`),
		"nested dup":    json.RawMessage(`[{"x":{"k":1,"k":1}}]`),
		"invalid":       json.RawMessage(`{"a":}`),
		"unsupported":   map[string]any{"c": make(chan int)},
		"nan":           math.NaN(),
	} {
		if _, err := CanonicalJSON(in); err == nil {
			t.Errorf("%s: expected an error", name)
		}
	}
}

// The golden bytes pin the format: if this test fails, signatures made by
// earlier releases no longer verify.
func TestCanonicalJSONGolden(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	idx := Index{
		SchemaVersion: 1, Fleet: "agents", Release: "agent", Sequence: 2, ActiveVersion: "2.4.0", Channel: "stable",
		Versions: []Version{{Version: "2.4.0", ManifestSHA256: strings.Repeat("ab", 32), FirstRecorded: at}},
		Events: []Event{{Sequence: 1, Action: "canary", Version: "2.4.0", Actor: "ops", Reason: "r<1>", Ticket: "T-1",
			RunID: "run-1", Stage: "canary", Hosts: []string{"agent-1"}, Result: "succeeded", Time: at, Insecure: true},
			{Sequence: 2, Action: "promote", Version: "2.4.0", Result: "succeeded", Time: at}},
	}
	got, err := CanonicalJSON(idx)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"active_version":"2.4.0","channel":"stable","events":[` +
		`{"action":"canary","actor":"ops","hosts":["agent-1"],"insecure":true,"reason":"r<1>","result":"succeeded","run_id":"run-1","sequence":1,"stage":"canary","ticket":"T-1","time":"2025-01-02T03:04:05Z","version":"2.4.0"},` +
		`{"action":"promote","actor":"","reason":"","result":"succeeded","run_id":"","sequence":2,"stage":"","ticket":"","time":"2025-01-02T03:04:05Z","version":"2.4.0"}],` +
		`"fleet":"agents","insecure":false,"release":"agent","schema_version":1,"sequence":2,` +
		`"versions":[{"first_recorded":"2025-01-02T03:04:05Z","manifest_sha256":"` + strings.Repeat("ab", 32) + `","version":"2.4.0"}]}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestManifestSHA256(t *testing.T) {
	base := func() Manifest {
		return Manifest{
			Version: "2.4.0",
			Deploy:  map[string]any{"command": "sudo /opt/agent/install {{.Version}}", "timeout": "5m"},
			Revert:  map[string]any{"command": "sudo /opt/agent/install {{.PreviousVersion}}"},
			Files:   map[string]string{"/opt/agent/a": strings.Repeat("1", 64), "/opt/agent/b": strings.Repeat("2", 64)},
		}
	}
	want, err := ManifestSHA256(base())
	if err != nil {
		t.Fatal(err)
	}
	if !isHexSHA256(want) {
		t.Fatalf("not a hex sha256: %q", want)
	}
	for i := 0; i < 20; i++ { // map iteration order varies; the digest must not
		if got, _ := ManifestSHA256(base()); got != want {
			t.Fatalf("unstable digest: %s vs %s", got, want)
		}
	}
	// The same manifest given as a struct or as generic JSON digests the same.
	type cmd struct {
		Command string `json:"command"`
	}
	m := base()
	m.Revert = cmd{Command: "sudo /opt/agent/install {{.PreviousVersion}}"}
	if got, _ := ManifestSHA256(m); got != want {
		t.Fatal("struct and map forms of the same JSON differ")
	}
	mutations := map[string]func(*Manifest){
		"version":     func(m *Manifest) { m.Version = "2.4.1" },
		"deploy":      func(m *Manifest) { m.Deploy.(map[string]any)["command"] = "sudo /opt/agent/install2 {{.Version}}" },
		"deploy key":  func(m *Manifest) { m.Deploy.(map[string]any)["timeout"] = "6m" },
		"revert":      func(m *Manifest) { m.Revert = map[string]any{"command": "true"} },
		"file hash":   func(m *Manifest) { m.Files["/opt/agent/a"] = strings.Repeat("3", 64) },
		"file path":   func(m *Manifest) { m.Files["/opt/agent/c"] = m.Files["/opt/agent/a"]; delete(m.Files, "/opt/agent/a") },
		"files empty": func(m *Manifest) { m.Files = nil },
	}
	for name, mut := range mutations {
		m := base()
		mut(&m)
		got, err := ManifestSHA256(m)
		if err != nil {
			t.Fatal(err)
		}
		if got == want {
			t.Errorf("changing %s did not change the digest", name)
		}
	}
}
