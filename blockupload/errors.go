package blockupload

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// The error ids of refused uploads: each is the reason label of
// strata_compactor_block_uploads_failed_total and has a runbook entry in the
// README. Never rename one: operators alert on them.
const (
	ReasonDisabled    = "strata-block-upload-disabled"     // the tenant may not upload
	ReasonBadMeta     = "strata-block-upload-bad-meta"     // meta.json is not a block we take
	ReasonOtherTenant = "strata-block-upload-other-tenant" // meta.json names another tenant
	ReasonBadFile     = "strata-block-upload-bad-file"     // a file name outside the whitelist, a short body
	ReasonTooLarge    = "strata-block-upload-too-large"    // over a size limit
	ReasonCorrupt     = "strata-block-upload-corrupt"      // the block does not read at finish
	ReasonNotStarted  = "strata-block-upload-not-started"  // files or finish before start
	ReasonExists      = "strata-block-upload-exists"       // the block is in the bucket already
	ReasonInProgress  = "strata-block-upload-in-progress"  // another request is changing or finishing the upload
	ReasonBusy        = "strata-block-upload-busy"         // the compactor is verifying another block
	reasonInternal    = "internal"                         // the bucket or the disk failed
)

// RefusedError is an upload refused for what the caller sent: a 4xx whose
// message says what to fix.
type RefusedError struct {
	Reason string // one of the Reason constants
	Status int
	Msg    string
	// RetryAfter, when set, is sent as Retry-After.
	RetryAfter time.Duration
}

func (e *RefusedError) Error() string { return fmt.Sprintf("%s [%s]", e.Msg, e.Reason) }

func refuse(reason string, status int, format string, args ...any) error {
	return &RefusedError{Reason: reason, Status: status, Msg: fmt.Sprintf(format, args...)}
}

// httpStatus maps an error of the handler to its status code.
func httpStatus(err error) int {
	if re, ok := errors.AsType[*RefusedError](err); ok {
		return re.Status
	}
	return http.StatusInternalServerError
}

// reasonOf is the failed-uploads metric's label of err.
func reasonOf(err error) string {
	if re, ok := errors.AsType[*RefusedError](err); ok {
		return re.Reason
	}
	return reasonInternal
}
