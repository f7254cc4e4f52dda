package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// RunOptions tune one Run.
type RunOptions struct {
	Timeout time.Duration // 0 = no timeout beyond ctx
	Stdin   io.Reader     // nil = empty stdin
	// MaxOutput bounds the capture of each of stdout and stderr (default
	// 64 KiB). Beyond it, the first MaxOutput/2 and the last MaxOutput/2
	// bytes are kept around a "[... N bytes truncated ...]" marker and
	// Result.Truncated is set.
	MaxOutput int
	// KillGrace is how long a timed-out or cancelled command gets to exit
	// after SIGTERM before its process group is killed (default 2s).
	KillGrace time.Duration
}

// Result is the outcome of a command that ran. A non-zero exit status is not
// an error.
type Result struct {
	Stdout, Stderr string
	ExitStatus     int    // -1 when the command did not exit normally (signal, timeout, cancellation)
	Signal         string // the signal that killed the command, e.g. "TERM" (with ExitSignalError)
	Truncated      bool   // output beyond MaxOutput was discarded
	Duration       time.Duration
}

// Run runs cmd on the host under the user's login shell, as ssh would, and
// waits for it. A non-zero exit status is reported in Result.ExitStatus, not
// as an error. Errors are:
//   - *TimeoutError when opts.Timeout passes,
//   - an error wrapping ctx.Err() when ctx is done,
//   - *ExitSignalError (with ExitStatus -1) when a signal killed the command,
//   - transport errors (connection lost, session refused).
//
// On timeout and cancellation the command's process group is terminated
// (see the package documentation) before Run returns, and the partial Result
// is returned along with the error. Commands that leave daemons holding
// stdout or stderr open keep the session open, as with ssh: redirect their
// output.
func (c *Client) Run(ctx context.Context, cmd string, opts RunOptions) (*Result, error) {
	if cmd == "" {
		return nil, errors.New("ssh: Run: empty command")
	}
	return c.run(ctx, cmd, cmdLabel(cmd), opts, true)
}

// run runs cmd wrapped for process group control. userShell selects the
// login shell ($SHELL) rather than /bin/sh for the command itself; the
// package's own scripts use /bin/sh.
func (c *Client) run(ctx context.Context, cmd, label string, opts RunOptions, userShell bool) (*Result, error) {
	start := time.Now()
	if err := ctx.Err(); err != nil {
		return nil, c.cancelled(label, err)
	}
	runCtx := ctx
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	grace := opts.KillGrace
	if grace <= 0 {
		grace = c.killGrace
	}
	stopErr := func() error {
		if err := ctx.Err(); err != nil {
			return c.cancelled(label, err)
		}
		return &TimeoutError{Op: "command", Address: c.addr, Command: label, Timeout: opts.Timeout}
	}

	select {
	case c.sessions <- struct{}{}:
		defer func() { <-c.sessions }()
	case <-runCtx.Done():
		return nil, stopErr()
	case <-c.done:
		return nil, c.lost(label, nil)
	}
	sess, err := c.openSession(runCtx)
	if err != nil {
		if runCtx.Err() != nil {
			return nil, stopErr()
		}
		return nil, c.lost(label, err)
	}
	defer sess.Close()

	maxOut := opts.MaxOutput
	if maxOut <= 0 {
		maxOut = DefaultMaxOutput
	}
	stdout, stderr := newCapture(maxOut), newCapture(maxOut)
	filter := newMarkerFilter(c.marker, stderr)
	sess.Stdout = stdout
	sess.Stderr = filter
	var stdin io.WriteCloser
	if opts.Stdin != nil {
		if stdin, err = sess.StdinPipe(); err != nil {
			return nil, c.lost(label, err)
		}
	}
	result := func(status int) *Result {
		filter.flush()
		r := &Result{ExitStatus: status, Duration: time.Since(start)}
		var t1, t2 bool
		r.Stdout, t1 = stdout.String()
		r.Stderr, t2 = stderr.String()
		r.Truncated = t1 || t2
		return r
	}

	startCh := make(chan error, 1)
	go func() { startCh <- sess.Start(c.wrap(cmd, userShell)) }()
	select {
	case err = <-startCh:
	case <-runCtx.Done():
		// The exec request may have reached sshd: give it the grace period
		// to answer so the command can be terminated if it started.
		select {
		case err = <-startCh:
		case <-time.After(grace):
			return nil, stopErr()
		}
	}
	if err != nil {
		if runCtx.Err() != nil {
			return nil, stopErr()
		}
		return nil, c.lost(label, err)
	}
	if stdin != nil {
		go func() {
			_, _ = io.Copy(stdin, opts.Stdin)
			stdin.Close()
		}()
	}
	waitCh := make(chan error, 1)
	go func() { waitCh <- sess.Wait() }()

	var waitErr error
	select {
	case waitErr = <-waitCh:
	case <-runCtx.Done():
		exited := c.stop(sess, filter, waitCh, grace)
		err := stopErr()
		var te *TimeoutError
		if errors.As(err, &te) {
			te.Terminated = exited
		}
		c.log.Debug("ssh command stopped", "command", label, "reason", err, "exited", exited)
		return result(-1), err
	}

	var exitErr *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case waitErr == nil:
		return result(0), nil
	case errors.As(waitErr, &exitErr) && exitErr.Signal() != "":
		r := result(-1)
		r.Signal = exitErr.Signal()
		return r, &ExitSignalError{Address: c.addr, Command: label, Signal: exitErr.Signal(), Message: exitErr.Msg()}
	case errors.As(waitErr, &exitErr):
		return result(exitErr.ExitStatus()), nil
	case errors.As(waitErr, &missing):
		return result(-1), c.lost(label, errors.New("the server sent no exit status"))
	}
	return result(-1), c.lost(label, waitErr)
}

