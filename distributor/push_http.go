package distributor

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang/snappy"

	"github.com/strata-metrics/strata/remotewrite"
)

// pushBody is the buffers of one HTTP push, pooled with the request decoded
// from them (whose strings view raw: remotewrite's lifetimes), so that a
// steady stream of pushes allocates nothing per series. It belongs to one
// request at a time.
type pushBody struct {
	body []byte               // the body as received (snappy)
	raw  []byte               // the decompressed body; req's strings view it
	req  *remotewrite.Request // decoded from raw
	// reserved is what reserveInflight counted for this push.
	reserved int64
}

func (d *Distributor) getBody() *pushBody {
	if pb, ok := d.bodies.Get().(*pushBody); ok {
		return pb
	}
	return &pushBody{req: remotewrite.NewRequest()}
}

func (d *Distributor) putBody(pb *pushBody) {
	if cap(pb.body) > maxPooledBytes || cap(pb.raw) > maxPooledBytes {
		return // do not let one huge push pin its buffers
	}
	pb.req.Reset()
	d.bodies.Put(pb)
}

// PushHandler returns the remote-write handler, 1.0 and 2.0 chosen by
// Content-Type; mount it at /api/v1/push and /api/v1/write. It answers 204
// when every series is on a quorum of ingesters, 400 when some input was
// rejected (the rest was stored), 401/400 for a missing/invalid tenant,
// 405, 413 for a body over -distributor.max-recv-msg-size, 415 for an
// unsupported Content-Type (an unknown proto= included) or
// Content-Encoding, 429 when a limit refused it, 503 when the ring cannot
// place a quorum and 500 when ingesters failed. The body of every error
// says what to do. A 2.0 request that was decoded gets the
// X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written
// headers, on success and on partial failure: what reached a quorum (0
// when nothing did).
func (d *Distributor) PushHandler() http.Handler {
	return http.HandlerFunc(d.servePush)
}

// Response headers of remote-write 2.0.
const (
	headerSamplesWritten    = "X-Prometheus-Remote-Write-Samples-Written"
	headerHistogramsWritten = "X-Prometheus-Remote-Write-Histograms-Written"
	headerExemplarsWritten  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

// pushOutcome is what one HTTP push did, beyond its error.
type pushOutcome struct {
	tenant  string
	v2      bool // the body was decoded as remote-write 2.0
	written PushResult
}

func (d *Distributor) servePush(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	out, err := d.pushHTTP(r)
	code := http.StatusNoContent
	if err != nil {
		code = httpStatus(err)
	}
	if out.v2 {
		h := w.Header()
		if err != nil && code >= 500 || code == http.StatusTooManyRequests {
			out.written = PushResult{} // nothing acknowledged: the sender resends all
		}
		h.Set(headerSamplesWritten, strconv.Itoa(out.written.Samples))
		h.Set(headerHistogramsWritten, strconv.Itoa(out.written.Histograms))
		h.Set(headerExemplarsWritten, strconv.Itoa(out.written.Exemplars))
	}
	if err != nil {
		if code == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", http.MethodPost)
		}
		if code >= 500 {
			d.log.Warn("push failed", "tenant", out.tenant, "status", code, "err", err)
		} else {
			d.log.Debug("push rejected", "tenant", out.tenant, "status", code, "err", err)
		}
		http.Error(w, err.Error(), code)
	} else {
		w.WriteHeader(code) // as Prometheus' own receiver
	}
	d.m.pushDuration.WithLabelValues(strconv.Itoa(code)).Observe(time.Since(start).Seconds())
}

// pushHTTP runs one push: it resolves the tenant, refuses what the headers
// and the tenant's limits already condemn before reading the body, reads
// and decompresses the body, decodes it (push_rw1.go, push_rw2.go) and
// hands the request to Push. Its outcome names the tenant (when known);
// the error decides the status.
func (d *Distributor) pushHTTP(r *http.Request) (pushOutcome, error) {
	var out pushOutcome
	if r.Method != http.MethodPost {
		return out, &MethodNotAllowedError{Method: r.Method}
	}
	tenantID, err := d.tenants.FromHTTP(r)
	if err != nil {
		return out, err
	}
	out.tenant = tenantID
	v2, err := checkContentType(r.Header.Get("Content-Type"))
	if err != nil {
		d.m.rejectedRequests.WithLabelValues(protoRW, idUnsupportedType).Inc()
		return out, err
	}
	if err := checkContentEncoding(r.Header.Get("Content-Encoding")); err != nil {
		return out, err
	}
	pb := d.getBody()
	defer d.putBody(pb)
	defer d.releaseInflight(pb)
	if err := d.admitBody(r, tenantID, pb); err != nil {
		return out, err
	}
	n, err := d.decodedLen(pb)
	if err != nil {
		return out, err
	}
	if more := int64(len(pb.body)+n) - pb.reserved; more > 0 {
		if err := d.reserveInflight(pb, more); err != nil {
			d.m.rateLimitedPushes.WithLabelValues(d.tenantLabels.Value(tenantID), limitedInflightBytes).Inc()
			return out, err
		}
	}
	if err := d.decompress(pb); err != nil {
		return out, err
	}
	d.m.decompressedSize.Observe(float64(len(pb.raw)))
	if v2 {
		err = d.decodeRW2(pb.raw, pb.req)
	} else {
		err = decodeRW1(pb.raw, pb.req)
	}
	if err != nil {
		return out, err
	}
	out.v2 = v2
	// The decoded request is counted too: 2.0 labels cost up to 16 times
	// their body bytes. Its strings are views of pb.raw, already counted.
	if err := d.reserveDecoded(pb, tenantID, int64(pb.req.RetainedBytes())); err != nil {
		return out, err
	}
	// pb.req's strings view pb.raw, which stays ours until putBody: Push
	// keeps nothing of them after it returns.
	out.written, err = d.Push(r.Context(), tenantID, pb.req)
	return out, err
}

