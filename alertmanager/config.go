package alertmanager

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"path/filepath"
	"time"
)

// Config is the multi-tenant Alertmanager's configuration.
type Config struct {
	DataDir            string        `yaml:"data_dir"`
	PollInterval       time.Duration `yaml:"poll_interval"`
	FallbackConfigFile string        `yaml:"fallback_config_file"`
	ExternalURL        string        `yaml:"external_url"`
	Retention          time.Duration `yaml:"retention"`
	AllowFileFields    bool          `yaml:"receivers_allow_file_fields"`
	ReplicationFactor  int           `yaml:"replication_factor"`
	PeerTimeout        time.Duration `yaml:"peer_timeout"`
	PersistInterval    time.Duration `yaml:"persist_interval"`
}

// RegisterFlags registers the Alertmanager's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "alertmanager.data-dir", "", "Directory of the tenants' silences and notification log snapshots, one directory per tenant; default: <-data.dir>/alertmanager.")
	fs.DurationVar(&c.PollInterval, "alertmanager.poll-interval", 15*time.Second, "How often the Alertmanager reads the tenants' configurations from the bucket: an upload through another replica, or a deletion, takes effect here within it.")
	fs.StringVar(&c.FallbackConfigFile, "alertmanager.fallback-config-file", "", "Alertmanager configuration (upstream's YAML) of tenants that uploaded none: with it, a tenant's first alert starts an Alertmanager with this configuration. Empty: alerts of a tenant without a configuration get 404.")
	fs.StringVar(&c.ExternalURL, "alertmanager.web.external-url", "/alertmanager", "URL the Alertmanager is reached at by users, for links in notifications (the templates' .ExternalURL).")
	fs.DurationVar(&c.Retention, "alertmanager.storage.retention", 120*time.Hour, "How long expired silences and notification log entries are kept.")
	fs.IntVar(&c.ReplicationFactor, "alertmanager.sharding-ring.replication-factor", 3, "Replicas of the alertmanager module that run each tenant's Alertmanager: the tenant's owners in the alertmanager ring. A ring with fewer healthy replicas (one process with -target=all) gives each tenant that many.")
	fs.DurationVar(&c.PeerTimeout, "alertmanager.peer-timeout", 15*time.Second, "How long a tenant's replica waits per position among the tenant's owners before it notifies (upstream's --cluster.peer-timeout): the first owner notifies at once, the second skips what the first's notification log entry, replicated within this time, says is sent.")
	fs.DurationVar(&c.PersistInterval, "alertmanager.persist-interval", 15*time.Minute, "How often the first owner of a tenant writes the tenant's silences and notification log to the bucket (~alertmanager/state/<tenant>), also written at shutdown; a replica starting a tenant that no other owner runs reads it from there.")
	fs.BoolVar(&c.AllowFileFields, "alertmanager.receivers-allow-file-fields", false, "Accept tenant configurations with *_file fields (password_file, bearer_token_file, key_file, ...): the Alertmanager then reads those local files. Also accepts SNS receivers without an access_key and secret_key of their own (the AWS SDK then uses the process' credentials). Off, such a configuration gets 400: a tenant could read any file, or use any credential, the process can.")
}

// Resolve fills in the defaults that depend on -data.dir.
func (c *Config) Resolve(dataDir string) {
	if c.DataDir == "" {
		c.DataDir = filepath.Join(dataDir, "alertmanager")
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.PollInterval <= 0 {
		return fmt.Errorf("-alertmanager.poll-interval must be positive, got %s", c.PollInterval)
	}
	if c.Retention <= 0 {
		return fmt.Errorf("-alertmanager.storage.retention must be positive, got %s", c.Retention)
	}
	if c.ReplicationFactor < 1 {
		return fmt.Errorf("-alertmanager.sharding-ring.replication-factor must be at least 1, got %d", c.ReplicationFactor)
	}
	if c.PeerTimeout <= 0 {
		return fmt.Errorf("-alertmanager.peer-timeout must be positive, got %s", c.PeerTimeout)
	}
	if c.PersistInterval <= 0 {
		return fmt.Errorf("-alertmanager.persist-interval must be positive, got %s", c.PersistInterval)
	}
	if c.ExternalURL == "" {
		return errors.New("-alertmanager.web.external-url must not be empty")
	}
	if _, err := url.Parse(c.ExternalURL); err != nil {
		return fmt.Errorf("-alertmanager.web.external-url: %w", err)
	}
	return nil
}
