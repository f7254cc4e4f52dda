package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/canaryops/terraform-provider-canary/internal/devfleet"
)

func TestStatusShowsVersionsAgentsAndMarkers(t *testing.T) {
	f := devfleet.StartT(t, devfleet.Options{Hosts: 2, InitialVersion: "1.0.0", Logf: t.Logf})
	b, _ := json.Marshal(f.Inventory())
	if err := os.WriteFile(filepath.Join(f.Dir, inventoryFileName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	rel := filepath.Join(f.Hosts[0].Dir, ".canary", "releases")
	if err := os.MkdirAll(rel, 0o700); err != nil {
		t.Fatal(err)
	}
	m := `{"release":"agents","version":"1.0.0","previous_version":"0.9.0","status":"deployed","run_id":"run-x"}`
	if err := os.WriteFile(filepath.Join(rel, "agents.json"), []byte(m), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if rc := run([]string{"devfleet", "status", "--dir", f.Dir}, &out, &errb); rc != 0 {
		t.Fatalf("rc %d: %s", rc, errb.String())
	}
	for _, re := range []string{`host-1\s+1\.0\.0\s+200 ok\s+agents: deployed 1\.0\.0 \(was 0\.9\.0, run-x\)`, `host-2\s+1\.0\.0\s+200 ok\s+-`} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("status output does not match %s:\n%s", re, out.String())
		}
	}
}
