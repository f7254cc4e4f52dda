package ssh

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Shell is a long-lived /bin/sh on the connection that runs short scripts one after another. The
// rollout engine keeps its own bookkeeping (locks, markers, version probes) on it, so that costs
// no new session, and no new process tree on the host, per step. Operators' commands go through
// Exec (or Client.Run), which can terminate them.
//
// Each script runs in a subshell with stdin from /dev/null and stderr merged into stdout, so it
// can neither end the shell nor read the control stream. The session's stderr carries only the
// output of commands started by Exec.
type Shell struct {
	c     *Client
	sess  *ssh.Session
	stdin io.WriteCloser
	out   *bufio.Reader
	token string

	mu       sync.Mutex // one script or command at a time
	broken   error      // set when the shell can no longer be used
	noSetsid bool       // the host has no setsid(1): Exec uses Client.Run
	once     sync.Once

	execs      int // Execs started, to tell their end lines apart
	errMu      sync.Mutex
	errOut     *capture      // the running Exec's output (the session's stderr); nil: discard
	errEnd     chan struct{} // closed when that output is complete
	errEndLine []byte        // the line that marks it
	errHeldNL  bool          // readStderr holds back a newline
}

// maxShellOutput bounds what one script may print.
const maxShellOutput = 1 << 20

// StartShell starts a Shell. It holds one of the connection's sessions until Close.
func (c *Client) StartShell(ctx context.Context) (*Shell, error) {
	select {
	case c.sessions <- struct{}{}:
	case <-ctx.Done():
		return nil, c.cancelled("shell", ctx.Err())
	case <-c.done:
		return nil, c.lost("shell", nil)
	}
	sess, err := c.openSession(ctx)
	if err != nil {
		<-c.sessions
		return nil, c.lost("shell", err)
	}
	stdin, err1 := sess.StdinPipe()
	stdout, err2 := sess.StdoutPipe()
	stderr, err3 := sess.StderrPipe()
	if err := errors.Join(err1, err2, err3); err != nil {
		sess.Close()
		<-c.sessions
		return nil, c.lost("shell", err)
	}
	if err := sess.Start("exec /bin/sh"); err != nil {
		sess.Close()
		<-c.sessions
		return nil, c.lost("shell", err)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	s := &Shell{c: c, sess: sess, stdin: stdin, out: bufio.NewReader(stdout), token: "@@end-" + hex.EncodeToString(b)}
	go s.readStderr(stderr)
	return s, nil
}

// Run runs script and returns its combined output and exit status. A timeout or cancellation
// leaves the shell unusable (it is closed), since the script's state is unknown.
func (s *Shell) Run(ctx context.Context, script string, timeout time.Duration) (string, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return "", -1, s.broken
	}
	label := cmdLabel(script)
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	type result struct {
		out    string
		status int
		err    error
	}
	// Written before waiting: scripts are far smaller than the channel window, so this does not
	// block, and writing from this goroutine keeps it ordered with Close.
	if _, err := io.WriteString(s.stdin, "(\n"+script+"\n) </dev/null 2>&1; echo \""+s.token+" $?\"\n"); err != nil {
		s.broken = s.c.lost(label, err)
		s.close()
		return "", -1, s.broken
	}
	ch := make(chan result, 1)
	go func() {
		var b strings.Builder
		for {
			line, err := s.out.ReadString('\n')
			if rest, ok := strings.CutPrefix(line, s.token+" "); ok {
				st, _ := strconv.Atoi(strings.TrimSpace(rest))
				ch <- result{out: b.String(), status: st}
				return
			}
			if b.Len() < maxShellOutput {
				b.WriteString(line)
			}
			if err != nil {
				ch <- result{out: b.String(), err: err}
				return
			}
		}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			s.broken = s.c.lost(label, r.err)
			s.close()
			return r.out, -1, s.broken
		}
		return r.out, r.status, nil
	case <-ctx.Done():
		var err error
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && timeout > 0 {
			err = &TimeoutError{Op: "command", Address: s.c.addr, Command: label, Timeout: timeout}
		} else {
			err = s.c.cancelled(label, ctx.Err())
		}
		s.broken = fmt.Errorf("shell closed after an earlier script was stopped: %w", err)
		s.close()
		return "", -1, err
	}
}

