package remotewrite

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"unsafe"
)

// Protobuf wire types.
const (
	wireVarint     = 0
	wireFixed64    = 1
	wireBytes      = 2
	wireStartGroup = 3 // deprecated groups: rejected
	wireEndGroup   = 4
	wireFixed32    = 5
)

// maxFieldNumber is the largest field number protobuf allows.
const maxFieldNumber = 1<<29 - 1

// The readers below take the whole body b and a window [i, end) of it, and
// return absolute offsets so that errors can point into the body. They never
// read outside the window, and every caller keeps 0 <= i <= end <= len(b).

// readUvarint reads a varint starting at b[i].
func readUvarint(b []byte, i, end int) (uint64, int, error) {
	if i < end && b[i] < 0x80 {
		return uint64(b[i]), i + 1, nil
	}
	return readUvarintSlow(b, i, end)
}

func readUvarintSlow(b []byte, i, end int) (uint64, int, error) {
	var v uint64
	for k := 0; k < 10; k++ {
		if i+k >= end {
			return 0, 0, fmt.Errorf("varint at offset %d is truncated: message ends at offset %d", i, end)
		}
		c := b[i+k]
		if k == 9 && c > 1 {
			break
		}
		v |= uint64(c&0x7f) << (7 * k)
		if c < 0x80 {
			return v, i + k + 1, nil
		}
	}
	return 0, 0, fmt.Errorf("varint at offset %d overflows 64 bits", i)
}

// readTag reads a field tag and checks its field number. Its wire type is
// left to the caller, which knows which wire types it accepts.
func readTag(b []byte, i, end int) (uint64, int, error) {
	if i < end && b[i] < 0x80 && b[i] >= 1<<3 {
		return uint64(b[i]), i + 1, nil
	}
	return readTagSlow(b, i, end)
}

func readTagSlow(b []byte, i, end int) (uint64, int, error) {
	t, j, err := readUvarintSlow(b, i, end)
	if err != nil {
		return 0, 0, fmt.Errorf("field tag: %w", err)
	}
	if f := t >> 3; f == 0 || f > maxFieldNumber {
		return 0, 0, fmt.Errorf("invalid field number %d at offset %d", f, i)
	}
	return t, j, nil
}

// readLen reads a length prefix at b[i] and returns the bounds [start, stop)
// of the bytes it announces, checked against end.
func readLen(b []byte, i, end int) (start, stop int, err error) {
	n, j, err := readUvarint(b, i, end)
	if err != nil {
		return 0, 0, err
	}
	if n > uint64(end-j) {
		return 0, 0, lengthError(n, end-j, i)
	}
	return j, j + int(n), nil
}

func lengthError(n uint64, remaining, at int) error {
	return fmt.Errorf("length %d exceeds remaining %d bytes at offset %d", n, remaining, at)
}

// readFixed64 reads a little-endian fixed64 at b[i].
func readFixed64(b []byte, i, end int) (uint64, int, error) {
	if end-i < 8 {
		return 0, 0, fmt.Errorf("fixed64 at offset %d needs 8 bytes, %d remain", i, end-i)
	}
	return binary.LittleEndian.Uint64(b[i : i+8]), i + 8, nil
}

// view returns b[start:stop] as a string that shares b's memory.
func view(b []byte, start, stop int) string {
	if start == stop {
		return ""
	}
	return unsafe.String(&b[start], stop-start)
}

func zigzag32(v uint64) int32 {
	u := uint32(v)
	return int32(u>>1) ^ -int32(u&1)
}

func zigzag64(v uint64) int64 {
	return int64(v>>1) ^ -int64(v&1)
}

// msgKind names a message type of remote-write 1.0, for skipField.
type msgKind uint8

const (
	msgWriteRequest msgKind = iota
	msgTimeSeries
	msgLabel
	msgSample
	msgExemplar
	msgHistogram
	msgBucketSpan
	msgMetadata
	msgV2Request
	msgV2TimeSeries
	msgV2Sample
	msgV2Exemplar
	msgV2Metadata
)

// Bit masks of accepted wire types.
const (
	accVarint  = 1 << wireVarint
	accFixed64 = 1 << wireFixed64
	accBytes   = 1 << wireBytes
)

