package limits

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"gopkg.in/yaml.v3"

	"github.com/strata-metrics/strata/tenant"
)

// RuntimeConfig says where the runtime overrides file is and how often it
// is read.
type RuntimeConfig struct {
	File         string        `yaml:"file"`
	ReloadPeriod time.Duration `yaml:"reload_period"`
	// AdminTenant sees every tenant's entry at GET /runtime_config; the
	// others see only their own (see Overrides.Handler).
	AdminTenant string `yaml:"admin_tenant"`
}

// RegisterFlags registers the runtime config flags.
func (c *RuntimeConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.File, "runtime-config.file", "", "YAML file of per-tenant limit overrides (overrides: {tenant: {ingestion_rate: 50000}}), reloaded without a restart; empty: every tenant gets the flag defaults.")
	fs.DurationVar(&c.ReloadPeriod, "runtime-config.reload-period", 10*time.Second, "How often the runtime config file is read; it is applied when its content changed.")
	fs.StringVar(&c.AdminTenant, "runtime-config.admin-tenant", "", "The operator's tenant id. With multi-tenancy it alone may use the operator pages (the rings and their Forget button, /memberlist, /debug/pprof/, /ingester/flush, /compactor/run, and with -auth.tenants-file /metrics) and sees every tenant's limits at GET /runtime_config; any other tenant gets 403 there and sees the defaults and its own limits. Give it only to operators (a tenants-file entry, or a header only the gateway sets). Empty: with multi-tenancy nobody may use the operator pages.")
}

// Validate checks the configuration.
func (c *RuntimeConfig) Validate() error {
	if c.File != "" && c.ReloadPeriod <= 0 {
		return fmt.Errorf("-runtime-config.reload-period must be positive, got %s", c.ReloadPeriod)
	}
	if c.AdminTenant != "" {
		if err := tenant.Validate(c.AdminTenant); err != nil {
			return fmt.Errorf("-runtime-config.admin-tenant: %w", err)
		}
	}
	return nil
}

// Overrides gives each tenant its effective limits: the defaults, or the
// tenant's entry of the runtime overrides file. It is goroutine-safe; For
// takes no lock and allocates nothing.
type Overrides struct {
	defaults Limits
	cfg      RuntimeConfig
	log      *slog.Logger
	m        *runtimeMetrics // nil without a file

	cur atomic.Pointer[overrideSet]

	loadMu   sync.Mutex // one Load at a time
	lastHash string     // of the file last applied or rejected; under loadMu
}

// overrideSet is one parsed overrides file; immutable once published.
type overrideSet struct {
	byTenant map[string]*Limits
	hash     string
}

// NewOverrides returns Overrides that hand every tenant the defaults.
func NewOverrides(defaults Limits) *Overrides {
	o := &Overrides{defaults: defaults, log: slog.New(slog.DiscardHandler)}
	o.cur.Store(&overrideSet{})
	return o
}

// NewRuntimeOverrides returns Overrides that follow cfg.File once Load or
// Run has read it; until then every tenant gets the defaults. It does no
// I/O. reg receives strata_runtime_config_*.
func NewRuntimeOverrides(cfg RuntimeConfig, defaults Limits, log *slog.Logger, reg prometheus.Registerer) (*Overrides, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := defaults.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		return nil, errors.New("limits: nil registerer (use prometheus.NewRegistry() in tests)")
	}
	o := NewOverrides(defaults)
	o.cfg, o.log, o.m = cfg, log, newRuntimeMetrics(reg)
	return o, nil
}

// For returns the limits of tenant. The result must not be modified; it
// stays valid (and unchanged) after a reload, which publishes new Limits.
func (o *Overrides) For(tenant string) *Limits {
	if l, ok := o.cur.Load().byTenant[tenant]; ok {
		return l
	}
	return &o.defaults
}

// Defaults returns the flag defaults. The result must not be modified.
func (o *Overrides) Defaults() *Limits { return &o.defaults }

// Run reads the runtime config file at once, then every
// -runtime-config.reload-period, until ctx is done; it returns nil. A file
// that cannot be read or parsed keeps the last good overrides (logged and
// counted). Without a file it just waits.
func (o *Overrides) Run(ctx context.Context) error {
	if o.cfg.File == "" {
		<-ctx.Done()
		return nil
	}
	o.loadLogged()
	t := time.NewTicker(o.cfg.ReloadPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			o.loadLogged()
		}
	}
}

