package main

import (
	"fmt"
	"net"

	"github.com/strata-metrics/strata/gossip"
)

// memberlistConfig is -memberlist.* adjusted to the target. -target=all
// without -memberlist.join gossips on loopback only (127.0.0.1 with the
// port of -memberlist.bind-address): the real gossip path, nothing
// listening on the network. Other targets bound to every interface
// advertise this machine's first non-loopback IPv4, as -instance.addr does.
func memberlistConfig(cfg *Config) gossip.Config {
	c := cfg.Memberlist
	host, port, err := net.SplitHostPort(c.BindAddress)
	if err != nil { // Validate rejected it already
		return c
	}
	unspecified := host == "" || net.ParseIP(host).IsUnspecified()
	switch {
	case !unspecified:
	case cfg.Target == targetAll && c.Join == "":
		c.BindAddress = net.JoinHostPort("127.0.0.1", port)
	case cfg.Target != targetAll && c.AdvertiseAddress == "":
		if ip := firstNonLoopbackIPv4(); ip != nil {
			c.AdvertiseAddress = ip.String()
		}
	}
	return c
}

// grpcListenAddress is -server.grpc-listen-address adjusted to the target:
// -target=all without -memberlist.join serves gRPC on loopback only (the
// port of the flag), as it gossips: its components call each other there,
// and nothing else should reach an ingester's or store-gateway's gRPC,
// which trusts its callers to have validated tenants and samples.
func grpcListenAddress(cfg *Config) string {
	addr := cfg.Server.GRPCListenAddress
	host, port, err := net.SplitHostPort(addr)
	if err != nil || cfg.Target != targetAll || cfg.Memberlist.Join != "" {
		return addr
	}
	if host == "" || net.ParseIP(host).IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// advertiseAddr is the gRPC address other components dial: the listener's,
// with an unspecified host replaced by this machine's first non-loopback
// IPv4 (127.0.0.1 for -target=all, and when the machine has none).
func advertiseAddr(a net.Addr, target string) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if ta.IP != nil && !ta.IP.IsUnspecified() {
		return ta.String()
	}
	host := "127.0.0.1"
	if target != targetAll {
		if ip := firstNonLoopbackIPv4(); ip != nil {
			host = ip.String()
		}
	}
	return net.JoinHostPort(host, fmt.Sprint(ta.Port))
}

// firstNonLoopbackIPv4 is the first IPv4 address of the first interface
// that is up and not loopback (link-local addresses skipped), or nil.
func firstNonLoopbackIPv4() net.IP {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ip := ipn.IP.To4(); ip != nil && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
				return ip
			}
		}
	}
	return nil
}

// hostPort is what a person types in a browser for a listener.
func hostPort(a *net.TCPAddr) string {
	if a.IP == nil || a.IP.IsUnspecified() {
		return net.JoinHostPort("localhost", fmt.Sprint(a.Port))
	}
	return a.String()
}
