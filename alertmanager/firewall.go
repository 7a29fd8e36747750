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
// (cloud metadata services live there), unspecified, multicast and the
// special-purpose ranges below.
func forbiddenIP(ip net.IP) bool {
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() {
		return true
	}
	for _, n := range specialNets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// specialNets are ranges inside networks that net.IP's predicates miss:
// "this network", carrier-grade NAT (some clouds' metadata services), IETF
// protocol assignments, benchmarking, reserved and broadcast, NAT64.
var specialNets = func() []*net.IPNet {
	var out []*net.IPNet
	for _, c := range []string{"0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "240.0.0.0/4", "64:ff9b::/96", "64:ff9b:1::/48"} {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			panic("BUG: " + err.Error())
		}
		out = append(out, n)
	}
	return out
}()

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
	return "special-purpose"
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
