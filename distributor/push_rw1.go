package distributor

import (
	"fmt"

	"github.com/strata-metrics/strata/remotewrite"
)

// decodeRW1 decodes raw, a decompressed remote-write 1.0 body
// (prometheus.WriteRequest), into req, whose strings then view raw. A
// malformed body is a *BadInputError.
func decodeRW1(raw []byte, req *remotewrite.Request) error {
	if err := remotewrite.Decode(raw, req); err != nil {
		return &BadInputError{Msg: fmt.Sprintf("%v [%s]", err, idInvalidProtobuf)}
	}
	return nil
}
