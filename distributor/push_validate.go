package distributor

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/prometheus/prometheus/model/histogram"

	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/remotewrite"
)

// metricNameLabel holds the metric name, as model.MetricNameLabel.
const metricNameLabel = "__name__"

// exemplarMaxRunes is OpenMetrics' bound on an exemplar's label set: names
// and values together at most 128 UTF-8 code points
// (exemplar.ExemplarMaxLabelSetLength in Prometheus).
const exemplarMaxRunes = 128

// validator checks and cleans one request in place, against one tenant's
// limits, without allocating unless something is wrong: then it formats
// the message of the first problem only and counts the rest.
type validator struct {
	lim       *limits.Limits
	utf8Names bool
	nowMs     int64
	maxTs     int64 // newer samples are too far in the future
	minTs     int64 // older samples are too old; math.MinInt64 without a limit

	msg           string // the first problem, formatted
	msgIsMetadata bool
	badSeries     int  // series with at least one problem
	badMetadata   int  // metadata entries rejected
	curBad        bool // the series being checked has a problem

	samples   [numReasons]int // discarded float and histogram samples
	exemplars [numReasons]int // discarded exemplars
	metadata  [numReasons]int // discarded metadata entries
}

func (v *validator) reset(lim *limits.Limits, utf8Names bool, now time.Time) {
	nowMs := now.UnixMilli()
	*v = validator{lim: lim, utf8Names: utf8Names, nowMs: nowMs, minTs: math.MinInt64}
	v.maxTs = nowMs + lim.CreationGracePeriod.Milliseconds()
	if lim.PastGracePeriod > 0 {
		v.minTs = nowMs - lim.PastGracePeriod.Milliseconds()
	}
}

// validate drops what r must not store and keeps the rest, in place:
// series with a bad label set go whole; samples, histograms and exemplars
// that break a rule go one by one; empty label values are removed and
// labels sorted by name. Series left with no data and bad metadata are
// removed from r.Series and r.Metadata.
func (v *validator) validate(r *remotewrite.Request) {
	n := 0
	for i := range r.Series {
		s := &r.Series[i]
		v.curBad = false
		if !v.series(s) || len(s.Samples)+len(s.Histograms)+len(s.Exemplars) == 0 {
			continue
		}
		if n != i {
			r.Series[n] = *s
		}
		n++
	}
	r.Series = r.Series[:n]

	n = 0
	for i := range r.Metadata {
		if !v.metadataEntry(&r.Metadata[i]) {
			continue
		}
		if n != i {
			r.Metadata[n] = r.Metadata[i]
		}
		n++
	}
	r.Metadata = r.Metadata[:n]
}

// err returns the BadInputError of what validate dropped, or nil.
func (v *validator) err() error {
	if v.msg == "" {
		return nil
	}
	moreSeries, moreMeta := v.badSeries, v.badMetadata
	if v.msgIsMetadata {
		moreMeta--
	} else {
		moreSeries--
	}
	msg := v.msg
	switch {
	case moreSeries > 0 && moreMeta > 0:
		msg += fmt.Sprintf("; and %d more series and %d more metadata entries rejected", moreSeries, moreMeta)
	case moreSeries > 0:
		msg += fmt.Sprintf("; and %d more series rejected", moreSeries)
	case moreMeta > 0:
		msg += fmt.Sprintf("; and %d more metadata entries rejected", moreMeta)
	}
	return &BadInputError{Msg: msg}
}

// problem marks the current series as having a problem and reports whether
// it is the request's first, whose message the caller then formats.
func (v *validator) problem() bool {
	if !v.curBad {
		v.curBad = true
		v.badSeries++
	}
	return v.msg == ""
}

