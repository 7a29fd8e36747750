package distributor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/strata-metrics/strata/gossip"
	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/remotewrite"
	"github.com/strata-metrics/strata/tenant"
)

// HA-pair dedup, as Cortex and Mimir do it. Two Prometheus replicas of one
// HA pair send the same series with the same external cluster label and
// different replica labels (limits ha_cluster_label, ha_replica_label).
// Per tenant and cluster one replica is elected; its requests are kept
// with the replica label removed from every series, so that both replicas
// write the same series; the other replicas' requests are answered 202
// and dropped whole. When the elected replica has not been seen for
// ha_tracker_failover_timeout, the next replica that writes is elected.
//
// The election lives in the gossip KV (HAState under HATrackerKey), so
// every distributor agrees on it within a gossip round. A distributor
// decides from its local copy of that state; it writes (CAS) only to elect
// a replica, and to refresh the elected replica's last-seen time when its
// copy is older than ha_tracker_update_timeout (plus a per-distributor
// jitter), so a steady HA pair costs one small gossip message per cluster
// per update timeout. While a change spreads, two distributors may briefly
// disagree and keep both replicas' samples; the ingesters store equal
// samples once.
//
// A request is judged by its first series: when that one lacks the cluster
// or the replica label (or has an empty value), the request passes through
// unchanged, as without dedup. A kept request's series carrying the
// replica label with another value than the first series' are rejected
// (400, the rest kept): removing the label would merge them into the
// elected replica's series. Differing cluster values on single series (a
// target's own cluster label, which Prometheus' external labels do not
// override) are kept as they are.

// HAKV is what HA-pair dedup needs of the gossip KV; *gossip.KV is one
// (with RegisterHATrackerKey called before its Run). Get takes no lock and
// returns a value the caller must not modify; CAS is gossip.KV.CAS. Both
// are goroutine-safe.
type HAKV interface {
	Get(key string) gossip.Mergeable
	CAS(ctx context.Context, key string, f func(current gossip.Mergeable) (next gossip.Mergeable, retry bool, err error)) error
}

// Stable ids of HA-pair dedup outcomes, ending their messages.
const (
	idHANotElected     = "strata-ha-replica-not-elected"
	idHAMaxClusters    = "strata-ha-max-clusters"
	idHAReplicaMixed   = "strata-ha-inconsistent-replica-label"
	idHATrackerFailure = "strata-ha-tracker-failure"
)

// HADedupedError means the request came from a replica of an HA pair that
// is not the elected one: HTTP 202, the samples are dropped and the
// sender goes on with its next batch.
type HADedupedError struct{ Msg string }

func (e *HADedupedError) Error() string { return e.Msg }

// haTracker decides, per request, whether its HA replica is elected.
type haTracker struct {
	kv     HAKV
	log    *slog.Logger
	m      *haMetrics
	labels *tenant.LabelCap // the tenant label of m
	jitter float64          // in [0, 1): this distributor's share of the update timeout jitter
}

func newHATracker(kv HAKV, log *slog.Logger, reg prometheus.Registerer, tl *tenant.LabelCap) *haTracker {
	t := &haTracker{kv: kv, log: log, jitter: rand.Float64(), labels: tl}
	t.m = newHAMetrics(reg, func() float64 { return float64(t.state().entries()) })
	tl.Track(t.m.kept, t.m.deduped, t.m.changes)
	return t
}

// haClusterLabel is the cluster label value of the HA metrics of a tenant
// labelled tenantLabel: the clusters of the tenants summed under
// tenant.OtherLabel are summed too, or there would be as many of them as
// without the cap. cluster may be a view into the request: the result is
// a copy.
func haClusterLabel(tenantLabel, cluster string) string {
	if tenantLabel == tenant.OtherLabel {
		return tenant.OtherLabel
	}
	return strings.Clone(cluster)
}

type haMetrics struct {
	kept        *prometheus.CounterVec
	deduped     *prometheus.CounterVec
	changes     *prometheus.CounterVec
	casFailures prometheus.Counter
}

