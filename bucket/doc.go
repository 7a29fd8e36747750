// Package bucket opens the object storage bucket that holds every tenant's
// blocks: a directory on local disk by default, or S3 (and S3-compatible
// servers such as MinIO or versitygw), GCS, Azure Blob Storage or Swift.
//
// Flow: ingesters (shipper) upload blocks into it; the compactor, the
// store-gateways and the queriers read it. Each component opens its own
// instrumented handle with New, so that operators see operations, failures
// and latency per component.
// Owns: the -blocks-storage.* backend flags, their validation, secret
// handling (Secret never prints its value), the metrics wrapper and the
// tenant listing (Tenants: the top-level prefixes that are tenant ids).
// Does not: know the layout of a block (package block does) or of a
// tenant's bucket index.
package bucket
