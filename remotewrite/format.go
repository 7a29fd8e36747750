package remotewrite

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// How a series and a timestamp of a request read in an error message: the
// distributor's validation errors and the ingester's rejections print them
// the same way, and an abusive series never makes an abusive message.

// Classes of bytes in legacy names.
const (
	labelFirst  = 1 << iota // [a-zA-Z_]
	labelNext               // [a-zA-Z0-9_]
	metricFirst             // [a-zA-Z_:]
	metricNext              // [a-zA-Z0-9_:]
)

// nameChars classifies every byte value; it is never modified.
var nameChars = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
			t[c] = labelFirst | labelNext | metricFirst | metricNext
		case '0' <= c && c <= '9':
			t[c] = labelNext | metricNext
		case c == ':':
			t[c] = metricFirst | metricNext
		}
	}
	return t
}()

// LegacyName reports whether s is a classic Prometheus label name
// [a-zA-Z_][a-zA-Z0-9_]*, or metric name [a-zA-Z_:][a-zA-Z0-9_:]*.
func LegacyName(s string, metric bool) bool {
	first, next := uint8(labelFirst), uint8(labelNext)
	if metric {
		first, next = metricFirst, metricNext
	}
	if s == "" || nameChars[s[0]]&first == 0 {
		return false
	}
	for i := 1; i < len(s); i++ {
		if nameChars[s[i]]&next == 0 {
			return false
		}
	}
	return true
}

// Bounds of what a message prints of a series, so that an abusive series
// does not make an abusive message.
const (
	MessageMaxLabels     = 32
	MessageMaxValueBytes = 128
)

// FormatLabels prints ls as Prometheus does, {__name__="up", job="a"},
// quoting names outside the legacy charset and cutting long values.
func FormatLabels(ls []Label) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i == MessageMaxLabels {
			fmt.Fprintf(&b, ", ... %d more", len(ls)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		if LegacyName(l.Name, false) {
			b.WriteString(l.Name)
		} else {
			b.WriteString(QuoteTrunc(l.Name))
		}
		b.WriteByte('=')
		b.WriteString(QuoteTrunc(l.Value))
	}
	b.WriteByte('}')
	return b.String()
}

// QuoteTrunc quotes s, cut to MessageMaxValueBytes (at a character boundary) with
// "..." after the quote.
func QuoteTrunc(s string) string {
	if len(s) <= MessageMaxValueBytes {
		return strconv.Quote(s)
	}
	n := MessageMaxValueBytes
	for n > MessageMaxValueBytes-utf8.UTFMax && !utf8.RuneStart(s[n]) {
		n--
	}
	return strconv.Quote(s[:n]) + "..."
}

// FormatTimestamp writes a timestamp as RFC 3339 when it is a date of years 0 to
// 9999, and as milliseconds otherwise: math.MaxInt64 is not "the year
// 292278994", it is a broken sender.
func FormatTimestamp(ms int64) string {
	const minMs, maxMs = -62167219200000, 253402300799999 // 0000-01-01, 9999-12-31
	if ms < minMs || ms > maxMs {
		return fmt.Sprintf("%d ms since 1970 (not a date)", ms)
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
}
