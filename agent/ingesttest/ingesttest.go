// Package ingesttest is an ingest service for the agent's tests: a real HTTP server (httptest) that speaks the
// protocol of internal/protocol — enrollment with a token, credentials signed and verified with
// protocol.Signer, batches read with protocol.DecodeBatch and its limits, the endpoint list — and remembers
// every record it accepted. A hook can make it answer a batch request differently (503, 429, 400, ...). Real is
// the real ingest service over a real MinIO server, for what this stand-in does not do.
package ingesttest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/supportstack/supportstack/internal/protocol"
)

// Reply is what a hook wants the server to answer instead of handling the request.
type Reply struct {
	Status     int
	Code       string
	RetryAfter string
}

// Server is a protocol peer.
type Server struct {
	*httptest.Server
	Token string

	mu        sync.Mutex
	signer    protocol.Signer
	limits    protocol.Limits
	endpoints []string
	rate      int
	// BatchHook, when set, is asked before a decoded batch is accepted; a non-nil Reply is answered instead.
	batchHook  func(n int, b *protocol.Batch) *Reply
	enrollHook func(n int) *Reply

	batchRequests  int
	enrollRequests int
	endpointGets   int
	accepted       map[uint64]protocol.Record
	acceptCount    map[uint64]int
	order          []uint64 // seqs in the order they were first accepted
	batchSizes     []int    // records per accepted batch
	credentials    []string // credential of each accepted batch
	deviceIDs      []string // device ID of each enrollment
}

// New starts a server that takes enrollment token token; it stops with the test.
func New(t testing.TB, token string) *Server {
	s := &Server{
		Token:       token,
		signer:      protocol.Signer{Tenant: "test", Key: []byte("0123456789abcdef0123456789abcdef")},
		limits:      protocol.DefaultLimits,
		accepted:    map[uint64]protocol.Record{},
		acceptCount: map[uint64]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+protocol.PathEnroll, s.enroll)
	mux.HandleFunc("POST "+protocol.PathBatches, s.batches)
	mux.HandleFunc("GET "+protocol.PathEndpoints, s.getEndpoints)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// SetEndpoints sets the endpoint list handed out and the drain rate. nil hands out this server alone; an empty,
// non-nil list hands out none, as an ingest service without configured endpoints does ("keep yours").
func (s *Server) SetEndpoints(eps []string, maxRecordsPerSecond int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endpoints, s.rate = eps, maxRecordsPerSecond
}

// SetLimits sets the batch limits.
func (s *Server) SetLimits(l protocol.Limits) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits = l
}

// SetBatchHook sets the hook asked about every batch request (n counts them from 1).
func (s *Server) SetBatchHook(h func(n int, b *protocol.Batch) *Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batchHook = h
}

// SetEnrollHook sets the hook asked about every enrollment request.
func (s *Server) SetEnrollHook(h func(n int) *Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enrollHook = h
}

// RotateKey changes the signing key: every credential issued so far is refused with 401.
func (s *Server) RotateKey() {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := slices.Clone(s.signer.Key)
	k[0]++
	s.signer.Key = k
}

// SetCredentialTTL sets the lifetime of credentials issued from now on.
func (s *Server) SetCredentialTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signer.TTL = d
}

func (s *Server) endpointList() []string {
	if s.endpoints != nil {
		return slices.Clone(s.endpoints)
	}
	return []string{s.URL}
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func replyErr(w http.ResponseWriter, r *Reply) {
	if r.RetryAfter != "" {
		w.Header().Set("Retry-After", r.RetryAfter)
	}
	code := r.Code
	if code == "" {
		code = strings.ToLower(strings.ReplaceAll(http.StatusText(r.Status), " ", "_"))
	}
	reply(w, r.Status, protocol.Error{Code: code, Message: "test server says " + strconv.Itoa(r.Status)})
}

func bearer(r *http.Request) string {
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enrollRequests++
	if s.enrollHook != nil {
		if rep := s.enrollHook(s.enrollRequests); rep != nil {
			replyErr(w, rep)
			return
		}
	}
	if bearer(r) != s.Token {
		replyErr(w, &Reply{Status: http.StatusUnauthorized, Code: "invalid_token"})
		return
	}
	var req protocol.EnrollRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		replyErr(w, &Reply{Status: http.StatusBadRequest, Code: "malformed_json"})
		return
	}
	id := req.DeviceID
	if !protocol.ValidDeviceID(id) {
		id, _ = protocol.NewDeviceID()
	}
	cred, claims, err := s.signer.Issue(id)
	if err != nil {
		replyErr(w, &Reply{Status: http.StatusInternalServerError})
		return
	}
	s.deviceIDs = append(s.deviceIDs, id)
	reply(w, http.StatusOK, protocol.EnrollResponse{DeviceID: id, Credential: cred, ExpiresAt: time.Unix(claims.ExpiresAt, 0).UTC(), Endpoints: s.endpointList()})
}

func (s *Server) getEndpoints(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endpointGets++
	if _, err := s.signer.Verify(bearer(r)); err != nil {
		replyErr(w, &Reply{Status: http.StatusUnauthorized, Code: "invalid_credential"})
		return
	}
	reply(w, http.StatusOK, protocol.EndpointsResponse{Endpoints: s.endpointList(), MaxRecordsPerSecond: s.rate})
}

func (s *Server) batches(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batchRequests++
	claims, err := s.signer.Verify(bearer(r))
	if err != nil {
		replyErr(w, &Reply{Status: http.StatusUnauthorized, Code: "invalid_credential"})
		return
	}
	b, err := protocol.DecodeBatch(r.Body, r.Header.Get("Content-Encoding"), s.limits)
	if err != nil {
		re := err.(*protocol.RequestError)
		reply(w, re.Status, re.Body())
		return
	}
	if b.DeviceID != claims.DeviceID {
		replyErr(w, &Reply{Status: http.StatusForbidden, Code: "wrong_device"})
		return
	}
	if s.batchHook != nil {
		if rep := s.batchHook(s.batchRequests, b); rep != nil {
			replyErr(w, rep)
			return
		}
	}
	for _, rec := range b.Records {
		if _, dup := s.accepted[rec.Seq]; !dup {
			s.order = append(s.order, rec.Seq)
		}
		s.accepted[rec.Seq] = rec
		s.acceptCount[rec.Seq]++
	}
	s.batchSizes = append(s.batchSizes, len(b.Records))
	s.credentials = append(s.credentials, bearer(r))
	reply(w, http.StatusOK, protocol.Ack{AckedThroughSeq: b.LastSeq()})
}

// Stats is what the server saw.
type Stats struct {
	BatchRequests, EnrollRequests, EndpointGets int
	// Order lists seqs in the order they were first accepted; AcceptCount how often each was accepted.
	Order       []uint64
	AcceptCount map[uint64]int
	BatchSizes  []int
	Credentials []string
	DeviceIDs   []string
}

// Stats returns a copy of what the server saw.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	ac := make(map[uint64]int, len(s.acceptCount))
	for k, v := range s.acceptCount {
		ac[k] = v
	}
	return Stats{
		BatchRequests: s.batchRequests, EnrollRequests: s.enrollRequests, EndpointGets: s.endpointGets,
		Order: slices.Clone(s.order), AcceptCount: ac, BatchSizes: slices.Clone(s.batchSizes),
		Credentials: slices.Clone(s.credentials), DeviceIDs: slices.Clone(s.deviceIDs),
	}
}

// Record returns an accepted record.
func (s *Server) Record(seq uint64) (protocol.Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.accepted[seq]
	return r, ok
}

// Accepted returns how many distinct records were accepted.
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.accepted)
}
