package guard

import (
	"context"
	"fmt"
	"net"

	"github.com/canaryops/terraform-provider-canary/runner/tmpl"
)

// TCP checks that a TCP port accepts connections, dialed through the host's SSH connection.
type TCP struct {
	Address string // template, host:port as seen from the host
}

func (c *TCP) Kind() string { return "tcp" }

func (c *TCP) Validate() error {
	if err := tmpl.Validate(c.Address, false); err != nil {
		return fmt.Errorf("tcp.address: %w", err)
	}
	if _, _, err := net.SplitHostPort(c.Address); err != nil && !hasAction(c.Address) {
		return fmt.Errorf("tcp.address %q must be host:port, for example 127.0.0.1:5432", c.Address)
	}
	return nil
}

func (c *TCP) Check(ctx context.Context, t Target, d tmpl.Data, _ any) Result {
	addr, err := tmpl.Render(c.Address, d)
	if err != nil {
		return Result{Message: "tcp.address: " + err.Error()}
	}
	conn, err := t.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Result{Message: fmt.Sprintf("connect %s: %v", addr, err), Evidence: err.Error()}
	}
	_ = conn.Close()
	return Result{OK: true, Message: "connected to " + addr}
}
