package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os/user"

	"github.com/hashicorp/terraform-plugin-framework/diag"

	"github.com/canaryops/terraform-provider-canary/internal/ledger"
	"github.com/canaryops/terraform-provider-canary/runner"
)

// privateLedgerKey holds, in Terraform's private state, the highest index sequence this release
// has seen, so an older signed index put back in its place is refused.
const privateLedgerKey = "ledger"

type privateLedger struct {
	Sequence uint64 `json:"sequence"`
}

type privateGetter interface {
	GetKey(ctx context.Context, key string) ([]byte, diag.Diagnostics)
}

type privateSetter interface {
	SetKey(ctx context.Context, key string, value []byte) diag.Diagnostics
}

func ledgerSeq(ctx context.Context, p privateGetter) uint64 {
	if p == nil {
		return 0
	}
	b, _ := p.GetKey(ctx, privateLedgerKey)
	var pl privateLedger
	if len(b) > 0 && json.Unmarshal(b, &pl) == nil {
		return pl.Sequence
	}
	return 0
}

func setLedgerSeq(ctx context.Context, p privateSetter, seq uint64) diag.Diagnostics {
	if p == nil || seq == 0 {
		return nil
	}
	b, _ := json.Marshal(privateLedger{Sequence: seq})
	return p.SetKey(ctx, privateLedgerKey, b)
}

// manifestOf is what the index records of a version: its deploy and revert and the hashes of the
// files it uploads (never their content).
func manifestOf(spec runner.Spec) ledger.Manifest {
	files := map[string]string{}
	for _, f := range spec.Deploy.Files {
		sum := sha256.Sum256(f.Content)
		files[f.Destination] = hex.EncodeToString(sum[:])
	}
	return ledger.Manifest{
		Version: spec.Version,
		Deploy:  map[string]any{"command": spec.Deploy.Command, "timeout": spec.Deploy.Timeout.String(), "version_command": spec.VersionCommand},
		Revert:  map[string]any{"command": spec.Revert.Command, "timeout": spec.Revert.Timeout.String()},
		Files:   files,
	}
}

// audit is who, why and under which ticket a change is made.
type audit struct{ actor, reason, ticket string }

func (m releaseModel) audit() audit {
	a := audit{actor: m.Actor.ValueString(), reason: m.Reason.ValueString(), ticket: m.Ticket.ValueString()}
	if a.actor == "" {
		if u, err := user.Current(); err == nil {
			a.actor = u.Username
		}
	}
	return a
}

// record appends an event to the release's signed index and returns the new sequence.
func (d *providerData) record(spec runner.Spec, minSeq uint64, a audit, e ledger.Event, withVersion bool, apply func(*ledger.Index)) (uint64, error) {
	l, err := d.openLedger()
	if err != nil {
		return 0, err
	}
	e.Actor, e.Reason, e.Ticket = a.actor, a.reason, a.ticket
	if e.Version == "" {
		e.Version = spec.Version
	}
	var v *ledger.Version
	if withVersion {
		sum, err := ledger.ManifestSHA256(manifestOf(spec))
		if err != nil {
			return 0, err
		}
		v = &ledger.Version{Version: spec.Version, ManifestSHA256: sum}
	}
	idx, err := l.Append(spec.Fleet, spec.Release, minSeq, e, v, apply)
	if err != nil {
		return 0, err
	}
	return idx.Sequence, nil
}

// verifyLedger loads the release's index (checking its signature and sequence) before anything
// changes, so a tampered or replayed record stops the apply.
func (d *providerData) verifyLedger(spec runner.Spec, minSeq uint64) error {
	l, err := d.openLedger()
	if err != nil {
		return err
	}
	_, err = l.Load(spec.Fleet, spec.Release, minSeq)
	return err
}

func ledgerError(diags *diag.Diagnostics, what string, err error) {
	diags.AddError("Release Index Refused",
		fmt.Sprintf("%s: the signed release index could not be used, so nothing was changed. %s\n\nOriginal Error: %s", what,
			"A tampered or replayed index must be restored from a trusted copy (or its signer added to trusted_keys) before the release can go on.", err))
}

// changedHosts lists the hosts a result says the rollout changed or reverted.
func changedHosts(res *runner.Result) []string {
	var out []string
	for _, h := range res.Hosts {
		if h.Status == runner.HostDeployed || h.Status == runner.HostReverted || h.Status == runner.HostFailed || h.Status == runner.HostRevertFailed || h.Status == runner.HostUnknown {
			out = append(out, h.Name)
		}
	}
	return out
}
