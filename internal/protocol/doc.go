// Package protocol is the wire contract between the agent on a PC and a tenant's ingest service: paths, request
// and response bodies, record kinds, object keys, the device credential, and the batch decoder with its limits.
// Both sides import it, so a change here is a change of the protocol.
//
// The protocol is HTTP/JSON (TLS in production):
//
//	POST /v1/enroll     Authorization: Bearer <enrollment token>  -> EnrollResponse
//	POST /v1/batches    Authorization: Bearer <device credential> -> Ack (200) only after a durable write
//	GET  /v1/answers    Authorization: Bearer <device credential> -> AnswersResponse
//	GET  /v1/endpoints  Authorization: Bearer <device credential> -> EndpointsResponse
//
// Errors are JSON Error bodies with a stable code. A 503 or 429 carries Retry-After; a 413 asks the agent to
// split the batch; a 401 asks it to enroll again; any other 4xx means the batch can never be accepted.
package protocol
