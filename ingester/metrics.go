package ingester

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/tsdb/wlog"

	"github.com/strata-metrics/strata/tenant"
)

type metrics struct {
	// tenantLabels caps the tenant label of the ingester's metrics; nil
	// (unset) labels every tenant with its id. New sets it from Deps.
	tenantLabels atomic.Pointer[tenant.LabelCap]

	floatsAppended     prometheus.Counter
	histogramsAppended prometheus.Counter
	exemplarsAppended  prometheus.Counter
	samplesRejected    [numReasons]prometheus.Counter
	exemplarsRejected  prometheus.Counter
	exemplarsDropped   [numExemplarDrops]prometheus.Counter
	metadataDropped    prometheus.Counter
	// discardedMetadata is metadataDropped by tenant (capped) and reason.
	discardedMetadata *prometheus.CounterVec
	pushDuration      prometheus.Histogram
	// pushesCreatingSeries counts pushes that created series.
	pushesCreatingSeries prometheus.Counter
	// pushesWaited counts pushes that waited for an earlier push on one of
	// their series to commit (push_order.go).
	pushesWaited prometheus.Counter
	// pushOrderWait is how long those pushes waited.
	pushOrderWait prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, i *Ingester) *metrics {
	f := promauto.With(reg)
	appended := f.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_ingester_samples_appended_total",
		Help: "Samples appended to tenant TSDBs, by type (float or histogram).",
	}, []string{"type"})
	rejected := f.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_ingester_samples_rejected_total",
		Help: "Samples (float and histogram) rejected by tenant TSDBs, by reason.",
	}, []string{"reason"})
	exDropped := f.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_ingester_exemplars_dropped_total",
		Help: "Exemplars dropped without failing the push: out of order (resent) or of a series the head does not have.",
	}, []string{"reason"})
	m := &metrics{
		floatsAppended:     appended.WithLabelValues("float"),
		histogramsAppended: appended.WithLabelValues("histogram"),
		exemplarsAppended: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ingester_exemplars_appended_total",
			Help: "Exemplars appended to tenant TSDBs.",
		}),
		exemplarsRejected: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ingester_exemplars_rejected_total",
			Help: "Invalid exemplars rejected (the push fails with bad input).",
		}),
		metadataDropped: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ingester_metadata_dropped_total",
			Help: "Metric family metadata not kept because the tenant has -ingester.max-metadata-per-tenant families.",
		}),
		discardedMetadata: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_ingester_discarded_metadata_total",
			Help: "Metric family metadata not kept, by tenant and reason (per_user_metadata_limit: the tenant has max_metadata_per_user families, -ingester.max-metadata-per-tenant; per_metric_metadata_limit: a new entry evicted the least recently seen of a family with max_metadata_per_metric entries, -ingester.max-metadata-per-metric).",
		}, []string{"tenant", "reason"}),
		pushDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:                            "strata_ingester_push_duration_seconds",
			Help:                            "Time to append one push, decode to commit.",
			Buckets:                         []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: 1e9 * 3600,
		}),
		pushesCreatingSeries: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ingester_pushes_creating_series_total",
			Help: "Pushes that created series.",
		}),
		pushesWaited: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ingester_pushes_waited_total",
			Help: "Pushes that waited, before appending, for an earlier push of their tenant touching one of the same series to commit (commits on a series must follow the order of its appends).",
		}),
		pushOrderWait: f.NewHistogram(prometheus.HistogramOpts{
			Name:                            "strata_ingester_push_order_wait_seconds",
			Help:                            "How long a push waited for earlier pushes of its tenant on the same series to commit, for pushes that waited (strata_ingester_pushes_waited_total).",
			Buckets:                         prometheus.ExponentialBuckets(0.0001, 4, 8),
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}),
	}
	for r := range numReasons {
		m.samplesRejected[r] = rejected.WithLabelValues(r.String())
	}
	for d := range numExemplarDrops {
		m.exemplarsDropped[d] = exDropped.WithLabelValues(exemplarDropNames[d])
	}
	if reg != nil {
		reg.MustRegister(&tenantCollector{i: i, m: m}, &tsdbCollector{i: i})
	}
	return m
}

// setTenantLabels caps the tenant label of the ingester's metrics
// (Deps.TenantLabels): tenants beyond the cap are summed under
// tenant.OtherLabel, and a tenant that neither pushes nor has in-memory
// series for the idle timeout loses its series. New calls it.
func (i *Ingester) setTenantLabels(tl *tenant.LabelCap) {
	i.metrics.tenantLabels.Store(tl)
	tl.Track(i.limitMetrics.discarded, i.metrics.discardedMetadata)
}

