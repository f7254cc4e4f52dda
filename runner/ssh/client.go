package ssh

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// ErrClosed is the cause reported by Client.Err after Client.Close.
var ErrClosed = errors.New("ssh: connection closed by the client")

// Client is an authenticated SSH connection to one host, possibly through a
// bastion. It is safe for concurrent use.
type Client struct {
	addr    string
	user    string
	conn    *ssh.Client
	bastion *ssh.Client
	log     hclog.Logger

	sessions  chan struct{} // semaphore bounding concurrent sessions
	marker    string        // per-client prefix of the wrapper's pgid line
	killGrace time.Duration

	// killViaSession enables the second-session kill of the process group.
	// Tests switch it off to observe sshd's handling of signal requests.
	killViaSession bool

	done      chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	err       error // why the connection ended
}

// Dial connects to ep, through cfg.Bastion when set, verifies the host keys
// and authenticates. cfg.ConnectTimeout bounds TCP connect, handshake and
// authentication of both hops together; cancelling ctx aborts the dial.
//
// ctx also bounds the connection's keepalive: keepalives stop when ctx is
// done (the connection itself stays open until Close). Pass the context that
// covers the connection's whole use, not one with a short dial deadline;
// ConnectTimeout is the dial deadline.
//
// Dial does not retry. Errors for which IsFatal is true (host key,
// authentication, configuration) must not be retried by callers either.
func Dial(ctx context.Context, cfg Config, ep Endpoint) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	addr, err := hostPort(ep.Address)
	if err != nil {
		return nil, &ConfigError{Field: "address", Msg: err.Error()}
	}
	var bastionAddr string
	if cfg.Bastion != nil {
		bastionAddr, _ = hostPort(cfg.Bastion.Address) // validated above
	}
	target, err := newVerifier(cfg, ep, addr, bastionAddr)
	if err != nil {
		return nil, err
	}
	auth, closeAuth, err := cfg.authMethod()
	if err != nil {
		return nil, err
	}
	defer closeAuth()

	dctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	start := time.Now()

	var bastion *ssh.Client
	var conn net.Conn
	if cfg.Bastion != nil {
		bv, err := newVerifier(cfg, *cfg.Bastion, bastionAddr, "")
		if err != nil {
			return nil, err
		}
		bconn, err := dialTCP(ctx, dctx, bastionAddr, cfg.ConnectTimeout)
		if err != nil {
			return nil, fmt.Errorf("ssh: bastion: %w", err)
		}
		bastion, err = handshake(ctx, dctx, bconn, bastionAddr, cfg.BastionUser, auth, bv, cfg.ConnectTimeout)
		if err != nil {
			return nil, fmt.Errorf("ssh: bastion: %w", err)
		}
		conn, err = bastion.DialContext(dctx, "tcp", addr)
		if err != nil {
			bastion.Close()
			switch {
			case ctx.Err() != nil:
				return nil, fmt.Errorf("ssh: connect to %s via bastion %s cancelled: %w", addr, bastionAddr, ctx.Err())
			case dctx.Err() != nil:
				return nil, &TimeoutError{Op: "connect", Address: addr, Timeout: cfg.ConnectTimeout}
			}
			return nil, fmt.Errorf("ssh: bastion %s cannot connect to %s: %w (check that the target is reachable from "+
				"the bastion and that the bastion's sshd allows TCP forwarding)", bastionAddr, addr, err)
		}
	} else {
		conn, err = dialTCP(ctx, dctx, addr, cfg.ConnectTimeout)
		if err != nil {
			return nil, err
		}
	}
	client, err := handshake(ctx, dctx, conn, addr, cfg.User, auth, target, cfg.ConnectTimeout)
	if err != nil {
		if bastion != nil {
			bastion.Close()
		}
		return nil, err
	}

	c := &Client{
		addr:           addr,
		user:           cfg.User,
		conn:           client,
		bastion:        bastion,
		log:            cfg.Logger.With("host", addr),
		sessions:       make(chan struct{}, cfg.MaxSessions),
		marker:         newMarker(),
		killGrace:      DefaultKillGrace,
		killViaSession: true,
		done:           make(chan struct{}),
	}
	c.log.Debug("ssh connected", "user", cfg.User, "bastion", bastionAddr, "elapsed", time.Since(start))
	go c.watch()
	if cfg.KeepaliveInterval > 0 {
		go c.keepalive(ctx, cfg.KeepaliveInterval, cfg.KeepaliveCountMax)
	}
	return c, nil
}

