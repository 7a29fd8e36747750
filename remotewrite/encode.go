package remotewrite

import (
	"encoding/binary"
	"math"
	"slices"
)

// AppendSeries appends s to dst as one WriteRequest.timeseries entry (field
// 1: tag, length, TimeSeries message) and returns the extended buffer. A
// WriteRequest body is the concatenation of such entries and AppendMetadata
// entries, in any order. It sizes the entry first and grows dst at most
// once, so it allocates nothing when dst has the capacity.
//
// Fields are written in field-number order, with proto3's implicit-presence
// rule (zero scalars and empty strings are left out), so for ordinary input
// the bytes equal those of prompb's Marshal. Floats are written when their
// bits are not zero, so -0 survives a round trip (gogo drops it).
func AppendSeries(dst []byte, s *Series) []byte {
	n := seriesSize(s)
	dst = slices.Grow(dst, 1+varintSize(uint64(n))+n)
	dst = append(dst, 1<<3|wireBytes)
	dst = appendVarint(dst, uint64(n))
	for i := range s.Labels {
		l := &s.Labels[i]
		// Fast path for the usual label: both strings set, all lengths
		// fit 1-byte varints.
		if n, m := len(l.Name), len(l.Value); n > 0 && m > 0 && n+m < 0x80-4 {
			dst = append(dst, 1<<3|wireBytes, byte(4+n+m), 1<<3|wireBytes, byte(n))
			dst = append(dst, l.Name...)
			dst = append(dst, 2<<3|wireBytes, byte(m))
			dst = append(dst, l.Value...)
			continue
		}
		dst = appendLabel(dst, 1<<3|wireBytes, l)
	}
	for i := range s.Samples {
		x := &s.Samples[i]
		dst = append(dst, 2<<3|wireBytes, byte(sampleSize(x)))
		dst = appendFloat(dst, 1<<3|wireFixed64, x.Value)
		dst = appendInt(dst, 2<<3|wireVarint, x.Timestamp)
	}
	for i := range s.Exemplars {
		x := &s.Exemplars[i]
		dst = append(dst, 3<<3|wireBytes)
		dst = appendVarint(dst, uint64(exemplarSize(x)))
		for j := range x.Labels {
			dst = appendLabel(dst, 1<<3|wireBytes, &x.Labels[j])
		}
		dst = appendFloat(dst, 2<<3|wireFixed64, x.Value)
		dst = appendInt(dst, 3<<3|wireVarint, x.Timestamp)
	}
	for i := range s.Histograms {
		dst = appendHistogram(dst, &s.Histograms[i])
	}
	return dst
}

// AppendMetadata appends m to dst as one WriteRequest.metadata entry (field
// 3) and returns the extended buffer; see AppendSeries.
func AppendMetadata(dst []byte, m *Metadata) []byte {
	n := metadataSize(m)
	dst = slices.Grow(dst, 1+varintSize(uint64(n))+n)
	dst = append(dst, 3<<3|wireBytes)
	dst = appendVarint(dst, uint64(n))
	dst = appendInt(dst, 1<<3|wireVarint, int64(m.Type))
	dst = appendString(dst, 2<<3|wireBytes, m.FamilyName)
	dst = appendString(dst, 4<<3|wireBytes, m.Help)
	dst = appendString(dst, 5<<3|wireBytes, m.Unit)
	return dst
}

// Sizes of message bodies (without their own tag and length).

func seriesSize(s *Series) int {
	n := 0
	for i := range s.Labels {
		l := &s.Labels[i]
		if a, b := len(l.Name), len(l.Value); a > 0 && b > 0 && a+b < 0x80-4 {
			n += 6 + a + b // as AppendSeries' fast path
			continue
		}
		n += bytesFieldSize(labelSize(l))
	}
	for i := range s.Samples {
		n += 2 + sampleSize(&s.Samples[i]) // a sample is at most 20 bytes: 1-byte length
	}
	for i := range s.Exemplars {
		n += bytesFieldSize(exemplarSize(&s.Exemplars[i]))
	}
	for i := range s.Histograms {
		n += bytesFieldSize(histogramSize(&s.Histograms[i]))
	}
	return n
}

