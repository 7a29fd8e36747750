package ruler

import (
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config is the ruler's configuration.
type Config struct {
	// RulePath, when set, is a directory of rule files the ruler reads
	// instead of the bucket: files at its top level are the rules of the
	// tenant "anonymous", files in a subdirectory those of the tenant it
	// names. The rule config API cannot change them.
	RulePath           string        `yaml:"rule_path"`
	PollInterval       time.Duration `yaml:"poll_interval"`
	EvaluationInterval time.Duration `yaml:"evaluation_interval"`
	EvaluationTimeout  time.Duration `yaml:"evaluation_timeout"`
	// AlertmanagerURL is a comma-separated list of Alertmanager base URLs;
	// a URL written dns+http://host:port... is resolved by A/AAAA lookups,
	// one written dnssrv+http://name... by an SRV lookup of name.
	AlertmanagerURL           string        `yaml:"alertmanager_url"`
	NotificationQueueCapacity int           `yaml:"notification_queue_capacity"`
	NotificationTimeout       time.Duration `yaml:"notification_timeout"`
	ExternalURL               string        `yaml:"external_url"`
	ForGracePeriod            time.Duration `yaml:"for_grace_period"`
	ForOutageTolerance        time.Duration `yaml:"for_outage_tolerance"`
	ResendDelay               time.Duration `yaml:"resend_delay"`
	// NotificationDrainTimeout bounds how long a tenant stopped on this
	// ruler keeps sending its queued alerts, in the background.
	NotificationDrainTimeout time.Duration `yaml:"notification_drain_timeout"`
	// PeerTimeout is the deadline of one other ruler's answer when a
	// ruler gathers a tenant's rule group states from every ruler.
	PeerTimeout time.Duration `yaml:"peer_timeout"`
}

// RegisterFlags registers the ruler's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.RulePath, "ruler.rule-path", "", "Directory of Prometheus rule files to evaluate instead of the rules in the bucket (single-tenant setups): top-level files are the rules of the tenant anonymous, files in <dir>/<tenant>/ those of that tenant; reread every -ruler.poll-interval. The rule config API is read-only with it.")
	fs.DurationVar(&c.PollInterval, "ruler.poll-interval", time.Minute, "How often a ruler rereads the rule groups from storage and the ruler ring; an upload through the rule config API takes effect on the ruler that received it at once.")
	fs.DurationVar(&c.EvaluationInterval, "ruler.evaluation-interval", time.Minute, "Interval of a rule group that sets none.")
	fs.DurationVar(&c.EvaluationTimeout, "ruler.evaluation-timeout", 2*time.Minute, "Longest one rule's query may run; then the rule fails this evaluation.")
	fs.StringVar(&c.AlertmanagerURL, "ruler.alertmanager-url", "", "Comma-separated Alertmanager URLs (http://host:9093, with a path prefix if it has one) alerts are sent to with the tenant's X-Scope-OrgID; dns+http://name:port resolves name to every address (A/AAAA), dnssrv+http://name to every target and port of its SRV records (e.g. dnssrv+http://_http-web._tcp.alertmanager.ns.svc). Empty: to the built-in Alertmanager when the cluster runs one (this process' alertmanager module, else the alertmanager ring's replicas over gRPC), otherwise alerts are evaluated but not sent. Override per tenant: ruler_alertmanager_url.")
	fs.IntVar(&c.NotificationQueueCapacity, "ruler.notification-queue-capacity", 10000, "Alerts queued per tenant for the Alertmanager; when full the oldest are dropped and counted in strata_ruler_notifications_dropped_total.")
	fs.DurationVar(&c.NotificationTimeout, "ruler.notification-timeout", 10*time.Second, "Deadline of one request to an Alertmanager.")
	fs.StringVar(&c.ExternalURL, "ruler.external.url", "", "URL alerts link back to (their generatorURL); override per tenant: ruler_external_url.")
	fs.DurationVar(&c.ForGracePeriod, "ruler.for-grace-period", 2*time.Minute, "Least time an alert restored after a restart or a move to another ruler still waits before firing, when its `for` is at least this long (an alert with a shorter `for` starts over). Mimir's default; Prometheus' is 10m.")
	fs.DurationVar(&c.ForOutageTolerance, "ruler.for-outage-tolerance", time.Hour, "Longest outage of a rule's evaluation after which its alerts' `for` state (ALERTS_FOR_STATE) is still restored; after a longer one pending alerts start over.")
	fs.DurationVar(&c.ResendDelay, "ruler.resend-delay", time.Minute, "Least time between two sends of a firing alert to the Alertmanager.")
	fs.DurationVar(&c.NotificationDrainTimeout, "ruler.notification-drain-timeout", 30*time.Second, "How long a tenant's notifier stopped on this ruler (its groups moved or were deleted, its settings changed, shutdown) keeps sending its queued alerts, in the background; then the rest is dropped (strata_ruler_notifier_drain_timeouts_total).")
	fs.DurationVar(&c.PeerTimeout, "ruler.peer-timeout", 5*time.Second, "Deadline of one ruler's answer when the ruler serving /api/v1/rules or /api/v1/alerts asks every ruler for the state of the tenant's groups; a ruler that does not answer in time leaves its groups with health unknown and a warning.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.PollInterval <= 0:
		return fmt.Errorf("-ruler.poll-interval must be positive, got %s", c.PollInterval)
	case c.EvaluationInterval <= 0:
		return fmt.Errorf("-ruler.evaluation-interval must be positive, got %s", c.EvaluationInterval)
	case c.EvaluationTimeout <= 0:
		return fmt.Errorf("-ruler.evaluation-timeout must be positive, got %s", c.EvaluationTimeout)
	case c.NotificationQueueCapacity < 1:
		return fmt.Errorf("-ruler.notification-queue-capacity must be at least 1, got %d", c.NotificationQueueCapacity)
	case c.NotificationTimeout <= 0:
		return fmt.Errorf("-ruler.notification-timeout must be positive, got %s", c.NotificationTimeout)
	case c.NotificationDrainTimeout <= 0:
		return fmt.Errorf("-ruler.notification-drain-timeout must be positive, got %s", c.NotificationDrainTimeout)
	case c.PeerTimeout <= 0:
		return fmt.Errorf("-ruler.peer-timeout must be positive, got %s", c.PeerTimeout)
	case c.ForGracePeriod < 0 || c.ForOutageTolerance < 0 || c.ResendDelay < 0:
		return fmt.Errorf("-ruler.for-grace-period, -ruler.for-outage-tolerance and -ruler.resend-delay must not be negative")
	}
	if _, err := parseAlertmanagerURLs(c.AlertmanagerURL); err != nil {
		return fmt.Errorf("-ruler.alertmanager-url: %w", err)
	}
	if c.ExternalURL != "" {
		if _, err := url.Parse(c.ExternalURL); err != nil {
			return fmt.Errorf("-ruler.external.url: %w", err)
		}
	}
	return nil
}

// parseAlertmanagerURLs splits a comma-separated list of Alertmanager
// URLs; "" is none.
func parseAlertmanagerURLs(s string) ([]*url.URL, error) {
	var out []*url.URL
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		u, err := url.Parse(part)
		if err != nil {
			return nil, fmt.Errorf("parse %q: %w", part, err)
		}
		lookup, scheme := discovery(u.Scheme)
		if scheme != "http" && scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("%q is not an http(s) URL with a host", part)
		}
		if lookup == "dnssrv" && u.Port() != "" {
			return nil, fmt.Errorf("%q: a dnssrv+ URL takes its ports from the SRV records; remove the port", part)
		}
		out = append(out, u)
	}
	return out, nil
}

// RingKey is the gossip key of the ruler ring.
const RingKey = "ruler"

// RingNumTokens is how many tokens a ruler takes in its ring: enough that
// rulers share the groups evenly.
const RingNumTokens = 128
