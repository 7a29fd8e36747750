package ruler

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	dto "github.com/prometheus/client_model/go"

	"github.com/strata-metrics/strata/tenant"
)

// metrics are the ruler's self-metrics. Per-tenant figures are counted by
// upstream's rules and notifier packages in one registry per tenant (they
// cannot share one: their names would collide) and exposed here at scrape
// time as strata_ruler_*, summed per tenant label (-metrics.max-tenant-labels
// folds the tenants over the cap into "<other>").
type metrics struct {
	syncs, syncFailures prometheus.Counter
	// Questions to other rulers for a tenant's group states.
	peerRequests prometheus.Counter
	peerFailures *prometheus.CounterVec
	peerDuration prometheus.Histogram
	// Notifiers of stopped tenants sending what they queued.
	draining      prometheus.Gauge
	drainTimeouts prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, cap *tenant.LabelCap, tenants func() map[string]*prometheus.Registry) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		syncs:        f.NewCounter(prometheus.CounterOpts{Name: "strata_ruler_syncs_total", Help: "Reads of every rule group from the rule store."}),
		syncFailures: f.NewCounter(prometheus.CounterOpts{Name: "strata_ruler_sync_failures_total", Help: "Reads of the rule store that failed; the ruler keeps evaluating the groups it read last."}),
		peerRequests: f.NewCounter(prometheus.CounterOpts{Name: "strata_ruler_peer_requests_total", Help: "Questions to other rulers for the state of a tenant's rule groups (one per ruler per /api/v1/rules or /api/v1/alerts request)."}),
		peerFailures: f.NewCounterVec(prometheus.CounterOpts{Name: "strata_ruler_peer_failures_total", Help: "Questions to another ruler that failed or passed -ruler.peer-timeout; its groups were answered with health unknown and a warning."}, []string{"ruler"}),
		peerDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name: "strata_ruler_peer_request_duration_seconds", Help: "Time another ruler took to answer for the state of a tenant's rule groups.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
		draining:      f.NewGauge(prometheus.GaugeOpts{Name: "strata_ruler_notifiers_draining", Help: "Notifiers of tenants stopped on this ruler still sending their queued alerts in the background."}),
		drainTimeouts: f.NewCounter(prometheus.CounterOpts{Name: "strata_ruler_notifier_drain_timeouts_total", Help: "Notifiers of stopped tenants that had not sent their queue within -ruler.notification-drain-timeout; the rest of their queue was dropped."}),
	}
	if reg != nil {
		reg.MustRegister(&tenantCollector{cap: cap, tenants: tenants, descs: newTenantDescs()})
	}
	return m
}

// tenantSum maps an upstream metric to a strata_ruler_* one summed per
// tenant label.
type tenantSum struct {
	from string
	desc *prometheus.Desc
	typ  prometheus.ValueType
}

type tenantDescs struct {
	sums         []tenantSum
	duration     *prometheus.Desc
	lastEval     *prometheus.Desc
	groupsLoaded *prometheus.Desc
}

