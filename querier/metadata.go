package querier

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// metricMetadata returns the union of the ingesters' metadata, by metric
// family: at most limit families and limitPerMetric entries per family
// (negative: no limit), each family's entries sorted.
func metricMetadata(ctx context.Context, f *fanout, tenantID, metric string, limit, limitPerMetric int) (map[string][]metadata.Metadata, annotations.Annotations, error) {
	req := &ingesterpb.MetadataRequest{Tenant: tenantID, Metric: metric}
	if limitPerMetric > 0 {
		req.LimitPerMetric = int64(limitPerMetric)
	}
	answers, warns, err := fanOut(ctx, f, "Metadata", func(ctx context.Context, c ingesterpb.IngesterClient, _ int) ([]*ingesterpb.MetricMetadata, error) {
		resp, err := c.Metadata(ctx, req)
		return resp.GetMetadata(), err
	})
	if err != nil {
		return nil, nil, err
	}
	sets := map[string][]metadata.Metadata{}
	for _, a := range answers {
		for _, pm := range a {
			m := metadata.Metadata{Type: metricType(pm.GetType()), Unit: pm.GetUnit(), Help: pm.GetHelp()}
			ms := sets[pm.GetMetricFamilyName()]
			if slices.Contains(ms, m) || (limitPerMetric > 0 && len(ms) >= limitPerMetric) {
				continue
			}
			sets[pm.GetMetricFamilyName()] = append(ms, m)
		}
	}
	// Which families survive a limit is unspecified in Prometheus (map
	// order); here it is the first in name order, so answers are stable.
	names := make([]string, 0, len(sets))
	for name := range sets {
		names = append(names, name)
	}
	slices.Sort(names)
	res := make(map[string][]metadata.Metadata, len(names))
	for _, name := range names {
		if limit >= 0 && len(res) >= limit {
			break
		}
		ms := sets[name]
		slices.SortFunc(ms, func(x, y metadata.Metadata) int {
			return cmp.Or(strings.Compare(string(x.Type), string(y.Type)), strings.Compare(x.Unit, y.Unit), strings.Compare(x.Help, y.Help))
		})
		res[name] = ms
	}
	return res, warns, nil
}

func metricType(t ingesterpb.MetricMetadata_MetricType) model.MetricType {
	switch t {
	case ingesterpb.MetricMetadata_COUNTER:
		return model.MetricTypeCounter
	case ingesterpb.MetricMetadata_GAUGE:
		return model.MetricTypeGauge
	case ingesterpb.MetricMetadata_HISTOGRAM:
		return model.MetricTypeHistogram
	case ingesterpb.MetricMetadata_GAUGEHISTOGRAM:
		return model.MetricTypeGaugeHistogram
	case ingesterpb.MetricMetadata_SUMMARY:
		return model.MetricTypeSummary
	case ingesterpb.MetricMetadata_INFO:
		return model.MetricTypeInfo
	case ingesterpb.MetricMetadata_STATESET:
		return model.MetricTypeStateset
	}
	return model.MetricTypeUnknown
}
