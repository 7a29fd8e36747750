package remotewrite

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"unsafe"
)

// Decode decodes body, a remote-write 1.0 prometheus.WriteRequest in
// protobuf wire format (already snappy-decompressed), into r, replacing what
// r held.
//
// Every string in r is a view into body (no copies): body must stay
// unmodified for as long as r is used, and strings kept beyond that must be
// cloned. The slices of r are reused by the next Decode into r, which
// therefore allocates nothing when the request is no larger than an earlier
// one.
//
// Unknown fields are skipped, so a newer sender's additions are ignored.
// Every error Decode returns means the body is malformed (answer 400): it
// says where, for example "decode write request: timeseries 17: label 3:
// length 4000 exceeds remaining 12 bytes at offset 912" (indexes count from
// 0, offsets are bytes into body). On error r is left empty. Decode never
// panics and allocates at most a constant factor of len(body).
func Decode(body []byte, r *Request) error {
	before := r.arrays()
	r.Reset()
	if err := r.decode(body); err != nil {
		r.Reset()
		return fmt.Errorf("decode write request: %w", err)
	}
	if r.arrays() != before {
		r.recarve()
	}
	return nil
}

// arrays returns the start of every backing array, to tell whether Decode
// had to grow (and so move) one of them.
func (r *Request) arrays() [13]unsafe.Pointer {
	return [13]unsafe.Pointer{
		unsafe.Pointer(unsafe.SliceData(r.labels)),
		unsafe.Pointer(unsafe.SliceData(r.samples)),
		unsafe.Pointer(unsafe.SliceData(r.exemplars)),
		unsafe.Pointer(unsafe.SliceData(r.exLabels)),
		unsafe.Pointer(unsafe.SliceData(r.histograms)),
		unsafe.Pointer(unsafe.SliceData(r.spans[neg])),
		unsafe.Pointer(unsafe.SliceData(r.spans[pos])),
		unsafe.Pointer(unsafe.SliceData(r.deltas[neg])),
		unsafe.Pointer(unsafe.SliceData(r.deltas[pos])),
		unsafe.Pointer(unsafe.SliceData(r.counts[neg])),
		unsafe.Pointer(unsafe.SliceData(r.counts[pos])),
		unsafe.Pointer(unsafe.SliceData(r.custom)),
		unsafe.Pointer(unsafe.SliceData(r.starts)),
	}
}

// recarve points every sub-slice into the final backing arrays. Decode
// carves each series' (exemplar's, histogram's) slices as soon as it has
// read them; when a backing array grows later, append copies it and the
// sub-slices carved earlier still point into the old copy, which holds the
// right values but would keep the old array alive and stop being shared
// with the Request. The elements of each kind are contiguous and in order
// in their backing array, so their lengths alone locate them.
func (r *Request) recarve() {
	var l, s, e, h, st int
	for i := range r.Series {
		x := &r.Series[i]
		x.Labels = carve(r.labels, &l, len(x.Labels))
		x.Samples = carve(r.samples, &s, len(x.Samples))
		x.Exemplars = carve(r.exemplars, &e, len(x.Exemplars))
		x.Histograms = carve(r.histograms, &h, len(x.Histograms))
		if x.StartTimestamps != nil {
			x.StartTimestamps = carve(r.starts, &st, len(x.StartTimestamps))
		}
	}
	var el int
	for i := range r.exemplars {
		x := &r.exemplars[i]
		x.Labels = carve(r.exLabels, &el, len(x.Labels))
	}
	var ns, ps, nd, pd, nc, pc, cv int
	for i := range r.histograms {
		x := &r.histograms[i]
		x.NegativeSpans = carve(r.spans[neg], &ns, len(x.NegativeSpans))
		x.PositiveSpans = carve(r.spans[pos], &ps, len(x.PositiveSpans))
		x.NegativeDeltas = carve(r.deltas[neg], &nd, len(x.NegativeDeltas))
		x.PositiveDeltas = carve(r.deltas[pos], &pd, len(x.PositiveDeltas))
		x.NegativeCounts = carve(r.counts[neg], &nc, len(x.NegativeCounts))
		x.PositiveCounts = carve(r.counts[pos], &pc, len(x.PositiveCounts))
		x.CustomValues = carve(r.custom, &cv, len(x.CustomValues))
	}
}