// dialTCP connects within dctx, telling a timeout from a cancellation.
func dialTCP(ctx, dctx context.Context, addr string, timeout time.Duration) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err == nil {
		return conn, nil
	}
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("ssh: connect to %s cancelled: %w", addr, ctx.Err())
	case dctx.Err() != nil:
		return nil, &TimeoutError{Op: "connect", Address: addr, Timeout: timeout}
	}
	return nil, fmt.Errorf("ssh: connect to %s: %w", addr, err)
}

// handshake runs the SSH handshake on conn within dctx. The net.Conn
// deadline covers TCP connections; closing the connection when dctx ends
// covers the rest (ssh channels through a bastion have no deadlines) and
// cancellation.
func handshake(ctx, dctx context.Context, conn net.Conn, addr, user string, auth ssh.AuthMethod, v *verifier,
	timeout time.Duration) (*ssh.Client, error) {
	if d, ok := dctx.Deadline(); ok {
		_ = conn.SetDeadline(d) // not supported by channels; the AfterFunc covers them
	}
	stop := context.AfterFunc(dctx, func() { conn.Close() })
	cc := &ssh.ClientConfig{
		User:              user,
		Auth:              []ssh.AuthMethod{auth},
		HostKeyCallback:   v.callback,
		HostKeyAlgorithms: v.algos,
	}
	sc, chans, reqs, err := ssh.NewClientConn(conn, addr, cc)
	if !stop() && err == nil {
		// The deadline passed or ctx was cancelled just as the handshake ended.
		sc.Close()
		err = dctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, classifyHandshakeError(ctx, dctx, err, addr, user, v, timeout)
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

func classifyHandshakeError(ctx, dctx context.Context, err error, addr, user string, v *verifier,
	timeout time.Duration) error {
	if hk := v.failed(); hk != nil {
		return hk
	}
	msg := err.Error()
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("ssh: handshake with %s cancelled: %w", addr, ctx.Err())
	case dctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded):
		return &TimeoutError{Op: "handshake", Address: addr, Timeout: timeout}
	case strings.Contains(msg, "unable to authenticate") || strings.Contains(msg, "no supported methods remain") ||
		strings.Contains(msg, "Too many authentication failures"):
		return &AuthError{Address: addr, User: user, Err: err}
	case strings.Contains(msg, "no common algorithm for host key") && (v.algos != nil):
		return v.noCommonAlgorithm()
	}
	return fmt.Errorf("ssh: handshake with %s failed: %w", addr, err)
}

// authMethod returns one public key method offering the configured key first,
// then the agent's keys (x/crypto tries each method name once, so they must
// share one method). The returned func releases the agent connection.
func (c Config) authMethod() (ssh.AuthMethod, func(), error) {
	var signers []ssh.Signer
	if len(c.PrivateKey) > 0 {
		s, err := cachedSigner(c.PrivateKey, c.PrivateKeyPassphrase)
		if err != nil {
			return nil, nil, err
		}
		signers = append(signers, s)
	}
	closeFn := func() {}
	var ag agent.ExtendedAgent
	if c.UseAgent {
		sock, err := c.agentSocket()
		if err == nil {
			var conn net.Conn
			conn, err = net.DialTimeout("unix", sock, c.ConnectTimeout)
			if err == nil {
				ag = agent.NewClient(conn)
				closeFn = func() { conn.Close() }
			} else {
				err = &ConfigError{Field: "use_agent", Msg: fmt.Sprintf("cannot connect to ssh-agent at %s (%v): "+
					"is ssh-agent running? Check SSH_AUTH_SOCK or agent_socket", sock, unwrapOpError(err))}
			}
		}
		if err != nil {
			if len(signers) == 0 {
				return nil, nil, err
			}
			c.Logger.Warn("ssh-agent unavailable; using private_key only", "error", err)
		}
	}
	cb := func() ([]ssh.Signer, error) {
		out := slices.Clone(signers)
		if ag != nil {
			as, err := ag.Signers()
			if err != nil {
				c.Logger.Warn("ssh-agent did not list its keys", "error", err)
			}
			out = append(out, as...)
		}
		return out, nil
	}
	return ssh.PublicKeysCallback(cb), closeFn, nil
}

