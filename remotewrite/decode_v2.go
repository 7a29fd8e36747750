package remotewrite

import (
	"encoding/binary"
	"fmt"
	"math"
)

// SymbolRefError is a remote-write 2.0 body whose labels_refs (or an
// exemplar's, or a metadata help_ref or unit_ref) point outside its symbols
// table, or whose labels_refs do not come in name/value pairs. The body is
// well-formed protobuf but can never be read: the receiver answers 400.
type SymbolRefError struct {
	Series int    // index of the series in the request
	Labels string // the series' labels resolved before the bad reference, FormatLabels
	What   string // "labels_refs", "exemplar 2 labels_refs", "metadata help_ref", ...
	Ref    uint64 // the bad reference (0 for an odd count)
	Odd    bool   // the refs are not name/value pairs
	N      int    // symbols in the table
}

func (e *SymbolRefError) Error() string {
	if e.Odd {
		return fmt.Sprintf("timeseries %d %s: %s has an odd number of references: they must be name/value pairs", e.Series, e.Labels, e.What)
	}
	return fmt.Sprintf("timeseries %d %s: %s references symbol %d, but the symbols table has %d entries", e.Series, e.Labels, e.What, e.Ref, e.N)
}

// DecodeV2 decodes body, a remote-write 2.0 io.prometheus.write.v2.Request
// in protobuf wire format (already snappy-decompressed), into r, replacing
// what r held, with Decode's lifetimes, bounds and guarantees: every string
// is a view into body, and a request no larger than an earlier one
// allocates nothing.
//
// It fills the same Request as Decode, so that the distributor and every
// consumer after it need not know which protocol arrived:
//   - labels_refs pairs become Labels, views of the symbols table;
//   - samples, histograms and exemplars map field for field; created
//     timestamps go to Series.StartTimestamps (nil when no sample of the
//     series has one) and Histogram.StartTimestamp;
//   - each series' metadata (type, help_ref, unit_ref), when any is set,
//     becomes one Metadata entry whose family name is the series'
//     __name__; a series whose metadata equals the last entry added adds
//     none (a 2.0 sender repeats its family's metadata on every series).
//
// The symbols table may come anywhere in the body (protobuf fields are in
// any order), so DecodeV2 reads the body twice: once for the symbols, once
// for the series. A reference outside the table is a *SymbolRefError
// (wrapped); any other error is a malformed body, as with Decode. On error
// r is left empty.
//
// A label costs 32 bytes of Request per two body bytes at worst (two
// one-byte references), so the memory a body can make DecodeV2 hold is at
// most 16 times its size plus Decode's factors.
func DecodeV2(body []byte, r *Request) error {
	before := r.arrays()
	r.Reset()
	if err := r.decodeV2(body); err != nil {
		r.Reset()
		return fmt.Errorf("decode write request v2: %w", err)
	}
	if r.arrays() != before {
		r.recarve()
	}
	return nil
}

func (r *Request) decodeV2(b []byte) error {
	// Pass 1: the symbols table.
	for i, end := 0, len(b); i < end; {
		at := i
		tag, i2, err := readTag(b, i, end)
		if err != nil {
			return err
		}
		i = i2
		switch tag {
		case 4<<3 | wireBytes:
			start, stop, err := readLen(b, i, end)
			if err != nil {
				return fmt.Errorf("symbols %d: %w", len(r.symbols), err)
			}
			r.symbols = append(r.symbols, view(b, start, stop))
			i = stop
		case 5<<3 | wireBytes:
			_, stop, err := readLen(b, i, end)
			if err != nil {
				return fmt.Errorf("timeseries: %w", err)
			}
			i = stop
		default:
			if f := tag >> 3; f >= 1 && f <= 3 {
				// Reserved in 2.0: 1.0's timeseries and metadata. Skipping
				// them would answer a 1.0 body sent as 2.0 with success
				// and store nothing.
				return fmt.Errorf("field %d at offset %d is reserved in remote-write 2.0 (1.0 has its timeseries and metadata there): is a 1.0 body sent with Content-Type proto=io.prometheus.write.v2.Request?", f, at)
			}
			if i, err = skipField(b, at, i, end, tag, msgV2Request); err != nil {
				return err
			}
		}
	}
	// Pass 2: the series.
	for i, end := 0, len(b); i < end; {
		tag, i2, _ := readTag(b, i, end) // pass 1 checked every top-level field
		i = i2
		start, stop := i, i
		switch tag & 7 {
		case wireBytes:
			start, stop, _ = readLen(b, i, end)
		case wireVarint:
			_, stop, _ = readUvarint(b, i, end)
		case wireFixed64:
			stop = i + 8
		case wireFixed32:
			stop = i + 4
		}
		if tag == 5<<3|wireBytes {
			if err := r.decodeSeriesV2(b, start, stop); err != nil {
				return err
			}
		}
		i = stop
	}
	return nil
}