func (c *Client) cancelled(label string, err error) error {
	return fmt.Errorf("ssh: command %q on %s cancelled: %w", label, c.addr, err)
}

// lost reports a transport failure, naming the connection's fate if it died.
func (c *Client) lost(label string, err error) error {
	if cerr := c.Err(); cerr != nil {
		if err == nil {
			return fmt.Errorf("ssh: command %q on %s: %w", label, c.addr, cerr)
		}
		return fmt.Errorf("ssh: command %q on %s: %w (%v)", label, c.addr, cerr, err)
	}
	return fmt.Errorf("ssh: command %q on %s: %w", label, c.addr, err)
}

// openSession opens a session channel, giving up when ctx ends.
func (c *Client) openSession(ctx context.Context) (*ssh.Session, error) {
	type res struct {
		s   *ssh.Session
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := c.conn.NewSession()
		ch <- res{s, err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.s != nil {
				r.s.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// wrap makes the remote command report its process group on stderr and run
// as the group leader (see the package documentation).
func (c *Client) wrap(cmd string, userShell bool) string {
	shell := `/bin/sh`
	if userShell {
		shell = `"${SHELL:-/bin/sh}"`
	}
	script := `printf '` + c.marker + `%s\n' "$$" >&2; exec ` + shell + ` -c "$1"`
	return "exec /bin/sh -c " + Quote(script) + " canary " + Quote(cmd)
}

// stop ends a running command: SIGTERM to its process group through the
// signal request and through a second session, then after grace SIGKILL the
// same ways, then the session is closed. It reports whether the command was
// seen to exit.
func (c *Client) stop(sess *ssh.Session, filter *markerFilter, waitCh <-chan error, grace time.Duration) bool {
	go func() { _ = sess.Signal(ssh.SIGTERM) }()
	if c.killViaSession {
		go func() {
			select {
			case <-filter.known:
				c.killGroup(filter.PGID(), "TERM", grace)
			case <-time.After(grace):
			}
		}()
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-waitCh:
		// The command is gone, but members of its group that ignore TERM and no longer hold
		// its output may still run: sweep the group.
		if pgid := filter.PGID(); pgid > 0 && c.killViaSession {
			c.killGroup(pgid, "KILL", grace)
		}
		return true
	case <-timer.C:
	}
	c.log.Warn("ssh command ignored SIGTERM; killing its process group", "pgid", filter.PGID())
	go func() { _ = sess.Signal(ssh.SIGKILL) }()
	if pgid := filter.PGID(); pgid > 0 && c.killViaSession {
		c.killGroup(pgid, "KILL", grace)
	}
	select {
	case <-waitCh:
		return true
	case <-time.After(500 * time.Millisecond):
	}
	sess.Close()
	return false
}

// killGroup signals a remote process group from a fresh session. It bypasses
// the session semaphore (MaxSessions leaves room for it).
func (c *Client) killGroup(pgid int, sig string, timeout time.Duration) {
	if pgid <= 1 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sess, err := c.openSession(ctx)
	if err != nil {
		c.log.Debug("ssh kill session failed", "pgid", pgid, "error", err)
		return
	}
	defer sess.Close()
	script := fmt.Sprintf("kill -s %s -- -%d 2>/dev/null || kill -s %s %d 2>/dev/null; exit 0", sig, pgid, sig, pgid)
	done := make(chan error, 1)
	go func() { done <- sess.Run("exec /bin/sh -c " + Quote(script)) }()
	select {
	case err = <-done:
		if err != nil {
			c.log.Debug("ssh kill command failed", "pgid", pgid, "error", err)
		}
	case <-ctx.Done():
	}
}

// capture keeps the first half and the last half of at most max bytes.
type capture struct {
	mu      sync.Mutex
	headCap int
	tailCap int
	head    []byte
	tail    []byte // the last tailCap bytes are tail[len(tail)-tailCap:]
	total   int64
}

func newCapture(limit int) *capture {
	return &capture{headCap: limit / 2, tailCap: limit - limit/2}
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	c.total += int64(n)
	if room := c.headCap - len(c.head); room > 0 {
		k := min(room, len(p))
		c.head = append(c.head, p[:k]...)
		p = p[k:]
	}
	if len(p) >= c.tailCap {
		c.tail = append(c.tail[:0], p[len(p)-c.tailCap:]...)
		return n, nil
	}
	c.tail = append(c.tail, p...)
	if len(c.tail) > 2*c.tailCap {
		c.tail = append(c.tail[:0], c.tail[len(c.tail)-c.tailCap:]...)
	}
	return n, nil
}

// String returns the captured text and whether bytes were dropped.
func (c *capture) String() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tail := c.tail
	if len(tail) > c.tailCap {
		tail = tail[len(tail)-c.tailCap:]
	}
	dropped := c.total - int64(len(c.head)) - int64(len(tail))
	if dropped <= 0 {
		return string(c.head) + string(tail), false
	}
	return string(c.head) + "[... " + strconv.FormatInt(dropped, 10) + " bytes truncated ...]" + string(tail), true
}

// markerFilter removes the wrapper's "<marker><pgid>" line from stderr and
// records the pgid. Lines before it (shell startup noise) pass through.
type markerFilter struct {
	mu      sync.Mutex
	prefix  []byte
	next    io.Writer
	pending []byte
	scanned int
	done    bool
	pgid    int
	known   chan struct{} // closed when pgid is known
}

const markerScanLimit = 64 << 10

func newMarkerFilter(prefix string, next io.Writer) *markerFilter {
	return &markerFilter{prefix: []byte(prefix), next: next, known: make(chan struct{})}
}

func (f *markerFilter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return f.next.Write(p)
	}
	f.pending = append(f.pending, p...)
	f.scanned += len(p)
	for !f.done {
		i := bytes.IndexByte(f.pending, '\n')
		if i < 0 {
			if f.scanned > markerScanLimit {
				f.giveUp()
			}
			break
		}
		line := f.pending[:i]
		if rest, ok := bytes.CutPrefix(line, f.prefix); ok {
			if n, err := strconv.Atoi(string(rest)); err == nil {
				f.pgid = n
				f.done = true
				close(f.known)
				_, _ = f.next.Write(f.pending[i+1:])
				f.pending = nil
				break
			}
		}
		_, _ = f.next.Write(f.pending[:i+1])
		f.pending = f.pending[i+1:]
		if f.scanned > markerScanLimit {
			f.giveUp()
		}
	}
	return len(p), nil
}

func (f *markerFilter) giveUp() {
	_, _ = f.next.Write(f.pending)
	f.pending = nil
	f.done = true
}

// flush passes on anything held back; call it when the command has ended.
func (f *markerFilter) flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.done && len(f.pending) > 0 {
		f.giveUp()
	}
}

// PGID returns the remote process group id, or 0 if not yet known.
func (f *markerFilter) PGID() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pgid
}