func (o *Overrides) loadLogged() {
	if err := o.Load(); err != nil {
		o.log.Error("runtime config not applied: keeping the last good one", "file", o.cfg.File, "err", err)
	}
}

// Load reads the runtime config file now and applies it when its content
// changed. On error the last good overrides stay in force.
func (o *Overrides) Load() error {
	if o.cfg.File == "" {
		return nil
	}
	o.loadMu.Lock()
	defer o.loadMu.Unlock()
	data, err := os.ReadFile(o.cfg.File)
	if err != nil {
		o.failed()
		return fmt.Errorf("read runtime config: %w", err)
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:])
	if hash == o.lastHash {
		return nil // unchanged (a bad file stays failed until it changes)
	}
	o.lastHash = hash
	byTenant, err := ParseOverrides(data, o.defaults)
	if err != nil {
		o.failed()
		return fmt.Errorf("parse runtime config %s: %w", o.cfg.File, err)
	}
	prev := o.cur.Swap(&overrideSet{byTenant: byTenant, hash: hash})
	o.m.lastSuccess.Set(1)
	o.m.reloads.WithLabelValues("success").Inc()
	o.m.hash.Reset()
	o.m.hash.WithLabelValues(hash).Set(1)
	o.log.Info("runtime config applied", "file", o.cfg.File, "tenants", len(byTenant), "sha256", hash, "previous_tenants", len(prev.byTenant))
	return nil
}

func (o *Overrides) failed() {
	o.m.lastSuccess.Set(0)
	o.m.reloads.WithLabelValues("failure").Inc()
}

type runtimeMetrics struct {
	lastSuccess prometheus.Gauge
	reloads     *prometheus.CounterVec
	hash        *prometheus.GaugeVec
}

func newRuntimeMetrics(reg prometheus.Registerer) *runtimeMetrics {
	f := promauto.With(reg)
	return &runtimeMetrics{
		lastSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_runtime_config_last_reload_successful",
			Help: "1 when the last read of -runtime-config.file was applied (or unchanged), 0 when it failed and the previous overrides stay in force.",
		}),
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_runtime_config_reloads_total",
			Help: "Reads of a changed -runtime-config.file, by result (success, failure).",
		}, []string{"result"}),
		hash: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_runtime_config_hash",
			Help: "Always 1; sha256 is the hash of the runtime config in force.",
		}, []string{"sha256"}),
	}
}

// runtimeFile is the runtime config file. Fields of a tenant not given
// keep the defaults.
type runtimeFile struct {
	Overrides map[string]yaml.Node `yaml:"overrides"`
}

// yamlFields are the YAML names of Limits' fields, in order.
var yamlFields = func() []string {
	t := reflect.TypeFor[Limits]()
	out := make([]string, t.NumField())
	for i := range out {
		out[i], _, _ = strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
	}
	return out
}()

// ParseOverrides parses a runtime config file into each tenant's effective
// limits: defaults with the tenant's fields replaced. It is strict: an
// unknown key, a tenant id that is not valid, a value of the wrong type or
// a limit that cannot work is an error naming the tenant and the field.
func ParseOverrides(data []byte, defaults Limits) (map[string]*Limits, error) {
	var f runtimeFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	out := make(map[string]*Limits, len(f.Overrides))
	for id, node := range f.Overrides {
		if err := tenant.Validate(id); err != nil {
			return nil, fmt.Errorf("overrides: %w", err)
		}
		l := defaults
		if node.Kind != 0 && !(node.Kind == yaml.ScalarNode && node.Tag == "!!null") {
			if node.Kind != yaml.MappingNode {
				return nil, fmt.Errorf("overrides of tenant %q (line %d): want a mapping of limit names to values", id, node.Line)
			}
			for k := 0; k+1 < len(node.Content); k += 2 {
				key := node.Content[k]
				if !knownField(key.Value) {
					return nil, fmt.Errorf("overrides of tenant %q (line %d): unknown limit %q", id, key.Line, key.Value)
				}
			}
			if err := node.Decode(&l); err != nil {
				return nil, fmt.Errorf("overrides of tenant %q: %w", id, err)
			}
		}
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("overrides of tenant %q: %w", id, err)
		}
		out[id] = &l
	}
	return out, nil
}

func knownField(name string) bool {
	for _, f := range yamlFields {
		if f == name {
			return true
		}
	}
	return false
}

// Tenants returns the ids of the tenants with overrides, sorted.
func (o *Overrides) Tenants() []string {
	m := o.cur.Load().byTenant
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