// Exec runs an operator's command on the shell's host as Client.Run does (same options, errors and
// termination on timeout or cancellation), but without a session of its own, which saves the
// host a login-shell process tree per command. The shell starts the command with setsid(1), so
// it runs as the leader of a new session and process group under the user's login shell with
// empty stdin, exactly as in a session of its own, and waits for it; on timeout or cancellation
// its process group is terminated through a second session (kill -s TERM, then KILL after
// opts.KillGrace) and the shell stays usable. The command's stdout and stderr are merged, in
// order, into Result.Stdout; Result.Stderr is empty. An exit status above 128 may mean a signal
// ended the command (there is no ExitSignalError).
//
// Exec falls back to Client.Run when the host has no setsid, when opts.Stdin is set, or when the
// shell has been closed.
func (s *Shell) Exec(ctx context.Context, cmd string, opts RunOptions) (*Result, error) {
	if cmd == "" {
		return nil, errors.New("ssh: Exec: empty command")
	}
	if opts.Stdin == nil {
		s.mu.Lock()
		res, err, ran := s.exec(ctx, cmd, opts)
		s.mu.Unlock()
		if ran {
			return res, err
		}
	}
	return s.c.Run(ctx, cmd, opts)
}

// execLine is what the control stream said about an Exec.
type execLine struct {
	status   int
	noSetsid bool
	err      error
}

// exec runs cmd on the shell; ran is false when it did not start it (see Exec). s.mu is held.
func (s *Shell) exec(ctx context.Context, cmd string, opts RunOptions) (res *Result, err error, ran bool) {
	if s.broken != nil || s.noSetsid {
		return nil, nil, false
	}
	start := time.Now()
	label := cmdLabel(cmd)
	if err := ctx.Err(); err != nil {
		return nil, s.c.cancelled(label, err), true
	}
	runCtx := ctx
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	grace := opts.KillGrace
	if grace <= 0 {
		grace = s.c.killGrace
	}
	maxOut := opts.MaxOutput
	if maxOut <= 0 {
		maxOut = DefaultMaxOutput
	}
	s.execs++
	endLine := fmt.Sprintf("%s-out-%d", s.token, s.execs)
	out, end := newCapture(maxOut), make(chan struct{})
	s.errMu.Lock()
	s.errOut, s.errEnd, s.errEndLine, s.errHeldNL = out, end, []byte(endLine+"\n"), false
	s.errMu.Unlock()
	defer func() {
		s.errMu.Lock()
		s.errOut, s.errEnd = nil, nil
		s.errMu.Unlock()
	}()

	// The command's output goes to the session's stderr, so that nothing it leaves running can
	// write into the control stream; a line with the token marks the end of that output. The
	// control stream gets the process group id ($! is the group leader after setsid) and then
	// the exit status. Without setsid the command is not started.
	tok := s.token
	script := `if command -v setsid >/dev/null 2>&1; then setsid "${SHELL:-/bin/sh}" -c ` + Quote(cmd) + ` </dev/null >&2 &
echo "` + tok + `-pgid $!"; wait $! 2>/dev/null; __rc=$?; printf '\n%s\n' "` + endLine + `" >&2; echo "` + tok + ` $__rc"
else echo "` + tok + `-nosetsid"; fi
`
	if _, err := io.WriteString(s.stdin, script); err != nil {
		s.broken = s.c.lost(label, err)
		s.close()
		return nil, s.broken, true
	}
	pgidCh := make(chan int, 1)
	done := make(chan execLine, 1)
	go func() {
		for {
			line, err := s.out.ReadString('\n')
			if err == nil {
				line = strings.TrimSuffix(line, "\n")
				if rest, ok := strings.CutPrefix(line, tok+"-pgid "); ok {
					n, _ := strconv.Atoi(rest)
					pgidCh <- n
				} else if line == tok+"-nosetsid" {
					done <- execLine{noSetsid: true}
					return
				} else if rest, ok := strings.CutPrefix(line, tok+" "); ok {
					n, _ := strconv.Atoi(rest)
					done <- execLine{status: n}
					return
				}
				continue // not ours: output of something an earlier script left running
			}
			done <- execLine{err: err}
			return
		}
	}()

	var r execLine
	var stopErr error
	select {
	case r = <-done:
	case <-runCtx.Done():
		if err := ctx.Err(); err != nil {
			stopErr = s.c.cancelled(label, err)
		} else {
			stopErr = &TimeoutError{Op: "command", Address: s.c.addr, Command: label, Timeout: opts.Timeout}
		}
		var exited bool
		r, exited = s.stopExec(pgidCh, done, grace)
		var te *TimeoutError
		if errors.As(stopErr, &te) {
			te.Terminated = exited
		}
		s.c.log.Debug("ssh command stopped", "command", label, "reason", stopErr, "exited", exited)
		if !exited {
			// The shell is still waiting for the command: it cannot be used any more.
			s.broken = fmt.Errorf("shell closed after a command could not be stopped: %w", stopErr)
			s.close()
			return s.result(out, -1, start), stopErr, true
		}
	}
	switch {
	case r.err != nil:
		s.broken = s.c.lost(label, r.err)
		s.close()
		return s.result(out, -1, start), s.broken, true
	case r.noSetsid:
		s.noSetsid = true
		return nil, nil, false
	}
	// The end of the output was written before the status: it is on its way, if not there yet.
	select {
	case <-end:
	case <-s.c.done:
	case <-time.After(grace):
	}
	if stopErr != nil {
		return s.result(out, -1, start), stopErr, true
	}
	return s.result(out, r.status, start), nil, true
}

