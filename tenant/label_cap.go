package tenant

import (
	"flag"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LabelName is the label that carries the tenant on self-metrics.
const LabelName = "tenant"

// OtherLabel is the tenant label value of every tenant without a label
// slot of its own. '<' and '>' are not allowed in tenant ids (Validate), so
// it can never be a real tenant's value.
const OtherLabel = "<other>"

// MetricsConfig bounds the tenant label of every component's self-metrics.
type MetricsConfig struct {
	MaxTenantLabels        int           `yaml:"max_tenant_labels"`
	TenantLabelIdleTimeout time.Duration `yaml:"tenant_label_idle_timeout"`
}

// RegisterFlags registers the flags of the tenant label cap.
//
// 1,000 tenants: every component labels a few families by tenant (the
// distributor's received and discarded counters, the ingester's series and
// limits, the querier's rejections), about 10 to 20 series per tenant and
// process with the usual few reasons, so the cap keeps each process under
// ~20k series of its own: a small load for the operator's Prometheus, which
// scrapes every process. Uncapped, 100k tenants would make millions per
// process. A SaaS with more tenants watches the biggest through the cap
// and the rest, summed, under tenant="<other>".
//
// 1 hour: a slot is kept through any normal gap in a tenant's activity
// (remote-write pushes every few seconds, dashboards refresh every few
// minutes, hourly batch jobs), so the series of a live tenant are not
// deleted and recreated under it; Cortex and Mimir delete the per-tenant
// series of a tenant idle 15 minutes, but they have no cap, so a
// tenant that comes back there never loses its series to another tenant.
func (c *MetricsConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.MaxTenantLabels, "metrics.max-tenant-labels", 1000, `Most tenants with a tenant label value of their own on this process' self-metrics; the metrics of further tenants are summed under tenant="<other>" until a slot frees. 0 sums every tenant under "<other>".`)
	fs.DurationVar(&c.TenantLabelIdleTimeout, "metrics.tenant-label-idle-timeout", time.Hour, "A tenant that neither pushes nor queries (nor has in-memory series) for this long gives up its tenant label slot: its series are deleted from the self-metrics and a tenant counted under \"<other>\" takes the slot.")
}

// Validate checks the configuration.
func (c *MetricsConfig) Validate() error {
	switch {
	case c.MaxTenantLabels < 0:
		return fmt.Errorf("-metrics.max-tenant-labels must not be negative, got %d", c.MaxTenantLabels)
	case c.TenantLabelIdleTimeout <= 0:
		return fmt.Errorf("-metrics.tenant-label-idle-timeout must be positive, got %s", c.TenantLabelIdleTimeout)
	}
	return nil
}

// SeriesDeleter is a metric vector with a LabelName label: the series of a
// tenant that loses its slot are deleted from it. *prometheus.CounterVec,
// GaugeVec, HistogramVec and SummaryVec are SeriesDeleters.
type SeriesDeleter interface {
	DeletePartialMatch(labels prometheus.Labels) int
}

// LabelCap decides the tenant label value of self-metrics: the first
// -metrics.max-tenant-labels tenants get their id, the others OtherLabel.
// A tenant idle for -metrics.tenant-label-idle-timeout gives its slot up:
// its series are deleted from every tracked vector, and a tenant counted
// under OtherLabel that is still active takes the slot.
//
// One LabelCap serves every component of a process, so that a tenant has
// its own series in all of them or in none. It is goroutine-safe; Value
// takes a read lock and allocates nothing for a tenant seen before. Idle
// slots are released lazily, by Value and by a scrape of its own metrics,
// at most every idle timeout / 8: no goroutine.
//
// A nil *LabelCap labels every tenant with its id (no cap), for tests and
// tools.
type LabelCap struct {
	max           int
	idle          int64 // ns
	sweepInterval int64 // ns
	now           func() time.Time

	mu     sync.RWMutex
	seen   map[string]*labelEntry // tenants active within idle; guarded by mu
	held   int                    // entries with a label of their own; guarded by mu
	vecs   []SeriesDeleter        // guarded by mu
	nextSw atomic.Int64           // unix ns of the next sweep

	released atomic.Uint64
	desc     labelCapDescs
}

// labelEntry is one tenant seen within the idle timeout.
type labelEntry struct {
	label string       // the tenant id or OtherLabel; written under mu's write lock
	last  atomic.Int64 // unix ns of the last Value, to the second
}

// NewLabelCap returns a LabelCap; reg (may be nil) receives
// strata_metrics_tenants_labelled, strata_metrics_tenants_folded and
// strata_metrics_tenant_label_releases_total. now is its clock (nil:
// time.Now).
func NewLabelCap(cfg MetricsConfig, reg prometheus.Registerer, now func() time.Time) (*LabelCap, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	c := &LabelCap{
		max:           cfg.MaxTenantLabels,
		idle:          int64(cfg.TenantLabelIdleTimeout),
		sweepInterval: max(int64(cfg.TenantLabelIdleTimeout)/8, 1),
		now:           now,
		seen:          map[string]*labelEntry{},
		desc:          newLabelCapDescs(),
	}
	if reg != nil {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register tenant label metrics: %w", err)
		}
	}
	return c, nil
}

