package distributor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/config"
	prw "github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/strata-metrics/strata/limits"
)

// OTLPHandler returns the OTLP/HTTP metrics receiver; mount it at
// /otlp/v1/metrics and /api/v1/otlp/v1/metrics. It takes an
// ExportMetricsServiceRequest as protobuf (Content-Type
// application/x-protobuf) or JSON (application/json), uncompressed, gzip
// or zstd (Content-Encoding), within -distributor.max-recv-msg-size once
// decompressed (413 beyond), translates it with Prometheus' own OTLP
// translation under the tenant's otlp_* limits, and hands the result to
// Push like any remote-write request.
//
// Answers, as the OTLP specification says: 200 with an empty
// ExportMetricsServiceResponse when everything was stored; 200 with
// partial_success (rejected_data_points and a message naming what and
// why) when some was refused and the rest stored; 400 when nothing could
// be stored and retrying cannot help; 415, 405, 401/403 as for
// remote-write; 429 and 503 (retried by OTLP exporters) when a limit or the
// ingesters refused it for now: an ingester failure, 500 on the
// remote-write path, is 503 here, because OTLP exporters do not retry 500.
// Error bodies are a google.rpc.Status in the request's encoding.
func (d *Distributor) OTLPHandler() http.Handler {
	return http.HandlerFunc(d.serveOTLP)
}

// otlpOutcome is what one OTLP push did.
type otlpOutcome struct {
	tenant   string
	json     bool   // answer in JSON, not protobuf
	rejected int64  // data points refused, for partial_success
	partial  string // why, when rejected > 0 or something was dropped
	stored   bool   // something reached the ingesters
}

func (d *Distributor) serveOTLP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	out, err := d.pushOTLP(r)
	code := http.StatusOK
	var bad *BadInputError
	switch {
	case err == nil && out.partial == "", errors.As(err, new(*HADedupedError)):
		// A non-elected HA replica's push is dropped on purpose: success,
		// so that it is not resent.
		d.writeOTLP(w, out.json, code, pmetricotlp.NewExportResponse())
	case err == nil || errors.As(err, &bad) && out.stored:
		// Partial success: the rest was stored; the sender must not
		// resend what was refused.
		msg := out.partial
		if err != nil {
			msg = joinMsg(msg, err.Error())
		}
		resp := pmetricotlp.NewExportResponse()
		resp.PartialSuccess().SetRejectedDataPoints(max(out.rejected, 1))
		resp.PartialSuccess().SetErrorMessage(msg)
		d.writeOTLP(w, out.json, code, resp)
	default:
		code = httpStatus(err)
		if code == http.StatusInternalServerError {
			code = http.StatusServiceUnavailable // OTLP exporters retry 503, not 500
		}
		msg := err.Error()
		if out.partial != "" {
			msg = joinMsg(out.partial, msg)
		}
		if code == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", http.MethodPost)
		}
		if code >= 500 {
			d.log.Warn("otlp push failed", "tenant", out.tenant, "status", code, "err", err)
		} else {
			d.log.Debug("otlp push rejected", "tenant", out.tenant, "status", code, "err", err)
		}
		d.writeOTLPStatus(w, out.json, code, msg)
	}
	d.m.pushDuration.WithLabelValues(strconv.Itoa(code)).Observe(time.Since(start).Seconds())
}

