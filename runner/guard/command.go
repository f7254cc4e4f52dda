package guard

import (
	"context"
	"fmt"
	"strings"

	"github.com/canaryops/terraform-provider-canary/runner/tmpl"
)

// Command runs a shell command on the host; it passes when the exit status is ExpectExit and, when
// set, the output contains ExpectOutput.
type Command struct {
	Command      string // shell template; values are quoted
	ExpectExit   int
	ExpectOutput string // template; substring of stdout
}

func (c *Command) Kind() string { return "command" }

func (c *Command) Validate() error {
	if strings.TrimSpace(c.Command) == "" {
		return fmt.Errorf("command.command is empty")
	}
	if err := tmpl.Validate(c.Command, true); err != nil {
		return fmt.Errorf("command.command: %w", err)
	}
	if err := tmpl.Validate(c.ExpectOutput, false); err != nil {
		return fmt.Errorf("command.expect_output: %w", err)
	}
	return nil
}

func (c *Command) Check(ctx context.Context, t Target, d tmpl.Data, _ any) Result {
	cmd, err := tmpl.RenderShell(c.Command, d)
	if err != nil {
		return Result{Message: "command.command: " + err.Error()}
	}
	want, err := tmpl.Render(c.ExpectOutput, d)
	if err != nil {
		return Result{Message: "command.expect_output: " + err.Error()}
	}
	res, err := t.Exec(ctx, cmd, 0)
	if err != nil {
		return Result{Message: fmt.Sprintf("%s: %v", cmd, err), Evidence: err.Error()}
	}
	out := strings.TrimSpace(res.Stdout + "\n" + res.Stderr)
	evidence := fmt.Sprintf("exit %d: %s", res.ExitStatus, Bound(out, evidenceBytes))
	if res.ExitStatus != c.ExpectExit {
		return Result{Message: fmt.Sprintf("%s exited %d, expected %d", cmd, res.ExitStatus, c.ExpectExit), Evidence: evidence}
	}
	if want != "" && !strings.Contains(res.Stdout, want) {
		return Result{Message: fmt.Sprintf("%s: output does not contain %q", cmd, want), Evidence: evidence}
	}
	return Result{OK: true, Message: fmt.Sprintf("%s exited %d", cmd, res.ExitStatus), Evidence: evidence}
}

func hasAction(s string) bool { return strings.Contains(s, "{{") }