// Media types of remote-write, as in client_golang's exp/api/remote.
const (
	protoMediaType = "application/x-protobuf"
	msgRW1         = "prometheus.WriteRequest"
	msgRW2         = "io.prometheus.write.v2.Request"
)

// checkContentType accepts what Prometheus' receiver accepts: no
// Content-Type or application/x-protobuf with no proto parameter (1.0),
// proto=prometheus.WriteRequest (1.0) or proto=io.prometheus.write.v2.Request
// (2.0, v2 true). Media type and parameter names are matched without case
// and around spaces (RFC 9110), which Prometheus does not; an unknown
// proto= gets 415, on which a sender may fall back to another message.
func checkContentType(ct string) (v2 bool, err error) {
	if ct == "" {
		return false, nil
	}
	media, params, _ := strings.Cut(ct, ";")
	if !strings.EqualFold(strings.TrimSpace(media), protoMediaType) {
		return false, &UnsupportedMediaTypeError{Msg: fmt.Sprintf("unsupported Content-Type %q: remote-write sends %s [%s]", ct, protoMediaType, idUnsupportedType)}
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
			return false, nil
		case msgRW2:
			return true, nil
		default:
			return false, &UnsupportedMediaTypeError{Msg: fmt.Sprintf("unsupported remote-write message %q in Content-Type: proto=%s (1.0) and proto=%s (2.0) are accepted [%s]", v, msgRW1, msgRW2, idUnsupportedType)}
		}
	}
	return false, nil
}

// checkContentEncoding accepts snappy and, as Prometheus' receiver does, no
// Content-Encoding at all (the body is snappy all the same).
func checkContentEncoding(enc string) error {
	if enc == "" || strings.EqualFold(strings.TrimSpace(enc), "snappy") {
		return nil
	}
	return &UnsupportedMediaTypeError{Msg: fmt.Sprintf("unsupported Content-Encoding %q: remote-write bodies are snappy-compressed (block format) [%s]", enc, idUnsupportedEncoding)}
}

// chunkedReadWindow is the most a read of a body of unknown length counts
// in flight before the bytes arrive.
const chunkedReadWindow = 64 << 10

// admitBody runs what every protocol checks before and while it reads a
// push's body into pb, cheapest first: a push the headers already condemn
// is not read, and 413 comes before 429 (a body that can never be taken
// must not be told to come back later). Then the request rate, the
// tenant's refusals, the in-flight bytes (a body whose length is announced
// is counted before it is read, the rest as it arrives) and the read. The
// caller got pb from getBody and releases it (releaseInflight, putBody).
func (d *Distributor) admitBody(r *http.Request, tenantID string, pb *pushBody) error {
	if r.ContentLength > int64(d.maxCompressed) {
		return d.tooLarge("compressed", r.ContentLength)
	}
	if err := d.checkRequestRate(r, tenantID); err != nil {
		return err
	}
	if err := d.refuseEarly(r, tenantID); err != nil {
		return err
	}
	if r.ContentLength > 0 {
		if err := d.reserveInflight(pb, r.ContentLength); err != nil {
			d.m.rateLimitedPushes.WithLabelValues(d.tenantLabels.Value(tenantID), limitedInflightBytes).Inc()
			d.drain(r)
			return err
		}
	}
	if err := d.readBody(r, pb); err != nil {
		if errors.As(err, new(*LimitedError)) {
			d.m.rateLimitedPushes.WithLabelValues(d.tenantLabels.Value(tenantID), limitedInflightBytes).Inc()
		}
		return err
	}
	d.m.compressedSize.Observe(float64(len(pb.body)))
	return nil
}