func joinMsg(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func (d *Distributor) writeOTLP(w http.ResponseWriter, asJSON bool, code int, resp pmetricotlp.ExportResponse) {
	var body []byte
	var err error
	if asJSON {
		w.Header().Set("Content-Type", "application/json")
		body, err = resp.MarshalJSON()
	} else {
		w.Header().Set("Content-Type", "application/x-protobuf")
		body, err = resp.MarshalProto()
	}
	if err != nil {
		d.writeOTLPStatus(w, asJSON, http.StatusInternalServerError, "encode response: "+err.Error())
		return
	}
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// writeOTLPStatus answers an error as OTLP/HTTP does: a google.rpc.Status.
func (d *Distributor) writeOTLPStatus(w http.ResponseWriter, asJSON bool, code int, msg string) {
	st := &spb.Status{Code: int32(grpcCodeOf(code)), Message: msg}
	var body []byte
	if asJSON {
		w.Header().Set("Content-Type", "application/json")
		body, _ = protojson.Marshal(st)
	} else {
		w.Header().Set("Content-Type", "application/x-protobuf")
		body, _ = proto.Marshal(st)
	}
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

func grpcCodeOf(httpCode int) codes.Code {
	switch httpCode {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusMethodNotAllowed:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	}
	return codes.Internal
}

// pushOTLP runs one OTLP push, in the order of pushHTTP: the checks the
// headers allow, the body, decompression, decoding, translation, Push.
func (d *Distributor) pushOTLP(r *http.Request) (otlpOutcome, error) {
	var out otlpOutcome
	media, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	media = strings.ToLower(strings.TrimSpace(media))
	out.json = media == "application/json"
	if r.Method != http.MethodPost {
		return out, &MethodNotAllowedError{Method: r.Method}
	}
	tenantID, err := d.tenants.FromHTTP(r)
	if err != nil {
		return out, err
	}
	out.tenant = tenantID
	switch media {
	case "application/x-protobuf", "application/protobuf", "application/json":
	default:
		d.m.rejectedRequests.WithLabelValues(protoOTLP, idUnsupportedType).Inc()
		return out, &UnsupportedMediaTypeError{Msg: fmt.Sprintf("unsupported Content-Type %q: OTLP/HTTP sends application/x-protobuf or application/json [%s]", r.Header.Get("Content-Type"), idUnsupportedType)}
	}
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	switch enc {
	case "", "identity", "gzip", "zstd":
	default:
		d.m.rejectedRequests.WithLabelValues(protoOTLP, idUnsupportedEncoding).Inc()
		return out, &UnsupportedMediaTypeError{Msg: fmt.Sprintf("unsupported Content-Encoding %q: OTLP bodies are sent uncompressed, gzip or zstd [%s]", enc, idUnsupportedEncoding)}
	}
	pb := d.getBody()
	defer d.putBody(pb)
	defer d.releaseInflight(pb)
	if err := d.admitBody(r, tenantID, pb); err != nil { // push_http.go
		return out, err
	}
	raw, err := d.decompressOTLP(pb, enc)
	if err != nil {
		return out, err
	}
	held := len(pb.body) + len(raw)
	if enc == "" || enc == "identity" {
		held = len(pb.body) // raw is the body
	}
	if more := int64(held) - pb.reserved; more > 0 {
		if err := d.reserveInflight(pb, more); err != nil {
			d.m.rateLimitedPushes.WithLabelValues(d.tenantLabels.Value(tenantID), limitedInflightBytes).Inc()
			return out, err
		}
	}
	d.m.decompressedSize.Observe(float64(len(raw)))

	req := pmetricotlp.NewExportRequest()
	if out.json {
		err = req.UnmarshalJSON(raw)
	} else {
		err = req.UnmarshalProto(raw)
	}
	if err != nil {
		d.m.rejectedRequests.WithLabelValues(protoOTLP, idInvalidOTLP).Inc()
		return out, &BadInputError{Msg: fmt.Sprintf("decode OTLP %s body: %v [%s]", map[bool]string{true: "JSON", false: "protobuf"}[out.json], err, idInvalidOTLP)}
	}
	md := req.Metrics()
	if err := d.reserveDecoded(pb, tenantID, pdataBytes(md, len(raw))); err != nil {
		return out, err
	}
	lim := d.limits.For(tenantID)
	app := newRequestAppender()
	if lim.OTLPDeltaTemporality == limits.DeltaConvert && hasDelta(md) {
		err = d.convertDelta(r.Context(), tenantID, lim, md, app)
	} else {
		if n, names := refuseDelta(md); n > 0 {
			d.m.rejectedRequests.WithLabelValues(protoOTLP, idOTLPDelta).Inc()
			out.rejected += int64(n)
			out.partial = fmt.Sprintf("%d data points of delta temporality refused (metrics %s): Strata stores cumulative series; configure the exporter for cumulative temporality, or set the tenant's otlp_delta_temporality to %q (-%s) [%s]",
				n, names, limits.DeltaConvert, limits.FlagOTLPDeltaTemporality, idOTLPDelta)
		}
		err = d.translateOTLP(r.Context(), md, lim, app)
	}
	if err != nil {
		// The translation refuses metric by metric and goes on with the
		// others: what it made is stored, what it refused is named.
		out.partial = joinMsg(out.partial, fmt.Sprintf("translate OTLP: %v [%s]", oneLine(err), idInvalidOTLP))
		if out.rejected == 0 {
			out.rejected = 1
		}
	}
	// The translation is counted on top of the pdata, which stays
	// reserved until the push is answered.
	if err := d.reserveDecoded(pb, tenantID, translatedBytes(app.req)); err != nil {
		return out, err
	}
	// app.req's strings are the translation's own: Push keeps nothing of
	// them after it returns.
	res, err := d.Push(r.Context(), tenantID, app.req)
	out.stored = res.Samples+res.Histograms+res.Metadata > 0
	out.rejected += int64(res.Discarded)
	if err == nil && out.partial != "" && !out.stored && len(app.req.Series) == 0 {
		// Nothing at all could be stored: no partial success.
		msg := out.partial
		out.partial = ""
		return out, &BadInputError{Msg: msg}
	}
	return out, err
}

// oneLine joins the lines of errors.Join.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// decompressOTLP returns the decompressed body, at most
// -distributor.max-recv-msg-size bytes (413 beyond, so a bomb costs no
// more than that), in pb.raw's buffer.
func (d *Distributor) decompressOTLP(pb *pushBody, enc string) ([]byte, error) {
	limit := d.cfg.MaxRecvMsgSize
	if enc == "" || enc == "identity" {
		if len(pb.body) > limit {
			return nil, d.tooLarge("decompressed", int64(len(pb.body)))
		}
		return pb.body, nil
	}
	var rd io.Reader
	switch enc {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(pb.body))
		if err != nil {
			d.m.rejectedRequests.WithLabelValues(protoOTLP, idInvalidCompression).Inc()
			return nil, &BadInputError{Msg: fmt.Sprintf("decompress gzip body: %v [%s]", err, idInvalidCompression)}
		}
		rd = zr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(pb.body), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(limit)+1), zstd.WithDecoderMaxWindow(uint64(max(limit, zstd.MinWindowSize))))
		if err != nil {
			return nil, &BadInputError{Msg: fmt.Sprintf("decompress zstd body: %v [%s]", err, idInvalidCompression)}
		}
		defer zr.Close()
		rd = zr
	}
	buf := pb.raw[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(max(cap(buf), 64<<10), limit+1-len(buf)))
		}
		n, err := rd.Read(buf[len(buf):min(cap(buf), limit+1)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			pb.raw = buf[:0]
			d.m.rejectedRequests.WithLabelValues(protoOTLP, idRequestTooLarge).Inc()
			return nil, d.tooLarge("decompressed", -1)
		}
		if err == io.EOF {
			break
		}
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			pb.raw = buf[:0]
			d.m.rejectedRequests.WithLabelValues(protoOTLP, idRequestTooLarge).Inc()
			return nil, d.tooLarge("decompressed", -1)
		}
		if err != nil {
			pb.raw = buf[:0]
			d.m.rejectedRequests.WithLabelValues(protoOTLP, idInvalidCompression).Inc()
			return nil, &BadInputError{Msg: fmt.Sprintf("decompress %s body: %v [%s]", enc, err, idInvalidCompression)}
		}
	}
	pb.raw = buf
	return buf, nil
}

// translateOTLP appends md to app with Prometheus' OTLP translation, set
// up as Prometheus' receiver sets it up from its otlp: configuration, with
// the tenant's limits in its place.
func (d *Distributor) translateOTLP(ctx context.Context, md pmetric.Metrics, lim *limits.Limits, app *requestAppender) error {
	strategy := otlptranslator.TranslationStrategyOption(lim.OTLPTranslationStrategy)
	var promote []string
	for _, a := range strings.Split(lim.OTLPPromoteResourceAttributes, ",") {
		if a = strings.TrimSpace(a); a != "" {
			promote = append(promote, a)
		}
	}
	conv := prw.NewPrometheusConverter(app)
	annots, err := conv.FromMetrics(ctx, md, prw.Settings{
		AddMetricSuffixes:                 strategy.ShouldAddSuffixes(),
		AllowUTF8:                         !strategy.ShouldEscape(),
		PromoteResourceAttributes:         prw.NewPromoteResourceAttributes(config.OTLPConfig{PromoteResourceAttributes: promote}),
		KeepIdentifyingResourceAttributes: lim.OTLPKeepIdentifyingResourceAttrs,
		ConvertHistogramsToNHCB:           lim.OTLPConvertHistogramsToNHCB,
		LookbackDelta:                     5 * time.Minute, // PromQL's default: target_info is repeated within it
	})
	for category, n := range prw.CountWarningsByCategory(annots) {
		d.m.otlpTranslationWarnings.WithLabelValues(string(category)).Add(float64(n))
	}
	return err
}

// hasDelta reports whether md holds a sum or histogram of delta temporality.
func hasDelta(md pmetric.Metrics) bool {
	found := false
	eachMetric(md, func(m pmetric.Metric) bool {
		found = found || isDelta(m)
		return false
	})
	return found
}

func isDelta(m pmetric.Metric) bool {
	switch m.Type() {
	case pmetric.MetricTypeSum:
		return m.Sum().AggregationTemporality() == pmetric.AggregationTemporalityDelta
	case pmetric.MetricTypeHistogram:
		return m.Histogram().AggregationTemporality() == pmetric.AggregationTemporalityDelta
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().AggregationTemporality() == pmetric.AggregationTemporalityDelta
	}
	return false
}

// eachMetric calls fn on every metric of md; fn returns whether to remove it.
func eachMetric(md pmetric.Metrics, fn func(pmetric.Metric) bool) {
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			sms.At(j).Metrics().RemoveIf(fn)
		}
	}
}

// refuseDelta removes the delta-temporality metrics of md and returns how
// many data points they had and the first few names.
func refuseDelta(md pmetric.Metrics) (points int, names string) {
	var list []string
	eachMetric(md, func(m pmetric.Metric) bool {
		if !isDelta(m) {
			return false
		}
		points += dataPoints(m)
		if len(list) < 5 {
			list = append(list, strconv.Quote(m.Name()))
		} else if len(list) == 5 {
			list = append(list, "...")
		}
		return true
	})
	return points, strings.Join(list, ", ")
}

func dataPoints(m pmetric.Metric) int {
	switch m.Type() {
	case pmetric.MetricTypeSum:
		return m.Sum().DataPoints().Len()
	case pmetric.MetricTypeHistogram:
		return m.Histogram().DataPoints().Len()
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().DataPoints().Len()
	}
	return 0
}