// carve returns the next n elements of a from *off, with capacity n.
func carve[T any](a []T, off *int, n int) []T {
	s := a[*off : *off+n : *off+n]
	*off += n
	return s
}

// tail returns a[from:], with capacity cut to its length.
func tail[T any](a []T, from int) []T {
	return a[from:len(a):len(a)]
}

func (r *Request) decode(b []byte) error {
	for i, end := 0, len(b); i < end; {
		at := i
		tag, i2, err := readTag(b, i, end)
		if err != nil {
			return err
		}
		i = i2
		switch tag {
		case 1<<3 | wireBytes:
			start, stop, err := readLen(b, i, end)
			if err == nil {
				err = r.decodeSeries(b, start, stop)
			}
			if err != nil {
				return fmt.Errorf("timeseries %d: %w", len(r.Series), err)
			}
			i = stop
		case 3<<3 | wireBytes:
			start, stop, err := readLen(b, i, end)
			var m Metadata
			if err == nil {
				m, err = decodeMetadata(b, start, stop)
			}
			if err != nil {
				return fmt.Errorf("metadata %d: %w", len(r.Metadata), err)
			}
			r.Metadata = append(r.Metadata, m)
			i = stop
		default:
			if i, err = skipField(b, at, i, end, tag, msgWriteRequest); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *Request) decodeSeries(b []byte, i, end int) error {
	// The label and sample arrays live in locals for the loop: the fast
	// paths below then append without going through r.
	labels, samples := r.labels, r.samples
	l0, s0, e0, h0 := len(labels), len(samples), len(r.exemplars), len(r.histograms)
	for i < end {
		// Fast path for the usual label, as every Prometheus writes it:
		// 0a L 0a n <name> 12 m <value>, with L, n, m below 128.
		if b[i] == 1<<3|wireBytes && end-i >= 6 {
			stop := i + 2 + int(b[i+1])
			if b[i+1] < 0x80 && stop <= end && b[i+2] == 1<<3|wireBytes && b[i+3] < 0x80 {
				v := i + 4 + int(b[i+3]) // the value's tag
				if v+2 <= stop && b[v] == 2<<3|wireBytes && b[v+1] < 0x80 && v+2+int(b[v+1]) == stop {
					labels = append(labels, Label{view(b, i+4, v), view(b, v+2, stop)})
					i = stop
					continue
				}
			}
		}
		// Fast path for the usual sample: 12 L 09 <8 bytes> [10 <varint>].
		if b[i] == 2<<3|wireBytes && end-i >= 11 {
			stop := i + 2 + int(b[i+1])
			if b[i+1] >= 9 && b[i+1] < 0x80 && stop <= end && b[i+2] == 1<<3|wireFixed64 {
				s := Sample{Value: math.Float64frombits(binary.LittleEndian.Uint64(b[i+3 : i+11]))}
				j := i + 11
				ok := j == stop
				if !ok && b[j] == 2<<3|wireVarint {
					j++
					var ts uint64
					for shift := 0; j < stop && shift < 63; shift += 7 {
						c := b[j]
						j++
						ts |= uint64(c&0x7f) << shift
						if c < 0x80 {
							ok = j == stop
							break
						}
					}
					s.Timestamp = int64(ts)
				}
				if ok {
					samples = append(samples, s)
					i = stop
					continue
				}
			}
		}
		at := i
		tag, i2, err := readTag(b, i, end)
		if err != nil {
			return err
		}
		i = i2
		switch tag {
		case 1<<3 | wireBytes:
			start, stop, err := readLen(b, i, end)
			var l Label
			if err == nil {
				l, err = decodeLabel(b, start, stop)
			}
			if err != nil {
				return fmt.Errorf("label %d: %w", len(labels)-l0, err)
			}
			labels = append(labels, l)
			i = stop
		case 2<<3 | wireBytes:
			start, stop, err := readLen(b, i, end)
			var s Sample
			if err == nil {
				s, err = decodeSample(b, start, stop)
			}
			if err != nil {
				return fmt.Errorf("sample %d: %w", len(samples)-s0, err)
			}
			samples = append(samples, s)
			i = stop
		case 3<<3 | wireBytes:
			start, stop, err := readLen(b, i, end)
			if err == nil {
				err = r.decodeExemplar(b, start, stop)
			}
			if err != nil {
				return fmt.Errorf("exemplar %d: %w", len(r.exemplars)-e0, err)
			}
			i = stop
		case 4<<3 | wireBytes:
			start, stop, err := readLen(b, i, end)
			if err == nil {
				err = r.decodeHistogram(b, start, stop, false)
			}
			if err != nil {
				return fmt.Errorf("histogram %d: %w", len(r.histograms)-h0, err)
			}
			i = stop
		default:
			if i, err = skipField(b, at, i, end, tag, msgTimeSeries); err != nil {
				return err
			}
		}
	}
	r.labels, r.samples = labels, samples
	r.Series = append(r.Series, Series{
		Labels:     tail(labels, l0),
		Samples:    tail(samples, s0),
		Exemplars:  tail(r.exemplars, e0),
		Histograms: tail(r.histograms, h0),
	})
	return nil
}

func decodeLabel(b []byte, i, end int) (Label, error) {
	var l Label
	for i < end {
		at := i
		tag, i2, err := readTag(b, i, end)
		if err != nil {
			return l, err
		}
		i = i2
		switch tag {
		case 1<<3 | wireBytes:
			start, stop, err := readLen(b, i, end)
			if err != nil {
				return l, fmt.Errorf("name: %w", err)
			}
			l.Name = view(b, start, stop)
			i = stop
		case 2<<3 | wireBytes:
			start, stop, err := readLen(b, i, end)
			if err != nil {
				return l, fmt.Errorf("value: %w", err)
			}
			l.Value = view(b, start, stop)
			i = stop
		default:
			if i, err = skipField(b, at, i, end, tag, msgLabel); err != nil {
				return l, err
			}
		}
	}
	return l, nil
}

func decodeSample(b []byte, i, end int) (Sample, error) {
	var s Sample
	for i < end {
		at := i
		tag, i2, err := readTag(b, i, end)
		if err != nil {
			return s, err
		}
		i = i2
		switch tag {
		case 1<<3 | wireFixed64:
			v, i2, err := readFixed64(b, i, end)
			if err != nil {
				return s, fmt.Errorf("value: %w", err)
			}
			s.Value, i = math.Float64frombits(v), i2
		case 2<<3 | wireVarint:
			v, i2, err := readUvarint(b, i, end)
			if err != nil {
				return s, fmt.Errorf("timestamp: %w", err)
			}
			s.Timestamp, i = int64(v), i2
		default:
			if i, err = skipField(b, at, i, end, tag, msgSample); err != nil {
				return s, err
			}
		}
	}
	return s, nil
}

func (r *Request) decodeExemplar(b []byte, i, end int) error {
	l0 := len(r.exLabels)
	var e Exemplar
	for i < end {
		at := i
		tag, i2, err := readTag(b, i, end)
		if err != nil {
			return err
		}
		i = i2
		switch tag {
		case 1<<3 | wireBytes:
			start, stop, err := readLen(b, i, end)
			var l Label
			if err == nil {
				l, err = decodeLabel(b, start, stop)
			}
			if err != nil {
				return fmt.Errorf("label %d: %w", len(r.exLabels)-l0, err)
			}
			r.exLabels = append(r.exLabels, l)
			i = stop
		case 2<<3 | wireFixed64:
			v, i2, err := readFixed64(b, i, end)
			if err != nil {
				return fmt.Errorf("value: %w", err)
			}
			e.Value, i = math.Float64frombits(v), i2
		case 3<<3 | wireVarint:
			v, i2, err := readUvarint(b, i, end)
			if err != nil {
				return fmt.Errorf("timestamp: %w", err)
			}
			e.Timestamp, i = int64(v), i2
		default:
			if i, err = skipField(b, at, i, end, tag, msgExemplar); err != nil {
				return err
			}
		}
	}
	e.Labels = tail(r.exLabels, l0)
	r.exemplars = append(r.exemplars, e)
	return nil
}

func decodeMetadata(b []byte, i, end int) (Metadata, error) {
	var m Metadata
	for i < end {
		at := i
		tag, i2, err := readTag(b, i, end)
		if err != nil {
			return m, err
		}
		i = i2
		switch tag {
		case 1<<3 | wireVarint:
			v, i2, err := readUvarint(b, i, end)
			if err != nil {
				return m, fmt.Errorf("type: %w", err)
			}
			m.Type, i = MetricType(int32(v)), i2
		case 2<<3 | wireBytes, 4<<3 | wireBytes, 5<<3 | wireBytes:
			start, stop, err := readLen(b, i, end)
			if err != nil {
				name, _ := fieldSpec(msgMetadata, tag>>3)
				return m, fmt.Errorf("%s: %w", name, err)
			}
			switch s := view(b, start, stop); tag >> 3 {
			case 2:
				m.FamilyName = s
			case 4:
				m.Help = s
			default:
				m.Unit = s
			}
			i = stop
		default:
			if i, err = skipField(b, at, i, end, tag, msgMetadata); err != nil {
				return m, err
			}
		}
	}
	return m, nil
}

// decodeHistogram appends one Histogram to r.histograms. Its repeated
// fields go to their own backing arrays (one per field), so they stay
// contiguous even when a sender interleaves, say, positive and negative
// deltas.
//
// v2 is set for remote-write 2.0, whose Histogram adds start_timestamp
// (field 17); for 1.0 that field is unknown and skipped.
func (r *Request) decodeHistogram(b []byte, i, end int, v2 bool) error {
	ns0, ps0 := len(r.spans[neg]), len(r.spans[pos])
	nd0, pd0 := len(r.deltas[neg]), len(r.deltas[pos])
	nc0, pc0 := len(r.counts[neg]), len(r.counts[pos])
	cv0 := len(r.custom)
	var h Histogram
	for i < end {
		at := i
		tag, i2, err := readTag(b, i, end)
		if err != nil {
			return err
		}
		i = i2
		field := tag >> 3
		switch tag {
		case 1<<3 | wireVarint, 4<<3 | wireVarint, 6<<3 | wireVarint, 14<<3 | wireVarint, 15<<3 | wireVarint:
			v, i2, err := readUvarint(b, i, end)
			if err != nil {
				return fmt.Errorf("%s: %w", histogramFields[field].name, err)
			}
			i = i2
			switch field {
			case 1: // oneof count: the last one wins
				h.IsFloat, h.CountInt, h.CountFloat = false, v, 0
			case 4:
				h.Schema = zigzag32(v)
			case 6: // oneof zero_count
				h.ZeroCountInt, h.ZeroCountFloat = v, 0
			case 14:
				h.ResetHint = int32(v)
			default:
				h.Timestamp = int64(v)
			}
		case 2<<3 | wireFixed64, 3<<3 | wireFixed64, 5<<3 | wireFixed64, 7<<3 | wireFixed64:
			u, i2, err := readFixed64(b, i, end)
			if err != nil {
				return fmt.Errorf("%s: %w", histogramFields[field].name, err)
			}
			i = i2
			v := math.Float64frombits(u)
			switch field {
			case 2:
				h.IsFloat, h.CountInt, h.CountFloat = true, 0, v
			case 3:
				h.Sum = v
			case 5:
				h.ZeroThreshold = v
			default:
				h.ZeroCountInt, h.ZeroCountFloat = 0, v
			}
		case 8<<3 | wireBytes, 11<<3 | wireBytes:
			k, n0 := neg, ns0
			if field == 11 {
				k, n0 = pos, ps0
			}
			start, stop, err := readLen(b, i, end)
			var s BucketSpan
			if err == nil {
				s, err = decodeSpan(b, start, stop)
			}
			if err != nil {
				return fmt.Errorf("%s %d: %w", histogramFields[field].name, len(r.spans[k])-n0, err)
			}
			r.spans[k] = append(r.spans[k], s)
			i = stop
		case 9<<3 | wireVarint, 9<<3 | wireBytes, 12<<3 | wireVarint, 12<<3 | wireBytes:
			k := neg
			if field == 12 {
				k = pos
			}
			if r.deltas[k], i, err = appendDeltas(r.deltas[k], b, i, end, tag&7); err != nil {
				return fmt.Errorf("%s: %w", histogramFields[field].name, err)
			}
		case 10<<3 | wireFixed64, 10<<3 | wireBytes, 13<<3 | wireFixed64, 13<<3 | wireBytes:
			k := neg
			if field == 13 {
				k = pos
			}
			if r.counts[k], i, err = appendDoubles(r.counts[k], b, i, end, tag&7); err != nil {
				return fmt.Errorf("%s: %w", histogramFields[field].name, err)
			}
		case 16<<3 | wireFixed64, 16<<3 | wireBytes:
			if r.custom, i, err = appendDoubles(r.custom, b, i, end, tag&7); err != nil {
				return fmt.Errorf("custom_values: %w", err)
			}
		case 17<<3 | wireVarint:
			if !v2 {
				if i, err = skipField(b, at, i, end, tag, msgHistogram); err != nil {
					return err
				}
				continue
			}
			v, i2, err := readUvarint(b, i, end)
			if err != nil {
				return fmt.Errorf("start_timestamp: %w", err)
			}
			h.StartTimestamp, i = int64(v), i2
		default:
			if i, err = skipField(b, at, i, end, tag, msgHistogram); err != nil {
				return err
			}
		}
	}
	h.NegativeSpans = tail(r.spans[neg], ns0)
	h.PositiveSpans = tail(r.spans[pos], ps0)
	h.NegativeDeltas = tail(r.deltas[neg], nd0)
	h.PositiveDeltas = tail(r.deltas[pos], pd0)
	h.NegativeCounts = tail(r.counts[neg], nc0)
	h.PositiveCounts = tail(r.counts[pos], pc0)
	h.CustomValues = tail(r.custom, cv0)
	r.histograms = append(r.histograms, h)
	return nil
}

func decodeSpan(b []byte, i, end int) (BucketSpan, error) {
	var s BucketSpan
	for i < end {
		at := i
		tag, i2, err := readTag(b, i, end)
		if err != nil {
			return s, err
		}
		i = i2
		switch tag {
		case 1<<3 | wireVarint:
			v, i2, err := readUvarint(b, i, end)
			if err != nil {
				return s, fmt.Errorf("offset: %w", err)
			}
			s.Offset, i = zigzag32(v), i2
		case 2<<3 | wireVarint:
			v, i2, err := readUvarint(b, i, end)
			if err != nil {
				return s, fmt.Errorf("length: %w", err)
			}
			s.Length, i = uint32(v), i2
		default:
			if i, err = skipField(b, at, i, end, tag, msgBucketSpan); err != nil {
				return s, err
			}
		}
	}
	return s, nil
}

// appendDeltas appends the sint64 values of one packed (wireBytes) or
// unpacked (wireVarint) field occurrence at b[i].
func appendDeltas(dst []int64, b []byte, i, end int, wt uint64) ([]int64, int, error) {
	if wt == wireVarint {
		v, i2, err := readUvarint(b, i, end)
		if err != nil {
			return dst, 0, err
		}
		return append(dst, zigzag64(v)), i2, nil
	}
	start, stop, err := readLen(b, i, end)
	if err != nil {
		return dst, 0, err
	}
	if start == stop {
		return dst, stop, nil
	}
	if b[stop-1] >= 0x80 {
		return dst, 0, fmt.Errorf("last packed varint is truncated at offset %d", stop-1)
	}
	n := 0
	for _, c := range b[start:stop] {
		if c < 0x80 {
			n++
		}
	}
	dst = slices.Grow(dst, n) // at most 8 bytes per body byte
	for j := start; j < stop; {
		v, j2, err := readUvarint(b, j, stop)
		if err != nil {
			return dst, 0, err
		}
		dst, j = append(dst, zigzag64(v)), j2
	}
	return dst, stop, nil
}

// appendDoubles appends the doubles of one packed (wireBytes) or unpacked
// (wireFixed64) field occurrence at b[i].
func appendDoubles(dst []float64, b []byte, i, end int, wt uint64) ([]float64, int, error) {
	if wt == wireFixed64 {
		v, i2, err := readFixed64(b, i, end)
		if err != nil {
			return dst, 0, err
		}
		return append(dst, math.Float64frombits(v)), i2, nil
	}
	start, stop, err := readLen(b, i, end)
	if err != nil {
		return dst, 0, err
	}
	if (stop-start)%8 != 0 {
		return dst, 0, fmt.Errorf("packed doubles at offset %d: length %d is not a multiple of 8", i, stop-start)
	}
	dst = slices.Grow(dst, (stop-start)/8)
	for j := start; j < stop; j += 8 {
		v, _, _ := readFixed64(b, j, stop)
		dst = append(dst, math.Float64frombits(v))
	}
	return dst, stop, nil
}
