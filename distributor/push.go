package distributor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang/snappy"

	"github.com/strata-metrics/strata/remotewrite"
	"github.com/strata-metrics/strata/ring"
)

// pushState is everything one push needs beyond its own stack, pooled so
// that a steady stream of pushes allocates nothing per series. It belongs
// to one request at a time; the per-ingester buffers do not live here (they
// go with their push goroutine, which may outlive the request).
type pushState struct {
	body []byte               // the body as received (snappy)
	raw  []byte               // the decompressed body; st.req's strings view it
	req  *remotewrite.Request // decoded from raw
	val  validator

	// tenantLabel is the tenant label value of this push's metrics
	// (Distributor.tenantLabels), looked up once per push.
	tenantLabel string

	key      []byte          // token hash input
	scratch  []byte          // one series, encoded once for its replicas
	replicas []ring.Instance // ring.Get's buffer
	items    []item          // quorum state per series, then per metadata entry
	batches  []batch         // one per ingester
	batchOf  map[string]int  // ingester id -> index in batches
}

func newPushState() *pushState {
	return &pushState{req: remotewrite.NewRequest(), batchOf: map[string]int{}}
}

func (d *Distributor) putState(st *pushState) {
	d.releaseBatches(st)
	if cap(st.body) > maxPooledBytes || cap(st.raw) > maxPooledBytes {
		return // do not let one huge push pin its buffers
	}
	st.req.Reset()
	st.val = validator{}
	st.tenantLabel = ""
	d.states.Put(st)
}

// PushHandler returns the remote-write 1.0 handler; mount it at
// /api/v1/push and /api/v1/write. It answers 204 when every series is on a
// quorum of ingesters, 400 when some input was rejected (the rest was
// stored), 401/400 for a missing/invalid tenant, 405, 413 for a body over
// -distributor.max-recv-msg-size, 415 for an unsupported Content-Type or
// Content-Encoding (remote-write 2.0 included, for now), 429 when a limit
// refused it, 503 when the ring cannot place a quorum and 500 when
// ingesters failed. The body of every error says what to do.
func (d *Distributor) PushHandler() http.Handler {
	return http.HandlerFunc(d.servePush)
}

func (d *Distributor) servePush(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	tenantID, err := d.pushHTTP(r)
	code := http.StatusNoContent
	if err != nil {
		code = httpStatus(err)
		if code == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", http.MethodPost)
		}
		if code >= 500 {
			d.log.Warn("push failed", "tenant", tenantID, "status", code, "err", err)
		} else {
			d.log.Debug("push rejected", "tenant", tenantID, "status", code, "err", err)
		}
		http.Error(w, err.Error(), code)
	} else {
		w.WriteHeader(code) // as Prometheus' own receiver
	}
	d.m.pushDuration.WithLabelValues(strconv.Itoa(code)).Observe(time.Since(start).Seconds())
}

// pushHTTP runs one push; it returns the tenant (when known) and the error
// that decides the status.
func (d *Distributor) pushHTTP(r *http.Request) (string, error) {
	if r.Method != http.MethodPost {
		return "", &MethodNotAllowedError{Method: r.Method}
	}
	tenantID, err := d.tenants.FromHTTP(r)
	if err != nil {
		return "", err
	}
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		return tenantID, err
	}
	if err := checkContentEncoding(r.Header.Get("Content-Encoding")); err != nil {
		return tenantID, err
	}
	// The cheap checks come first, the costly ones last: a push the
	// headers already condemn is not read. 413 before 429: a body that can
	// never be taken must not be told to come back later.
	if r.ContentLength > int64(d.maxCompressed) {
		return tenantID, d.tooLarge("compressed", r.ContentLength)
	}
	if err := d.checkRequestRate(r, tenantID); err != nil {
		return tenantID, err
	}
	if err := d.refuseEarly(r, tenantID); err != nil {
		return tenantID, err
	}

	st := d.states.Get().(*pushState)
	defer d.putState(st)
	if err := d.readBody(r, st); err != nil {
		return tenantID, err
	}
	d.m.compressedSize.Observe(float64(len(st.body)))
	if err := d.decompress(st); err != nil {
		return tenantID, err
	}
	d.m.decompressedSize.Observe(float64(len(st.raw)))
	return tenantID, d.pushDecoded(r.Context(), st, tenantID)
}

