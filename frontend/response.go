package frontend

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/util/jsonutil"
)

// matrix is a decoded /api/v1/query_range success: the querier's series,
// each with its points in time order. Labels and histograms keep the
// querier's JSON bytes, written back unchanged; float values are parsed
// and written back with the querier's formatting, which round-trips.
type matrix struct {
	series   []series
	warnings []string
	infos    []string
}

type series struct {
	lbls   labels.Labels // for the result's order
	metric []byte        // the "metric" object as the querier wrote it
	floats []fpoint
	hists  []hpoint
}

type fpoint struct {
	t int64
	f float64
}

type hpoint struct {
	t int64
	h []byte // the histogram object as the querier wrote it
}

var errNotMatrix = errors.New("the querier's answer is not a matrix")

// decodeMatrix parses the body of a 200 answer of /api/v1/query_range.
func decodeMatrix(body []byte) (*matrix, error) {
	it := jsoniter.ConfigFastest.BorrowIterator(body)
	defer jsoniter.ConfigFastest.ReturnIterator(it)
	m := &matrix{}
	var status string
	var builder labels.ScratchBuilder
	it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
		switch field {
		case "status":
			status = it.ReadString()
		case "data":
			it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
				switch field {
				case "resultType":
					if rt := it.ReadString(); rt != "matrix" {
						it.ReportError("decode", fmt.Sprintf("result type %q", rt))
					}
				case "result":
					hint := 0 // the series of one answer have about as many points
					it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
						s, ok := readSeries(it, &builder, hint)
						if ok {
							m.series = append(m.series, s)
							hint = len(s.floats)
						}
						return ok
					})
				default:
					it.Skip()
				}
				return it.Error == nil
			})
		case "warnings":
			m.warnings = readStrings(it, m.warnings)
		case "infos":
			m.infos = readStrings(it, m.infos)
		default:
			it.Skip()
		}
		return it.Error == nil
	})
	if it.Error != nil {
		return nil, fmt.Errorf("decode query_range answer: %w", it.Error)
	}
	if status != "success" {
		return nil, errNotMatrix
	}
	return m, nil
}

func readStrings(it *jsoniter.Iterator, into []string) []string {
	it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
		into = append(into, it.ReadString())
		return true
	})
	return into
}

func readSeries(it *jsoniter.Iterator, b *labels.ScratchBuilder, hint int) (series, bool) {
	var s series
	it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
		switch field {
		case "metric":
			raw := it.SkipAndReturnBytes()
			s.metric = raw
			b.Reset()
			sub := jsoniter.ConfigFastest.BorrowIterator(raw)
			sub.ReadObjectCB(func(sub *jsoniter.Iterator, name string) bool {
				b.Add(name, sub.ReadString())
				return true
			})
			if sub.Error != nil {
				it.ReportError("decode metric", sub.Error.Error())
			}
			jsoniter.ConfigFastest.ReturnIterator(sub)
			b.Sort()
			s.lbls = b.Labels()
		case "values":
			s.floats = make([]fpoint, 0, hint)
			it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
				var p fpoint
				i := 0
				it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
					switch i {
					case 0:
						p.t = readTimestamp(it)
					case 1:
						v := it.ReadStringAsSlice()
						f, err := strconv.ParseFloat(string(v), 64)
						if err != nil {
							it.ReportError("decode value", err.Error())
						}
						p.f = f
					default:
						it.Skip()
					}
					i++
					return it.Error == nil
				})
				s.floats = append(s.floats, p)
				return it.Error == nil
			})
		case "histograms":
			it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
				var p hpoint
				i := 0
				it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
					switch i {
					case 0:
						p.t = readTimestamp(it)
					case 1:
						p.h = it.SkipAndReturnBytes()
					default:
						it.Skip()
					}
					i++
					return it.Error == nil
				})
				s.hists = append(s.hists, p)
				return it.Error == nil
			})
		default:
			it.Skip()
		}
		return it.Error == nil
	})
	return s, it.Error == nil
}

// readTimestamp reads Prometheus' timestamp, float seconds with at most
// millisecond precision, as milliseconds.
func readTimestamp(it *jsoniter.Iterator) int64 {
	return int64(math.Round(it.ReadFloat64() * 1000))
}

// mergeMatrices merges the answers of disjoint or overlapping ranges of
// one query into one: a series' points in time order, a timestamp present
// in several answers kept once (the same evaluation), series in label
// order as the engine returns them. Warnings and infos are kept once each.
// It does not modify its inputs' points but may share them.
func mergeMatrices(ms []*matrix) *matrix {
	switch len(ms) {
	case 0:
		return &matrix{}
	case 1:
		return ms[0]
	}
	out := &matrix{}
	n := 0
	for _, m := range ms {
		n = max(n, len(m.series))
		out.warnings = appendNew(out.warnings, m.warnings)
		out.infos = appendNew(out.infos, m.infos)
	}
	// Each series' parts first, then one merge per series: the legs of a
	// split query are disjoint and in order, so that is one copy into a
	// slice of the right size.
	idx := make(map[string]int, n)
	var parts [][]series
	for _, m := range ms {
		for _, s := range m.series {
			i, ok := idx[string(s.metric)]
			if !ok {
				i = len(parts)
				idx[string(s.metric)] = i
				parts = append(parts, nil)
			}
			parts[i] = append(parts[i], s)
		}
	}
	out.series = make([]series, len(parts))
	for i, ps := range parts {
		out.series[i] = series{lbls: ps[0].lbls, metric: ps[0].metric,
			floats: concatPoints(ps, func(s series) []fpoint { return s.floats }, func(p fpoint) int64 { return p.t }),
			hists:  concatPoints(ps, func(s series) []hpoint { return s.hists }, func(p hpoint) int64 { return p.t }),
		}
	}
	slices.SortFunc(out.series, func(a, b series) int { return labels.Compare(a.lbls, b.lbls) })
	return out
}