// tenantLabel returns the tenant label value of tenantID's metrics and
// records the tenant as active; once per push.
func (m *metrics) tenantLabel(tenantID string) string {
	return m.tenantLabels.Load().Value(tenantID)
}

// reasonMetadataLimit is the reason of strata_ingester_discarded_metadata_total.
const reasonMetadataLimit = "per_user_metadata_limit"

// countMetadataDropped counts n metadata entries of tenantID that were not
// kept because the tenant has max_metadata_per_user families.
func (i *Ingester) countMetadataDropped(tenantID string, n int) {
	if n <= 0 {
		return
	}
	i.metrics.metadataDropped.Add(float64(n))
	i.metrics.discardedMetadata.WithLabelValues(i.metrics.tenantLabel(tenantID), reasonMetadataLimit).Add(float64(n))
}

// countDiscarded counts the samples of one push of tenantID that its TSDB
// or its limits refused, by tenant (capped: Deps.TenantLabels) and reason, in
// strata_ingester_discarded_samples_total, and records the tenant as
// active. It replaces limitMetrics.countLimited, which counts the series
// limits alone: the out-of-order window (out_of_order_time_window) and the
// TSDB's other refusals are per tenant too. Once per push; it allocates
// nothing once the tenant's series exist.
func (i *Ingester) countDiscarded(tenantID string, r *rejections) {
	label := i.metrics.tenantLabel(tenantID)
	for k, n := range r.samples {
		if n > 0 {
			i.limitMetrics.discarded.WithLabelValues(label, reason(k).String()).Add(float64(n))
		}
	}
}

func (m *metrics) countPush(n pushCounts, r *rejections) {
	if n.floats > 0 {
		m.floatsAppended.Add(float64(n.floats))
	}
	if n.histograms > 0 {
		m.histogramsAppended.Add(float64(n.histograms))
	}
	if n.exemplars > 0 {
		m.exemplarsAppended.Add(float64(n.exemplars))
	}
	for k, c := range r.samples {
		if c > 0 {
			m.samplesRejected[k].Add(float64(c))
		}
	}
	if r.exemplars > 0 {
		m.exemplarsRejected.Add(float64(r.exemplars))
	}
	for k, c := range r.dropped {
		if c > 0 {
			m.exemplarsDropped[k].Add(float64(c))
		}
	}
}

// tenantCollector reports per-tenant figures read at scrape time. A tenant
// with in-memory series counts as active for the tenant label cap (it
// keeps its slot, or takes a free one); the figures of tenants without a
// slot are summed under tenant.OtherLabel.
type tenantCollector struct {
	i *Ingester
	m *metrics
}

var (
	descTenants = prometheus.NewDesc("strata_ingester_tenants",
		"Tenants with an open TSDB.", nil, nil)
	descActiveSeries = prometheus.NewDesc("strata_ingester_active_series",
		"Series in the tenant's TSDB head (in memory).", []string{"tenant"}, nil)
	descWALBytes = prometheus.NewDesc("strata_ingester_wal_bytes",
		"Bytes of the tenant's write-ahead log (and out-of-order log) on disk.", []string{"tenant"}, nil)
)

func (c *tenantCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descTenants
	ch <- descActiveSeries
	ch <- descWALBytes
}

func (c *tenantCollector) Collect(ch chan<- prometheus.Metric) {
	dbs := c.i.snapshot(nil)
	tl := c.m.tenantLabels.Load()
	ch <- prometheus.MustNewConstMetric(descTenants, prometheus.GaugeValue, float64(len(dbs)))
	var otherSeries, otherWAL float64
	others := 0
	for _, u := range dbs {
		series := u.db.Head().NumSeries()
		label := tl.Peek(u.id) // an empty head does not keep a slot
		if series > 0 {
			label = tl.Value(u.id)
		}
		dir := u.db.Dir()
		// A few segment files (128 MiB each) per directory: cheap to stat.
		wal := dirSize(filepath.Join(dir, wlog.WblDirName)) + dirSize(filepath.Join(dir, "wal"))
		if label == tenant.OtherLabel {
			otherSeries += float64(series)
			otherWAL += float64(wal)
			others++
			continue
		}
		ch <- prometheus.MustNewConstMetric(descActiveSeries, prometheus.GaugeValue, float64(series), label)
		ch <- prometheus.MustNewConstMetric(descWALBytes, prometheus.GaugeValue, float64(wal), label)
	}
	if others > 0 {
		ch <- prometheus.MustNewConstMetric(descActiveSeries, prometheus.GaugeValue, otherSeries, tenant.OtherLabel)
		ch <- prometheus.MustNewConstMetric(descWALBytes, prometheus.GaugeValue, otherWAL, tenant.OtherLabel)
	}
}