// fieldSpec returns the name of a known field of message kind m and the
// wire types it may arrive in; accept is 0 for an unknown field.
func fieldSpec(m msgKind, field uint64) (name string, accept uint8) {
	switch m {
	case msgWriteRequest:
		switch field {
		case 1:
			return "timeseries", accBytes
		case 3:
			return "metadata", accBytes
		}
	case msgTimeSeries:
		switch field {
		case 1:
			return "labels", accBytes
		case 2:
			return "samples", accBytes
		case 3:
			return "exemplars", accBytes
		case 4:
			return "histograms", accBytes
		}
	case msgLabel:
		switch field {
		case 1:
			return "name", accBytes
		case 2:
			return "value", accBytes
		}
	case msgSample:
		switch field {
		case 1:
			return "value", accFixed64
		case 2:
			return "timestamp", accVarint
		}
	case msgExemplar:
		switch field {
		case 1:
			return "labels", accBytes
		case 2:
			return "value", accFixed64
		case 3:
			return "timestamp", accVarint
		}
	case msgHistogram:
		if field >= 1 && field <= 16 {
			return histogramFields[field].name, histogramFields[field].accept
		}
	case msgBucketSpan:
		switch field {
		case 1:
			return "offset", accVarint
		case 2:
			return "length", accVarint
		}
	case msgMetadata:
		switch field {
		case 1:
			return "type", accVarint
		case 2:
			return "metric_family_name", accBytes
		case 4:
			return "help", accBytes
		case 5:
			return "unit", accBytes
		}
	case msgV2Request:
		switch field {
		case 4:
			return "symbols", accBytes
		case 5:
			return "timeseries", accBytes
		}
	case msgV2TimeSeries:
		switch field {
		case 1:
			return "labels_refs", accVarint | accBytes
		case 2:
			return "samples", accBytes
		case 3:
			return "histograms", accBytes
		case 4:
			return "exemplars", accBytes
		case 5:
			return "metadata", accBytes
		}
	case msgV2Sample:
		switch field {
		case 1:
			return "value", accFixed64
		case 2:
			return "timestamp", accVarint
		case 3:
			return "start_timestamp", accVarint
		}
	case msgV2Exemplar:
		switch field {
		case 1:
			return "labels_refs", accVarint | accBytes
		case 2:
			return "value", accFixed64
		case 3:
			return "timestamp", accVarint
		}
	case msgV2Metadata:
		switch field {
		case 1:
			return "type", accVarint
		case 3:
			return "help_ref", accVarint
		case 4:
			return "unit_ref", accVarint
		}
	}
	return "", 0
}

// histogramFields is read-only: the Histogram fields by number.
var histogramFields = [17]struct {
	name   string
	accept uint8
}{
	1:  {"count_int", accVarint},
	2:  {"count_float", accFixed64},
	3:  {"sum", accFixed64},
	4:  {"schema", accVarint},
	5:  {"zero_threshold", accFixed64},
	6:  {"zero_count_int", accVarint},
	7:  {"zero_count_float", accFixed64},
	8:  {"negative_spans", accBytes},
	9:  {"negative_deltas", accVarint | accBytes},
	10: {"negative_counts", accFixed64 | accBytes},
	11: {"positive_spans", accBytes},
	12: {"positive_deltas", accVarint | accBytes},
	13: {"positive_counts", accFixed64 | accBytes},
	14: {"reset_hint", accVarint},
	15: {"timestamp", accVarint},
	16: {"custom_values", accFixed64 | accBytes},
}

var wireTypeNames = [8]string{"varint", "fixed64", "length-delimited", "start-group", "end-group", "fixed32", "invalid", "invalid"}

// skipField is the default branch of every message decoder: tag, read at
// offset at, was not one the decoder handles. A known field in a wrong wire
// type is an error; an unknown field is skipped (forward compatibility),
// unless it is a deprecated group or an invalid wire type.
func skipField(b []byte, at, i, end int, tag uint64, m msgKind) (int, error) {
	field, wt := tag>>3, int(tag&7)
	if name, accept := fieldSpec(m, field); accept != 0 {
		return 0, fmt.Errorf("field %d (%s) has wire type %d (%s), want %s at offset %d",
			field, name, wt, wireTypeNames[wt], wantNames(accept), at)
	}
	switch wt {
	case wireVarint:
		_, j, err := readUvarint(b, i, end)
		if err != nil {
			return 0, fmt.Errorf("unknown field %d: %w", field, err)
		}
		return j, nil
	case wireFixed64:
		if end-i < 8 {
			return 0, fmt.Errorf("unknown field %d: fixed64 at offset %d needs 8 bytes, %d remain", field, i, end-i)
		}
		return i + 8, nil
	case wireBytes:
		_, stop, err := readLen(b, i, end)
		if err != nil {
			return 0, fmt.Errorf("unknown field %d: %w", field, err)
		}
		return stop, nil
	case wireFixed32:
		if end-i < 4 {
			return 0, fmt.Errorf("unknown field %d: fixed32 at offset %d needs 4 bytes, %d remain", field, i, end-i)
		}
		return i + 4, nil
	case wireStartGroup, wireEndGroup:
		return 0, fmt.Errorf("unknown field %d at offset %d uses deprecated group wire type %d, which remote-write does not allow", field, at, wt)
	}
	return 0, fmt.Errorf("field %d at offset %d has invalid wire type %d", field, at, wt)
}

func wantNames(accept uint8) string {
	s := ""
	for wt := range 8 {
		if accept&(1<<wt) != 0 {
			if s != "" {
				s += " or "
			}
			s += fmt.Sprintf("%d (%s)", wt, wireTypeNames[wt])
		}
	}
	return s
}

// Sizes and appenders for the encoder.

func varintSize(v uint64) int {
	return (bits.Len64(v|1) + 6) / 7
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func zigzagEncode32(v int32) uint64 {
	return uint64(uint32(v<<1) ^ uint32(v>>31))
}

func zigzagEncode64(v int64) uint64 {
	return uint64(v<<1) ^ uint64(v>>63)
}