// pushDecoded decodes, validates, shards and sends st.raw.
func (d *Distributor) pushDecoded(ctx context.Context, st *pushState, tenantID string) error {
	// Remote-write 2.0 will decode into the same remotewrite.Request (its
	// symbol table resolves to the same label views), so everything from
	// here on serves both versions unchanged.
	if err := remotewrite.Decode(st.raw, st.req); err != nil {
		return &BadInputError{Msg: fmt.Sprintf("%v [%s]", err, idInvalidProtobuf)}
	}

	st.tenantLabel = d.tenantLabels.Value(tenantID)
	st.val.reset(d.limits.For(tenantID), d.cfg.NameValidationScheme == SchemeUTF8, d.now())
	// HA-pair dedup (ha.go), before validation: a non-elected replica's
	// request is dropped whole (202); the elected one's loses its replica
	// label.
	if err := d.dedupeHA(ctx, st, tenantID); err != nil {
		return err
	}
	st.val.validate(st.req)
	// The per-tenant ingestion rate limit, on what validation kept: on
	// refusal st.req is emptied, so nothing is counted received or sent.
	// After validation, as in Cortex and Mimir: the limit is on samples
	// stored, so a sender's invalid samples (and a non-elected replica's,
	// dropped above) do not spend its budget, and a push whose valid part
	// fits is taken even when its whole would not. Refusing before
	// validation would be cheaper but would count what is never stored;
	// the costly case, a tenant flooding far over its limit, is refused
	// before its body is even read (refuseEarly in pushHTTP).
	rateErr := d.checkIngestionRate(tenantID, st)
	d.countValidation(st)
	if rateErr != nil {
		return rateErr
	}
	valErr := st.val.err()

	if len(st.req.Series)+len(st.req.Metadata) == 0 {
		return valErr
	}
	if err := d.shard(st, tenantID); err != nil {
		return err // the ring cannot place a quorum: nothing was sent
	}
	err := d.send(ctx, st, tenantID)
	var bad *BadInputError
	switch {
	case err == nil:
		return valErr
	case valErr != nil && errors.As(err, &bad):
		return &BadInputError{Msg: valErr.Error() + "; " + bad.Msg}
	}
	// A quorum failure outranks validation errors: a 4xx would make the
	// sender drop the good series, which are not stored.
	return err
}

// countValidation feeds the received and discarded counters.
func (d *Distributor) countValidation(st *pushState) {
	v, tenantID := &st.val, st.tenantLabel
	for why := range numReasons {
		if n := v.samples[why]; n > 0 {
			d.m.discardedSamples.WithLabelValues(tenantID, why.String()).Add(float64(n))
		}
		if n := v.exemplars[why]; n > 0 {
			d.m.discardedExemplar.WithLabelValues(tenantID, why.String()).Add(float64(n))
		}
		if n := v.metadata[why]; n > 0 {
			d.m.discardedMetadata.WithLabelValues(tenantID, why.String()).Add(float64(n))
		}
	}
	samples, histograms, exemplars := st.req.SampleCount()
	if n := samples + histograms; n > 0 {
		d.m.receivedSamples.WithLabelValues(tenantID).Add(float64(n))
	}
	if exemplars > 0 {
		d.m.receivedExemplars.WithLabelValues(tenantID).Add(float64(exemplars))
	}
	if n := len(st.req.Metadata); n > 0 {
		d.m.receivedMetadata.WithLabelValues(tenantID).Add(float64(n))
	}
}

// Media types of remote-write, as in client_golang's exp/api/remote.
const (
	protoMediaType = "application/x-protobuf"
	msgRW1         = "prometheus.WriteRequest"
	msgRW2         = "io.prometheus.write.v2.Request"
)

