// Command canary-runner is the operator's tool for releases rolled out by the canary provider,
// usable without Terraform: follow-up checks from cron, a systemd timer or a CI schedule.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/canaryops/terraform-provider-canary/internal/sentry"
	"github.com/canaryops/terraform-provider-canary/runner"
	"github.com/canaryops/terraform-provider-canary/runner/guard"
	sshx "github.com/canaryops/terraform-provider-canary/runner/ssh"
)

const usage = `usage: canary-runner COMMAND [flags]

commands:
  status     the releases in the signed index: active version, channel, last event, hosts
  verify     check every index's signature and structure; exit 1 on any problem
  followup   run every guard of a release once on every host, Sentry since the deploy;
             exit 0 when healthy, 1 on a regression (after --rollback: reverted), 2 on error

Run "canary-runner COMMAND -h" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "followup":
		return followup(ctx, args[1:], stdout, stderr)
	case "status":
		return status(args[1:], stdout, stderr)
	case "verify":
		return verify(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "canary-runner: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// sshFlags are the SSH settings, from flags or CANARY_SSH_* environment variables.
type sshFlags struct {
	user, key, knownHosts string
	agent, insecure       bool
	timeout               time.Duration
}

func (s *sshFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.user, "ssh-user", envOr("CANARY_SSH_USER", os.Getenv("USER")), "SSH login user (CANARY_SSH_USER)")
	fs.StringVar(&s.key, "ssh-key", os.Getenv("CANARY_SSH_KEY_FILE"), "private key file (CANARY_SSH_KEY_FILE); default: ssh-agent")
	fs.StringVar(&s.knownHosts, "known-hosts", os.Getenv("CANARY_SSH_KNOWN_HOSTS"), "known_hosts file (CANARY_SSH_KNOWN_HOSTS); default ~/.ssh/known_hosts")
	fs.BoolVar(&s.agent, "use-agent", false, "authenticate with ssh-agent (SSH_AUTH_SOCK)")
	fs.BoolVar(&s.insecure, "insecure-ignore-host-key", false, "accept any host key (INSECURE; test hosts only)")
	fs.DurationVar(&s.timeout, "connect-timeout", 15*time.Second, "TCP connect plus SSH handshake bound per host")
}

func (s *sshFlags) config(stderr io.Writer) (sshx.Config, error) {
	if s.insecure {
		fmt.Fprintln(stderr, "canary-runner: WARNING: --insecure-ignore-host-key accepts any host key; anyone between here and the hosts can take over. Use --known-hosts instead outside throwaway test hosts.")
	}
	cfg := sshx.Config{User: s.user, KnownHostsFile: s.knownHosts, UseAgent: s.agent, InsecureIgnoreHostKey: s.insecure, ConnectTimeout: s.timeout}
	if s.key != "" {
		b, err := os.ReadFile(s.key)
		if err != nil {
			return cfg, fmt.Errorf("--ssh-key: %w", err)
		}
		cfg.PrivateKey = b
	} else if os.Getenv("SSH_AUTH_SOCK") != "" {
		cfg.UseAgent = true
	}
	return cfg, cfg.Validate()
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func followup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("followup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("ledger-dir", envOr("CANARY_LEDGER_DIR", ".canary"), "the provider's ledger_dir (CANARY_LEDGER_DIR)")
	release := fs.String("release", "", "release name (the canary_release's name; default: the only release in the ledger)")
	rollback := fs.Bool("rollback", false, "on a regression, revert every host the release changed at once")
	timeout := fs.Duration("timeout", 10*time.Minute, "bound on the whole check (and rollback)")
	var sf sshFlags
	sf.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: canary-runner followup [flags]\n\nSentry settings come from CANARY_SENTRY_URL, CANARY_SENTRY_AUTH_TOKEN, CANARY_SENTRY_ORG,\nCANARY_SENTRY_PROJECT and CANARY_SENTRY_ENVIRONMENT when the release has a Sentry guard.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	name := *release
	if name == "" {
		var err error
		if name, err = onlyRelease(*dir); err != nil {
			fmt.Fprintln(stderr, "canary-runner:", err)
			return 2
		}
	}
	rec, err := runner.LoadRecord(*dir, name)
	if err != nil {
		fmt.Fprintln(stderr, "canary-runner:", err)
		return 2
	}
	cfg, err := sf.config(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "canary-runner:", err)
		return 2
	}
	if err := attachSentry(rec.Spec.Guards); err != nil {
		fmt.Fprintln(stderr, "canary-runner:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	r := &runner.Runner{SSH: cfg}
	fmt.Fprintf(stdout, "follow-up of %s %s on %d hosts (deployed %s, run %s)\n", rec.Spec.Release, rec.Spec.Version, len(rec.Spec.Hosts), rec.DeployedAt.UTC().Format(time.RFC3339), rec.RunID)
	res, verr := r.Verify(ctx, rec.Spec, rec.DeployedAt)
	if res == nil {
		fmt.Fprintln(stderr, "canary-runner:", verr)
		return 2
	}
	for _, g := range res.Guards {
		mark := "ok  "
		if !g.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(stdout, "%s %-20s %-16s %s\n", mark, g.Guard, g.Host, g.Message)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stdout, "WARN %-20s %-16s %s\n", w.Guard, w.Host, w.Message)
	}
	if verr == nil {
		fmt.Fprintln(stdout, "healthy")
		return 0
	}
	fmt.Fprintf(stdout, "REGRESSED: %v\n", verr)
	if !*rollback {
		fmt.Fprintln(stdout, "run again with --rollback to revert every host the release changed, or run terraform destroy")
		return 1
	}
	targets := make([]runner.RevertTarget, 0, len(rec.Hosts))
	for _, h := range rec.Hosts {
		if h.Version != h.PreviousVersion && h.Version != "" {
			targets = append(targets, runner.RevertTarget{Host: h.Name, To: h.PreviousVersion, From: h.Version})
		}
	}
	rres, rerr := r.Revert(ctx, rec.Spec, targets)
	if rres != nil {
		for _, h := range rres.Hosts {
			if h.Status == runner.HostReverted {
				fmt.Fprintf(stdout, "reverted %s to %s\n", h.Name, orNothing(h.Version))
			}
		}
	}
	if rerr != nil {
		fmt.Fprintf(stdout, "ROLLBACK INCOMPLETE: %v\n", rerr)
		return 2
	}
	fmt.Fprintln(stdout, "rolled back; Terraform's state still lists the release: run terraform apply with the previous version, or terraform destroy (nothing left to revert)")
	return 1
}

func orNothing(v string) string {
	if v == "" {
		return "nothing installed"
	}
	return v
}

// onlyRelease names the release when the ledger holds exactly one.
func onlyRelease(dir string) (string, error) {
	entries, err := os.ReadDir(dir + "/releases")
	if err != nil {
		return "", fmt.Errorf("no release records in %s (%v): pass --ledger-dir", dir, err)
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok && !strings.HasPrefix(n, ".") {
			names = append(names, n)
		}
	}
	switch len(names) {
	case 0:
		return "", fmt.Errorf("no release records in %s/releases", dir)
	case 1:
		return names[0], nil
	}
	return "", fmt.Errorf("%d releases in %s (%s): pick one with --release", len(names), dir, strings.Join(names, ", "))
}

// attachSentry gives Sentry guards their connection, from CANARY_SENTRY_* settings.
func attachSentry(guards []guard.Guard) error {
	var need bool
	for _, g := range guards {
		if _, ok := g.Check.(*guard.Sentry); ok {
			need = true
		}
	}
	if !need {
		return nil
	}
	c, err := sentry.New(sentry.Config{
		APIURL: envOr("CANARY_SENTRY_URL", "https://sentry.io"), AuthToken: os.Getenv("CANARY_SENTRY_AUTH_TOKEN"),
		Org: os.Getenv("CANARY_SENTRY_ORG"), Project: os.Getenv("CANARY_SENTRY_PROJECT"), Environment: os.Getenv("CANARY_SENTRY_ENVIRONMENT"),
	})
	if err != nil {
		return errors.New("the release has a Sentry guard: set CANARY_SENTRY_URL, CANARY_SENTRY_AUTH_TOKEN, CANARY_SENTRY_ORG and CANARY_SENTRY_PROJECT (" + err.Error() + ")")
	}
	for _, g := range guards {
		if s, ok := g.Check.(*guard.Sentry); ok {
			s.Source = sentry.GuardSource(c)
		}
	}
	return nil
}