// seriesMeta is one series' metadata as read, before it can be named.
type seriesMeta struct {
	set        bool
	typ        MetricType
	help, unit string
}

func (r *Request) decodeSeriesV2(b []byte, i, end int) error {
	labels, samples, starts := r.labels, r.samples, r.starts
	l0, s0, e0, h0, st0 := len(labels), len(samples), len(r.exemplars), len(r.histograms), len(starts)
	idx := len(r.Series)
	hasStart := false
	var meta seriesMeta
	// A name ref read, waiting for its value (unpacked labels_refs may
	// split a pair across two fields); -1 when none.
	pending := int64(-1)
	syms := r.symbols
	for i < end {
		// Fast path for the usual sample: 12 L 09 <8 bytes> [10 <varint>]
		// [18 <varint>], as for 1.0 plus the start timestamp.
		if b[i] == 2<<3|wireBytes && end-i >= 11 {
			stop := i + 2 + int(b[i+1])
			if b[i+1] >= 9 && b[i+1] < 0x80 && stop <= end && b[i+2] == 1<<3|wireFixed64 {
				s := Sample{Value: math.Float64frombits(binary.LittleEndian.Uint64(b[i+3 : i+11]))}
				var st int64
				j, ok := i+11, true
				if j < stop && b[j] == 2<<3|wireVarint {
					var v uint64
					v, j, ok = fastVarint(b, j+1, stop)
					s.Timestamp = int64(v)
				}
				if ok && j < stop && b[j] == 3<<3|wireVarint {
					var v uint64
					v, j, ok = fastVarint(b, j+1, stop)
					st = int64(v)
				}
				if ok && j == stop {
					samples = append(samples, s)
					if st != 0 && !hasStart {
						hasStart = true
						starts = padZeros(starts, len(samples)-1-s0)
					}
					if hasStart {
						starts = append(starts, st)
					}
					i = stop
					continue
				}
			}
		}
		at := i
		tag, i2, err := readTag(b, i, end)
		if err != nil {
			return fmt.Errorf("timeseries %d: %w", idx, err)
		}
		i = i2
		switch tag {
		case 1<<3 | wireBytes:
			start, stop, err := readLen(b, i, end)
			if err != nil {
				return fmt.Errorf("timeseries %d: labels_refs: %w", idx, err)
			}
			if start < stop && b[stop-1] >= 0x80 {
				return fmt.Errorf("timeseries %d: labels_refs: last packed varint is truncated at offset %d", idx, stop-1)
			}
			// The hot loop of 2.0: references of one or two bytes (up to
			// 16,383 symbols), two per label.
			j := start
			if pending < 0 {
				for {
					n, j2, ok := ref2(b, j, stop)
					if !ok {
						break
					}
					v, j3, ok := ref2(b, j2, stop)
					if !ok || n >= len(syms) || v >= len(syms) {
						break // the slow loop below reads or names it
					}
					labels = append(labels, Label{syms[n], syms[v]})
					j = j3
				}
			}
			for j < stop {
				v, j2, err := readUvarint(b, j, stop)
				if err != nil {
					return fmt.Errorf("timeseries %d: labels_refs: %w", idx, err)
				}
				j = j2
				if v >= uint64(len(syms)) {
					return r.refErr(idx, labels[l0:], "labels_refs", v, false)
				}
				if pending < 0 {
					pending = int64(v)
					continue
				}
				labels = append(labels, Label{syms[pending], syms[v]})
				pending = -1
			}
			i = stop
		case 1<<3 | wireVarint:
			v, i2, err := readUvarint(b, i, end)
			if err != nil {
				return fmt.Errorf("timeseries %d: labels_refs: %w", idx, err)
			}
			i = i2
			if v >= uint64(len(r.symbols)) {
				return r.refErr(idx, labels[l0:], "labels_refs", v, false)
			}
			if pending < 0 {
				pending = int64(v)
			} else {
				labels = append(labels, Label{r.symbols[pending], r.symbols[v]})
				pending = -1
			}
		case 2<<3 | wireBytes:
			start, stop, err := readLen(b, i, end)
			var s Sample
			var st int64
			if err == nil {
				s, st, err = decodeSampleV2(b, start, stop)
			}
			if err != nil {
				return fmt.Errorf("timeseries %d: sample %d: %w", idx, len(samples)-s0, err)
			}
			samples = append(samples, s)
			if st != 0 && !hasStart {
				hasStart = true
				starts = padZeros(starts, len(samples)-1-s0)
			}
			if hasStart {
				starts = append(starts, st)
			}
			i = stop
		case 3<<3 | wireBytes:
			start, stop, err := readLen(b, i, end)
			if err == nil {
				err = r.decodeHistogram(b, start, stop, true)
			}
			if err != nil {
				return fmt.Errorf("timeseries %d: histogram %d: %w", idx, len(r.histograms)-h0, err)
			}
			i = stop
		case 4<<3 | wireBytes:
			start, stop, err := readLen(b, i, end)
			var bad uint64
			var odd, badRef bool
			if err == nil {
				bad, odd, badRef, err = r.decodeExemplarV2(b, start, stop)
			}
			if err != nil {
				return fmt.Errorf("timeseries %d: exemplar %d: %w", idx, len(r.exemplars)-e0, err)
			}
			if badRef || odd {
				return r.refErr(idx, labels[l0:], fmt.Sprintf("exemplar %d labels_refs", len(r.exemplars)-e0), bad, odd)
			}
			i = stop
		case 5<<3 | wireBytes:
			start, stop, err := readLen(b, i, end)
			if err != nil {
				return fmt.Errorf("timeseries %d: metadata: %w", idx, err)
			}
			m, what, ref, err := r.decodeMetadataV2(b, start, stop)
			if err != nil {
				return fmt.Errorf("timeseries %d: metadata: %w", idx, err)
			}
			if what != "" {
				return r.refErr(idx, labels[l0:], "metadata "+what, ref, false)
			}
			meta = m // a repeated message field merges; last scalars win
			i = stop
		default:
			if i, err = skipField(b, at, i, end, tag, msgV2TimeSeries); err != nil {
				return fmt.Errorf("timeseries %d: %w", idx, err)
			}
		}
	}
	if pending >= 0 {
		return r.refErr(idx, labels[l0:], "labels_refs", 0, true)
	}
	r.labels, r.samples, r.starts = labels, samples, starts
	s := Series{
		Labels:     tail(labels, l0),
		Samples:    tail(samples, s0),
		Exemplars:  tail(r.exemplars, e0),
		Histograms: tail(r.histograms, h0),
	}
	if hasStart {
		s.StartTimestamps = tail(starts, st0)
	}
	r.Series = append(r.Series, s)
	if meta.set {
		r.addSeriesMetadata(s.Labels, &meta)
	}
	return nil
}

