// Command devfleet brings up a local fleet of real OpenSSH sshd hosts with a
// demo agent, for demos, manual testing and benchmarks of the canary
// provider. The same binary is the agent and its control command agentctl.
//
//	devfleet up --hosts 5 --dir DIR [--initial-version 1.0.0] [--behavior 1.2.0=unhealthy ...]
//	devfleet down --dir DIR
//	devfleet agent COMMAND ...      (or invoked as agentctl)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/canaryops/terraform-provider-canary/internal/devfleet"
	"github.com/canaryops/terraform-provider-canary/internal/devfleet/agent"
	"github.com/canaryops/terraform-provider-canary/internal/devfleet/internal/proc"
)

const usage = `usage:
  devfleet up [--hosts N] [--dir DIR] [--name-prefix host-] [--initial-version V]
              [--behavior VERSION=healthy|unhealthy|crash|panic|slow ...]
              [--slow-start-delay 3s] [--panic-delay 3s]
      Start a fleet, write DIR/inventory.json and DIR/fleet.auto.tfvars.json,
      and keep it running until SIGINT/SIGTERM (or devfleet down).
  devfleet status --dir DIR
      Print what each host runs: installed version, what its agent answers, and
      the release markers the rollout engine left on it.
  devfleet down --dir DIR [--timeout 30s]
      Stop the fleet that devfleet up runs in DIR.
  devfleet agent COMMAND [ARG]   (also: agentctl COMMAND [ARG])
      The demo agent's control command; see "devfleet agent help".
`

// Files devfleet up writes in the fleet dir.
const (
	pidFileName       = "devfleet.pid"
	inventoryFileName = "inventory.json"
	tfvarsFileName    = "fleet.auto.tfvars.json"
)

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if agent.IsInvocation(args) {
		return agent.Main(args, stdout, stderr)
	}
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[1] {
	case "agent", "agentctl":
		return agent.Main(args[1:], stdout, stderr)
	case "up":
		return up(args[2:], stdout, stderr)
	case "down":
		return down(args[2:], stdout, stderr)
	case "status":
		return status(args[2:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "devfleet: unknown command %q\n%s", args[1], usage)
		return 2
	}
}

type behaviorFlag map[string]devfleet.Behavior

func (b behaviorFlag) String() string {
	var parts []string
	for v, x := range b {
		parts = append(parts, v+"="+string(x))
	}
	return strings.Join(parts, ",")
}

func (b behaviorFlag) Set(s string) error {
	v, x, ok := strings.Cut(s, "=")
	if !ok || v == "" {
		return fmt.Errorf("want VERSION=BEHAVIOR, got %q", s)
	}
	if !agent.ValidVersion(v) {
		return fmt.Errorf("invalid version %q", v)
	}
	if !devfleet.Behavior(x).Valid() {
		return fmt.Errorf("unknown behavior %q (want healthy, unhealthy, crash, panic or slow)", x)
	}
	b[v] = devfleet.Behavior(x)
	return nil
}

func up(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("devfleet up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hosts := fs.Int("hosts", 3, "number of hosts")
	dir := fs.String("dir", "", "fleet directory (default: a new temporary directory, removed on exit)")
	prefix := fs.String("name-prefix", "host-", "host name prefix")
	initial := fs.String("initial-version", "", "version installed and running on every host at start")
	slow := fs.Duration("slow-start-delay", agent.DefaultSlowStartDelay, "how long the slow behavior answers 503 starting")
	panicDelay := fs.Duration("panic-delay", agent.DefaultPanicDelay, "when the panic behavior starts logging panics")
	behaviors := behaviorFlag{}
	fs.Var(behaviors, "behavior", "VERSION=BEHAVIOR, repeatable")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "devfleet up: unexpected arguments %q\n", fs.Args())
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "devfleet up: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *dir != "" {
		// Stale ready markers of an earlier run must not fool scripts.
		for _, n := range []string{inventoryFileName, tfvarsFileName} {
			_ = os.Remove(filepath.Join(*dir, n))
		}
	}
	f, err := devfleet.Start(ctx, devfleet.Options{
		Hosts:          *hosts,
		Dir:            *dir,
		NamePrefix:     *prefix,
		AgentBinary:    self,
		InitialVersion: *initial,
		Behaviors:      behaviors,
		SlowStartDelay: *slow,
		PanicDelay:     *panicDelay,
	})
	if err != nil {
		fmt.Fprintf(stderr, "devfleet up: %v\n", err)
		return 1
	}
	code := 0
	pidFile := filepath.Join(f.Dir, pidFileName)
	cleanup := func() {
		for _, n := range []string{pidFileName, inventoryFileName, tfvarsFileName} {
			_ = os.Remove(filepath.Join(f.Dir, n))
		}
		if err := f.Close(); err != nil {
			fmt.Fprintf(stderr, "devfleet up: %v\n", err)
			code = 1
		}
	}
	if err := agent.WriteFileAtomic(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		fmt.Fprintf(stderr, "devfleet up: %v\n", err)
		cleanup()
		return 1
	}
	if err := writeTFVars(f); err != nil {
		fmt.Fprintf(stderr, "devfleet up: %v\n", err)
		cleanup()
		return 1
	}
	printInventory(stdout, f)
	// The inventory is written last: its presence means the fleet is ready.
	if err := writeJSON(filepath.Join(f.Dir, inventoryFileName), f.Inventory()); err != nil {
		fmt.Fprintf(stderr, "devfleet up: %v\n", err)
		cleanup()
		return 1
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "devfleet: stopping the fleet")
	cleanup()
	if code == 0 {
		fmt.Fprintln(stdout, "devfleet: fleet stopped")
	}
	return code
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return agent.WriteFileAtomic(path, append(b, '\n'), 0o644)
}

