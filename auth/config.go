package auth

import (
	"flag"
	"fmt"
	"time"

	"github.com/strata-metrics/strata/tenant"
)

// Config is how requests name their tenant: the header trusted as set by a
// gateway in front (-auth.multitenancy-enabled), or the built-in
// authentication, on when a tenants file is given.
type Config struct {
	MultitenancyEnabled   bool          `yaml:"multitenancy_enabled"`
	TenantsFile           string        `yaml:"tenants_file"`
	TenantsReloadInterval time.Duration `yaml:"tenants_file_reload_interval"`
	// ClusterSecretFile: cluster_secret.go.
	ClusterSecretFile string `yaml:"cluster_secret_file"`
}

// RegisterFlags registers the authentication flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.MultitenancyEnabled, "auth.multitenancy-enabled", false, "Require the X-Scope-OrgID header on every request; when off every request belongs to tenant \"anonymous\".")
	fs.StringVar(&c.TenantsFile, "auth.tenants-file", "", "YAML file mapping bearer-token SHA-256 digests and basic-auth users (bcrypt hashes) to tenant ids. When set, every request must carry credentials, its tenant comes from them and X-Scope-OrgID may only repeat it. Reloaded on change.")
	fs.DurationVar(&c.TenantsReloadInterval, "auth.tenants-file-reload-interval", 5*time.Second, "How often the tenants file is checked for changes.")
	fs.StringVar(&c.ClusterSecretFile, "auth.cluster-secret-file", "", "File of secrets, one a line (16 bytes at least): every gRPC call between components carries the first, and a process accepts only calls carrying one of them. Give every process of a cluster the same file; rotate by adding the new secret second, then moving it first, then removing the old one, a rolling restart each. Turning it on for a running cluster needs every process restarted at once: until then old and new processes refuse each other's calls. Without it (and without gRPC mutual TLS), whoever reaches a gRPC port is trusted.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.TenantsFile != "" && c.TenantsReloadInterval <= 0 {
		return fmt.Errorf("-auth.tenants-file-reload-interval must be positive, got %s", c.TenantsReloadInterval)
	}
	if c.ClusterSecretFile != "" {
		if _, err := LoadClusterSecrets(c.ClusterSecretFile); err != nil {
			return err
		}
	}
	return nil
}

// Enabled says whether requests must authenticate.
func (c *Config) Enabled() bool { return c.TenantsFile != "" }

// Resolver is the tenant.Resolver this configuration asks for: with a (the
// Authenticator of New, nil when -auth.tenants-file is empty) tenants come
// from credentials; without, from the header as -auth.multitenancy-enabled
// says. It never stores a typed nil pointer in tenant.Resolver.Auth.
func (c *Config) Resolver(a *Authenticator) tenant.Resolver {
	if a == nil {
		return tenant.Resolver{MultitenancyEnabled: c.MultitenancyEnabled}
	}
	return tenant.Resolver{MultitenancyEnabled: true, Auth: a}
}
