package alertmanager

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"time"

	commoncfg "github.com/prometheus/common/config"
)

// forbiddenIP reports whether the receivers' firewall keeps notifications
// from ip by default: this host, the private networks, link-local
// (cloud metadata services live there) and unspecified addresses.
func forbiddenIP(ip net.IP) bool {
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsInterfaceLocalMulticast()
}

func ipClass(ip net.IP) string {
	switch {
	case ip.IsLoopback():
		return "loopback"
	case ip.IsPrivate():
		return "private"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "link-local"
	case ip.IsUnspecified():
		return "unspecified"
	}
	return "forbidden"
}

// FirewallError is a notification refused by the receivers' firewall.
type FirewallError struct{ Addr string }

func (e *FirewallError) Error() string {
	return fmt.Sprintf("receivers' firewall: %s is not an address notifications may go to", e.Addr)
}

// firewallDialer dials like the default transport but refuses a forbidden
// address after the name is resolved, so neither a DNS answer nor a
// redirect gets past it. allowPrivate is read at each dial: the tenant's
// override may change while the notifier lives.
func firewallDialer(allowPrivate func() bool) commoncfg.DialContextFunc {
	d := &net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			if allowPrivate() {
				return nil
			}
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return &FirewallError{Addr: address}
			}
			ip := net.ParseIP(host)
			if ip == nil || forbiddenIP(ip) {
				return &FirewallError{Addr: address}
			}
			return nil
		},
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
}