// series checks one series; false means it is dropped whole.
func (v *validator) series(s *remotewrite.Series) bool {
	if len(s.Labels) > v.lim.MaxLabelNamesPerSeries {
		// Empty values do not count. Checked before sorting, so that a
		// series of millions of labels costs one pass.
		if s.Labels = dropEmptyValues(s.Labels); len(s.Labels) > v.lim.MaxLabelNamesPerSeries {
			v.dropSeries(s, reasonMaxLabelNames, -1)
			return false
		}
	}
	why, at, fix, ok := v.checkLabels(s.Labels)
	if fix || !ok {
		// Rare: most senders sort and send no empty values. A bad series
		// is cleaned too, so that its verdict and message do not depend on
		// the order of its labels.
		s.Labels = dropEmptyValues(s.Labels)
		sortLabels(s.Labels)
		why, at, _, ok = v.checkLabels(s.Labels)
	}
	if !ok {
		v.dropSeries(s, why, at)
		return false
	}
	v.checkSamples(s)
	v.checkHistograms(s)
	v.checkExemplars(s)
	return true
}

// dropSeries counts everything s carries as discarded for why.
func (v *validator) dropSeries(s *remotewrite.Series, why reason, at int) {
	v.samples[why] += len(s.Samples) + len(s.Histograms)
	v.exemplars[why] += len(s.Exemplars)
	if v.problem() {
		v.msg = labelsMessage(s.Labels, why, at, v.lim, v.utf8Names)
	}
}

// dropEmptyValues removes labels with an empty value: in Prometheus an
// empty value is the same as no label.
func dropEmptyValues(ls []remotewrite.Label) []remotewrite.Label {
	for i := range ls {
		if ls[i].Value == "" {
			n := i
			for _, l := range ls[i+1:] {
				if l.Value != "" {
					ls[n] = l
					n++
				}
			}
			return ls[:n]
		}
	}
	return ls
}

// sortLabels sorts ls by name in place.
func sortLabels(ls []remotewrite.Label) {
	slices.SortFunc(ls, func(a, b remotewrite.Label) int { return strings.Compare(a.Name, b.Name) })
}

// checkLabels checks ls in one pass, the hot loop of validation. fix means
// ls must be cleaned first (an empty value, or names out of order) and
// checked again; otherwise ok, or why and the offending label's index.
func (v *validator) checkLabels(ls []remotewrite.Label) (why reason, at int, fix, ok bool) {
	hasName := false
	maxName, maxValue := v.lim.MaxLabelNameLength, v.lim.MaxLabelValueLength
	for i := range ls {
		l := &ls[i]
		if l.Value == "" {
			return 0, 0, true, false
		}
		if i > 0 {
			switch c := compareNames(ls[i-1].Name, l.Name); {
			case c > 0:
				return 0, 0, true, false
			case c == 0:
				return reasonDuplicateLabelNames, i, false, false
			}
		}
		switch {
		case len(l.Name) > maxName:
			return reasonLabelNameTooLong, i, false, false
		case l.Name == metricNameLabel:
			hasName = true
			if !v.validName(l.Value, true) {
				return reasonInvalidMetricName, i, false, false
			}
		case !v.validName(l.Name, false):
			return reasonInvalidLabelName, i, false, false
		}
		switch {
		case len(l.Value) > maxValue:
			return reasonLabelValueTooLong, i, false, false
		case !validUTF8(l.Value):
			return reasonInvalidLabelValue, i, false, false
		}
	}
	if !hasName {
		return reasonMissingMetricName, -1, false, false
	}
	return 0, 0, false, true
}

// validName checks a metric name (metric) or label name by the scheme.
func (v *validator) validName(s string, metric bool) bool {
	if v.utf8Names {
		return s != "" && validUTF8(s)
	}
	return remotewrite.LegacyName(s, metric)
}

// validUTF8 is utf8.ValidString with a faster path for ASCII strings,
// which label values nearly always are: eight bytes per step.
func validUTF8(s string) bool {
	b := unsafe.Slice(unsafe.StringData(s), len(s)) // read only
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:])&0x8080808080808080 != 0 {
			return utf8.ValidString(s[i:])
		}
	}
	for ; i < len(b); i++ {
		if b[i] >= utf8.RuneSelf {
			return utf8.ValidString(s[i:])
		}
	}
	return true
}