// Track adds vectors whose series of a tenant are deleted when the tenant
// gives up its slot. Call it when the vectors are created.
func (c *LabelCap) Track(vecs ...SeriesDeleter) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.vecs = append(c.vecs, vecs...)
	c.mu.Unlock()
}

// touchGranularity bounds how often a busy tenant's last-seen time is
// written: once a second is plenty for an idle timeout of minutes, and it
// keeps concurrent pushes of one tenant from contending on its entry.
const touchGranularity = int64(time.Second)

// Value returns the tenant label value of tenantID's metrics and records
// the tenant as active: its id while it holds a slot (taking a free one on
// its first call), OtherLabel otherwise. tenantID may be a view into a
// buffer: the LabelCap keeps a copy.
func (c *LabelCap) Value(tenantID string) string {
	if c == nil {
		return tenantID
	}
	now := c.now().UnixNano()
	c.mu.RLock()
	e := c.seen[tenantID]
	var label string
	if e != nil {
		if now-e.last.Load() >= touchGranularity {
			e.last.Store(now)
		}
		label = e.label
	}
	c.mu.RUnlock()
	if e == nil {
		label = c.admit(tenantID, now)
	}
	c.maybeSweep(now)
	return label
}

// Peek returns the label value like Value, but neither records the tenant
// as active nor gives it a slot: for figures read at scrape time about
// tenants that may be idle.
func (c *LabelCap) Peek(tenantID string) string {
	if c == nil {
		return tenantID
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e := c.seen[tenantID]; e != nil {
		return e.label
	}
	return OtherLabel
}

// admit records a tenant not seen within the idle timeout.
func (c *LabelCap) admit(tenantID string, now int64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.seen[tenantID]; e != nil { // admitted meanwhile
		e.last.Store(now)
		return e.label
	}
	id := strings.Clone(tenantID)
	e := &labelEntry{label: OtherLabel}
	if c.held < c.max {
		e.label = id
		c.held++
	}
	e.last.Store(now)
	c.seen[id] = e
	return e.label
}

// maybeSweep sweeps when the sweep interval has passed; one caller does it.
func (c *LabelCap) maybeSweep(now int64) {
	next := c.nextSw.Load()
	if now < next || !c.nextSw.CompareAndSwap(next, now+c.sweepInterval) {
		return
	}
	c.sweep(now)
}

// sweep forgets the tenants idle for the idle timeout, hands the freed
// slots to active tenants under OtherLabel (in no particular order), and
// deletes the released tenants' series.
func (c *LabelCap) sweep(now int64) {
	var released []string
	c.mu.Lock()
	for id, e := range c.seen {
		if now-e.last.Load() < c.idle {
			continue
		}
		delete(c.seen, id)
		if e.label != OtherLabel {
			c.held--
			released = append(released, id)
		}
	}
	if c.held < c.max && len(c.seen) > c.held {
		for id, e := range c.seen {
			if c.held >= c.max {
				break
			}
			if e.label == OtherLabel {
				e.label = id
				c.held++
			}
		}
	}
	vecs := c.vecs
	c.mu.Unlock()
	// Outside the lock: DeletePartialMatch scans a whole vector. A tenant
	// that comes back in between loses what it counted meanwhile: a counter
	// reset, which rate() handles.
	for _, id := range released {
		match := prometheus.Labels{LabelName: id}
		for _, v := range vecs {
			v.DeletePartialMatch(match)
		}
	}
	c.released.Add(uint64(len(released)))
}

// labelCapDescs are the LabelCap's own metrics.
type labelCapDescs struct{ labelled, folded, releases *prometheus.Desc }

func newLabelCapDescs() labelCapDescs {
	return labelCapDescs{
		labelled: prometheus.NewDesc("strata_metrics_tenants_labelled",
			"Tenants whose self-metrics carry their own tenant label value; at most -metrics.max-tenant-labels.", nil, nil),
		folded: prometheus.NewDesc("strata_metrics_tenants_folded",
			`Tenants active within -metrics.tenant-label-idle-timeout whose self-metrics are summed under tenant="<other>", every slot being taken.`, nil, nil),
		releases: prometheus.NewDesc("strata_metrics_tenant_label_releases_total",
			"Tenant label slots given up after -metrics.tenant-label-idle-timeout without activity; the tenant's series were deleted.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *LabelCap) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc.labelled
	ch <- c.desc.folded
	ch <- c.desc.releases
}

// Collect implements prometheus.Collector. A scrape also releases idle
// slots, so that a process nobody pushes to or queries drops the series
// of tenants gone idle.
func (c *LabelCap) Collect(ch chan<- prometheus.Metric) {
	c.maybeSweep(c.now().UnixNano())
	c.mu.RLock()
	held, folded := c.held, len(c.seen)-c.held
	c.mu.RUnlock()
	ch <- prometheus.MustNewConstMetric(c.desc.labelled, prometheus.GaugeValue, float64(held))
	ch <- prometheus.MustNewConstMetric(c.desc.folded, prometheus.GaugeValue, float64(folded))
	ch <- prometheus.MustNewConstMetric(c.desc.releases, prometheus.CounterValue, float64(c.released.Load()))
}