// ref2 reads a varint of one or two bytes at b[j] before stop; ok is
// false for anything else (longer, truncated, or j at stop).
func ref2(b []byte, j, stop int) (int, int, bool) {
	if j < stop {
		if c := b[j]; c < 0x80 {
			return int(c), j + 1, true
		} else if j+1 < stop && b[j+1] < 0x80 {
			return int(c&0x7f) | int(b[j+1])<<7, j + 2, true
		}
	}
	return 0, j, false
}

// refErr is the *SymbolRefError of series idx, whose labels read so far
// are ls.
func (r *Request) refErr(idx int, ls []Label, what string, ref uint64, odd bool) error {
	return &SymbolRefError{Series: idx, Labels: FormatLabels(ls), What: what, Ref: ref, Odd: odd, N: len(r.symbols)}
}

// fastVarint reads a varint of at most 9 bytes at b[j] before stop; ok is
// false when it does not end there (the caller then takes the slow path).
func fastVarint(b []byte, j, stop int) (uint64, int, bool) {
	var v uint64
	for shift := 0; j < stop && shift < 63; shift += 7 {
		c := b[j]
		j++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, j, true
		}
	}
	return 0, j, false
}

// padZeros appends n zeros to a without allocating beyond its growth.
func padZeros(a []int64, n int) []int64 {
	for range n {
		a = append(a, 0)
	}
	return a
}

// addSeriesMetadata appends the metadata of the series of labels ls,
// unless the last entry is the same.
func (r *Request) addSeriesMetadata(ls []Label, m *seriesMeta) {
	var name string
	for _, l := range ls {
		if l.Name == "__name__" {
			name = l.Value
			break
		}
	}
	md := Metadata{Type: m.typ, FamilyName: name, Help: m.help, Unit: m.unit}
	if n := len(r.Metadata); n > 0 && r.Metadata[n-1] == md {
		return
	}
	r.Metadata = append(r.Metadata, md)
}

