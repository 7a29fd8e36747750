package distributor

import (
	"strings"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-metrics/strata/remotewrite"
)

// requestAppender is the storage.AppenderV2 Prometheus' OTLP translation
// (prometheusremotewrite.PrometheusConverter) appends to: it collects what
// the translation makes into a remotewrite.Request, which then takes the
// path of every other protocol (Push). One sample per series entry; one
// metadata entry per metric family.
//
// Strings: the label strings it keeps are the translation's own (it
// builds fresh Labels per series and never reuses them); the family name,
// which the translation reuses, is cloned. The request holds them until
// Push returns.
type requestAppender struct {
	req      *remotewrite.Request
	families map[string]struct{} // families with a metadata entry
}

func newRequestAppender() *requestAppender {
	return &requestAppender{req: &remotewrite.Request{}, families: map[string]struct{}{}}
}

func (a *requestAppender) Append(_ storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	s := remotewrite.Series{Labels: make([]remotewrite.Label, 0, ls.Len())}
	ls.Range(func(l labels.Label) {
		s.Labels = append(s.Labels, remotewrite.Label{Name: l.Name, Value: l.Value})
	})
	switch {
	case fh != nil:
		x := remotewrite.FromFloatHistogram(t, fh)
		x.StartTimestamp = st
		s.Histograms = []remotewrite.Histogram{x}
	case h != nil:
		x := remotewrite.FromHistogram(t, h)
		x.StartTimestamp = st
		s.Histograms = []remotewrite.Histogram{x}
	default:
		s.Samples = []remotewrite.Sample{{Value: v, Timestamp: t}}
		if st != 0 {
			s.StartTimestamps = []int64{st}
		}
	}
	for _, e := range opts.Exemplars {
		s.Exemplars = append(s.Exemplars, exemplarOf(e))
	}
	a.req.Series = append(a.req.Series, s)
	a.addMetadata(opts.MetricFamilyName, opts.Metadata)
	return 0, nil
}

func exemplarOf(e exemplar.Exemplar) remotewrite.Exemplar {
	x := remotewrite.Exemplar{Value: e.Value, Timestamp: e.Ts}
	e.Labels.Range(func(l labels.Label) {
		x.Labels = append(x.Labels, remotewrite.Label{Name: l.Name, Value: l.Value})
	})
	return x
}

func (a *requestAppender) addMetadata(family string, m metadata.Metadata) {
	if family == "" || m.IsEmpty() {
		return
	}
	if _, ok := a.families[family]; ok {
		return
	}
	family = strings.Clone(family) // the translation reuses its bytes
	a.families[family] = struct{}{}
	a.req.Metadata = append(a.req.Metadata, remotewrite.Metadata{
		Type: metricTypeOf(string(m.Type)), FamilyName: family, Help: m.Help, Unit: m.Unit,
	})
}

// metricTypeOf maps Prometheus' metric type names to remote-write's.
func metricTypeOf(t string) remotewrite.MetricType {
	switch t {
	case "counter":
		return remotewrite.MetricTypeCounter
	case "gauge":
		return remotewrite.MetricTypeGauge
	case "histogram":
		return remotewrite.MetricTypeHistogram
	case "gaugehistogram":
		return remotewrite.MetricTypeGaugeHistogram
	case "summary":
		return remotewrite.MetricTypeSummary
	case "info":
		return remotewrite.MetricTypeInfo
	case "stateset":
		return remotewrite.MetricTypeStateset
	}
	return remotewrite.MetricTypeUnknown
}

// Commit and Rollback: the request is handed to Push by the caller.
func (a *requestAppender) Commit() error   { return nil }
func (a *requestAppender) Rollback() error { return nil }