func unwrapOpError(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}

func newMarker() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "CANARY_PGID_" + hex.EncodeToString(b[:]) + "="
}

// watch closes Done when the connection ends, for whatever reason.
func (c *Client) watch() {
	err := c.conn.Wait()
	c.mu.Lock()
	if c.err == nil {
		if err == nil {
			err = errors.New("closed by the server")
		}
		c.err = fmt.Errorf("ssh: connection to %s lost: %w", c.addr, err)
	}
	c.mu.Unlock()
	if c.bastion != nil {
		c.bastion.Close()
	}
	close(c.done)
}

// terminate closes the connection, recording why.
func (c *Client) terminate(cause error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = cause
	}
	c.mu.Unlock()
	c.conn.Close()
	if c.bastion != nil {
		c.bastion.Close()
	}
}

// keepalive sends keepalive@openssh.com requests every interval while ctx is
// live and the connection open. Any reply, even a failure reply, proves the
// peer alive and resets the count; after countMax unanswered requests the
// connection is closed, like OpenSSH's ServerAliveCountMax.
func (c *Client) keepalive(ctx context.Context, interval time.Duration, countMax int) {
	t := time.NewTicker(interval)
	defer t.Stop()
	replies := make(chan struct{}, 1)
	unanswered := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.done:
			return
		case <-replies:
			unanswered = 0
		case <-t.C:
			if unanswered >= countMax {
				err := fmt.Errorf("ssh: connection to %s closed: no reply to %d keepalives sent every %s", c.addr,
					unanswered, interval)
				c.log.Warn("ssh keepalive failed; closing the connection", "unanswered", unanswered, "interval", interval)
				c.terminate(err)
				return
			}
			unanswered++
			go func() {
				if _, _, err := c.conn.SendRequest("keepalive@openssh.com", true, nil); err == nil {
					select {
					case replies <- struct{}{}:
					default:
					}
				}
			}()
		}
	}
}

// Address returns the target's host:port.
func (c *Client) Address() string { return c.addr }

// Done is closed when the connection is dead: closed by Close, by the server,
// by a network error or after unanswered keepalives.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended (nil while it is alive). After Close
// it is ErrClosed.
func (c *Client) Err() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection and the bastion connection, if any. Running
// commands are not waited for. Close is idempotent.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.mu.Lock()
		if c.err == nil {
			c.err = ErrClosed
		}
		c.mu.Unlock()
		err = c.conn.Close()
		if c.bastion != nil {
			if berr := c.bastion.Close(); err == nil {
				err = berr
			}
		}
		<-c.done
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
	})
	return err
}

// DialContext opens a TCP connection from the remote host to addr (a
// direct-tcpip channel through this SSH connection). It fits
// http.Transport.DialContext; network must be "tcp", "tcp4" or "tcp6" (or
// "unix" for a remote socket path).
func (c *Client) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := c.conn.DialContext(ctx, network, addr)
	if err != nil {
		if derr := c.Err(); derr != nil {
			return nil, fmt.Errorf("ssh: dial %s %s through %s: %w", network, addr, c.addr, derr)
		}
		return nil, fmt.Errorf("ssh: dial %s %s through %s: %w", network, addr, c.addr, err)
	}
	return conn, nil
}