func labelSize(l *Label) int {
	return stringSize(l.Name) + stringSize(l.Value)
}

func sampleSize(s *Sample) int {
	return floatSize(s.Value) + intSize(s.Timestamp)
}

func exemplarSize(e *Exemplar) int {
	n := floatSize(e.Value) + intSize(e.Timestamp)
	for i := range e.Labels {
		n += bytesFieldSize(labelSize(&e.Labels[i]))
	}
	return n
}

func metadataSize(m *Metadata) int {
	return intSize(int64(m.Type)) + stringSize(m.FamilyName) + stringSize(m.Help) + stringSize(m.Unit)
}

// zeroCountIsInt tells which member of the zero_count oneof to write: the
// one matching the count, unless only the other one holds a value (a sender
// may mix them; Decode keeps what it got).
func (h *Histogram) zeroCountIsInt() bool {
	if h.IsFloat {
		return h.ZeroCountInt != 0 && math.Float64bits(h.ZeroCountFloat) == 0
	}
	return h.ZeroCountInt != 0 || math.Float64bits(h.ZeroCountFloat) == 0
}

func histogramSize(h *Histogram) int {
	n := 9 // count_float, or count_int below; written even when zero (oneof)
	if !h.IsFloat {
		n = 1 + varintSize(h.CountInt)
	}
	n += floatSize(h.Sum) + floatSize(h.ZeroThreshold)
	if h.Schema != 0 {
		n += 1 + varintSize(zigzagEncode32(h.Schema))
	}
	if h.zeroCountIsInt() {
		n += 1 + varintSize(h.ZeroCountInt)
	} else {
		n += 9
	}
	n += spansSize(h.NegativeSpans) + spansSize(h.PositiveSpans)
	n += deltasSize(h.NegativeDeltas) + deltasSize(h.PositiveDeltas)
	n += doublesSize(h.NegativeCounts) + doublesSize(h.PositiveCounts)
	n += intSize(int64(h.ResetHint)) + intSize(h.Timestamp)
	if len(h.CustomValues) > 0 {
		n++ // field 16 needs a 2-byte tag
		n += doublesSize(h.CustomValues)
	}
	return n
}

func spanSize(s *BucketSpan) int {
	n := 0
	if s.Offset != 0 {
		n += 1 + varintSize(zigzagEncode32(s.Offset))
	}
	if s.Length != 0 {
		n += 1 + varintSize(uint64(s.Length))
	}
	return n
}

func spansSize(spans []BucketSpan) int {
	n := 0
	for i := range spans {
		n += bytesFieldSize(spanSize(&spans[i]))
	}
	return n
}

func deltasPayload(d []int64) int {
	n := 0
	for _, v := range d {
		n += varintSize(zigzagEncode64(v))
	}
	return n
}

func deltasSize(d []int64) int {
	if len(d) == 0 {
		return 0
	}
	return bytesFieldSize(deltasPayload(d))
}

func doublesSize(f []float64) int {
	if len(f) == 0 {
		return 0
	}
	return bytesFieldSize(8 * len(f))
}

// bytesFieldSize is the size of a length-delimited field with a 1-byte tag.
func bytesFieldSize(n int) int { return 1 + varintSize(uint64(n)) + n }

func stringSize(s string) int {
	if len(s) == 0 {
		return 0
	}
	return bytesFieldSize(len(s))
}

func floatSize(v float64) int {
	if math.Float64bits(v) == 0 {
		return 0
	}
	return 9
}

// intSize is the size of an int64 (or int32, or enum: sign-extended) field.
func intSize(v int64) int {
	if v == 0 {
		return 0
	}
	return 1 + varintSize(uint64(v))
}

// Appenders of fields with a 1-byte tag; dst has the capacity already.

