package ssh_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/canaryops/terraform-provider-canary/internal/devfleet"
	sshx "github.com/canaryops/terraform-provider-canary/runner/ssh"
)

func TestShellRunsScriptsInOneSession(t *testing.T) {
	f := devfleet.StartT(t, devfleet.Options{Hosts: 1, Logf: t.Logf})
	cfg := sshx.Config{User: f.User, PrivateKey: f.ClientKey, KnownHostsFile: f.KnownHostsFile}
	c, err := sshx.Dial(context.Background(), cfg, sshx.Endpoint{Address: f.Hosts[0].SSHAddr()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sh, err := c.StartShell(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// exit ends the script, not the shell; stderr is merged; cat cannot eat the control stream.
	for i, tc := range []struct {
		script string
		out    string
		status int
	}{
		{"echo hello; echo oops >&2", "hello\noops\n", 0},
		{"exit 75", "", 75},
		{"cat; echo after-cat", "after-cat\n", 0},
		{"x=1; echo $HOME", f.Hosts[0].Dir + "\n", 0},
		{"echo ${x:-unset}", "unset\n", 0}, // each script runs in its own subshell
	} {
		out, status, err := sh.Run(ctx, tc.script, 5*time.Second)
		if err != nil || out != tc.out || status != tc.status {
			t.Errorf("%d %q: got %q, %d, %v; want %q, %d", i, tc.script, out, status, err, tc.out, tc.status)
		}
	}
	// A script that hangs times out, and the shell is closed rather than reused in an unknown state.
	_, _, err = sh.Run(ctx, "sleep 30", 500*time.Millisecond)
	var te *sshx.TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("want a TimeoutError, got %v", err)
	}
	if _, _, err := sh.Run(ctx, "true", time.Second); err == nil || !strings.Contains(err.Error(), "shell closed") {
		t.Fatalf("want the shell closed, got %v", err)
	}
	// The connection is still usable for new sessions.
	if res, err := c.Run(ctx, "echo ok", sshx.RunOptions{}); err != nil || res.Stdout != "ok\n" {
		t.Fatalf("%v %+v", err, res)
	}
}

// TestShellExecRunsOperatorCommands: Exec runs a command from the control shell like Run would:
// login shell, exit status, merged output, and a timeout kills its whole process group while the
// shell stays usable.
func TestShellExecRunsOperatorCommands(t *testing.T) {
	f := devfleet.StartT(t, devfleet.Options{Hosts: 1, Logf: t.Logf})
	cfg := sshx.Config{User: f.User, PrivateKey: f.ClientKey, KnownHostsFile: f.KnownHostsFile}
	ctx := context.Background()
	c, err := sshx.Dial(ctx, cfg, sshx.Endpoint{Address: f.Hosts[0].SSHAddr()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sh, err := c.StartShell(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sh.Exec(ctx, "echo out; echo err >&2; cat; exit 3", sshx.RunOptions{Timeout: 5 * time.Second})
	if err != nil || res.ExitStatus != 3 || res.Stdout != "out\nerr\n" {
		t.Fatalf("got %+v, %v", res, err)
	}
	// A command with a background child that ignores TERM: the whole group dies at the timeout.
	start := time.Now()
	_, err = sh.Exec(ctx, "(trap '' TERM; sleep 301.7) & sleep 302.7; touch ~/should-not-exist", sshx.RunOptions{Timeout: 500 * time.Millisecond, KillGrace: time.Second})
	var te *sshx.TimeoutError
	if !errors.As(err, &te) || !te.Terminated {
		t.Fatalf("want a TimeoutError with the command terminated, got %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("stopping took %s", el)
	}
	out, status, err := sh.Run(ctx, "ps -eo args= | grep -c '[s]leep 30[12]\\.7'; test ! -e ~/should-not-exist", 5*time.Second)
	if err != nil || strings.TrimSpace(out) != "0" || status != 0 {
		t.Fatalf("the command's processes survived or it ran on: %q, %d, %v", out, status, err)
	}
	// Long output is bounded like Run's.
	res, err = sh.Exec(ctx, "seq 1 200000", sshx.RunOptions{MaxOutput: 1024})
	if err != nil || !res.Truncated || len(res.Stdout) > 1200 || !strings.HasPrefix(res.Stdout, "1\n2\n") || !strings.HasSuffix(res.Stdout, "200000\n") {
		t.Fatalf("truncation: %d bytes, truncated %v, err %v", len(res.Stdout), res.Truncated, err)
	}
}