// checkContentType accepts what Prometheus' receiver accepts for 1.0: no
// Content-Type, or application/x-protobuf with no proto parameter or
// proto=prometheus.WriteRequest. Media type and parameter names are
// matched without case and around spaces (RFC 9110), which Prometheus does
// not; a 2.0 body gets 415, on which 2.0 senders may fall back to 1.0.
func checkContentType(ct string) error {
	if ct == "" {
		return nil
	}
	media, params, _ := strings.Cut(ct, ";")
	if !strings.EqualFold(strings.TrimSpace(media), protoMediaType) {
		return &UnsupportedMediaTypeError{Msg: fmt.Sprintf("unsupported Content-Type %q: remote-write sends %s [%s]", ct, protoMediaType, idUnsupportedType)}
	}
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(k), "proto") {
			continue
		}
		switch v = strings.Trim(strings.TrimSpace(v), `"`); v {
		case msgRW1:
			return nil
		case msgRW2:
			return &UnsupportedMediaTypeError{Msg: fmt.Sprintf("remote-write 2.0 is not implemented yet: configure the sender to send remote-write 1.0 (Prometheus: protobuf_message: %s) [%s]", msgRW1, idRemoteWrite2)}
		default:
			return &UnsupportedMediaTypeError{Msg: fmt.Sprintf("unsupported remote-write message %q in Content-Type: only proto=%s is accepted [%s]", v, msgRW1, idUnsupportedType)}
		}
	}
	return nil
}

// checkContentEncoding accepts snappy and, as Prometheus' receiver does, no
// Content-Encoding at all (the body is snappy all the same).
func checkContentEncoding(enc string) error {
	if enc == "" || strings.EqualFold(strings.TrimSpace(enc), "snappy") {
		return nil
	}
	return &UnsupportedMediaTypeError{Msg: fmt.Sprintf("unsupported Content-Encoding %q: remote-write 1.0 bodies are snappy-compressed (block format) [%s]", enc, idUnsupportedEncoding)}
}

// readBody reads the compressed body into st.body, refusing it as soon as
// it exceeds the largest snappy encoding of -distributor.max-recv-msg-size
// bytes (before reading, when Content-Length says so).
func (d *Distributor) readBody(r *http.Request, st *pushState) error {
	limit := d.maxCompressed
	if r.ContentLength > int64(limit) {
		return d.tooLarge("compressed", r.ContentLength)
	}
	want := 64 << 10
	if r.ContentLength >= 0 {
		// +1: EOF is seen without growing. A claimed length is trusted up to
		// 4 MiB only, so that slow senders of nothing cannot reserve much.
		want = min(int(r.ContentLength)+1, 4<<20)
	}
	buf := slices.Grow(st.body[:0], want)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(cap(buf), limit+1-len(buf)))
		}
		n, err := r.Body.Read(buf[len(buf):min(cap(buf), limit+1)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			st.body = buf[:0]
			return d.tooLarge("compressed", -1)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			st.body = buf[:0]
			return &BadInputError{Msg: fmt.Sprintf("read body: %v", err)}
		}
	}
	st.body = buf
	return nil
}

// decompress snappy-decodes st.body into st.raw, checking the length the
// snappy header claims before allocating anything.
func (d *Distributor) decompress(st *pushState) error {
	if len(st.body) == 0 {
		return &BadInputError{Msg: fmt.Sprintf("empty body: remote-write sends a snappy-compressed protobuf WriteRequest [%s]", idInvalidSnappy)}
	}
	n, err := snappy.DecodedLen(st.body)
	if err != nil {
		return &BadInputError{Msg: fmt.Sprintf("decompress body: %v [%s]", err, idInvalidSnappy)}
	}
	if n > d.cfg.MaxRecvMsgSize {
		return d.tooLarge("decompressed", int64(n))
	}
	raw, err := snappy.Decode(slices.Grow(st.raw[:0], n)[:n], st.body)
	if err != nil {
		return &BadInputError{Msg: fmt.Sprintf("decompress body: %v [%s]", err, idInvalidSnappy)}
	}
	st.raw = raw
	return nil
}

func (d *Distributor) tooLarge(what string, size int64) error {
	limit := int64(d.cfg.MaxRecvMsgSize)
	if what == "compressed" {
		limit = int64(d.maxCompressed)
	}
	of := ""
	if size >= 0 { // -1: unknown, the reading stopped at the limit
		of = fmt.Sprintf(" of %d bytes", size)
	}
	return &TooLargeError{Msg: fmt.Sprintf("%s body%s exceeds the limit of %d bytes (-distributor.max-recv-msg-size=%d, decompressed) [%s]",
		what, of, limit, d.cfg.MaxRecvMsgSize, idRequestTooLarge)}
}
