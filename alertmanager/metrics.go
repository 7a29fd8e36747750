package alertmanager

import (
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	dto "github.com/prometheus/client_model/go"

	"github.com/strata-metrics/strata/proto/alertmanagerpb"
	"github.com/strata-metrics/strata/tenant"
)

type metrics struct {
	loaded         prometheus.Gauge
	loadFailures   prometheus.Counter
	receivedVec    *prometheus.CounterVec
	rateLimitedVec *prometheus.CounterVec
	labels         *tenant.LabelCap

	replicationSends     *prometheus.CounterVec
	replicationLag       *prometheus.HistogramVec
	replicationFailures  *prometheus.CounterVec
	merges               *prometheus.CounterVec
	mergeFailures        *prometheus.CounterVec
	stateSyncs           *prometheus.CounterVec
	persists             prometheus.Counter
	persistFailures      prometheus.Counter
	distributionFailures prometheus.Counter
	forwardFailures      prometheus.Counter
	noOwner              prometheus.Counter
}

func newMetrics(m *MultitenantAlertmanager, reg prometheus.Registerer, labels *tenant.LabelCap) *metrics {
	f := promauto.With(reg)
	mt := &metrics{
		loaded: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_alertmanager_configs_loaded",
			Help: "Tenants whose Alertmanager runs in this process.",
		}),
		loadFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_alertmanager_config_load_failures_total",
			Help: "Stored tenant configurations that failed to load (the tenant keeps its previous one); the log names the tenant and the reason.",
		}),
		receivedVec: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_alertmanager_alerts_received_total",
			Help: "Alerts posted to a tenant's Alertmanager, refused ones included.",
		}, []string{tenant.LabelName}),
		rateLimitedVec: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_alertmanager_notification_rate_limited_total",
			Help: "Notifications refused by the tenant's notification rate limit of their integration (alertmanager_notification_rate_limit, _per_integration); the group's next flush tries again.",
		}, []string{tenant.LabelName, "integration"}),
		labels: labels,
		replicationSends: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_alertmanager_replication_sends_total",
			Help: "Changes of a tenant's silences or notification log sent to another owner of the tenant, by kind (silences, nflog).",
		}, []string{"kind"}),
		replicationLag: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "strata_alertmanager_replication_lag_seconds",
			Help:                            "Time from a change of a tenant's silences or notification log on one owner until another owner has merged it, by kind (silences, nflog); what replication adds to upstream's -alertmanager.peer-timeout budget.",
			Buckets:                         prometheus.ExponentialBuckets(0.0005, 4, 10),
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"kind"}),
		replicationFailures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_alertmanager_replication_failures_total",
			Help: "Changes that did not reach another owner of the tenant (unreachable, or too many sends in flight): that owner may send a duplicate notification, or miss a silence until it reads the whole state again.",
		}, []string{tenant.LabelName, "kind"}),
		merges: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_alertmanager_state_merges_total",
			Help: "Silences or notification log payloads from another owner (or a whole state) merged into a tenant's Alertmanager, by kind.",
		}, []string{"kind"}),
		mergeFailures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_alertmanager_state_merge_failures_total",
			Help: "Payloads that did not decode, by kind.",
		}, []string{"kind"}),
		stateSyncs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_alertmanager_state_syncs_total",
			Help: "Tenants started here, by where their silences and notification log came from: peer (another owner), bucket (the persisted state), none (neither had any), failed (the bucket could not be read); resync counts the whole states read again from an owner at the settle or when an owner appears.",
		}, []string{"source"}),
		persists: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_alertmanager_state_persists_total",
			Help: "Tenants' states written to the bucket (~alertmanager/state/<tenant>).",
		}),
		persistFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_alertmanager_state_persist_failures_total",
			Help: "Tenants' states that could not be written to the bucket; the log names the tenant.",
		}),
		distributionFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_alertmanager_distribution_failures_total",
			Help: "Posts of alerts that one owner of the tenant did not take (the post succeeds when another did).",
		}),
		forwardFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_alertmanager_forward_failures_total",
			Help: "API requests forwarded to an owner of the tenant that failed with a server error; the next owner is tried.",
		}),
		noOwner: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_alertmanager_no_owner_refusals_total",
			Help: "API requests and in-process posts refused with 503 because no healthy replica of the alertmanager ring owns the tenant.",
		}),
	}
	labels.Track(mt.receivedVec, mt.rateLimitedVec)
	labels.Track(mt.replicationFailures)
	if reg != nil {
		reg.MustRegister(&tenantCollector{m: m, labels: labels})
	}
	return mt
}

