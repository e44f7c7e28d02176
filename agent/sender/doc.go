// Package sender drains the spool to the ingest service.
//
// One goroutine (Run) loops: take the spool's in-flight batch (Next), send it gzipped to POST /v1/batches with
// the device credential, and Ack it when the server acknowledges exactly the batch's last seq. What it does on
// each answer:
//
//   - network error, timeout, 5xx: move to the next endpoint at once (the list, then the URL the device enrolled
//     through). After every endpoint failed in a row, wait. If an endpoint answered (a 503 while its storage is
//     out), the server paces: its Retry-After plus up to a quarter (at most 5 s) of jitter, at most PacedMax, or
//     a jittered backoff capped at PacedMax when it gave none. Only when none answered, a full-jitter
//     exponential backoff (BackoffMin doubling up to BackoffMax). Forever.
//   - 429 (rate_limited, overloaded): the server's Retry-After and jitter, same endpoint.
//   - 409 seq_reused: the server holds some of the batch's seqs with other records (the spool was wiped or
//     restored); Rebase the spool above the server's highest seq and send the same records again at once.
//   - 413: Shrink the in-flight batch and send again at once. A single record that is still too large is
//     refused for good (below).
//   - 401: enroll again with the stored token, device ID and key, then send again. A device without a key (an
//     agent upgraded from before keys) makes one, saves it, and binds it this way at start.
//   - another 4xx whose code names one record as malformed (invalid_data, invalid_question, question_exists,
//     duplicate_name, number_out_of_range, invalid_utf8, unknown_kind, missing_time, invalid_seq,
//     record_too_large, seq_regression): Shrink until the record is alone in the
//     batch, so that the good records around it are delivered; the lone record is then moved out of the spool
//     into the rejected/ directory (durably, with the server's status, code and message), acked locally, shown
//     by "status", and tried again every RejectedRetryInterval (back into the spool under a new seq if the
//     server then says seq_reused). A rejected question is marked so in the question ledger. Nothing is deleted
//     unless the server accepts it.
//   - any other 4xx (the batch as a whole is refused: bad device ID, bad gzip, unknown code): the batch stays
//     in the spool and blocks the queue; "status" shows it as rejected with the code; it is tried again every
//     RejectedRetryInterval. Blocking rather than quarantining here, because such an error is not about one
//     record and quarantining would move the whole spool aside.
//
// The first endpoint is tried again every PrimaryRetryInterval while another one is in use. The endpoint list
// and the drain rate (maxRecordsPerSecond) are fetched from GET /v1/endpoints after enrollment and every
// EndpointsRefreshInterval and persisted; the drain rate is kept with a token bucket, so that after an outage
// a backlog reaches the server no faster than it asked. A credential close to expiry is renewed by enrolling
// again.
package sender
