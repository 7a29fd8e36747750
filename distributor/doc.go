// Package distributor is Strata's write edge: it takes Prometheus
// remote-write requests, validates them and replicates every series to a
// quorum of ingesters.
//
// Flow: client --POST /api/v1/push--> distributor --gRPC Push x RF-->
// ingesters; in process, the ruler --Distributor.Push--> the same path.
// Per HTTP request (push_http.go): resolve the tenant, refuse what the
// headers and rate limits condemn before reading, read and
// snappy-decompress the body into pooled buffers, decode it with the
// protocol's decoder (push_rw1.go) into a pooled remotewrite.Request
// (labels are views into the body) and hand it to Push. Push (push.go),
// whoever calls it: HA-pair dedup (ha.go), validate and clean every series
// in place, apply the ingestion rate limit, hash each series to a ring
// token, encode each series once and copy it into one buffer per ingester,
// push those in parallel and answer when every series is on a quorum of
// its replicas.
// Owns: the push HTTP API and its status codes (400 / 413 / 415 / 429 /
// 5xx, errors.go), per-series validation against the tenant's limits, the
// per-tenant ingestion rate limit (push_ratelimit.go: a token bucket per
// tenant, 429 before any ingester is asked, and before the body is even
// read while the tenant's last refused push does not fit), HA-pair dedup
// (ha.go), the series token (see seriesToken: it must never change once
// data exists), the quorum rule, and the bound on push bytes held at once
// (push_http.go: -distributor.max-inflight-push-bytes; snappy headers that
// claim more than a body can expand to are refused before allocating).
// Does not: store anything (ingesters do), decide replica placement (the
// ring does), dial connections (clientpool does), or count series (the
// ingesters enforce the series limits).
package distributor
