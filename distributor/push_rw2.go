package distributor

import (
	"errors"
	"fmt"

	"github.com/strata-metrics/strata/remotewrite"
)

// decodeRW2 decodes raw, a decompressed remote-write 2.0 body
// (io.prometheus.write.v2.Request), into req, whose strings then view raw:
// the same Request as 1.0, so Push does not know which arrived. Labels
// that reference outside the symbols table are a *BadInputError naming the
// series and [strata-invalid-symbol-reference]; any other malformed body
// is [strata-invalid-protobuf]. Either refuses the whole request: a body
// that lies about its symbols cannot be trusted for its other series.
//
// Created timestamps are decoded (req.Series[i].StartTimestamps) and kept
// in step by validation, but not sent on: the ingesters' Push speaks 1.0.
func (d *Distributor) decodeRW2(raw []byte, req *remotewrite.Request) error {
	err := remotewrite.DecodeV2(raw, req)
	if err == nil {
		return nil
	}
	if errors.As(err, new(*remotewrite.SymbolRefError)) {
		d.m.rejectedRequests.WithLabelValues(protoRW2, idInvalidSymbolRef).Inc()
		return &BadInputError{Msg: fmt.Sprintf("%v [%s]", err, idInvalidSymbolRef)}
	}
	d.m.rejectedRequests.WithLabelValues(protoRW2, idInvalidProtobuf).Inc()
	return &BadInputError{Msg: fmt.Sprintf("%v [%s]", err, idInvalidProtobuf)}
}
