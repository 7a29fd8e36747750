package ingester

import (
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/remotewrite"
	"github.com/strata-metrics/strata/tenant"
)

// reason is why a sample or exemplar was rejected; it labels
// strata_ingester_samples_rejected_total and picks the message.
type reason int

const (
	reasonOutOfOrder reason = iota
	reasonOutOfBounds
	reasonTooOld
	reasonDuplicate
	reasonInvalidHistogram
	reasonInvalidSeries
	reasonInvalidExemplar
	reasonMaxSeriesPerUser   // push_limits.go
	reasonMaxSeriesPerMetric // push_limits.go
	reasonTooFarInFuture     // push.go: futureBound
	reasonOther              // not attributable to the input: the push fails as a server error
	numReasons
)

var reasonNames = [numReasons]string{
	reasonOutOfOrder:         "out_of_order",
	reasonOutOfBounds:        "out_of_bounds",
	reasonTooOld:             "too_old",
	reasonDuplicate:          "duplicate_timestamp",
	reasonInvalidHistogram:   "invalid_histogram",
	reasonInvalidSeries:      "invalid_series",
	reasonInvalidExemplar:    "invalid_exemplar",
	reasonMaxSeriesPerUser:   "per_user_series_limit",
	reasonMaxSeriesPerMetric: "per_metric_series_limit",
	reasonTooFarInFuture:     "too_far_in_future",
	reasonOther:              "other",
}

func (r reason) String() string { return reasonNames[r] }

// rejectReason is why storage.Appender.Append or AppendHistogram refused a
// sample with err.
func rejectReason(err error) reason {
	var limited *seriesLimitError
	switch {
	case errors.As(err, &limited):
		return limited.reason()
	case errors.Is(err, storage.ErrOutOfOrderSample):
		return reasonOutOfOrder
	case errors.Is(err, storage.ErrOutOfBounds):
		return reasonOutOfBounds
	case errors.Is(err, storage.ErrTooOldSample):
		return reasonTooOld
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		return reasonDuplicate
	case errors.As(err, new(histogram.Error)):
		return reasonInvalidHistogram
	case errors.Is(err, tsdb.ErrInvalidSample):
		return reasonInvalidSeries
	case errors.Is(err, errTooFarInFuture):
		return reasonTooFarInFuture
	}
	return reasonOther
}

// Exemplars dropped without failing the push.
type exemplarDrop int

const (
	exemplarOutOfOrder    exemplarDrop = iota // resent by a retry or a replica
	exemplarUnknownSeries                     // no sample of the series was ever appended
	numExemplarDrops
)

var exemplarDropNames = [numExemplarDrops]string{"out_of_order", "unknown_series"}

// maxReported is how many rejections a push error message names.
const maxReported = 3

// rejections collects what one push rejected.
type rejections struct {
	samples   [numReasons]int // rejected samples (float and histogram) by reason
	exemplars int             // rejected (invalid) exemplars
	dropped   [numExemplarDrops]int
	n         int // rejections of samples and exemplars, reported or not
	// metadata is how many metadata entries were not kept because the
	// tenant has metadataMax families (max_metadata_per_user).
	metadata, metadataMax int
	first                 [maxReported]rejection
}

type rejection struct {
	reason reason
	series string // labels.String(), made only for the reported few
	ts     int64
	err    error
}

func (r *rejections) reset() { *r = rejections{} }

func (r *rejections) sample(err error, ls labels.Labels, ts int64) {
	why := rejectReason(err)
	r.samples[why]++
	r.record(why, ls, ts, err)
}

func (r *rejections) exemplar(err error, ls labels.Labels, ts int64) {
	r.exemplars++
	r.record(reasonInvalidExemplar, ls, ts, err)
}

func (r *rejections) exemplarDropped(why exemplarDrop, n int) { r.dropped[why] += n }

func (r *rejections) record(why reason, ls labels.Labels, ts int64, err error) {
	if r.n < maxReported {
		r.first[r.n] = rejection{reason: why, series: formatSeries(ls), ts: ts, err: err}
	}
	r.n++
}

// formatSeries prints ls as the distributor's messages do: label values
// cut, at most remotewrite.MessageMaxLabels labels. Only the few reported
// rejections of a push are printed.
func formatSeries(ls labels.Labels) string {
	rw := make([]remotewrite.Label, 0, ls.Len())
	ls.Range(func(l labels.Label) {
		rw = append(rw, remotewrite.Label{Name: l.Name, Value: l.Value})
	})
	return remotewrite.FormatLabels(rw)
}

func (r *rejections) metadataDropped(n, limit int) { r.metadata, r.metadataMax = n, limit }

// total is the number of rejections that fail the push: samples,
// exemplars and metadata entries. Samples and exemplars of a push whose
// metadata was refused are stored all the same.
func (r *rejections) total() int { return r.n + r.metadata }