// dirSize sums the sizes of the files directly in dir and one level below
// (the WAL's checkpoint directories); a missing dir counts 0.
func dirSize(dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range entries {
		if e.IsDir() {
			n += dirSize(filepath.Join(dir, e.Name()))
			continue
		}
		if info, err := e.Info(); err == nil {
			n += info.Size()
		}
	}
	return n
}

// tsdbFamilies are the TSDB's own metrics worth watching on an ingester,
// summed over tenants and exported as strata_ingester_tsdb_<rest of name>.
var tsdbFamilies = map[string]bool{
	"prometheus_tsdb_compactions_total":                        true,
	"prometheus_tsdb_compactions_failed_total":                 true,
	"prometheus_tsdb_head_truncations_failed_total":            true,
	"prometheus_tsdb_reloads_failures_total":                   true,
	"prometheus_tsdb_checkpoint_creations_failed_total":        true,
	"prometheus_tsdb_wal_corruptions_total":                    true,
	"prometheus_tsdb_wal_writes_failed_total":                  true,
	"prometheus_tsdb_wal_truncations_failed_total":             true,
	"prometheus_tsdb_mmap_chunk_corruptions_total":             true,
	"prometheus_tsdb_time_retentions_total":                    true,
	"prometheus_tsdb_blocks_loaded":                            true,
	"prometheus_tsdb_storage_blocks_bytes":                     true,
	"prometheus_tsdb_head_chunks":                              true,
	"prometheus_tsdb_head_out_of_order_samples_appended_total": true,
	"prometheus_tsdb_exemplar_exemplars_in_storage":            true,
}

// tsdbCollector sums the chosen TSDB metrics of every tenant's registry at
// scrape time. It is unchecked (describes nothing): the set of label names
// comes from the TSDB.
type tsdbCollector struct{ i *Ingester }

func (c *tsdbCollector) Describe(chan<- *prometheus.Desc) {}

func (c *tsdbCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ family, labels string }
	type sum struct {
		desc   *prometheus.Desc
		typ    prometheus.ValueType
		values []string
		v      float64
	}
	sums := map[key]*sum{}
	descs := map[string]*prometheus.Desc{}
	for _, u := range c.i.snapshot(nil) {
		families, err := u.reg.Gather()
		if err != nil {
			continue // partial figures beat none; the TSDB logs its own errors
		}
		for _, mf := range families {
			if !tsdbFamilies[mf.GetName()] {
				continue
			}
			var typ prometheus.ValueType
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				typ = prometheus.CounterValue
			case dto.MetricType_GAUGE:
				typ = prometheus.GaugeValue
			default:
				continue
			}
			for _, m := range mf.GetMetric() {
				names, values := make([]string, 0, len(m.GetLabel())), make([]string, 0, len(m.GetLabel()))
				for _, lp := range m.GetLabel() {
					names = append(names, lp.GetName())
					values = append(values, lp.GetValue())
				}
				k := key{mf.GetName(), strings.Join(names, ",") + "\xff" + strings.Join(values, "\xff")}
				s := sums[k]
				if s == nil {
					dk := mf.GetName() + "\xff" + strings.Join(names, ",")
					d := descs[dk]
					if d == nil {
						name := "strata_ingester_tsdb_" + strings.TrimPrefix(mf.GetName(), "prometheus_tsdb_")
						d = prometheus.NewDesc(name, mf.GetHelp()+" (Summed over tenants.)", names, nil)
						descs[dk] = d
					}
					s = &sum{desc: d, typ: typ, values: values}
					sums[k] = s
				}
				if typ == prometheus.CounterValue {
					s.v += m.GetCounter().GetValue()
				} else {
					s.v += m.GetGauge().GetValue()
				}
			}
		}
	}
	for _, s := range sums {
		ch <- prometheus.MustNewConstMetric(s.desc, s.typ, s.v, s.values...)
	}
}
