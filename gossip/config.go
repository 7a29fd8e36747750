package gossip

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config is this process' place in the gossip cluster.
type Config struct {
	BindAddress      string        `yaml:"bind_address"`
	AdvertiseAddress string        `yaml:"advertise_address"`
	Join             string        `yaml:"join"`
	RejoinInterval   time.Duration `yaml:"rejoin_interval"`
	ClusterLabel     string        `yaml:"cluster_label"`
	GossipInterval   time.Duration `yaml:"gossip_interval"`
	PullPushInterval time.Duration `yaml:"pull_push_interval"`
	LeftTombstoneTTL time.Duration `yaml:"left_tombstone_ttl"`
	NodeName         string        `yaml:"node_name"`
	// EncryptionKeysFile: encryption.go.
	EncryptionKeysFile string `yaml:"encryption_keys_file"`
}

// RegisterFlags registers the gossip flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.BindAddress, "memberlist.bind-address", ":7946", "host:port for gossip, UDP and TCP; an empty host listens on every interface.")
	fs.StringVar(&c.AdvertiseAddress, "memberlist.advertise-address", "", "IP[:port] other members reach this one at; default: the bind address, or a private IP of this machine when bound to every interface.")
	fs.StringVar(&c.Join, "memberlist.join", "", "Comma-separated host:port seeds to join; DNS names resolve to all their addresses. Retried with backoff until one answers.")
	fs.DurationVar(&c.RejoinInterval, "memberlist.rejoin-interval", 30*time.Second, "How often to rejoin seeds that are not live members (after a partition heals, or when alone); 0 never rejoins.")
	fs.StringVar(&c.ClusterLabel, "memberlist.cluster-label", "", "Label on every gossip packet; members with another label are ignored, so two clusters on one network never merge.")
	fs.DurationVar(&c.GossipInterval, "memberlist.gossip-interval", 200*time.Millisecond, "How often to send queued changes to a few random members.")
	fs.DurationVar(&c.PullPushInterval, "memberlist.pull-push-interval", 30*time.Second, "How often to exchange the full state with one random member, repairing lost broadcasts.")
	fs.DurationVar(&c.LeftTombstoneTTL, "memberlist.left-tombstone-ttl", 10*time.Minute, "How long a LEFT or forgotten instance stays as a tombstone so gossip does not bring it back; an instance silent this long is dropped too. Longer than any expected partition, and the clock skew between machines.")
	fs.StringVar(&c.NodeName, "memberlist.node-name", "", "Unique name of this member; default: -instance.id.")
	fs.StringVar(&c.EncryptionKeysFile, "memberlist.encryption-keys-file", "", "File of gossip encryption keys, base64 AES keys of 16, 24 or 32 bytes, one per line: the first encrypts, every one decrypts, and unencrypted gossip is refused. Every member needs the same keys. Read again every 30s: rotate by adding the new key second, then moving it first, then removing the old one. Turning encryption on for a running cluster needs every member restarted at once: until then the encrypted and the plain members form two clusters. Empty: gossip is neither encrypted nor authenticated, so keep it on a network no one else reaches.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if _, _, err := splitBind(c.BindAddress); err != nil {
		return fmt.Errorf("-memberlist.bind-address=%q: %w", c.BindAddress, err)
	}
	if c.AdvertiseAddress != "" {
		if _, _, err := splitAdvertise(c.AdvertiseAddress); err != nil {
			return fmt.Errorf("-memberlist.advertise-address=%q: %w", c.AdvertiseAddress, err)
		}
	}
	for _, s := range c.seeds() {
		if _, _, err := splitSeed(s, 7946); err != nil {
			return fmt.Errorf("-memberlist.join: seed %q: %w", s, err)
		}
	}
	if c.RejoinInterval < 0 {
		return fmt.Errorf("-memberlist.rejoin-interval must not be negative, got %s", c.RejoinInterval)
	}
	if len(c.ClusterLabel) > memberlist.LabelMaxSize {
		return fmt.Errorf("-memberlist.cluster-label is %d bytes, at most %d", len(c.ClusterLabel), memberlist.LabelMaxSize)
	}
	if c.GossipInterval <= 0 {
		return fmt.Errorf("-memberlist.gossip-interval must be positive, got %s", c.GossipInterval)
	}
	if c.PullPushInterval <= 0 {
		return fmt.Errorf("-memberlist.pull-push-interval must be positive, got %s", c.PullPushInterval)
	}
	if c.EncryptionKeysFile != "" {
		if _, err := readKeys(c.EncryptionKeysFile); err != nil {
			return err
		}
	}
	if c.LeftTombstoneTTL <= 0 {
		return fmt.Errorf("-memberlist.left-tombstone-ttl must be positive, got %s", c.LeftTombstoneTTL)
	}
	return nil
}

// seeds is -memberlist.join split at commas, empty entries dropped.
func (c *Config) seeds() []string {
	var out []string
	for s := range strings.SplitSeq(c.Join, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// splitBind parses the bind address: an IP (or nothing) and a port.
func splitBind(s string) (ip string, port int, err error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	if port, err = parsePort(p); err != nil {
		return "", 0, err
	}
	if host == "" {
		return "0.0.0.0", port, nil
	}
	if net.ParseIP(host) == nil {
		return "", 0, errors.New("host must be an IP address or empty")
	}
	return host, port, nil
}

// splitAdvertise parses an IP with an optional port (0 when absent: the
// bind port).
func splitAdvertise(s string) (ip string, port int, err error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		host, p = s, "0"
	}
	if net.ParseIP(host) == nil {
		return "", 0, errors.New("host must be an IP address")
	}
	if port, err = parsePort(p); err != nil {
		return "", 0, err
	}
	return host, port, nil
}

// splitSeed parses host[:port] of a seed; defaultPort fills a missing port.
func splitSeed(s string, defaultPort int) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Count(s, ":") > 1 && net.ParseIP(s) == nil { // a malformed IPv6 literal, not a missing port
			return "", 0, err
		}
		host, p = strings.Trim(s, "[]"), strconv.Itoa(defaultPort)
	}
	if host == "" {
		return "", 0, errors.New("empty host")
	}
	if port, err = parsePort(p); err != nil {
		return "", 0, err
	}
	if port == 0 {
		return "", 0, errors.New("port 0")
	}
	return host, port, nil
}

func parsePort(p string) (int, error) {
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 0 to 65535", p)
	}
	return n, nil
}
