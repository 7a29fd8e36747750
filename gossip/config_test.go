package gossip

import (
	"context"
	"errors"
	"flag"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/stretchr/testify/require"
)

func defaultConfig() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	return c
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(c *Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"loopback", func(c *Config) { c.BindAddress = "127.0.0.1:0" }, ""},
		{"ipv6", func(c *Config) { c.BindAddress = "[::1]:7946"; c.AdvertiseAddress = "[::1]:7947" }, ""},
		{"seeds", func(c *Config) { c.Join = "ingester-0.strata:7946, 10.0.0.1 ,[fd00::1]:7946,," }, ""},
		{"bind without port", func(c *Config) { c.BindAddress = "127.0.0.1" }, "-memberlist.bind-address"},
		{"bind to a name", func(c *Config) { c.BindAddress = "localhost:7946" }, "must be an IP address"},
		{"bad port", func(c *Config) { c.BindAddress = ":99999" }, "port \"99999\""},
		{"advertise a name", func(c *Config) { c.AdvertiseAddress = "strata-0" }, "-memberlist.advertise-address"},
		{"seed port 0", func(c *Config) { c.Join = "a:0" }, "seed \"a:0\": port 0"},
		{"seed without host", func(c *Config) { c.Join = ":7946" }, "empty host"},
		{"negative rejoin", func(c *Config) { c.RejoinInterval = -time.Second }, "-memberlist.rejoin-interval"},
		{"label too long", func(c *Config) { c.ClusterLabel = strings.Repeat("x", 256) }, "-memberlist.cluster-label"},
		{"no gossip", func(c *Config) { c.GossipInterval = 0 }, "-memberlist.gossip-interval"},
		{"no push/pull", func(c *Config) { c.PullPushInterval = 0 }, "-memberlist.pull-push-interval"},
		{"no ttl", func(c *Config) { c.LeftTombstoneTTL = 0 }, "-memberlist.left-tombstone-ttl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultConfig()
			tc.edit(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestResolveSeeds(t *testing.T) {
	kv := &KV{lookupIP: func(_ context.Context, host string) ([]net.IP, error) {
		switch host {
		case "ingesters.strata.test": // a headless Service: one A record per pod
			return []net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("10.0.0.2"), net.ParseIP("10.0.0.3")}, nil
		case "self.strata.test":
			return []net.IP{net.ParseIP("10.0.0.9")}, nil
		}
		return nil, errors.New("no such host")
	}}
	self := func(a string) bool { return a == "10.0.0.9:7946" }
	for _, tc := range []struct {
		name    string
		seeds   string
		want    []string
		wantErr string
	}{
		{"ip", "10.0.0.5:8000", []string{"10.0.0.5:8000"}, ""},
		{"default port", "10.0.0.5", []string{"10.0.0.5:7946"}, ""},
		{"every A record", "ingesters.strata.test:7946", []string{"10.0.0.1:7946", "10.0.0.2:7946", "10.0.0.3:7946"}, ""},
		{"duplicates once", "10.0.0.1:7946,ingesters.strata.test", []string{"10.0.0.1:7946", "10.0.0.2:7946", "10.0.0.3:7946"}, ""},
		{"not itself", "self.strata.test,10.0.0.9:7946,10.0.0.9:7947", []string{"10.0.0.9:7947"}, ""},
		{"ipv6", "[fd00::1]:7000", []string{"[fd00::1]:7000"}, ""},
		{"unresolvable kept apart", "nope.strata.test,10.0.0.1", []string{"10.0.0.1:7946"}, "resolve seed nope.strata.test: no such host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Join: tc.seeds}
			got, err := kv.resolveSeeds(context.Background(), c.seeds(), 7946, self)
			require.Equal(t, tc.want, got)
			if tc.wantErr == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.wantErr)
			}
		})
	}
}

func TestIsSelf(t *testing.T) {
	self := &memberlist.Node{Addr: net.ParseIP("10.1.2.3"), Port: 7946}
	for _, tc := range []struct {
		bind, addr string
		want       bool
	}{
		{":7946", "10.1.2.3:7946", true},
		{":7946", "127.0.0.1:7946", true},
		{":7946", "127.0.0.1:7947", false},
		{"10.1.2.3:7946", "127.0.0.1:7946", false},
		{":7946", "10.1.2.4:7946", false},
	} {
		kv := &KV{cfg: Config{BindAddress: tc.bind}}
		require.Equal(t, tc.want, kv.isSelf(tc.addr, self), "bind %s addr %s", tc.bind, tc.addr)
	}
}
