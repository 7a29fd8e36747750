package shipper

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/strata-metrics/strata/tenant"
)

// Metrics are the shippers' metrics; one Metrics serves every tenant's
// Shipper of an ingester. The counters carry a tenant label bounded by the
// process' tenant.LabelCap (a tenant without a label slot counts under
// tenant="<other>"); the gauges are totals over the ingester's tenants.
type Metrics struct {
	tenantLabels *tenant.LabelCap
	uploads      *prometheus.CounterVec
	failures     *prometheus.CounterVec
	lastSuccess  prometheus.Gauge
	pending      prometheus.Gauge
	indexAdds    prometheus.Counter
	indexFails   prometheus.Counter
}

// NewMetrics registers the shipper metrics on reg (may be nil). tl decides
// the tenant label; nil labels every tenant with its id (tests, tools). An
// upload or a failure counts as activity of the tenant for tl (Value): it
// happens once per block, so it does not keep an idle tenant's slot.
func NewMetrics(reg prometheus.Registerer, tl *tenant.LabelCap) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		tenantLabels: tl,
		uploads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_ingester_shipper_uploads_total",
			Help: "Blocks the ingester uploaded to object storage.",
		}, []string{tenant.LabelName}),
		failures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_ingester_shipper_upload_failures_total",
			Help: "Block uploads that failed; the block stays on disk and is tried again at the next -ingester.ship-interval.",
		}, []string{tenant.LabelName}),
		lastSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_ingester_shipper_last_successful_upload_timestamp_seconds",
			Help: "Unix time of the ingester's last successful block upload (0: none since start).",
		}),
		pending: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_ingester_shipper_pending_blocks",
			Help: "Blocks cut on the ingester's disk and not yet uploaded, as of each tenant's last upload round; they are never deleted locally until uploaded.",
		}),
		indexAdds: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ingester_shipper_index_additions_total",
			Help: "Uploaded blocks the ingester added to their tenant's bucket index itself (again, when a concurrent write of the index had dropped them).",
		}),
		indexFails: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ingester_shipper_index_failures_total",
			Help: "Failed reads or writes of a bucket index while adding uploaded blocks to it; tried again at the next -ingester.ship-interval (the compactor indexes the blocks anyway).",
		}),
	}
	tl.Track(m.uploads, m.failures)
	return m
}

func (m *Metrics) uploaded(tenantID string, unix float64) {
	if m == nil {
		return
	}
	m.uploads.WithLabelValues(m.tenantLabels.Value(tenantID)).Inc()
	m.lastSuccess.Set(unix)
}

func (m *Metrics) failed(tenantID string) {
	if m == nil {
		return
	}
	m.failures.WithLabelValues(m.tenantLabels.Value(tenantID)).Inc()
}

func (m *Metrics) addPending(delta int) {
	if m == nil || delta == 0 {
		return
	}
	m.pending.Add(float64(delta))
}

func (m *Metrics) indexed(blocks int) {
	if m == nil {
		return
	}
	m.indexAdds.Add(float64(blocks))
}

func (m *Metrics) indexFailed() {
	if m == nil {
		return
	}
	m.indexFails.Inc()
}
