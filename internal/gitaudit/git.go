package gitaudit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
)

// git runs the real git binary in one directory.
type git struct {
	dir   string
	extra []string // extra environment, e.g. the commit identity
}

// gitError is a failed git command. Its message carries git's own (redacted) words.
type gitError struct {
	args     []string
	exitCode int
	stderr   string
	err      error
}

func (e *gitError) Error() string {
	msg := strings.TrimSpace(e.stderr)
	if msg == "" {
		msg = e.err.Error()
	}
	return fmt.Sprintf("git %s: %s", strings.Join(e.args, " "), msg)
}

func (e *gitError) Unwrap() error { return e.err }

// scrubbedEnv is the process environment without the variables that would point git at
// another repository, work tree or index than the directory it runs in (a caller running
// inside a git hook has them set; honouring GIT_INDEX_FILE would let the temporary
// worktree write the operator's index). Prompts and editors are disabled: nothing here may
// wait for a terminal.
func scrubbedEnv() []string {
	drop := map[string]bool{
		"GIT_DIR": true, "GIT_WORK_TREE": true, "GIT_INDEX_FILE": true, "GIT_OBJECT_DIRECTORY": true,
		"GIT_ALTERNATE_OBJECT_DIRECTORIES": true, "GIT_COMMON_DIR": true, "GIT_NAMESPACE": true,
		"GIT_PREFIX": true, "GIT_EDITOR": true, "GIT_SEQUENCE_EDITOR": true, "GIT_TERMINAL_PROMPT": true,
		"LC_ALL": true, "LANGUAGE": true,
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C", "LANGUAGE=C", "GIT_TERMINAL_PROMPT=0", "GIT_EDITOR=true", "GIT_SEQUENCE_EDITOR=true")
}

func (g git) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = g.dir
	cmd.Env = append(scrubbedEnv(), g.extra...)
	cmd.Stdin = nil
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	err := cmd.Run()
	if err != nil {
		ge := &gitError{args: redactArgs(args), exitCode: -1, stderr: redact(errb.String()), err: err}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			ge.exitCode = ee.ExitCode()
		}
		if ctx.Err() != nil {
			ge.err = ctx.Err()
			ge.stderr = ctx.Err().Error()
		}
		return out.String(), ge
	}
	return out.String(), nil
}

// trimmed runs git and returns its output without the trailing newline.
func (g git) trimmed(ctx context.Context, args ...string) (string, error) {
	out, err := g.run(ctx, args...)
	return strings.TrimRight(out, "\n"), err
}

func exitCode(err error) int {
	var ge *gitError
	if errors.As(err, &ge) {
		return ge.exitCode
	}
	return -1
}

var credRE = regexp.MustCompile(`(://)[^/@\s]+@`)

// redact removes user:password@ from URLs git may echo (a remote URL with a token).
func redact(s string) string { return credRE.ReplaceAllString(s, "${1}***@") }

func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = redact(a)
	}
	return out
}
