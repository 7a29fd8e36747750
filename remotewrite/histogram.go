package remotewrite

import "github.com/prometheus/prometheus/model/histogram"

// ToHistogram returns h as an integer histogram for storage, or nil when h
// is a float histogram (use ToFloatHistogram). It mirrors prompb's
// Histogram.ToIntHistogram, except that it copies every slice: h's slices
// belong to the Request and are overwritten by its next Decode, while TSDB
// may keep the histogram it is given (out-of-order chunks, last value).
// Spans are never nil, buckets and custom values are nil when empty, as
// with prompb.
func (h *Histogram) ToHistogram() *histogram.Histogram {
	if h.IsFloat {
		return nil
	}
	out := &histogram.Histogram{
		CounterResetHint: counterResetHint(h.ResetHint),
		Schema:           h.Schema,
		ZeroThreshold:    h.ZeroThreshold,
		ZeroCount:        h.ZeroCountInt,
		Count:            h.CountInt,
		Sum:              h.Sum,
		CustomValues:     cloneOrNil(h.CustomValues),
	}
	out.NegativeSpans, out.PositiveSpans = copySpans(h.NegativeSpans, h.PositiveSpans)
	out.NegativeBuckets, out.PositiveBuckets = copyPair(h.NegativeDeltas, h.PositiveDeltas)
	return out
}

// ToFloatHistogram returns h as a float histogram for storage, converting
// an integer histogram (deltas to absolute counts) as prompb's
// Histogram.ToFloatHistogram does. Like ToHistogram it copies every slice.
func (h *Histogram) ToFloatHistogram() *histogram.FloatHistogram {
	out := &histogram.FloatHistogram{
		CounterResetHint: counterResetHint(h.ResetHint),
		Schema:           h.Schema,
		ZeroThreshold:    h.ZeroThreshold,
		Sum:              h.Sum,
		CustomValues:     cloneOrNil(h.CustomValues),
	}
	out.NegativeSpans, out.PositiveSpans = copySpans(h.NegativeSpans, h.PositiveSpans)
	if h.IsFloat {
		out.ZeroCount, out.Count = h.ZeroCountFloat, h.CountFloat
		out.NegativeBuckets, out.PositiveBuckets = copyPair(h.NegativeCounts, h.PositiveCounts)
		return out
	}
	out.ZeroCount, out.Count = float64(h.ZeroCountInt), float64(h.CountInt)
	out.NegativeBuckets, out.PositiveBuckets = deltasToCounts(h.NegativeDeltas, h.PositiveDeltas)
	return out
}

// counterResetHint maps ResetHint to histogram.CounterResetHint. The known
// values are the same numbers (prompb simply converts); an out-of-range
// value, which prompb would pass through as an undefined hint, becomes
// UnknownCounterReset so that TSDB detects resets itself.
func counterResetHint(h int32) histogram.CounterResetHint {
	switch h {
	case ResetHintYes:
		return histogram.CounterReset
	case ResetHintNo:
		return histogram.NotCounterReset
	case ResetHintGauge:
		return histogram.GaugeType
	}
	return histogram.UnknownCounterReset
}

// copySpans copies both span lists into one allocation, each with its
// capacity cut to its length.
func copySpans(n, p []BucketSpan) (neg, pos []histogram.Span) {
	all := make([]histogram.Span, len(n)+len(p))
	for i, s := range n {
		all[i] = histogram.Span{Offset: s.Offset, Length: s.Length}
	}
	for i, s := range p {
		all[len(n)+i] = histogram.Span{Offset: s.Offset, Length: s.Length}
	}
	return all[:len(n):len(n)], all[len(n):]
}

// copyPair copies n and p into one allocation; an empty one comes back nil.
func copyPair[T int64 | float64](n, p []T) (neg, pos []T) {
	if len(n)+len(p) == 0 {
		return nil, nil
	}
	all := make([]T, len(n)+len(p))
	copy(all, n)
	copy(all[len(n):], p)
	return nilIfEmpty(all[:len(n):len(n)]), nilIfEmpty(all[len(n):])
}

// deltasToCounts turns both delta lists into absolute counts, in one
// allocation; like prompb's, an empty one comes back empty, not nil.
func deltasToCounts(n, p []int64) (neg, pos []float64) {
	all := make([]float64, len(n)+len(p))
	var cur float64
	for i, d := range n {
		cur += float64(d)
		all[i] = cur
	}
	cur = 0
	for i, d := range p {
		cur += float64(d)
		all[len(n)+i] = cur
	}
	return all[:len(n):len(n)], all[len(n):]
}

func cloneOrNil(f []float64) []float64 {
	if len(f) == 0 {
		return nil
	}
	return append([]float64(nil), f...)
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// FromHistogram returns h at timestamp t as a Histogram, the inverse of
// ToHistogram, for callers that build a Request from Prometheus'
// histogram types (the OTLP translation). Its slices share h's.
func FromHistogram(t int64, h *histogram.Histogram) Histogram {
	return Histogram{
		CountInt: h.Count, Sum: h.Sum, Schema: h.Schema, ZeroThreshold: h.ZeroThreshold, ZeroCountInt: h.ZeroCount,
		NegativeSpans: spansFrom(h.NegativeSpans), NegativeDeltas: h.NegativeBuckets,
		PositiveSpans: spansFrom(h.PositiveSpans), PositiveDeltas: h.PositiveBuckets,
		ResetHint: int32(h.CounterResetHint), Timestamp: t, CustomValues: h.CustomValues,
	}
}

// FromFloatHistogram returns h at timestamp t as a float Histogram, the
// inverse of ToFloatHistogram. Its slices share h's.
func FromFloatHistogram(t int64, h *histogram.FloatHistogram) Histogram {
	return Histogram{
		IsFloat: true, CountFloat: h.Count, Sum: h.Sum, Schema: h.Schema, ZeroThreshold: h.ZeroThreshold, ZeroCountFloat: h.ZeroCount,
		NegativeSpans: spansFrom(h.NegativeSpans), NegativeCounts: h.NegativeBuckets,
		PositiveSpans: spansFrom(h.PositiveSpans), PositiveCounts: h.PositiveBuckets,
		ResetHint: int32(h.CounterResetHint), Timestamp: t, CustomValues: h.CustomValues,
	}
}

func spansFrom(s []histogram.Span) []BucketSpan {
	if len(s) == 0 {
		return nil
	}
	out := make([]BucketSpan, len(s))
	for i, x := range s {
		out[i] = BucketSpan{Offset: x.Offset, Length: x.Length}
	}
	return out
}