func appendLabel(dst []byte, tag byte, l *Label) []byte {
	dst = append(dst, tag)
	dst = appendVarint(dst, uint64(labelSize(l)))
	dst = appendString(dst, 1<<3|wireBytes, l.Name)
	return appendString(dst, 2<<3|wireBytes, l.Value)
}

func appendString(dst []byte, tag byte, s string) []byte {
	if len(s) == 0 {
		return dst
	}
	dst = append(dst, tag)
	dst = appendVarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendFloat(dst []byte, tag byte, v float64) []byte {
	if math.Float64bits(v) == 0 {
		return dst
	}
	return binary.LittleEndian.AppendUint64(append(dst, tag), math.Float64bits(v))
}

func appendInt(dst []byte, tag byte, v int64) []byte {
	if v == 0 {
		return dst
	}
	return appendVarint(append(dst, tag), uint64(v))
}

func appendHistogram(dst []byte, h *Histogram) []byte {
	dst = append(dst, 4<<3|wireBytes)
	dst = appendVarint(dst, uint64(histogramSize(h)))
	if h.IsFloat {
		dst = binary.LittleEndian.AppendUint64(append(dst, 2<<3|wireFixed64), math.Float64bits(h.CountFloat))
	} else {
		dst = appendVarint(append(dst, 1<<3|wireVarint), h.CountInt)
	}
	dst = appendFloat(dst, 3<<3|wireFixed64, h.Sum)
	if h.Schema != 0 {
		dst = appendVarint(append(dst, 4<<3|wireVarint), zigzagEncode32(h.Schema))
	}
	dst = appendFloat(dst, 5<<3|wireFixed64, h.ZeroThreshold)
	if h.zeroCountIsInt() {
		dst = appendVarint(append(dst, 6<<3|wireVarint), h.ZeroCountInt)
	} else {
		dst = binary.LittleEndian.AppendUint64(append(dst, 7<<3|wireFixed64), math.Float64bits(h.ZeroCountFloat))
	}
	dst = appendSpans(dst, 8<<3|wireBytes, h.NegativeSpans)
	dst = appendDeltasField(dst, 9<<3|wireBytes, h.NegativeDeltas)
	dst = appendDoublesField(dst, []byte{10<<3 | wireBytes}, h.NegativeCounts)
	dst = appendSpans(dst, 11<<3|wireBytes, h.PositiveSpans)
	dst = appendDeltasField(dst, 12<<3|wireBytes, h.PositiveDeltas)
	dst = appendDoublesField(dst, []byte{13<<3 | wireBytes}, h.PositiveCounts)
	dst = appendInt(dst, 14<<3|wireVarint, int64(h.ResetHint))
	dst = appendInt(dst, 15<<3|wireVarint, h.Timestamp)
	// Field 16 has the 2-byte tag 0x82 0x01.
	return appendDoublesField(dst, []byte{16<<3 | wireBytes | 0x80, 1}, h.CustomValues)
}

func appendSpans(dst []byte, tag byte, spans []BucketSpan) []byte {
	for i := range spans {
		s := &spans[i]
		dst = append(dst, tag)
		dst = appendVarint(dst, uint64(spanSize(s)))
		if s.Offset != 0 {
			dst = appendVarint(append(dst, 1<<3|wireVarint), zigzagEncode32(s.Offset))
		}
		if s.Length != 0 {
			dst = appendVarint(append(dst, 2<<3|wireVarint), uint64(s.Length))
		}
	}
	return dst
}

func appendDeltasField(dst []byte, tag byte, d []int64) []byte {
	if len(d) == 0 {
		return dst
	}
	dst = appendVarint(append(dst, tag), uint64(deltasPayload(d)))
	for _, v := range d {
		dst = appendVarint(dst, zigzagEncode64(v))
	}
	return dst
}

func appendDoublesField(dst []byte, tag []byte, f []float64) []byte {
	if len(f) == 0 {
		return dst
	}
	dst = appendVarint(append(dst, tag...), uint64(8*len(f)))
	for _, v := range f {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
	}
	return dst
}
