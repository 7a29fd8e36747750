package promapi

import (
	"slices"

	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/jsonutil"
	"github.com/prometheus/prometheus/util/stats"
)

// The encoders below write exactly the bytes Prometheus' JSON codec
// (web/api/v1/json_codec.go over jsoniter's standard-library-compatible
// configuration) writes, without its global type registrations: strings
// that Prometheus encodes by reflection are HTML-escaped, label names and
// values are not, floats and timestamps go through util/jsonutil. The
// equivalence is tested against a copy of that codec.

// QueryData is the data of /query and /query_range.
type QueryData struct {
	ResultType parser.ValueType
	Result     parser.Value
	Stats      stats.QueryStats // nil unless asked for
}

// EncodeSuccess encodes a success response and passes the bytes, valid
// only during the call, to write. Data of the types of Prometheus'
// answers (*QueryData, label names and values, label sets, metadata,
// exemplars) take the fast path; any other is encoded by reflection.
func EncodeSuccess(data any, warnings, infos []string, write func([]byte)) error {
	return encodeJSON(write, func(s *jsoniter.Stream) {
		s.WriteObjectStart()
		s.WriteObjectField("status")
		s.WriteString("success")
		if data != nil {
			s.WriteMore()
			s.WriteObjectField("data")
			writeData(s, data)
		}
		if len(warnings) > 0 {
			s.WriteMore()
			s.WriteObjectField("warnings")
			writeStrings(s, warnings)
		}
		if len(infos) > 0 {
			s.WriteMore()
			s.WriteObjectField("infos")
			writeStrings(s, infos)
		}
		s.WriteObjectEnd()
	})
}

// EncodeError encodes an error response like EncodeSuccess.
func EncodeError(e *Error, data any, write func([]byte)) error {
	return encodeJSON(write, func(s *jsoniter.Stream) {
		s.WriteObjectStart()
		s.WriteObjectField("status")
		s.WriteString("error")
		if data != nil {
			s.WriteMore()
			s.WriteObjectField("data")
			writeData(s, data)
		}
		s.WriteMore()
		s.WriteObjectField("errorType")
		s.WriteStringWithHTMLEscaped(string(e.Type))
		s.WriteMore()
		s.WriteObjectField("error")
		s.WriteStringWithHTMLEscaped(e.Err.Error())
		s.WriteObjectEnd()
	})
}

func encodeJSON(write func([]byte), body func(s *jsoniter.Stream)) error {
	api := jsoniter.ConfigCompatibleWithStandardLibrary
	s := api.BorrowStream(nil)
	defer api.ReturnStream(s)
	body(s)
	if s.Error != nil {
		return s.Error
	}
	write(s.Buffer())
	return nil
}

func writeData(s *jsoniter.Stream, data any) {
	switch v := data.(type) {
	case *QueryData:
		s.WriteObjectStart()
		s.WriteObjectField("resultType")
		s.WriteStringWithHTMLEscaped(string(v.ResultType))
		s.WriteMore()
		s.WriteObjectField("result")
		writeValue(s, v.Result)
		if v.Stats != nil {
			s.WriteMore()
			s.WriteObjectField("stats")
			s.WriteVal(v.Stats)
		}
		s.WriteObjectEnd()
	case string:
		s.WriteStringWithHTMLEscaped(v)
	case []string:
		writeStrings(s, v)
	case []labels.Labels:
		if v == nil {
			s.WriteNil()
			return
		}
		s.WriteArrayStart()
		for i, ls := range v {
			if i > 0 {
				s.WriteMore()
			}
			writeLabels(s, ls)
		}
		s.WriteArrayEnd()
	case map[string][]metadata.Metadata:
		writeMetadata(s, v)
	case []exemplar.QueryResult:
		writeExemplars(s, v)
	default:
		s.WriteVal(v)
	}
}

func writeValue(s *jsoniter.Stream, v any) {
	switch v := v.(type) {
	case promql.Matrix:
		s.WriteArrayStart()
		for i := range v {
			if i > 0 {
				s.WriteMore()
			}
			writeSeries(s, &v[i])
		}
		s.WriteArrayEnd()
	case promql.Vector:
		s.WriteArrayStart()
		for i := range v {
			if i > 0 {
				s.WriteMore()
			}
			writeSample(s, &v[i])
		}
		s.WriteArrayEnd()
	default: // promql.Scalar and promql.String marshal themselves.
		s.WriteVal(v)
	}
}

func writeStrings(s *jsoniter.Stream, ss []string) {
	if ss == nil {
		s.WriteNil()
		return
	}
	s.WriteArrayStart()
	for i, v := range ss {
		if i > 0 {
			s.WriteMore()
		}
		s.WriteStringWithHTMLEscaped(v)
	}
	s.WriteArrayEnd()
}

func writeLabels(s *jsoniter.Stream, ls labels.Labels) {
	s.WriteObjectStart()
	i := 0
	ls.Range(func(l labels.Label) {
		if i != 0 {
			s.WriteMore()
		}
		i++
		s.WriteString(l.Name)
		s.WriteRaw(`:`)
		s.WriteString(l.Value)
	})
	s.WriteObjectEnd()
}