func newTenantDescs() tenantDescs {
	sum := func(from, name, help string, typ prometheus.ValueType) tenantSum {
		return tenantSum{from: from, typ: typ, desc: prometheus.NewDesc(name, help, []string{"tenant"}, nil)}
	}
	return tenantDescs{
		sums: []tenantSum{
			sum("prometheus_rule_evaluations_total", "strata_ruler_rule_evaluations_total", "Rule evaluations (one per rule per group iteration).", prometheus.CounterValue),
			sum("prometheus_rule_evaluation_failures_total", "strata_ruler_rule_evaluation_failures_total", "Rule evaluations that failed: the query, or pushing the results.", prometheus.CounterValue),
			sum("prometheus_rule_group_iterations_total", "strata_ruler_group_iterations_total", "Scheduled rule group iterations, missed ones included.", prometheus.CounterValue),
			sum("prometheus_rule_group_iterations_missed_total", "strata_ruler_group_iterations_missed_total", "Rule group iterations skipped because the one before ran past its interval.", prometheus.CounterValue),
			sum("prometheus_notifications_sent_total", "strata_ruler_notifications_sent_total", "Alerts sent to Alertmanagers (per Alertmanager: two Alertmanagers count an alert twice).", prometheus.CounterValue),
			sum("prometheus_notifications_errors_total", "strata_ruler_notifications_errors_total", "Alerts whose send to an Alertmanager failed.", prometheus.CounterValue),
			sum("prometheus_notifications_dropped_total", "strata_ruler_notifications_dropped_total", "Alerts dropped: the queue was full (-ruler.notification-queue-capacity) or no Alertmanager was known.", prometheus.CounterValue),
			sum("prometheus_notifications_queue_length", "strata_ruler_notifications_queue_length", "Alerts waiting to be sent.", prometheus.GaugeValue),
			sum(unconfiguredName, "strata_ruler_notifications_unconfigured_total", "Batches of alerts the built-in Alertmanager did not take because the tenant has no Alertmanager configuration (dropped, not failed: upload one with POST /api/v1/alerts).", prometheus.CounterValue),
		},
		duration:     prometheus.NewDesc("strata_ruler_group_evaluation_duration_seconds", "Time one rule group iteration took.", []string{"tenant"}, nil),
		lastEval:     prometheus.NewDesc("strata_ruler_group_last_evaluation_timestamp_seconds", "When a rule group was last evaluated (time() minus it is its age); rule_group is namespace;group. Tenants folded into <other> show the latest of their groups of that name.", []string{"tenant", "rule_group"}, nil),
		groupsLoaded: prometheus.NewDesc("strata_ruler_rule_groups", "Rule groups this ruler evaluates.", []string{"tenant"}, nil),
	}
}

type tenantCollector struct {
	cap     *tenant.LabelCap
	tenants func() map[string]*prometheus.Registry
	descs   tenantDescs
}

func (c *tenantCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, s := range c.descs.sums {
		ch <- s.desc
	}
	ch <- c.descs.duration
	ch <- c.descs.lastEval
	ch <- c.descs.groupsLoaded
}

type durationSum struct {
	count uint64
	sum   float64
}

func (c *tenantCollector) Collect(ch chan<- prometheus.Metric) {
	sums := make([]map[string]float64, len(c.descs.sums))
	for i := range sums {
		sums[i] = map[string]float64{}
	}
	durations := map[string]*durationSum{}
	groups := map[string]float64{}
	lastEval := map[[2]string]float64{}
	for t, reg := range c.tenants() {
		label := c.cap.Peek(t)
		mfs, err := reg.Gather()
		if err != nil {
			continue
		}
		for _, mf := range mfs {
			name := mf.GetName()
			for i, s := range c.descs.sums {
				if s.from == name {
					sums[i][label] += sumValues(mf.GetMetric())
				}
			}
			switch name {
			case "prometheus_rule_group_duration_seconds":
				d := durations[label]
				if d == nil {
					d = &durationSum{}
					durations[label] = d
				}
				for _, m := range mf.GetMetric() {
					d.count += m.GetSummary().GetSampleCount()
					d.sum += m.GetSummary().GetSampleSum()
				}
			case "prometheus_rule_group_rules":
				groups[label] += float64(len(mf.GetMetric()))
			case "prometheus_rule_group_last_evaluation_timestamp_seconds":
				for _, m := range mf.GetMetric() {
					k := [2]string{label, labelValue(m, "rule_group")}
					lastEval[k] = max(lastEval[k], m.GetGauge().GetValue())
				}
			}
		}
	}
	for i, s := range c.descs.sums {
		for label, v := range sums[i] {
			ch <- prometheus.MustNewConstMetric(s.desc, s.typ, v, label)
		}
	}
	for label, d := range durations {
		ch <- prometheus.MustNewConstSummary(c.descs.duration, d.count, d.sum, nil, label)
	}
	for label, n := range groups {
		ch <- prometheus.MustNewConstMetric(c.descs.groupsLoaded, prometheus.GaugeValue, n, label)
	}
	for k, v := range lastEval {
		ch <- prometheus.MustNewConstMetric(c.descs.lastEval, prometheus.GaugeValue, v, k[0], k[1])
	}
}

func sumValues(ms []*dto.Metric) float64 {
	var v float64
	for _, m := range ms {
		switch {
		case m.Counter != nil:
			v += m.Counter.GetValue()
		case m.Gauge != nil:
			v += m.Gauge.GetValue()
		}
	}
	return v
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
