package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/canaryops/terraform-provider-canary/internal/ledger"
	"github.com/canaryops/terraform-provider-canary/runner"
)

// trustedKeys collects repeated --trusted-key flags.
type trustedKeys []string

func (t *trustedKeys) String() string     { return strings.Join(*t, ", ") }
func (t *trustedKeys) Set(s string) error { *t = append(*t, s); return nil }

// openLedger opens the index with the operator's keys: --signing-key-file (or
// CANARY_SIGNING_KEY_FILE) and --trusted-key; without a key, the ledger's development key.
func openLedger(fs *flag.FlagSet, args []string, stderr io.Writer) (*ledger.Ledger, bool) {
	dir := fs.String("ledger-dir", envOr("CANARY_LEDGER_DIR", ".canary"), "the provider's ledger_dir (CANARY_LEDGER_DIR)")
	keyFile := fs.String("signing-key-file", os.Getenv("CANARY_SIGNING_KEY_FILE"), "the provider's signing_key, as a file (CANARY_SIGNING_KEY_FILE); its public key is trusted")
	var trusted trustedKeys
	fs.Var(&trusted, "trusted-key", "a public key (ssh-ed25519 AAAA...) whose signatures are accepted; repeatable")
	if err := fs.Parse(args); err != nil {
		return nil, false
	}
	if _, err := os.Stat(*dir); err != nil {
		fmt.Fprintf(stderr, "canary-runner: no ledger in %s: %v\n", *dir, err)
		return nil, false
	}
	opts := ledger.Options{Dir: *dir, TrustedKeys: trusted}
	if *keyFile != "" {
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			fmt.Fprintf(stderr, "canary-runner: --signing-key-file: %v\n", err)
			return nil, false
		}
		opts.SigningKey = b
	}
	l, err := ledger.Open(opts)
	if err != nil {
		fmt.Fprintln(stderr, "canary-runner:", err)
		return nil, false
	}
	return l, true
}

func status(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	l, ok := openLedger(fs, args, stderr)
	if !ok {
		return 2
	}
	entries, err := l.List()
	if err != nil {
		fmt.Fprintln(stderr, "canary-runner:", err)
		return 2
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FLEET\tRELEASE\tACTIVE\tCHANNEL\tSEQ\tLAST EVENT\tSIGNED")
	bad := 0
	for _, e := range entries {
		if e.Err != nil {
			bad++
			fmt.Fprintf(tw, "?\t%s\t-\t-\t-\tREFUSED: %v\t-\n", e.Path, e.Err)
			continue
		}
		i := e.Index
		last := "-"
		if n := len(i.Events); n > 0 {
			ev := i.Events[n-1]
			last = fmt.Sprintf("%s %s %s by %s at %s", ev.Action, ev.Version, ev.Result, orDash(ev.Actor), ev.Time.UTC().Format(time.RFC3339))
			if ev.Ticket != "" {
				last += " (" + ev.Ticket + ")"
			}
		}
		signed := "yes"
		if i.Insecure {
			signed = "DEV KEY (insecure)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", i.Fleet, i.Release, orDash(i.ActiveVersion), i.Channel, i.Sequence, last, signed)
	}
	_ = tw.Flush()
	// Hosts, from the release records the provider leaves beside the index.
	for _, e := range entries {
		if e.Err != nil {
			continue
		}
		rec, err := runner.LoadRecord(l.Dir(), e.Index.Release)
		if err != nil {
			continue
		}
		fmt.Fprintf(stdout, "\n%s %s (run %s):\n", rec.Spec.Release, rec.Spec.Version, rec.RunID)
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  HOST\tSTAGE\tVERSION\tPREVIOUS\tSTATUS")
		for _, h := range rec.Hosts {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", h.Name, h.Stage, orDash(h.Version), orDash(h.PreviousVersion), h.Status)
		}
		_ = tw.Flush()
	}
	if bad > 0 {
		return 1
	}
	return 0
}

func verify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	l, ok := openLedger(fs, args, stderr)
	if !ok {
		return 2
	}
	entries, err := l.List()
	if err != nil {
		fmt.Fprintln(stderr, "canary-runner:", err)
		return 2
	}
	problems := l.VerifyAll()
	for _, p := range problems {
		fmt.Fprintf(stdout, "FAIL %s: %v\n", p.Path, p.Err)
	}
	if len(problems) > 0 {
		fmt.Fprintf(stdout, "%d of %d indexes failed verification\n", len(problems), len(entries))
		return 1
	}
	fmt.Fprintf(stdout, "ok: %d indexes verified (key %s)\n", len(entries), l.KeyID())
	return 0
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
