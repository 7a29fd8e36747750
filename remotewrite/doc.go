// Package remotewrite decodes and encodes Prometheus remote-write bodies
// without allocating per series.
//
// Flow: HTTP body --Decode--> Request --(distributor validates, shards)-->
// AppendSeries per ingester --gRPC Push--> Decode again in the ingester.
// Owns: the wire formats of remote-write 1.0 (prometheus.WriteRequest) and
// 2.0 (io.prometheus.write.v2.Request, decode only) and
// the in-memory Request whose strings are views into the decoded body.
// Does not: validate series against limits (the distributor does), check
// UTF-8 (neither does prompb), decompress (the caller snappy-decodes), or
// touch storage (the ingester does).
//
// # Lifetimes
//
// After Decode(body, r), every string in r points into body and every slice
// points into r's backing arrays. Both stay valid until body is modified or
// reused, or r is decoded into again, whichever comes first. Keep them
// together (pool the body buffer with the Request), clone strings that
// outlive the request (strings.Clone; labels.ScratchBuilder copies in the
// default stringlabels build, not with -tags slicelabels), and convert histograms with ToHistogram/ToFloatHistogram, which
// copy. Appending to a decoded slice is safe: capacities are cut to lengths.
//
// # Remote-write 2.0
//
// DecodeV2 (decode_v2.go) decodes io.prometheus.write.v2.Request into the
// same Request, so consumers do not change. Its symbols table is a list of
// strings in the body, and field order is free, so DecodeV2 reads the body
// twice: first the symbols, as views (an unexported []string in Request,
// reused like the other backing arrays), then the series, turning each
// labels_refs pair into a Label of two views from that table, carved from
// the same label arrays, so that Labels mean what they mean for 1.0.
// Samples, exemplars and histograms map field for field (the histogram
// message is 1.0's plus start_timestamp, field 17), reusing
// decodeHistogram and the sample fast path. Each series' metadata (type,
// help_ref, unit_ref) becomes one Metadata, its family name taken from
// __name__, unless it equals the last one added. Created timestamps go to
// Series.StartTimestamps (carved from their own backing array, nil when no
// sample of the series has one, always nil for 1.0) and
// Histogram.StartTimestamp. A reference outside the table is a
// *SymbolRefError. AppendSeries stays 1.0: ingesters speak 1.0 on Push
// whatever the client sent (created timestamps are not encoded). The counts
// 2.0 wants in its response headers come from SampleCount.
package remotewrite