// writeSeries writes {"metric":{...},"values":[[t,"v"],...],"histograms":[[t,{...}],...]}.
func writeSeries(s *jsoniter.Stream, ser *promql.Series) {
	s.WriteObjectStart()
	s.WriteObjectField(`metric`)
	writeLabels(s, ser.Metric)
	for i, p := range ser.Floats {
		s.WriteMore()
		if i == 0 {
			s.WriteObjectField(`values`)
			s.WriteArrayStart()
		}
		writeFPoint(s, p)
	}
	if len(ser.Floats) > 0 {
		s.WriteArrayEnd()
	}
	for i, p := range ser.Histograms {
		s.WriteMore()
		if i == 0 {
			s.WriteObjectField(`histograms`)
			s.WriteArrayStart()
		}
		writeHPoint(s, p)
	}
	if len(ser.Histograms) > 0 {
		s.WriteArrayEnd()
	}
	s.WriteObjectEnd()
}

// writeSample writes {"metric":{...},"value":[t,"v"]} or, for a
// histogram, {"metric":{...},"histogram":[t,{...}]}.
func writeSample(s *jsoniter.Stream, smp *promql.Sample) {
	s.WriteObjectStart()
	s.WriteObjectField(`metric`)
	writeLabels(s, smp.Metric)
	s.WriteMore()
	if smp.H == nil {
		s.WriteObjectField(`value`)
	} else {
		s.WriteObjectField(`histogram`)
	}
	s.WriteArrayStart()
	jsonutil.MarshalTimestamp(smp.T, s)
	s.WriteMore()
	if smp.H == nil {
		jsonutil.MarshalFloat(smp.F, s)
	} else {
		jsonutil.MarshalHistogram(smp.H, s)
	}
	s.WriteArrayEnd()
	s.WriteObjectEnd()
}

func writeFPoint(s *jsoniter.Stream, p promql.FPoint) {
	s.WriteArrayStart()
	jsonutil.MarshalTimestamp(p.T, s)
	s.WriteMore()
	jsonutil.MarshalFloat(p.F, s)
	s.WriteArrayEnd()
}

func writeHPoint(s *jsoniter.Stream, p promql.HPoint) {
	s.WriteArrayStart()
	jsonutil.MarshalTimestamp(p.T, s)
	s.WriteMore()
	jsonutil.MarshalHistogram(p.H, s)
	s.WriteArrayEnd()
}

// writeMetadata writes families in key order, as jsoniter sorts map keys.
func writeMetadata(s *jsoniter.Stream, m map[string][]metadata.Metadata) {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	s.WriteObjectStart()
	for i, name := range names {
		if i > 0 {
			s.WriteMore()
		}
		s.WriteStringWithHTMLEscaped(name)
		s.WriteRaw(`:`)
		ms := m[name]
		if ms == nil {
			s.WriteNil()
			continue
		}
		s.WriteArrayStart()
		for k, md := range ms {
			if k > 0 {
				s.WriteMore()
			}
			s.WriteObjectStart()
			s.WriteObjectField("type")
			s.WriteStringWithHTMLEscaped(string(md.Type))
			s.WriteMore()
			s.WriteObjectField("unit")
			s.WriteStringWithHTMLEscaped(md.Unit)
			s.WriteMore()
			s.WriteObjectField("help")
			s.WriteStringWithHTMLEscaped(md.Help)
			s.WriteObjectEnd()
		}
		s.WriteArrayEnd()
	}
	s.WriteObjectEnd()
}

// writeExemplars writes [{"seriesLabels":{...},"exemplars":[{"labels":{...},"value":"v","timestamp":t},...]},...].
func writeExemplars(s *jsoniter.Stream, rs []exemplar.QueryResult) {
	if rs == nil {
		s.WriteNil()
		return
	}
	s.WriteArrayStart()
	for i := range rs {
		if i > 0 {
			s.WriteMore()
		}
		s.WriteObjectStart()
		s.WriteObjectField("seriesLabels")
		writeLabels(s, rs[i].SeriesLabels)
		s.WriteMore()
		s.WriteObjectField("exemplars")
		if rs[i].Exemplars == nil {
			s.WriteNil()
		} else {
			s.WriteArrayStart()
			for k, e := range rs[i].Exemplars {
				if k > 0 {
					s.WriteMore()
				}
				s.WriteObjectStart()
				s.WriteObjectField(`labels`)
				writeLabels(s, e.Labels)
				s.WriteMore()
				s.WriteObjectField(`value`)
				jsonutil.MarshalFloat(e.Value, s)
				s.WriteMore()
				s.WriteObjectField(`timestamp`)
				jsonutil.MarshalTimestamp(e.Ts, s)
				s.WriteObjectEnd()
			}
			s.WriteArrayEnd()
		}
		s.WriteObjectEnd()
	}
	s.WriteArrayEnd()
}
