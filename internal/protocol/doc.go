// Package protocol is the wire contract between the agent on a PC and a tenant's ingest service: paths, request
// and response bodies, record kinds, object keys, the device credential, device keys and enrollment challenges,
// and the batch decoder with its limits. Both sides import it, so a change here is a change of the protocol.
//
// The protocol is HTTP/JSON (TLS in production):
//
//	POST /v1/enroll     Authorization: Bearer <enrollment token>  -> EnrollResponse
//	POST /v1/batches    Authorization: Bearer <device credential> -> Ack (200) only after a durable write
//	GET  /v1/answers    Authorization: Bearer <device credential> -> AnswersResponse
//	GET  /v1/endpoints  Authorization: Bearer <device credential> -> EndpointsResponse
//
// Errors are JSON Error bodies with a stable code:
//
//   - 503 (storage unavailable) and 429 (rate_limited, overloaded) carry Retry-After: the server paces the
//     agent, which comes back when told;
//   - 413 asks the agent to split the batch; 408 body_timeout means the body was sent too slowly;
//   - 401 asks the agent to enroll again; 401 proof_required carries a challenge the device signs with its key
//     to enroll again under its own ID (devicekey.go);
//   - 409 seq_reused refuses a batch that reuses an acknowledged seq with other records and carries the highest
//     seq the server holds for the device: the agent numbers its records above it;
//   - any other 4xx means the batch can never be accepted as it is.
//
// Every body is strict JSON (StrictJSON): one value, valid UTF-8, no name twice in an object, numbers that fit
// a float64 (and integers a 64-bit integer). Binary fields are base64url without padding, in one spelling.
package protocol
