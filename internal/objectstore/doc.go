// Package objectstore is the operator's access to a tenant's MinIO: health checks and the bucket bootstrap
// (bucket, versioning, retention lifecycle). It speaks the S3 API through minio-go and MinIO's documented health
// endpoint only, so that a maintained MinIO fork or another S3 service can stand in.
package objectstore
