package ssh

import (
	"bufio"
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
// Run, which can terminate them.
//
// Each script runs in a subshell with stdin from /dev/null and stderr merged into stdout, so it
// can neither end the shell nor read the control stream.
type Shell struct {
	c     *Client
	sess  *ssh.Session
	stdin io.WriteCloser
	out   *bufio.Reader
	token string

	mu     sync.Mutex // one script at a time
	broken error      // set when the shell can no longer be used
	once   sync.Once
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
	if err := errors.Join(err1, err2); err != nil {
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
	return &Shell{c: c, sess: sess, stdin: stdin, out: bufio.NewReader(stdout), token: "@@end-" + hex.EncodeToString(b)}, nil
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