func decodeSampleV2(b []byte, i, end int) (Sample, int64, error) {
	var s Sample
	var st int64
	for i < end {
		at := i
		tag, i2, err := readTag(b, i, end)
		if err != nil {
			return s, 0, err
		}
		i = i2
		switch tag {
		case 1<<3 | wireFixed64:
			v, i2, err := readFixed64(b, i, end)
			if err != nil {
				return s, 0, fmt.Errorf("value: %w", err)
			}
			s.Value, i = math.Float64frombits(v), i2
		case 2<<3 | wireVarint, 3<<3 | wireVarint:
			v, i2, err := readUvarint(b, i, end)
			if err != nil {
				name, _ := fieldSpec(msgV2Sample, tag>>3)
				return s, 0, fmt.Errorf("%s: %w", name, err)
			}
			if tag>>3 == 2 {
				s.Timestamp = int64(v)
			} else {
				st = int64(v)
			}
			i = i2
		default:
			if i, err = skipField(b, at, i, end, tag, msgV2Sample); err != nil {
				return s, 0, err
			}
		}
	}
	return s, st, nil
}

// decodeExemplarV2 appends one exemplar; a reference outside the symbols
// table comes back as bad with badRef, an odd number of references as odd.
func (r *Request) decodeExemplarV2(b []byte, i, end int) (bad uint64, odd, badRef bool, err error) {
	l0 := len(r.exLabels)
	var e Exemplar
	pending := int64(-1)
	ref := func(v uint64) bool {
		if v >= uint64(len(r.symbols)) {
			return false
		}
		if pending < 0 {
			pending = int64(v)
		} else {
			r.exLabels = append(r.exLabels, Label{r.symbols[pending], r.symbols[v]})
			pending = -1
		}
		return true
	}
	for i < end {
		at := i
		tag, i2, err := readTag(b, i, end)
		if err != nil {
			return 0, false, false, err
		}
		i = i2
		switch tag {
		case 1<<3 | wireBytes:
			start, stop, err := readLen(b, i, end)
			if err != nil {
				return 0, false, false, fmt.Errorf("labels_refs: %w", err)
			}
			for j := start; j < stop; {
				v, j2, err := readUvarint(b, j, stop)
				if err != nil {
					return 0, false, false, fmt.Errorf("labels_refs: %w", err)
				}
				if j = j2; !ref(v) {
					return v, false, true, nil
				}
			}
			i = stop
		case 1<<3 | wireVarint:
			v, i2, err := readUvarint(b, i, end)
			if err != nil {
				return 0, false, false, fmt.Errorf("labels_refs: %w", err)
			}
			if i = i2; !ref(v) {
				return v, false, true, nil
			}
		case 2<<3 | wireFixed64:
			v, i2, err := readFixed64(b, i, end)
			if err != nil {
				return 0, false, false, fmt.Errorf("value: %w", err)
			}
			e.Value, i = math.Float64frombits(v), i2
		case 3<<3 | wireVarint:
			v, i2, err := readUvarint(b, i, end)
			if err != nil {
				return 0, false, false, fmt.Errorf("timestamp: %w", err)
			}
			e.Timestamp, i = int64(v), i2
		default:
			if i, err = skipField(b, at, i, end, tag, msgV2Exemplar); err != nil {
				return 0, false, false, err
			}
		}
	}
	if pending >= 0 {
		return 0, true, false, nil
	}
	e.Labels = tail(r.exLabels, l0)
	r.exemplars = append(r.exemplars, e)
	return 0, false, false, nil
}

// decodeMetadataV2 reads one series' metadata; a reference outside the
// symbols table comes back as what ("help_ref" or "unit_ref") and ref.
func (r *Request) decodeMetadataV2(b []byte, i, end int) (m seriesMeta, what string, ref uint64, err error) {
	m.set = true
	for i < end {
		at := i
		tag, i2, err := readTag(b, i, end)
		if err != nil {
			return m, "", 0, err
		}
		i = i2
		switch tag {
		case 1<<3 | wireVarint, 3<<3 | wireVarint, 4<<3 | wireVarint:
			v, i2, err := readUvarint(b, i, end)
			name, _ := fieldSpec(msgV2Metadata, tag>>3)
			if err != nil {
				return m, "", 0, fmt.Errorf("%s: %w", name, err)
			}
			i = i2
			if tag>>3 == 1 {
				m.typ = MetricType(int32(v))
				continue
			}
			if tag>>3 == 3 {
				m.help = ""
			} else {
				m.unit = ""
			}
			if v >= uint64(len(r.symbols)) {
				return m, name, v, nil
			}
			if v == 0 {
				// Unset: the specification makes symbols[0] "", and a
				// sender that breaks that rule must not get an absent
				// metadata message (all zero) read as help.
				continue
			}
			if tag>>3 == 3 {
				m.help = r.symbols[v]
			} else {
				m.unit = r.symbols[v]
			}
		default:
			if i, err = skipField(b, at, i, end, tag, msgV2Metadata); err != nil {
				return m, "", 0, err
			}
		}
	}
	if m.typ == MetricTypeUnknown && m.help == "" && m.unit == "" {
		m.set = false // an empty message: no metadata
	}
	return m, "", 0, nil
}