// compareNames is strings.Compare, deciding on the first byte when it
// differs, as it does between most neighbouring label names.
func compareNames(a, b string) int {
	if len(a) > 0 && len(b) > 0 && a[0] != b[0] {
		if a[0] < b[0] {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// checkTs reports whether a sample timestamp is within the grace periods.
func (v *validator) checkTs(ts int64) (reason, bool) {
	switch {
	case ts > v.maxTs:
		return reasonTooFarInFuture, false
	case ts < v.minTs:
		return reasonTooOld, false
	}
	return 0, true
}

// checkSamples drops the float samples out of the time bounds. NaN and
// ±Inf are values like any other (staleness markers are NaNs). Their order
// within the request is the ingester's to check: it alone knows the
// tenant's out-of-order window.
//
// Created timestamps (remote-write 2.0), when the series has them, are
// kept in step with the samples.
func (v *validator) checkSamples(s *remotewrite.Series) {
	ss, n := s.Samples, 0
	st := s.StartTimestamps
	if len(st) != len(ss) {
		st = nil // not in step: not trusted
	}
	for i := range ss {
		if why, ok := v.checkTs(ss[i].Timestamp); !ok {
			v.samples[why]++
			if v.problem() {
				v.msg = timeMessage(s.Labels, "a sample", ss[i].Timestamp, v.nowMs, why, v.lim)
			}
			continue
		}
		ss[n] = ss[i]
		if st != nil {
			st[n] = st[i]
		}
		n++
	}
	s.Samples = ss[:n]
	if st != nil {
		st = st[:n]
	}
	s.StartTimestamps = st
}

// checkHistograms drops native histograms out of the time bounds or whose
// buckets do not add up; deeper checks are the TSDB's.
func (v *validator) checkHistograms(s *remotewrite.Series) {
	hs, n := s.Histograms, 0
	for i := range hs {
		h := &hs[i]
		if why, ok := v.checkTs(h.Timestamp); !ok {
			v.samples[why]++
			if v.problem() {
				v.msg = timeMessage(s.Labels, "a native histogram", h.Timestamp, v.nowMs, why, v.lim)
			}
			continue
		}
		if detail := histogramProblem(h); detail != "" {
			v.samples[reasonInvalidHistogram]++
			if v.problem() {
				v.msg = fmt.Sprintf("series %s has an invalid native histogram at %s: %s [%s]",
					remotewrite.FormatLabels(s.Labels), remotewrite.FormatTimestamp(h.Timestamp), detail, reasonInvalidHistogram)
			}
			continue
		}
		if n != i {
			hs[n] = *h
		}
		n++
	}
	s.Histograms = hs[:n]
}

// histogramProblem returns what is wrong with h, or "" when nothing is.
// It allocates only for a broken histogram.
func histogramProblem(h *remotewrite.Histogram) string {
	if !histogram.IsKnownSchema(h.Schema) {
		return fmt.Sprintf("unknown schema %d", h.Schema)
	}
	if h.IsFloat {
		if len(h.NegativeDeltas)+len(h.PositiveDeltas) > 0 {
			return "a float histogram with integer bucket deltas"
		}
		if d := spansProblem("negative", h.NegativeSpans, len(h.NegativeCounts)); d != "" {
			return d
		}
		return spansProblem("positive", h.PositiveSpans, len(h.PositiveCounts))
	}
	if len(h.NegativeCounts)+len(h.PositiveCounts) > 0 {
		return "an integer histogram with float bucket counts"
	}
	if d := spansProblem("negative", h.NegativeSpans, len(h.NegativeDeltas)); d != "" {
		return d
	}
	return spansProblem("positive", h.PositiveSpans, len(h.PositiveDeltas))
}

func spansProblem(side string, spans []remotewrite.BucketSpan, buckets int) string {
	var sum uint64
	for _, sp := range spans {
		sum += uint64(sp.Length)
	}
	if sum != uint64(buckets) {
		return fmt.Sprintf("%s spans cover %d buckets but %d bucket values are given", side, sum, buckets)
	}
	return ""
}

// checkExemplars drops invalid exemplars, then the oldest beyond
// MaxExemplarsPerSeries (counted, but not an error: the limit sheds load).
func (v *validator) checkExemplars(s *remotewrite.Series) {
	es, n := s.Exemplars, 0
	for i := range es {
		e := &es[i]
		if why, at, ok := v.checkExemplar(e); !ok {
			v.exemplars[why]++
			if v.problem() {
				v.msg = exemplarMessage(s.Labels, e, at, why, v.nowMs, v.lim)
			}
			continue
		}
		if n != i {
			es[n] = *e
		}
		n++
	}
	if limit := v.lim.MaxExemplarsPerSeries; n > limit {
		// Senders append exemplars in time order: keep the newest.
		drop := n - limit
		v.exemplars[reasonMaxExemplars] += drop
		copy(es, es[drop:n])
		n = limit
	}
	s.Exemplars = es[:n]
}

func (v *validator) checkExemplar(e *remotewrite.Exemplar) (why reason, at int, ok bool) {
	runes := 0
	for i := range e.Labels {
		l := &e.Labels[i]
		if !v.validName(l.Name, false) || !validUTF8(l.Value) {
			return reasonExemplarInvalidLabels, i, false
		}
		runes += utf8.RuneCountInString(l.Name) + utf8.RuneCountInString(l.Value)
	}
	if runes > exemplarMaxRunes {
		return reasonExemplarLabelsTooLong, runes, false
	}
	if e.Timestamp == 0 {
		return reasonExemplarMissingTimestamp, -1, false
	}
	if why, ok := v.checkTs(e.Timestamp); !ok {
		return why, -1, false
	}
	return 0, 0, true
}

// metadataEntry checks one metadata entry; false means it is dropped.
func (v *validator) metadataEntry(m *remotewrite.Metadata) bool {
	why, field, size, ok := v.checkMetadata(m)
	if ok {
		return true
	}
	v.metadata[why]++
	v.badMetadata++
	if v.msg == "" {
		v.msgIsMetadata = true
		switch why {
		case reasonMetadataMissingName:
			v.msg = fmt.Sprintf("metadata of type %s has no metric family name [%s]", metricTypeName(m.Type), why)
		case reasonMetadataTooLong:
			v.msg = fmt.Sprintf("metadata for %s has a %s of %d bytes, limit %d (-validation.max-metadata-length, override \"max_metadata_length\") [%s]",
				remotewrite.QuoteTrunc(m.FamilyName), field, size, v.lim.MaxMetadataLength, why)
		default:
			v.msg = fmt.Sprintf("metadata for %s has a %s that is not valid UTF-8 [%s]", remotewrite.QuoteTrunc(m.FamilyName), field, why)
		}
	}
	return false
}

func (v *validator) checkMetadata(m *remotewrite.Metadata) (why reason, field string, size int, ok bool) {
	if m.FamilyName == "" {
		return reasonMetadataMissingName, "", 0, false
	}
	for _, f := range [...]struct{ name, val string }{{"metric family name", m.FamilyName}, {"help text", m.Help}, {"unit", m.Unit}} {
		if len(f.val) > v.lim.MaxMetadataLength {
			return reasonMetadataTooLong, f.name, len(f.val), false
		}
		if !utf8.ValidString(f.val) {
			return reasonMetadataInvalidUTF8, f.name, 0, false
		}
	}
	return 0, "", 0, true
}

// Messages. Each names the series, the rule, the flag that changes it
// (when one does) and the rule's stable id.

func labelsMessage(ls []remotewrite.Label, why reason, at int, lim *limits.Limits, utf8Names bool) string {
	series := remotewrite.FormatLabels(ls)
	var l remotewrite.Label
	if at >= 0 {
		l = ls[at]
	}
	charset := "the legacy charset [a-zA-Z_][a-zA-Z0-9_]*; -distributor.name-validation-scheme=utf8 accepts any UTF-8"
	if utf8Names {
		charset = "names must be non-empty valid UTF-8"
	}
	switch why {
	case reasonMaxLabelNames:
		return fmt.Sprintf("series %s has %d labels, limit %d (-validation.max-label-names-per-series, override \"max_label_names_per_series\") [%s]", series, len(ls), lim.MaxLabelNamesPerSeries, why)
	case reasonMissingMetricName:
		return fmt.Sprintf("series %s has no metric name (label %s) [%s]", series, metricNameLabel, why)
	case reasonDuplicateLabelNames:
		return fmt.Sprintf("series %s has duplicate label name %s [%s]", series, remotewrite.QuoteTrunc(l.Name), why)
	case reasonLabelNameTooLong:
		return fmt.Sprintf("series %s has a label name of %d bytes, limit %d (-validation.max-length-label-name, override \"max_label_name_length\") [%s]", series, len(l.Name), lim.MaxLabelNameLength, why)
	case reasonInvalidMetricName:
		if !utf8Names {
			charset = "the legacy charset [a-zA-Z_:][a-zA-Z0-9_:]*; -distributor.name-validation-scheme=utf8 accepts any UTF-8"
		}
		return fmt.Sprintf("series %s has invalid metric name %s (%s) [%s]", series, remotewrite.QuoteTrunc(l.Value), charset, why)
	case reasonInvalidLabelName:
		return fmt.Sprintf("series %s has invalid label name %s (%s) [%s]", series, remotewrite.QuoteTrunc(l.Name), charset, why)
	case reasonLabelValueTooLong:
		return fmt.Sprintf("series %s has a value of %d bytes for label %s, limit %d (-validation.max-length-label-value, override \"max_label_value_length\") [%s]", series, len(l.Value), remotewrite.QuoteTrunc(l.Name), lim.MaxLabelValueLength, why)
	case reasonInvalidLabelValue:
		return fmt.Sprintf("series %s has a value that is not valid UTF-8 for label %s [%s]", series, remotewrite.QuoteTrunc(l.Name), why)
	}
	return fmt.Sprintf("BUG: series %s: no message for %s", series, why)
}

func timeMessage(ls []remotewrite.Label, what string, ts, nowMs int64, why reason, lim *limits.Limits) string {
	if why == reasonTooFarInFuture {
		return fmt.Sprintf("series %s has %s at %s, %s in the future, limit %s (-validation.create-grace-period, override \"creation_grace_period\") [%s]",
			remotewrite.FormatLabels(ls), what, remotewrite.FormatTimestamp(ts), msDuration(ts-nowMs), lim.CreationGracePeriod, why)
	}
	return fmt.Sprintf("series %s has %s at %s, %s in the past, limit %s (-validation.past-grace-period, override \"past_grace_period\") [%s]",
		remotewrite.FormatLabels(ls), what, remotewrite.FormatTimestamp(ts), msDuration(nowMs-ts), lim.PastGracePeriod, why)
}

func exemplarMessage(ls []remotewrite.Label, e *remotewrite.Exemplar, at int, why reason, nowMs int64, lim *limits.Limits) string {
	series := remotewrite.FormatLabels(ls)
	switch why {
	case reasonExemplarInvalidLabels:
		return fmt.Sprintf("series %s has an exemplar with invalid label %s=%s [%s]", series, remotewrite.QuoteTrunc(e.Labels[at].Name), remotewrite.QuoteTrunc(e.Labels[at].Value), why)
	case reasonExemplarLabelsTooLong:
		return fmt.Sprintf("series %s has an exemplar with labels %s of %d characters, limit %d (OpenMetrics) [%s]", series, remotewrite.FormatLabels(e.Labels), at, exemplarMaxRunes, why)
	case reasonExemplarMissingTimestamp:
		return fmt.Sprintf("series %s has an exemplar %s without a timestamp [%s]", series, remotewrite.FormatLabels(e.Labels), why)
	}
	return timeMessage(ls, "an exemplar", e.Timestamp, nowMs, why, lim)
}

// msDuration converts milliseconds to a Duration, saturating instead of
// overflowing for absurd timestamps.
func msDuration(ms int64) time.Duration {
	if ms < 0 || ms > math.MaxInt64/int64(time.Millisecond) {
		return time.Duration(math.MaxInt64).Truncate(time.Second)
	}
	return time.Duration(ms) * time.Millisecond
}

func metricTypeName(t remotewrite.MetricType) string {
	names := [...]string{"unknown", "counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset"}
	if t >= 0 && int(t) < len(names) {
		return names[t]
	}
	return strconv.Itoa(int(t))
}