func (mt *metrics) replicationSent(kind alertmanagerpb.StateKind) {
	mt.replicationSends.WithLabelValues(kindName(kind)).Inc()
}

func (mt *metrics) replicated(kind alertmanagerpb.StateKind, since time.Time) {
	mt.replicationLag.WithLabelValues(kindName(kind)).Observe(time.Since(since).Seconds())
}

func (mt *metrics) replicationFailure(id string, kind alertmanagerpb.StateKind) {
	mt.replicationFailures.WithLabelValues(mt.labels.Value(id), kindName(kind)).Inc()
}

func (mt *metrics) received(id string, n int) {
	mt.receivedVec.WithLabelValues(mt.labels.Value(id)).Add(float64(n))
}

func (mt *metrics) rateLimited(id, integration string) {
	mt.rateLimitedVec.WithLabelValues(mt.labels.Value(id), integration).Inc()
}

// upstreamFamilies are the upstream per-tenant metrics exposed, renamed
// strata_alertmanager_* with a tenant label: each tenant's Alertmanager
// registers upstream's metrics in a registry of its own, gathered here.
var upstreamFamilies = map[string]string{
	"alertmanager_notifications_total":                              "strata_alertmanager_notifications_total",
	"alertmanager_notifications_failed_total":                       "strata_alertmanager_notifications_failed_total",
	"alertmanager_silences":                                         "strata_alertmanager_silences",
	"alertmanager_alerts":                                           "strata_alertmanager_alerts",
	"alertmanager_dispatcher_aggregation_group_limit_reached_total": "strata_alertmanager_dispatcher_aggregation_group_limit_reached_total",
}

var upstreamHelp = map[string]string{
	"strata_alertmanager_notifications_total":                              "Notifications a tenant's Alertmanager attempted, per integration (upstream's alertmanager_notifications_total).",
	"strata_alertmanager_notifications_failed_total":                       "Notifications that failed, per integration and reason (upstream's alertmanager_notifications_failed_total).",
	"strata_alertmanager_silences":                                         "A tenant's silences by state (upstream's alertmanager_silences).",
	"strata_alertmanager_alerts":                                           "A tenant's alerts by state (upstream's alertmanager_alerts).",
	"strata_alertmanager_dispatcher_aggregation_group_limit_reached_total": "Alerts whose new aggregation group the tenant's limit refused (alertmanager_max_dispatcher_aggregation_groups).",
}

// tenantCollector sums the upstream families of every tenant's registry
// by tenant label (tenants beyond the cap are summed under "<other>").
type tenantCollector struct {
	m      *MultitenantAlertmanager
	labels *tenant.LabelCap
}

func (c *tenantCollector) Describe(chan<- *prometheus.Desc) {} // unchecked: the label sets come from upstream

type sample struct {
	names, values []string
	value         float64
	kind          prometheus.ValueType
}

func (c *tenantCollector) Collect(ch chan<- prometheus.Metric) {
	sums := map[string]map[string]*sample{} // family -> label key -> sum
	for _, id := range c.m.tenantIDs() {
		reg := c.m.registry(id)
		if reg == nil {
			continue
		}
		fams, err := reg.Gather()
		if err != nil {
			continue
		}
		label := c.labels.Peek(id)
		for _, fam := range fams {
			name, ok := upstreamFamilies[fam.GetName()]
			if !ok {
				continue
			}
			kind := prometheus.GaugeValue
			if fam.GetType() == dto.MetricType_COUNTER {
				kind = prometheus.CounterValue
			}
			for _, mm := range fam.GetMetric() {
				names := []string{tenant.LabelName}
				values := []string{label}
				for _, lp := range mm.GetLabel() {
					names = append(names, lp.GetName())
					values = append(values, lp.GetValue())
				}
				v := mm.GetGauge().GetValue()
				if kind == prometheus.CounterValue {
					v = mm.GetCounter().GetValue()
				}
				key := strings.Join(names, "\xff") + "\xfe" + strings.Join(values, "\xff")
				if sums[name] == nil {
					sums[name] = map[string]*sample{}
				}
				if s := sums[name][key]; s != nil {
					s.value += v
					continue
				}
				sums[name][key] = &sample{names: names, values: values, value: v, kind: kind}
			}
		}
	}
	for name, byKey := range sums {
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			s := byKey[k]
			desc := prometheus.NewDesc(name, upstreamHelp[name], s.names, nil)
			if m, err := prometheus.NewConstMetric(desc, s.kind, s.value, s.values...); err == nil {
				ch <- m
			}
		}
	}
}