// newHAMetrics registers the HA tracker's metrics. The cluster label is
// bounded by ha_max_clusters per tenant with a tenant label of its own: it
// is set only for clusters the election state tracks (haClusterLabel).
func newHAMetrics(reg prometheus.Registerer, tracked func() float64) *haMetrics {
	f := promauto.With(reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strata_distributor_ha_tracked_clusters",
		Help: "HA clusters in the gossiped election state, over all tenants.",
	}, tracked)
	return &haMetrics{
		kept: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_distributor_ha_kept_samples_total",
			Help: "Float and histogram samples of elected HA replicas, passed on to validation.",
		}, []string{"tenant", "cluster"}),
		deduped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_distributor_ha_deduped_samples_total",
			Help: "Float and histogram samples of HA replicas that are not elected, answered 202 and dropped.",
		}, []string{"tenant", "cluster"}),
		changes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_distributor_ha_elected_replica_changes_total",
			Help: "Failovers this distributor made: another replica of an HA cluster elected after the elected one was silent for the failover timeout.",
		}, []string{"tenant", "cluster"}),
		casFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_distributor_ha_kv_cas_failures_total",
			Help: "Writes of the HA election state to the gossip KV that failed.",
		}),
	}
}

func (t *haTracker) state() *HAState {
	s, _ := t.kv.Get(HATrackerKey).(*HAState)
	return s
}

// haDecision is the election's answer for one request.
type haDecision struct {
	accept  bool
	elected string // the elected replica when not accepted
}

// check decides whether replica of (tenant, cluster) is the elected one at
// now, electing it when its cluster has no live elected replica. cluster
// and replica may be views into the request: they are copied before being
// stored. The error is a BadInputError when the tenant has too many
// clusters, else a failure of the KV.
func (t *haTracker) check(ctx context.Context, tenant, cluster, replica string, lim *limits.Limits, now time.Time) (haDecision, error) {
	nowMs := now.UnixMilli()
	refreshAfter := (lim.HAUpdateTimeout + time.Duration(t.jitter*float64(lim.HAUpdateTimeoutJitterMax))).Milliseconds()
	failoverAfter := lim.HAFailoverTimeout.Milliseconds()

	// The fast path: the local copy of the state decides, no write.
	if e, ok := t.state().get(tenant, cluster); ok {
		age := nowMs - e.ReceivedAt
		switch {
		case e.Replica == replica && age < refreshAfter:
			return haDecision{accept: true}, nil
		case e.Replica != replica && age <= failoverAfter:
			return haDecision{elected: e.Replica}, nil
		}
	}

	var failedOver string // the replica a failover replaced
	err := t.kv.CAS(ctx, HATrackerKey, func(cur gossip.Mergeable) (gossip.Mergeable, bool, error) {
		failedOver = ""
		s, _ := cur.(*HAState)
		e, ok := s.get(tenant, cluster)
		switch {
		case !ok:
			if lim.HAMaxClusters > 0 && s.clusters(tenant) >= lim.HAMaxClusters {
				return nil, false, &BadInputError{Msg: fmt.Sprintf(
					"HA cluster %q of tenant %q rejected: the tenant already has %d HA clusters, limit %d (-%s, override %q); clusters silent for -memberlist.left-tombstone-ttl are forgotten [%s]",
					cluster, tenant, s.clusters(tenant), lim.HAMaxClusters, limits.FlagHAMaxClusters, "ha_max_clusters", idHAMaxClusters)}
			}
			return singleHA(tenant, strings.Clone(cluster), HAReplica{Replica: strings.Clone(replica), ReceivedAt: nowMs, ElectedAt: nowMs}), true, nil
		case e.Replica == replica:
			if nowMs-e.ReceivedAt < refreshAfter {
				return nil, false, nil // refreshed meanwhile
			}
			e.ReceivedAt = nowMs
			return singleHA(tenant, strings.Clone(cluster), e), true, nil
		case nowMs-e.ReceivedAt > failoverAfter:
			failedOver = e.Replica
			return singleHA(tenant, strings.Clone(cluster), HAReplica{Replica: strings.Clone(replica), ReceivedAt: nowMs, ElectedAt: nowMs}), true, nil
		}
		return nil, false, nil // another replica is elected and alive
	})
	if err != nil {
		if bad := (*BadInputError)(nil); errors.As(err, &bad) {
			return haDecision{}, bad // the message as is, without the KV's prefix
		}
		t.m.casFailures.Inc()
		// A failed refresh of the elected replica changes nothing.
		if e, ok := t.state().get(tenant, cluster); ok && e.Replica == replica {
			return haDecision{accept: true}, nil
		}
		return haDecision{}, fmt.Errorf("ha tracker: elect replica %q of cluster %q: %w [%s]", replica, cluster, err, idHATrackerFailure)
	}
	// The merge may have kept a concurrent election by another
	// distributor: the state, not what f wrote, decides.
	e, ok := t.state().get(tenant, cluster)
	if !ok {
		// Compacted meanwhile (a clock far behind the cluster's): accept,
		// as a cluster without an election.
		return haDecision{accept: true}, nil
	}
	if e.Replica != replica {
		return haDecision{elected: e.Replica}, nil
	}
	if failedOver != "" {
		tl := t.labels.Value(tenant)
		t.m.changes.WithLabelValues(tl, haClusterLabel(tl, cluster)).Inc()
		t.log.Info("HA replica elected after failover", "tenant", tenant, "cluster", strings.Clone(cluster), "replica", replica, "previous", failedOver)
	}
	return haDecision{accept: true}, nil
}

