package sender

import (
	"slices"
	"time"

	"github.com/supportstack/supportstack/internal/protocol"
)

// Status is what the sender shows to the "status" command.
type Status struct {
	Endpoints           []string  `json:"endpoints"`
	Endpoint            string    `json:"endpoint"` // in use
	CredentialExpiresAt time.Time `json:"credentialExpiresAt,omitzero"`
	MaxRecordsPerSecond int       `json:"maxRecordsPerSecond,omitempty"`
	LastAttempt         time.Time `json:"lastAttempt,omitzero"`
	LastSuccess         time.Time `json:"lastSuccess,omitzero"`
	LastError           string    `json:"lastError,omitempty"`
	LastErrorAt         time.Time `json:"lastErrorAt,omitzero"`
	ConsecutiveFailures int       `json:"consecutiveFailures,omitempty"`
	NextAttempt         time.Time `json:"nextAttempt,omitzero"`
	// Blocked is a batch the server refused as a whole; it stays in the spool.
	Blocked *Blocked `json:"blocked,omitempty"`
	// Rejected are records the server refused for good, kept aside.
	Rejected []RejectedInfo `json:"rejected,omitempty"`
}

// Blocked describes a batch the server refused as a whole.
type Blocked struct {
	FirstSeq uint64    `json:"firstSeq"`
	LastSeq  uint64    `json:"lastSeq"`
	Records  int       `json:"records"`
	Status   int       `json:"status"`
	Code     string    `json:"code"`
	Message  string    `json:"message"`
	Since    time.Time `json:"since"`
}

// RejectedInfo describes a record kept aside (without its data).
type RejectedInfo struct {
	Seq        uint64        `json:"seq"`
	Kind       protocol.Kind `json:"kind"`
	Status     int           `json:"status"`
	Code       string        `json:"code"`
	Message    string        `json:"message"`
	RejectedAt time.Time     `json:"rejectedAt"`
	Attempts   int           `json:"attempts"`
}

// Status returns a copy of the sender's status; safe from any goroutine.
func (s *Sender) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Endpoints = slices.Clone(st.Endpoints)
	st.Rejected = slices.Clone(st.Rejected)
	if st.Blocked != nil {
		b := *st.Blocked
		st.Blocked = &b
	}
	return st
}