type tfHost struct {
	Name    string            `json:"name"`
	Address string            `json:"address"`
	Port    int               `json:"port"`
	Vars    map[string]string `json:"vars"`
}

type tfVars struct {
	Hosts             []tfHost `json:"hosts"`
	SSHUser           string   `json:"ssh_user"`
	SSHPrivateKeyFile string   `json:"ssh_private_key_file"`
	KnownHostsFile    string   `json:"known_hosts_file"`
}

func writeTFVars(f *devfleet.Fleet) error {
	v := tfVars{SSHUser: f.User, SSHPrivateKeyFile: f.ClientKeyFile, KnownHostsFile: f.KnownHostsFile}
	for _, h := range f.Inventory().Hosts {
		v.Hosts = append(v.Hosts, tfHost{
			Name: h.Name, Address: h.Address, Port: h.Port,
			Vars: map[string]string{"agent_port": strconv.Itoa(h.AgentPort)},
		})
	}
	return writeJSON(filepath.Join(f.Dir, tfvarsFileName), v)
}

func printInventory(w io.Writer, f *devfleet.Fleet) {
	fmt.Fprintf(w, "devfleet: %d hosts up in %s (pid %d)\n\n", len(f.Hosts), f.Dir, os.Getpid())
	fmt.Fprintf(w, "  %-12s %-16s %-6s %-10s %s\n", "NAME", "ADDRESS", "PORT", "AGENT", "VERSION")
	for _, h := range f.Hosts {
		v, _ := h.Version()
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(w, "  %-12s %-16s %-6d %-10d %s\n", h.Name, h.Address, h.Port, h.AgentPort, v)
	}
	fmt.Fprintf(w, "\nSSH settings:\n")
	fmt.Fprintf(w, "  user              %s\n", f.User)
	fmt.Fprintf(w, "  private key       %s\n", f.ClientKeyFile)
	fmt.Fprintf(w, "  known_hosts       %s\n", f.KnownHostsFile)
	fmt.Fprintf(w, "  behaviors         %s\n", f.BehaviorsFile)
	fmt.Fprintf(w, "  inventory         %s\n", filepath.Join(f.Dir, inventoryFileName))
	fmt.Fprintf(w, "  terraform vars    %s\n", filepath.Join(f.Dir, tfvarsFileName))
	if len(f.Hosts) > 0 {
		h := f.Hosts[0]
		fmt.Fprintf(w, "\nTry:\n  ssh -i %s -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -p %d %s@%s agentctl status\n",
			f.ClientKeyFile, f.KnownHostsFile, h.Port, f.User, h.Address)
	}
	fmt.Fprintf(w, "\nStop with Ctrl-C or: devfleet down --dir %s\n", f.Dir)
}

func down(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("devfleet down", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "fleet directory given to devfleet up (required)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the fleet to stop")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" || fs.NArg() > 0 {
		fmt.Fprint(stderr, "devfleet down: --dir DIR is required\n")
		return 2
	}
	b, err := os.ReadFile(filepath.Join(*dir, pidFileName))
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stdout, "devfleet: no fleet is running in %s\n", *dir)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "devfleet down: %v\n", err)
		return 1
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		fmt.Fprintf(stderr, "devfleet down: malformed pid file %s\n", filepath.Join(*dir, pidFileName))
		return 1
	}
	if !isUpProcess(pid) {
		fmt.Fprintf(stdout, "devfleet: no fleet is running in %s (stale pid file, process %d is gone)\n", *dir, pid)
		_ = os.Remove(filepath.Join(*dir, pidFileName))
		return 0
	}
	if err := proc.Signal(pid, syscall.SIGTERM); err != nil {
		fmt.Fprintf(stderr, "devfleet down: signal %d: %v\n", pid, err)
		return 1
	}
	if left := proc.WaitDead([]int{pid}, *timeout); len(left) > 0 {
		fmt.Fprintf(stderr, "devfleet down: process %d did not exit within %v\n", pid, *timeout)
		return 1
	}
	fmt.Fprintf(stdout, "devfleet: fleet in %s stopped (pid %d)\n", *dir, pid)
	return 0
}

// isUpProcess reports whether pid is a live "devfleet up" (pids get reused).
func isUpProcess(pid int) bool {
	if !proc.Alive(pid) {
		return false
	}
	argv, err := proc.Cmdline(pid)
	if err != nil {
		return false
	}
	for _, a := range argv {
		if a == "up" {
			return true
		}
	}
	return false
}
