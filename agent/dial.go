// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"
)

// ErrRefused is what a dial that allow.conf does not permit fails with:
// errors.Is(err, ErrRefused) holds, and no packet was sent.
var ErrRefused = errors.New("refused by allow.conf")

// RefusedError names the address a dial was refused for.
type RefusedError struct {
	Addr netip.AddrPort
	Name string
}

func (e *RefusedError) Error() string {
	if e.Name == "" {
		return fmt.Sprintf("%s: %v", e.Addr, ErrRefused)
	}
	return fmt.Sprintf("%s (%s): %v", e.Addr, e.Name, ErrRefused)
}

// Is makes errors.Is(err, ErrRefused) hold.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

type jobNameKey struct{}

// WithJobName returns ctx carrying the name a job asked for, which the
// allow-list's name patterns are matched against at dial time.
func WithJobName(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, jobNameKey{}, name)
}

// Guard checks every connection a job makes against the allow-list, with
// the address actually dialled, after resolution, at the moment of the
// dial: a name that resolves elsewhere later, or a resolver that lies,
// cannot take a job outside the list.
type Guard struct {
	Allow Allow
	// Refused, when set, hears each refusal (the agent logs it).
	Refused func(*RefusedError)
}

// Control is a net.Dialer ControlContext func: it runs after the socket
// is created and before connect(2), with the literal address, and fails
// the dial for any address allow.conf does not permit.
func (g *Guard) Control(ctx context.Context, network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, ErrRefused)
	}
	name, _ := ctx.Value(jobNameKey{}).(string)
	if ok, _ := g.Allow.Permits(ap.Addr(), int(ap.Port()), name); ok && (network == "tcp" || network == "tcp4" || network == "tcp6") {
		return nil
	}
	e := &RefusedError{Addr: ap, Name: name}
	if g.Refused != nil {
		g.Refused(e)
	}
	return e
}

// Dialer returns a dialer for jobs that only connects where the
// allow-list permits. resolver, when not empty, is the DNS server
// (host:port) names are resolved with instead of the system's.
func (g *Guard) Dialer(timeout time.Duration, resolver string) *net.Dialer {
	d := &net.Dialer{Timeout: timeout, ControlContext: g.Control}
	if resolver != "" {
		d.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var plain net.Dialer
			return plain.DialContext(ctx, network, resolver)
		}}
	}
	return d
}

// DialJob dials name:port for a job, with the name in the context for the
// allow-list's name patterns.
func (g *Guard) DialJob(ctx context.Context, d *net.Dialer, name string, port int) (net.Conn, error) {
	return d.DialContext(WithJobName(ctx, name), "tcp", net.JoinHostPort(name, strconv.Itoa(port)))
}