// concatPoints joins the points of a series' parts: one copy when the
// parts, ordered by their first point, do not overlap; a merge that keeps
// a timestamp once otherwise.
func concatPoints[P any](ps []series, get func(series) []P, ts func(P) int64) []P {
	lists := make([][]P, 0, len(ps))
	total := 0
	for _, s := range ps {
		if l := get(s); len(l) > 0 {
			lists = append(lists, l)
			total += len(l)
		}
	}
	switch len(lists) {
	case 0:
		return nil
	case 1:
		return lists[0]
	}
	slices.SortFunc(lists, func(a, b []P) int { return cmpInt(ts(a[0]), ts(b[0])) })
	disjoint := true
	for i := 1; i < len(lists); i++ {
		if ts(lists[i][0]) <= ts(lists[i-1][len(lists[i-1])-1]) {
			disjoint = false
			break
		}
	}
	if !disjoint {
		out := lists[0]
		for _, l := range lists[1:] {
			out = mergePoints(out, l, ts)
		}
		return out
	}
	out := make([]P, 0, total)
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// mergePoints merges two time-ordered point lists, keeping a timestamp in
// both once. The usual case, b after a, appends into a copy.
func mergePoints[P any](a, b []P, ts func(P) int64) []P {
	switch {
	case len(b) == 0:
		return a
	case len(a) == 0:
		return b
	case ts(a[len(a)-1]) < ts(b[0]):
		out := make([]P, 0, len(a)+len(b))
		return append(append(out, a...), b...)
	case ts(b[len(b)-1]) < ts(a[0]):
		out := make([]P, 0, len(a)+len(b))
		return append(append(out, b...), a...)
	}
	out := make([]P, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		ta, tb := ts(a[i]), ts(b[j])
		switch {
		case ta < tb:
			out = append(out, a[i])
			i++
		case tb < ta:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

func appendNew(into, from []string) []string {
	for _, s := range from {
		if !slices.Contains(into, s) {
			into = append(into, s)
		}
	}
	return into
}

// clip returns m's points within [start, end] (milliseconds, inclusive);
// series left without points are dropped, as the engine drops them.
func (m *matrix) clip(start, end int64) *matrix {
	out := &matrix{warnings: m.warnings, infos: m.infos}
	for _, s := range m.series {
		c := s
		c.floats = clipPoints(s.floats, start, end, func(p fpoint) int64 { return p.t })
		c.hists = clipPoints(s.hists, start, end, func(p hpoint) int64 { return p.t })
		if len(c.floats) > 0 || len(c.hists) > 0 {
			out.series = append(out.series, c)
		}
	}
	return out
}

func clipPoints[P any](ps []P, start, end int64, ts func(P) int64) []P {
	lo, _ := slices.BinarySearchFunc(ps, start, func(p P, t int64) int { return cmpInt(ts(p), t) })
	hi, found := slices.BinarySearchFunc(ps, end, func(p P, t int64) int { return cmpInt(ts(p), t) })
	if found {
		hi++
	}
	if lo >= hi {
		return nil
	}
	return ps[lo:hi]
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// encode writes m as Prometheus writes a range query's answer.
func (m *matrix) encode(buf *bytes.Buffer) error {
	s := jsoniter.ConfigCompatibleWithStandardLibrary.BorrowStream(buf)
	defer jsoniter.ConfigCompatibleWithStandardLibrary.ReturnStream(s)
	s.WriteRaw(`{"status":"success","data":{"resultType":"matrix","result":[`)
	for i := range m.series {
		if i > 0 {
			s.WriteMore()
		}
		sr := &m.series[i]
		s.WriteRaw(`{"metric":`)
		_, _ = s.Write(sr.metric)
		if len(sr.floats) > 0 {
			s.WriteRaw(`,"values":[`)
			for j, p := range sr.floats {
				if j > 0 {
					s.WriteMore()
				}
				s.WriteArrayStart()
				jsonutil.MarshalTimestamp(p.t, s)
				s.WriteMore()
				jsonutil.MarshalFloat(p.f, s)
				s.WriteArrayEnd()
			}
			s.WriteArrayEnd()
		}
		if len(sr.hists) > 0 {
			s.WriteRaw(`,"histograms":[`)
			for j, p := range sr.hists {
				if j > 0 {
					s.WriteMore()
				}
				s.WriteArrayStart()
				jsonutil.MarshalTimestamp(p.t, s)
				s.WriteMore()
				_, _ = s.Write(p.h)
				s.WriteArrayEnd()
			}
			s.WriteArrayEnd()
		}
		s.WriteObjectEnd()
	}
	s.WriteRaw(`]}`)
	writeStringList(s, "warnings", m.warnings)
	writeStringList(s, "infos", m.infos)
	s.WriteObjectEnd()
	return s.Flush()
}

func writeStringList(s *jsoniter.Stream, field string, ss []string) {
	if len(ss) == 0 {
		return
	}
	s.WriteMore()
	s.WriteObjectField(field)
	s.WriteArrayStart()
	for i, w := range ss {
		if i > 0 {
			s.WriteMore()
		}
		s.WriteStringWithHTMLEscaped(w)
	}
	s.WriteArrayEnd()
}
