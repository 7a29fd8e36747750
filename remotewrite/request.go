package remotewrite

import "unsafe"

// Label is one name/value pair. After Decode both strings are views into the
// decoded body: they stay valid only while that body is neither modified nor
// reused, and must be copied (strings.Clone) before they are retained.
type Label struct {
	Name, Value string
}

// Sample is one float sample.
type Sample struct {
	Value     float64
	Timestamp int64 // milliseconds since the Unix epoch
}

// Exemplar is one exemplar with its own labels (views, like Label).
type Exemplar struct {
	Labels    []Label
	Value     float64
	Timestamp int64
}

// BucketSpan is a run of consecutive native-histogram buckets.
type BucketSpan struct {
	Offset int32
	Length uint32
}

// Histogram is one native histogram sample, integer or float, exactly as
// remote-write carries it. IsFloat tells which of the count fields are set.
//
// After Decode the slices are sub-slices of the Request's backing arrays:
// they are overwritten by the next Decode into the same Request. Use
// ToHistogram or ToFloatHistogram (which copy) to keep a histogram.
type Histogram struct {
	IsFloat        bool
	CountInt       uint64
	CountFloat     float64
	Sum            float64
	Schema         int32
	ZeroThreshold  float64
	ZeroCountInt   uint64
	ZeroCountFloat float64
	NegativeSpans  []BucketSpan
	NegativeDeltas []int64   // integer histograms
	NegativeCounts []float64 // float histograms
	PositiveSpans  []BucketSpan
	PositiveDeltas []int64
	PositiveCounts []float64
	ResetHint      int32 // prompb.Histogram_ResetHint values, see ResetHintUnknown
	Timestamp      int64
	CustomValues   []float64 // bucket bounds of custom-bucket (NHCB) schemas
	// StartTimestamp is the created (start) timestamp remote-write 2.0
	// carries (field 17); 0 when unknown, and always 0 from Decode (1.0).
	StartTimestamp int64
}

// Values of Histogram.ResetHint, as prompb.Histogram_ResetHint.
const (
	ResetHintUnknown int32 = 0 // the receiver must detect counter resets itself
	ResetHintYes     int32 = 1 // first histogram after a counter reset
	ResetHintNo      int32 = 2 // no counter reset since the previous histogram
	ResetHintGauge   int32 = 3 // gauge histogram: counter resets do not apply
)

// Series is one time series of a request. Labels are as received: the
// distributor sorts and cleans them in place before it forwards them.
//
// After Decode every slice of a Series has its capacity cut to its length,
// so appending to one reallocates instead of overwriting its neighbour.
type Series struct {
	Labels     []Label
	Samples    []Sample
	Exemplars  []Exemplar
	Histograms []Histogram
	// StartTimestamps are the created (start) timestamps of Samples, index
	// for index, from remote-write 2.0; nil when no sample of the series
	// has one, and always nil from Decode (1.0). Whoever drops or moves
	// Samples must keep it in step when it is not nil.
	StartTimestamps []int64
}

// MetricType mirrors prompb.MetricMetadata_MetricType.
type MetricType int32

// Values of MetricType, as prompb.MetricMetadata_MetricType.
const (
	MetricTypeUnknown        MetricType = 0
	MetricTypeCounter        MetricType = 1
	MetricTypeGauge          MetricType = 2
	MetricTypeHistogram      MetricType = 3
	MetricTypeGaugeHistogram MetricType = 4
	MetricTypeSummary        MetricType = 5
	MetricTypeInfo           MetricType = 6
	MetricTypeStateset       MetricType = 7
)

// Metadata is the help, type and unit of one metric family. After Decode
// the strings are views into the body, like Label's.
type Metadata struct {
	Type       MetricType
	FamilyName string
	Help       string
	Unit       string
}

// Request is one decoded remote-write request. Its slices are reused by the
// next Decode into the same Request, so a Request belongs to one goroutine
// at a time; get one with NewRequest or from a pool and Reset it on return.
//
// Decode carves every Series' slices out of a few flat backing arrays held
// here (one for all labels, one for all samples, ...), so that decoding a
// request no larger than an earlier one allocates nothing.
type Request struct {
	Series   []Series
	Metadata []Metadata

	labels     []Label         // Series.Labels of every series, in order
	samples    []Sample        // Series.Samples
	exemplars  []Exemplar      // Series.Exemplars
	exLabels   []Label         // Exemplar.Labels of every exemplar
	histograms []Histogram     // Series.Histograms
	spans      [2][]BucketSpan // Histogram.NegativeSpans, PositiveSpans
	deltas     [2][]int64      // Histogram.NegativeDeltas, PositiveDeltas
	counts     [2][]float64    // Histogram.NegativeCounts, PositiveCounts
	custom     []float64       // Histogram.CustomValues
	starts     []int64         // Series.StartTimestamps (DecodeV2)
	symbols    []string        // the symbols table of the last DecodeV2, views into its body
}

// Index of the negative and positive halves of Request.spans, deltas, counts.
const (
	neg = 0
	pos = 1
)

// NewRequest returns an empty Request, ready for Decode.
func NewRequest() *Request { return &Request{} }

// Reset empties r and keeps its backing arrays for the next Decode. It does
// not clear them: r still refers to the last body (through its label views)
// until the next Decode overwrites them, so pool a Request together with the
// body buffer it decoded, not apart from it.
func (r *Request) Reset() {
	r.Series = r.Series[:0]
	r.Metadata = r.Metadata[:0]
	r.labels = r.labels[:0]
	r.samples = r.samples[:0]
	r.exemplars = r.exemplars[:0]
	r.exLabels = r.exLabels[:0]
	r.histograms = r.histograms[:0]
	for k := range 2 {
		r.spans[k] = r.spans[k][:0]
		r.deltas[k] = r.deltas[k][:0]
		r.counts[k] = r.counts[k][:0]
	}
	r.custom = r.custom[:0]
	r.starts = r.starts[:0]
	r.symbols = r.symbols[:0]
}

// SampleCount returns how many float samples, histogram samples and
// exemplars r holds, summed over all series.
func (r *Request) SampleCount() (samples, histograms, exemplars int) {
	for i := range r.Series {
		s := &r.Series[i]
		samples += len(s.Samples)
		histograms += len(s.Histograms)
		exemplars += len(s.Exemplars)
	}
	return samples, histograms, exemplars
}

// RetainedBytes returns about how many bytes r's backing arrays hold (not
// counting the body its strings point into). A pool can drop a Request
// that one huge request made big instead of keeping it forever.
func (r *Request) RetainedBytes() int {
	n := cap(r.Series)*int(unsafe.Sizeof(Series{})) + cap(r.Metadata)*int(unsafe.Sizeof(Metadata{}))
	n += (cap(r.labels) + cap(r.exLabels)) * int(unsafe.Sizeof(Label{}))
	n += cap(r.samples) * int(unsafe.Sizeof(Sample{}))
	n += cap(r.exemplars) * int(unsafe.Sizeof(Exemplar{}))
	n += cap(r.histograms) * int(unsafe.Sizeof(Histogram{}))
	n += (cap(r.spans[neg]) + cap(r.spans[pos])) * int(unsafe.Sizeof(BucketSpan{}))
	n += (cap(r.deltas[neg]) + cap(r.deltas[pos]) + cap(r.counts[neg]) + cap(r.counts[pos]) + cap(r.custom) + cap(r.starts)) * 8
	n += cap(r.symbols) * int(unsafe.Sizeof(""))
	return n
}
