package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/supportstack/supportstack/internal/protocol"
	"github.com/supportstack/supportstack/internal/storagepool"
)

// maxEnrollBytes bounds an enrollment request body.
const maxEnrollBytes = 16 << 10

// Bounds of the enrollment fields.
const (
	maxHostnameBytes     = 255
	maxOSBytes           = 256
	maxAgentVersionBytes = 128
)

// Device is the enrollment record at protocol.DeviceKey.
type Device struct {
	DeviceID     string `json:"deviceId"`
	Hostname     string `json:"hostname"`
	OS           string `json:"os"`
	AgentVersion string `json:"agentVersion"`
	// EnrolledAt is the first enrollment; a re-enrollment keeps it.
	EnrolledAt time.Time `json:"enrolledAt"`
	// LastEnrolledAt is the most recent enrollment.
	LastEnrolledAt time.Time `json:"lastEnrolledAt"`
}

// enroll answers POST /v1/enroll: it checks the tenant's enrollment token, writes the device's record durably
// and only then issues the credential.
func (s *Server) enroll(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	if !s.enrollmentTokenOK(r) {
		s.fail(w, info, &protocol.RequestError{Status: http.StatusUnauthorized, Code: "invalid_enrollment_token",
			Message: "Authorization: Bearer <the tenant's enrollment token> is required"})
		return
	}
	req, rerr := decodeEnroll(r)
	if rerr != nil {
		s.fail(w, info, rerr)
		return
	}

	// A valid deviceId is a re-enrollment that keeps the device's identity (and so its seq); anything else gets
	// a new identity.
	id := req.DeviceID
	if !protocol.ValidDeviceID(id) {
		var err error
		if id, err = protocol.NewDeviceID(); err != nil {
			info.err = err
			s.fail(w, info, &protocol.RequestError{Status: http.StatusInternalServerError, Code: "internal", Message: "cannot create a device ID"})
			return
		}
	}
	info.device = id
	credential, claims, err := s.signer.Issue(id)
	if err != nil {
		info.err = err
		s.fail(w, info, &protocol.RequestError{Status: http.StatusInternalServerError, Code: "internal", Message: "cannot issue a credential"})
		return
	}

	now := s.now().UTC()
	dev := Device{DeviceID: id, Hostname: req.Hostname, OS: req.OS, AgentVersion: req.AgentVersion, EnrolledAt: now, LastEnrolledAt: now}
	if id == req.DeviceID {
		prev, err := s.readDevice(r, id)
		switch {
		case errors.Is(err, storagepool.ErrUnavailable):
			s.unavailable(w, info, err)
			return
		case err == nil:
			dev.EnrolledAt = prev.EnrolledAt
		}
	}
	data, err := json.Marshal(dev)
	if err != nil {
		info.err = err
		s.fail(w, info, &protocol.RequestError{Status: http.StatusInternalServerError, Code: "internal", Message: "cannot encode the device record"})
		return
	}
	if err := s.put(r.Context(), object{key: protocol.DeviceKey(id), data: data, contentType: "application/json", kind: "device"}); err != nil {
		s.unavailable(w, info, err)
		return
	}
	s.ok(w, info, protocol.EnrollResponse{DeviceID: id, Credential: credential,
		ExpiresAt: time.Unix(claims.ExpiresAt, 0).UTC(), Endpoints: s.cfg.IngestEndpoints})
}

// readDevice reads a device's enrollment record; a missing or unreadable one is an error other than
// storagepool.ErrUnavailable.
func (s *Server) readDevice(r *http.Request, id string) (Device, error) {
	var d Device
	data, err := s.pool.Get(r.Context(), protocol.DeviceKey(id), maxEnrollBytes)
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return d, fmt.Errorf("decode device record: %w", err)
	}
	if d.EnrolledAt.IsZero() {
		return d, errors.New("device record has no enrollment time")
	}
	return d, nil
}

// decodeEnroll reads an enrollment body strictly: bounded, uncompressed, one JSON object without unknown
// fields, with bounded printable fields.
func decodeEnroll(r *http.Request) (protocol.EnrollRequest, *protocol.RequestError) {
	var req protocol.EnrollRequest
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	default:
		return req, &protocol.RequestError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_encoding",
			Message: "an enrollment body is sent uncompressed"}
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxEnrollBytes+1))
	if err != nil {
		return req, &protocol.RequestError{Status: http.StatusBadRequest, Code: "unreadable_body", Message: "read body: " + err.Error()}
	}
	if len(raw) > maxEnrollBytes {
		return req, &protocol.RequestError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
			Message: fmt.Sprintf("enrollment body exceeds %d bytes", maxEnrollBytes)}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, &protocol.RequestError{Status: http.StatusBadRequest, Code: "malformed_json", Message: "decode enrollment: " + err.Error()}
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, &protocol.RequestError{Status: http.StatusBadRequest, Code: "malformed_json", Message: "trailing data after the enrollment"}
	}
	for _, f := range []struct {
		name, value string
		max         int
	}{{"hostname", req.Hostname, maxHostnameBytes}, {"os", req.OS, maxOSBytes}, {"agentVersion", req.AgentVersion, maxAgentVersionBytes}} {
		if len(f.value) > f.max || !printable(f.value) {
			return req, &protocol.RequestError{Status: http.StatusBadRequest, Code: "invalid_enrollment",
				Message: fmt.Sprintf("%s must be printable UTF-8 of at most %d bytes", f.name, f.max)}
		}
	}
	return req, nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
