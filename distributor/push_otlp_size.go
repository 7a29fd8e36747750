package distributor

import (
	"unsafe"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/strata-metrics/strata/remotewrite"
)

// What an OTLP push holds once decoded, counted against
// -distributor.max-inflight-push-bytes after unmarshalling (pdataBytes) and
// after translation (translatedBytes), each before the next step.

// pdataElemBytes bounds what the protobuf or JSON unmarshalling of pdata
// allocates per element (resource, scope, metric, data point, exemplar,
// quantile, attribute or nested value), growth of its slices included:
// measured at up to 200 bytes for elements sent empty, the densest input
// (TestPdataBytesBoundsUnmarshal), where the body spends 2 bytes on most;
// an exemplar, measured at 375, counts twice.
const pdataElemBytes = 256

// pdataBytes is about the most md, unmarshalled from a raw-byte body, can
// hold: its elements at pdataElemBytes, its 8-byte bucket counts and
// bounds twice (slice growth), and the body's bytes again for its strings.
func pdataBytes(md pmetric.Metrics, raw int) int64 {
	var elems, words int
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		rm := rms.At(i)
		elems += 1 + mapElems(rm.Resource().Attributes())
		sms := rm.ScopeMetrics()
		for j := range sms.Len() {
			sm := sms.At(j)
			elems += 1 + mapElems(sm.Scope().Attributes())
			ms := sm.Metrics()
			for k := range ms.Len() {
				m := ms.At(k)
				elems += 1 + mapElems(m.Metadata())
				e, w := pointElems(m)
				elems += e
				words += w
			}
		}
	}
	return int64(raw) + int64(elems)*pdataElemBytes + int64(words)*16
}

// pointElems counts the elements of m's data points and their 8-byte values.
func pointElems(m pmetric.Metric) (elems, words int) {
	exemplars := func(es pmetric.ExemplarSlice) int {
		n := 2 * es.Len() // an exemplar is about twice the others' size
		for i := range es.Len() {
			n += mapElems(es.At(i).FilteredAttributes())
		}
		return n
	}
	switch m.Type() {
	case pmetric.MetricTypeGauge, pmetric.MetricTypeSum:
		var dps pmetric.NumberDataPointSlice
		if m.Type() == pmetric.MetricTypeSum {
			dps = m.Sum().DataPoints()
		} else {
			dps = m.Gauge().DataPoints()
		}
		for i := range dps.Len() {
			dp := dps.At(i)
			elems += 1 + mapElems(dp.Attributes()) + exemplars(dp.Exemplars())
		}
	case pmetric.MetricTypeHistogram:
		dps := m.Histogram().DataPoints()
		for i := range dps.Len() {
			dp := dps.At(i)
			elems += 1 + mapElems(dp.Attributes()) + exemplars(dp.Exemplars())
			words += dp.BucketCounts().Len() + dp.ExplicitBounds().Len()
		}
	case pmetric.MetricTypeExponentialHistogram:
		dps := m.ExponentialHistogram().DataPoints()
		for i := range dps.Len() {
			dp := dps.At(i)
			elems += 1 + mapElems(dp.Attributes()) + exemplars(dp.Exemplars())
			words += dp.Positive().BucketCounts().Len() + dp.Negative().BucketCounts().Len()
		}
	case pmetric.MetricTypeSummary:
		dps := m.Summary().DataPoints()
		for i := range dps.Len() {
			dp := dps.At(i)
			elems += 1 + mapElems(dp.Attributes()) + dp.QuantileValues().Len()
		}
	}
	return elems, words
}

// mapElems counts the entries of an attribute map and, recursively, the
// values nested in them.
func mapElems(m pcommon.Map) int {
	n := m.Len()
	for _, v := range m.All() {
		n += valueElems(v)
	}
	return n
}

func valueElems(v pcommon.Value) int {
	switch v.Type() {
	case pcommon.ValueTypeMap:
		return mapElems(v.Map())
	case pcommon.ValueTypeSlice:
		s := v.Slice()
		n := s.Len()
		for i := range s.Len() {
			n += valueElems(s.At(i))
		}
		return n
	}
	return 0
}

// translatedBytes is what the request the OTLP translation made holds: its
// series, their slices and their strings (the translation's own, not
// views of the body), and its metadata.
func translatedBytes(req *remotewrite.Request) int64 {
	const (
		seriesSize    = int(unsafe.Sizeof(remotewrite.Series{}))
		labelSize     = int(unsafe.Sizeof(remotewrite.Label{}))
		sampleSize    = int(unsafe.Sizeof(remotewrite.Sample{}))
		histogramSize = int(unsafe.Sizeof(remotewrite.Histogram{}))
		exemplarSize  = int(unsafe.Sizeof(remotewrite.Exemplar{}))
		metadataSize  = int(unsafe.Sizeof(remotewrite.Metadata{}))
	)
	labels := func(ls []remotewrite.Label) int {
		n := cap(ls) * labelSize
		for _, l := range ls {
			n += len(l.Name) + len(l.Value)
		}
		return n
	}
	n := cap(req.Series)*seriesSize + cap(req.Metadata)*metadataSize
	for i := range req.Series {
		s := &req.Series[i]
		n += labels(s.Labels) + cap(s.Samples)*sampleSize + cap(s.StartTimestamps)*8
		n += cap(s.Histograms) * histogramSize
		for _, h := range s.Histograms {
			n += (cap(h.NegativeSpans) + cap(h.PositiveSpans)) * int(unsafe.Sizeof(remotewrite.BucketSpan{}))
			n += (cap(h.NegativeDeltas) + cap(h.PositiveDeltas) + cap(h.NegativeCounts) + cap(h.PositiveCounts) + cap(h.CustomValues)) * 8
		}
		n += cap(s.Exemplars) * exemplarSize
		for _, e := range s.Exemplars {
			n += labels(e.Labels)
		}
	}
	for _, m := range req.Metadata {
		n += len(m.FamilyName) + len(m.Help) + len(m.Unit)
	}
	return int64(n)
}