// haLabels returns the values of lim's cluster and replica labels in ls,
// "" for an absent one, and the index of the replica label (-1 when
// absent). Labels are not sorted yet: a linear scan.
func haLabels(ls []remotewrite.Label, lim *limits.Limits) (cluster, replica string, replicaAt int) {
	replicaAt = -1
	for i := range ls {
		switch ls[i].Name {
		case lim.HAClusterLabel:
			if cluster == "" {
				cluster = ls[i].Value
			}
		case lim.HAReplicaLabel:
			if replicaAt < 0 && ls[i].Value != "" {
				replica, replicaAt = ls[i].Value, i
			}
		}
	}
	return cluster, replica, replicaAt
}

// dedupeHA is HA-pair dedup of one decoded request, before validation and
// after st.val.reset (it reports rejected series through st.val). It
// returns a HADedupedError (202) when the request comes from a replica
// that is not elected, a BadInputError when the tenant has too many HA
// clusters, another error when the election could not be written; nil
// otherwise, having removed the replica label from the kept series.
func (d *Distributor) dedupeHA(ctx context.Context, st *pushState, tenantID string) error {
	if d.ha == nil || len(st.req.Series) == 0 {
		return nil
	}
	lim := d.limits.For(tenantID)
	if !lim.AcceptHASamples {
		return nil
	}
	cluster, replica, _ := haLabels(st.req.Series[0].Labels, lim)
	if cluster == "" || replica == "" {
		return nil // not from an HA pair: passes through
	}
	dec, err := d.ha.check(ctx, tenantID, cluster, replica, lim, d.now())
	if err != nil {
		return err
	}
	if !dec.accept {
		samples, histograms, _ := st.req.SampleCount()
		if n := samples + histograms; n > 0 {
			d.ha.m.deduped.WithLabelValues(st.tenantLabel, haClusterLabel(st.tenantLabel, cluster)).Add(float64(n))
		}
		return &HADedupedError{Msg: fmt.Sprintf("HA pair dedup: replica %q of cluster %q is not the elected replica (%q); its samples were accepted and dropped [%s]",
			replica, cluster, dec.elected, idHANotElected)}
	}
	d.stripReplica(st, tenantID, lim, replica)
	samples, histograms, _ := st.req.SampleCount()
	if n := samples + histograms; n > 0 {
		d.ha.m.kept.WithLabelValues(st.tenantLabel, haClusterLabel(st.tenantLabel, cluster)).Add(float64(n))
	}
	return nil
}

// stripReplica removes the replica label from every series of the kept
// request, in place, and drops the series whose replica label has another
// value than replica, reporting them through st.val.
func (d *Distributor) stripReplica(st *pushState, tenantID string, lim *limits.Limits, replica string) {
	v := &st.val
	ss, n, dropped := st.req.Series, 0, 0
	for i := range ss {
		s := &ss[i]
		_, r, at := haLabels(s.Labels, lim)
		if r != "" && r != replica {
			dropped += len(s.Samples) + len(s.Histograms)
			v.curBad = false
			if v.problem() {
				v.msg = fmt.Sprintf("series %s has %s=%q, but the request's first series has %s=%q: one request must come from one HA replica [%s]",
					remotewrite.FormatLabels(s.Labels), lim.HAReplicaLabel, r, lim.HAReplicaLabel, replica, idHAReplicaMixed)
			}
			continue
		}
		if at >= 0 {
			s.Labels = append(s.Labels[:at], s.Labels[at+1:]...)
		}
		if n != i {
			ss[n] = *s
		}
		n++
	}
	st.req.Series = ss[:n]
	v.curBad = false
	if dropped > 0 {
		d.m.discardedSamples.WithLabelValues(st.tenantLabel, idHAReplicaMixed).Add(float64(dropped))
	}
}