func (r *rejections) rejectedSamples() int64 {
	var n int
	for _, c := range r.samples {
		n += c
	}
	return int64(n)
}

// status is the gRPC error of a push with rejections: InvalidArgument
// (BAD_INPUT) when the input is to blame, Internal otherwise.
func (r *rejections) status(cfg Config, u *tenantDB) error {
	var b strings.Builder
	reported := min(r.n, maxReported)
	for k := range reported {
		if k > 0 {
			b.WriteString("; ")
		}
		r.first[k].describe(&b, cfg, u)
	}
	if more := r.n - reported; more > 0 {
		fmt.Fprintf(&b, "; %d more rejected", more)
	}
	if r.metadata > 0 {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%d metadata entries of new metric families not kept: the tenant already has metadata for %d metric families, its limit (-ingester.max-metadata-per-tenant, override \"max_metadata_per_user\"); samples were stored [strata-max-metadata-per-user]", r.metadata, r.metadataMax)
	}
	if r.samples[reasonOther] > 0 {
		return statusError(ingesterpb.ErrorClass_ERROR_CLASS_UNSPECIFIED, r.rejectedSamples(), b.String())
	}
	return statusError(ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, r.rejectedSamples(), b.String())
}

// describe writes what was rejected, where, why, and what to do about it:
//
//	out of order sample for series {__name__="up", job="a"} at 2026-11-25T03:00:00Z (1764039600000): ... [strata-sample-out-of-order]
func (j rejection) describe(b *strings.Builder, cfg Config, u *tenantDB) {
	what, id := "", ""
	switch j.reason {
	case reasonOutOfOrder:
		what, id = "out of order sample", "sample-out-of-order"
	case reasonOutOfBounds:
		what, id = "sample too old for the head", "sample-out-of-bounds"
	case reasonTooOld:
		what, id = "sample older than the out-of-order window", "sample-too-old"
	case reasonDuplicate:
		what, id = "sample with a new value for an existing timestamp", "sample-duplicate-timestamp"
	case reasonInvalidHistogram:
		what, id = "invalid native histogram", "invalid-native-histogram"
	case reasonInvalidSeries:
		what, id = "invalid series", "invalid-series"
	case reasonInvalidExemplar:
		what, id = "invalid exemplar", "invalid-exemplar"
	case reasonMaxSeriesPerUser:
		what, id = "new series refused", "max-series-per-user"
	case reasonMaxSeriesPerMetric:
		what, id = "new series refused", "max-series-per-metric"
	case reasonTooFarInFuture:
		what, id = "sample too far in the future", "sample-too-far-in-future"
	default:
		what, id = "sample not appended", "append-failed"
	}
	fmt.Fprintf(b, "%s for series %s at %s: ", what, j.series, remotewrite.FormatTimestamp(j.ts))
	head := u.db.Head()
	switch j.reason {
	case reasonOutOfOrder:
		fmt.Fprintf(b, "the series has a newer sample and out-of-order samples are not accepted (-ingester.out-of-order-time-window=%s, override \"out_of_order_time_window\")", u.appliedOOOWindow())
	case reasonOutOfBounds:
		if minValid, ok := head.AppendableMinValidTime(); ok {
			fmt.Fprintf(b, "the tenant's head accepts samples from %s on (half a block range, %s, behind its newest sample)", remotewrite.FormatTimestamp(minValid), cfg.BlockRangesPeriod/2)
		} else {
			b.WriteString(j.err.Error())
		}
	case reasonTooFarInFuture:
		fmt.Fprintf(b, "more than the creation grace period (-validation.create-grace-period, override \"creation_grace_period\") plus %s of clock skew ahead of this ingester's clock", futureSkew)
	case reasonTooOld:
		fmt.Fprintf(b, "the tenant's newest sample is at %s and the out-of-order window is %s (-ingester.out-of-order-time-window, override \"out_of_order_time_window\")", remotewrite.FormatTimestamp(head.MaxTime()), u.appliedOOOWindow())
	default:
		b.WriteString(j.err.Error())
	}
	fmt.Fprintf(b, " [strata-%s]", id)
}

// statusError is the gRPC status of class with msg (ingesterpb.ToStatus).
func statusError(class ingesterpb.ErrorClass, rejected int64, msg string) error {
	return ingesterpb.ToStatus(&ingesterpb.ClassError{Class: class, RejectedSamples: rejected, Msg: msg})
}

// grpcError classes an error of the ingester's own making and turns it into
// its gRPC status: context errors and unclassed ones are ToStatus's.
func grpcError(err error) error {
	var unavailable errUnavailable
	var invalid *tenant.InvalidError
	switch {
	case errors.As(err, &unavailable):
		return statusError(ingesterpb.ErrorClass_ERROR_CLASS_UNAVAILABLE, 0, err.Error())
	case errors.As(err, &invalid):
		return statusError(ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, 0, err.Error())
	}
	return ingesterpb.ToStatus(err)
}
