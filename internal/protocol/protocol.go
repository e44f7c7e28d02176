package protocol

import (
	"encoding/json"
	"fmt"
	"time"
)

// Paths of the ingest API.
const (
	PathEnroll    = "/v1/enroll"
	PathBatches   = "/v1/batches"
	PathAnswers   = "/v1/answers"
	PathEndpoints = "/v1/endpoints"
)

// Kind is the kind of a record.
type Kind string

// Record kinds.
const (
	// KindInventory is the PC's hardware and OS inventory; the newest one is also kept as the device's latest.
	KindInventory Kind = "inventory"
	// KindPerf is one sample of performance counters.
	KindPerf Kind = "perf"
	// KindEvent is a boot, crash or other system event.
	KindEvent Kind = "event"
	// KindQuestion is a question the PC's user asked; it is stored as an object of its own at once.
	KindQuestion Kind = "question"
	// KindGap says that the agent dropped records (a full spool, a corrupt spool file): the dashboard shows it.
	KindGap Kind = "gap"
)

// Valid reports whether k is a kind this protocol version knows.
func (k Kind) Valid() bool {
	switch k {
	case KindInventory, KindPerf, KindEvent, KindQuestion, KindGap:
		return true
	}
	return false
}

// Record is one unit of data an agent reports. Seq is per-device and strictly increasing; (device, seq)
// identifies a record forever: the server acknowledges a seq once, takes a retry of the very same batch as a
// duplicate, and refuses anything else that reuses an acknowledged seq (409 seq_reused).
type Record struct {
	Seq  uint64          `json:"seq"`
	Kind Kind            `json:"kind"`
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data"`
}

// Question is the Data of a KindQuestion record.
type Question struct {
	// ID is chosen by the agent (a random UUID), so that a retried question keeps its identity.
	ID   string `json:"id"`
	Text string `json:"text"`
}

// Gap is the Data of a KindGap record.
type Gap struct {
	// Class of the dropped records ("telemetry", "questions").
	Class string `json:"class"`
	// FromSeq and ToSeq bound the dropped records (inclusive); Count is how many there were.
	FromSeq uint64 `json:"fromSeq"`
	ToSeq   uint64 `json:"toSeq"`
	Count   uint64 `json:"count"`
	// Reason is "evicted" (spool full) or "corrupt" (unreadable spool file).
	Reason string `json:"reason"`
}

// Batch is the body of POST /v1/batches. Records are in strictly increasing seq order; they need not be
// contiguous, since questions travel ahead of telemetry.
type Batch struct {
	DeviceID string   `json:"deviceId"`
	Records  []Record `json:"records"`
}

// FirstSeq and LastSeq bound the batch's records; a batch is never empty once decoded.
func (b *Batch) FirstSeq() uint64 { return b.Records[0].Seq }
func (b *Batch) LastSeq() uint64  { return b.Records[len(b.Records)-1].Seq }

// Ack is the answer to an accepted batch: every record up to AckedThroughSeq that the batch carried is durable.
type Ack struct {
	AckedThroughSeq uint64 `json:"ackedThroughSeq"`
}

// EnrollRequest is the body of POST /v1/enroll. See devicekey.go for how a device proves its identity.
type EnrollRequest struct {
	// DeviceID is set when an enrolled device enrolls again (its credential expired or was rejected): it keeps
	// its identity and its seq once it proves that it holds the device's key.
	DeviceID     string `json:"deviceId,omitempty"`
	Hostname     string `json:"hostname"`
	OS           string `json:"os"`
	AgentVersion string `json:"agentVersion"`
	// PublicKey is the device's Ed25519 public key (base64url, no padding).
	PublicKey string `json:"publicKey,omitempty"`
	// Challenge and Signature answer a proof_required refusal: the challenge it carried and the device key's
	// signature of ProofMessage.
	Challenge string `json:"challenge,omitempty"`
	Signature string `json:"signature,omitempty"`
	// Credential is the device's last credential, presented once by a device enrolled before device keys
	// existed, to bind its first key.
	Credential string `json:"credential,omitempty"`
}

// EnrollResponse is the answer to an enrollment.
type EnrollResponse struct {
	DeviceID   string    `json:"deviceId"`
	Credential string    `json:"credential"`
	ExpiresAt  time.Time `json:"expiresAt"`
	// Endpoints are the tenant's ingest URLs, preferred first.
	Endpoints []string `json:"endpoints"`
}

// EndpointsResponse is the answer to GET /v1/endpoints.
type EndpointsResponse struct {
	Endpoints []string `json:"endpoints"`
	// MaxRecordsPerSecond is the drain rate the server asks each agent to keep to when it has a backlog; 0
	// means no limit.
	MaxRecordsPerSecond int `json:"maxRecordsPerSecond"`
}

// Answer is a support engineer's answer to a question.
type Answer struct {
	ID         string    `json:"id"`
	QuestionID string    `json:"questionId"`
	Text       string    `json:"text"`
	Author     string    `json:"author"`
	Time       time.Time `json:"time"`
}

// AnswersResponse is the answer to GET /v1/answers.
type AnswersResponse struct {
	Answers []Answer `json:"answers"`
}

// Error is the body of every error response.
type Error struct {
	// Code is stable and machine-readable, e.g. "batch_too_large".
	Code    string `json:"code"`
	Message string `json:"message"`
	// HighestSeq comes with seq_reused: the highest seq the server holds for the device. The agent numbers the
	// refused records and all later ones above it.
	HighestSeq uint64 `json:"highestSeq,omitempty"`
	// Challenge comes with proof_required: what the device signs with its key to enroll again.
	Challenge string `json:"challenge,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }
