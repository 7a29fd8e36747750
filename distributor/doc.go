// Package distributor is Strata's write edge: it takes Prometheus
// remote-write (1.0 and 2.0) and OTLP requests, validates them and
// replicates every series to a quorum of ingesters.
//
// Flow: client --POST /api/v1/push, /otlp/v1/metrics--> distributor
// --gRPC Push x RF--> ingesters; in process, the ruler
// --Distributor.Push--> the same path. Per remote-write request
// (push_http.go): resolve the tenant, refuse what the headers and rate
// limits condemn before reading, read and snappy-decompress the body into
// pooled buffers, decode it with the protocol's decoder (push_rw1.go,
// push_rw2.go, chosen by Content-Type) into a pooled remotewrite.Request
// (labels are views into the body) and hand it to Push. Per OTLP request
// (push_otlp.go): the same checks, gzip or zstd, pdata's decoder,
// Prometheus' OTLP translation into a remotewrite.Request
// (push_otlp_append.go; delta temporality refused or converted per tenant,
// push_otlp_delta.go), Push, and OTLP's answer (partial success).
// Push (push.go), whoever calls it: HA-pair dedup (ha.go), validate and clean every series
// in place, apply the ingestion rate limit, hash each series to a ring
// token, encode each series once and copy it into one buffer per ingester,
// push those in parallel and answer when every series is on a quorum of
// its replicas.
// Owns: the push HTTP APIs and their status codes (400 / 413 / 415 / 429 /
// 5xx, errors.go; OTLP's mapping in push_otlp.go), the per-tenant OTLP
// translation settings' use and the delta-to-cumulative state,
// per-series validation against the tenant's limits, the per-tenant ingestion rate limit (push_ratelimit.go: a token bucket per
// tenant, 429 before any ingester is asked, and before the body is even
// read while the tenant's last refused push does not fit), HA-pair dedup
// (ha.go), the series token (see seriesToken: it must never change once
// data exists), the quorum rule, and the bound on push bytes held at once
// (push_http.go: -distributor.max-inflight-push-bytes, bodies and what
// decoding made of them, push_otlp_size.go for OTLP; snappy headers that
// claim more than a body can expand to are refused before allocating).
// Does not: store anything (ingesters do), decide replica placement (the
// ring does), dial connections (clientpool does), or count series (the
// ingesters enforce the series limits).
package distributor