func (s *Shell) result(out *capture, status int, start time.Time) *Result {
	r := &Result{ExitStatus: status, Duration: time.Since(start)}
	r.Stdout, r.Truncated = out.String()
	return r
}

// stopExec terminates a command started by exec: TERM to its process group through a second
// session, then after grace KILL. It returns what the control stream said once the command
// ended, and whether it was seen to end.
func (s *Shell) stopExec(pgidCh <-chan int, done <-chan execLine, grace time.Duration) (execLine, bool) {
	timer := time.NewTimer(grace)
	defer timer.Stop()
	pgid := 0
	select {
	case pgid = <-pgidCh:
		timer.Reset(grace)
	case r := <-done:
		return r, true
	case <-timer.C:
		return execLine{}, false // the host does not even say which process to stop
	}
	go s.c.killGroup(pgid, "TERM", grace)
	select {
	case r := <-done:
		// The leader is gone; members of its group that ignore TERM may not be: sweep them.
		s.c.killGroup(pgid, "KILL", grace)
		return r, true
	case <-timer.C:
	}
	s.c.log.Warn("ssh command ignored SIGTERM; killing its process group", "pgid", pgid)
	s.c.killGroup(pgid, "KILL", grace)
	select {
	case r := <-done:
		return r, true
	case <-time.After(500 * time.Millisecond):
		return execLine{}, false
	}
}

// readStderr passes the session's stderr to the running Exec's capture, up to the line that
// marks the end of its output, and discards it otherwise.
func (s *Shell) readStderr(r io.Reader) {
	br := bufio.NewReader(r)
	marker := []byte(s.token + "-out")
	lineStart := true
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			nl := chunk[len(chunk)-1] == '\n'
			s.errMu.Lock()
			switch {
			case lineStart && nl && bytes.HasPrefix(chunk, marker):
				// An end line: the running Exec's (then its output is complete) or a late one.
				if s.errEnd != nil && bytes.Equal(chunk, s.errEndLine) {
					close(s.errEnd)
					s.errOut, s.errEnd = nil, nil
				}
			case s.errOut != nil:
				// Hold back a line's newline until the next line shows it is not the one that
				// exec prints just before the end line.
				if s.errHeldNL {
					_, _ = s.errOut.Write([]byte{'\n'})
				}
				s.errHeldNL = nl
				if nl {
					chunk = chunk[:len(chunk)-1]
				}
				_, _ = s.errOut.Write(chunk)
			}
			s.errMu.Unlock()
			lineStart = nl
		}
		if err != nil && err != bufio.ErrBufferFull {
			s.errMu.Lock()
			if s.errEnd != nil {
				close(s.errEnd)
			}
			s.errOut, s.errEnd = nil, nil
			s.errMu.Unlock()
			return
		}
	}
}

// Err returns why the shell can no longer be used (closed, or a script or command could not be
// stopped), or nil.
func (s *Shell) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.broken
}

// Close ends the shell: its stdin closes, so /bin/sh exits.
func (s *Shell) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken == nil {
		s.broken = errors.New("shell closed")
	}
	s.close()
	return nil
}

func (s *Shell) close() {
	s.once.Do(func() {
		_ = s.stdin.Close()
		done := make(chan struct{})
		go func() { _ = s.sess.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		case <-s.c.done:
		}
		_ = s.sess.Close()
		<-s.c.sessions
	})
}
