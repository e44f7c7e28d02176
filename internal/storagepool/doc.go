// Package storagepool is a tenant's storage as its servers use it: an ordered list of S3 endpoints (this
// cluster's MinIO first, the peer cluster's second, same bucket and credentials on both) with a circuit breaker
// each. A write goes to the first endpoint whose breaker admits it and falls through to the next one within the
// same call when it fails, so a storage outage costs the caller latency, not an error. A background health loop
// (MinIO's /minio/health/cluster) opens a breaker as soon as its endpoint fails and closes it as soon as the
// endpoint recovers, which sends writes back to the first endpoint.
//
// The breaker's transitions are a pure function (Breaker.On, Breaker.Admit); Pool adds the clock, the S3 calls,
// the health loop and metrics.
package storagepool