// readBody reads the compressed body into pb.body, refusing it as soon as
// it exceeds the largest snappy encoding of -distributor.max-recv-msg-size
// bytes (before reading, when Content-Length says so), or, for a body of
// unknown length, as soon as it would pass -distributor.max-inflight-push-bytes.
func (d *Distributor) readBody(r *http.Request, pb *pushBody) error {
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
	buf := slices.Grow(pb.body[:0], want)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(cap(buf), limit+1-len(buf)))
		}
		window := buf[len(buf):min(cap(buf), limit+1)]
		if r.ContentLength < 0 {
			// A body of unknown length is counted in flight as it arrives:
			// each read window before the read, what it did not fill after.
			// The window is kept small, so that a slow sender holds little
			// of the bound while its read blocks, whatever the size of the
			// pooled buffer.
			window = window[:min(len(window), chunkedReadWindow)]
			if err := d.reserveInflight(pb, int64(len(window))); err != nil {
				pb.body = buf[:0]
				return err
			}
		}
		n, err := r.Body.Read(window)
		if r.ContentLength < 0 {
			d.unreserveInflight(pb, int64(len(window)-n))
		}
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			pb.body = buf[:0]
			return d.tooLarge("compressed", -1)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			pb.body = buf[:0]
			if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
				return &RequestTimeoutError{Msg: fmt.Sprintf("read body: %d bytes arrived before the read deadline (-server.http-read-timeout) passed; send the whole body at once", len(buf))}
			}
			return &BadInputError{Msg: fmt.Sprintf("read body: %v", err)}
		}
	}
	pb.body = buf
	return nil
}

// decodedLen is the size pb.body's snappy header claims, refused when it
// is over the limit or more than the body can expand to.
func (d *Distributor) decodedLen(pb *pushBody) (int, error) {
	if len(pb.body) == 0 {
		return 0, &BadInputError{Msg: fmt.Sprintf("empty body: remote-write sends a snappy-compressed protobuf WriteRequest [%s]", idInvalidSnappy)}
	}
	n, err := snappy.DecodedLen(pb.body)
	if err != nil {
		return 0, &BadInputError{Msg: fmt.Sprintf("decompress body: %v [%s]", err, idInvalidSnappy)}
	}
	if n > d.cfg.MaxRecvMsgSize {
		return 0, d.tooLarge("decompressed", int64(n))
	}
	// A snappy block expands at most 64 bytes per 3-byte copy element, so
	// a header claiming more than 22 times the body's size is a lie: refuse
	// it before it makes us allocate what it claims (6 bytes claimed 31 MiB).
	if n > snappyMaxExpansion*len(pb.body) {
		return 0, &BadInputError{Msg: fmt.Sprintf("decompress body: snappy header claims %d bytes from a %d-byte body, more than snappy can expand to [%s]", n, len(pb.body), idInvalidSnappy)}
	}
	return n, nil
}

// decompress snappy-decodes pb.body into pb.raw, checking the length the
// snappy header claims (decodedLen) before allocating anything.
func (d *Distributor) decompress(pb *pushBody) error {
	n, err := d.decodedLen(pb)
	if err != nil {
		return err
	}
	raw, err := snappy.Decode(slices.Grow(pb.raw[:0], n)[:n], pb.body)
	if err != nil {
		return &BadInputError{Msg: fmt.Sprintf("decompress body: %v [%s]", err, idInvalidSnappy)}
	}
	pb.raw = raw
	return nil
}

// snappyMaxExpansion bounds decoded/encoded size for any valid snappy block:
// its densest element is a 3-byte copy of 64 bytes (ratio 21.3).
const snappyMaxExpansion = 22

// reserveInflight counts n more bytes of pb (its compressed body, then its
// decompressed size, each before it is allocated, then what decoding made,
// see reserveDecoded) against
// -distributor.max-inflight-push-bytes; the handler gives them back with
// releaseInflight when the push is answered.
func (d *Distributor) reserveInflight(pb *pushBody, n int64) error {
	now := d.inflightBytes.Add(n)
	others := now - pb.reserved - n
	if limit := d.cfg.MaxInflightPushBytes; limit > 0 && now > limit && others > 0 {
		// others == 0: one push alone may always go (it is under the body limit).
		d.inflightBytes.Add(-n)
		return &LimitedError{Msg: fmt.Sprintf("this distributor holds %d bytes of other pushes in flight; this one's %d bytes would pass the limit of %d (-distributor.max-inflight-push-bytes): retry later [%s]", others, pb.reserved+n, limit, idInflightPushBytes)}
	}
	pb.reserved += n
	d.m.inflightPushBytes.Add(float64(n))
	return nil
}

// reserveDecoded counts n bytes more that pb's push holds once decoded, as
// reserveInflight does, and counts a refusal as the other reservations do.
// It runs after decoding (which a body's size bounds, through
// -distributor.max-recv-msg-size) and before Push, which holds them until
// the ingesters answer.
func (d *Distributor) reserveDecoded(pb *pushBody, tenantID string, n int64) error {
	if n <= 0 {
		return nil
	}
	if err := d.reserveInflight(pb, n); err != nil {
		d.m.rateLimitedPushes.WithLabelValues(d.tenantLabels.Value(tenantID), limitedInflightBytes).Inc()
		return err
	}
	return nil
}

// unreserveInflight gives back n of pb's reserved bytes.
func (d *Distributor) unreserveInflight(pb *pushBody, n int64) {
	if n > 0 {
		d.inflightBytes.Add(-n)
		d.m.inflightPushBytes.Sub(float64(n))
		pb.reserved -= n
	}
}

func (d *Distributor) releaseInflight(pb *pushBody) {
	if pb.reserved > 0 {
		d.inflightBytes.Add(-pb.reserved)
		d.m.inflightPushBytes.Sub(float64(pb.reserved))
		pb.reserved = 0
	}
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
