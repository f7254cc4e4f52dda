package runner

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Record is what a rollout leaves on the operator's side for tools that work without Terraform
// (canary-runner followup): the release as applied, and when. It holds no secrets: SSH keys and
// Sentry tokens come from the tool's own settings.
type Record struct {
	Spec       Spec         `json:"spec"`
	RunID      string       `json:"run_id"`
	DeployedAt time.Time    `json:"deployed_at"`
	Followups  []string     `json:"followups,omitempty"`
	Hosts      []HostResult `json:"hosts"`
}

// RecordPath is where the record of release lives under dir.
func RecordPath(dir, release string) string {
	return filepath.Join(dir, "releases", unsafeName.ReplaceAllString(release, "_")+".json")
}

// SaveRecord writes the record atomically (temporary file, fsync, rename), readable by the owner
// only.
func SaveRecord(dir string, r Record) error {
	p := RecordPath(dir, r.Spec.Release)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".record-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}

// LoadRecord reads the record of release under dir.
func LoadRecord(dir, release string) (*Record, error) {
	p := RecordPath(dir, release)
	b, err := os.ReadFile(p)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("no record of release %q in %s: apply it with this ledger_dir first", release, dir)
		}
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s is not a valid release record: %v", p, err)
	}
	return &r, nil
}
