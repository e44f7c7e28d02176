package ingest

import (
	"bytes"
	"context"
	"crypto/ed25519"
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
	// PublicKey is the device's Ed25519 key in wire form; empty for a device enrolled before device keys, until
	// it binds one.
	PublicKey string `json:"publicKey,omitempty"`
	// EnrolledAt is the first enrollment; a re-enrollment keeps it.
	EnrolledAt time.Time `json:"enrolledAt"`
	// LastEnrolledAt is the most recent enrollment.
	LastEnrolledAt time.Time `json:"lastEnrolledAt"`
}

// enroll answers POST /v1/enroll: it checks the tenant's enrollment token, decides which identity the request
// gets (protocol/devicekey.go), writes the device's record durably and only then issues the credential.
func (s *Server) enroll(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	grant, rerr := s.presentedToken(r)
	if rerr != nil {
		s.refuseUnread(w, info, rerr)
		return
	}
	req, rerr := decodeEnroll(r)
	if rerr != nil {
		s.fail(w, info, rerr)
		return
	}
	release, rerr := s.admission.enter(r.Context())
	if rerr != nil {
		s.fail(w, info, rerr)
		return
	}
	defer release()
	token, err := s.tokenRecord(r.Context(), grant)
	if err != nil {
		s.refuseOrUnavailable(w, info, err)
		return
	}
	id, err := s.identify(r.Context(), req)
	if err != nil {
		info.device = req.DeviceID
		s.refuseOrUnavailable(w, info, err)
		return
	}
	info.device = id.deviceID
	if id.prev == nil {
		if err := s.admitNewDevice(r.Context(), token); err != nil {
			s.refuseOrUnavailable(w, info, err)
			return
		}
	}
	if id.reason != "" {
		s.log.Info("Enrolling as a new device", "requestedDeviceId", req.DeviceID, "deviceId", id.deviceID, "reason", id.reason)
	}
	credential, claims, err := s.signer.Issue(id.deviceID)
	if err != nil {
		info.err = err
		s.fail(w, info, &protocol.RequestError{Status: http.StatusInternalServerError, Code: "internal", Message: "cannot issue a credential"})
		return
	}

	now := s.now().UTC()
	dev := Device{DeviceID: id.deviceID, Hostname: req.Hostname, OS: req.OS, AgentVersion: req.AgentVersion,
		PublicKey: req.PublicKey, EnrolledAt: now, LastEnrolledAt: now}
	if id.prev != nil {
		dev.EnrolledAt = id.prev.EnrolledAt
		if id.prev.PublicKey != "" {
			dev.PublicKey = id.prev.PublicKey
		}
	}
	data, err := json.Marshal(dev)
	if err != nil {
		info.err = err
		s.fail(w, info, &protocol.RequestError{Status: http.StatusInternalServerError, Code: "internal", Message: "cannot encode the device record"})
		return
	}
	// Conditional, so that two enrollments racing for one identity cannot both win: a new record is written
	// only where none is, an existing one only as it was read.
	_, _, err = s.pool.Write(r.Context(), protocol.DeviceKey(id.deviceID), data, storagepool.WriteOptions{
		ContentType: "application/json", IfAbsent: id.etag == "", IfMatch: id.etag, Endpoint: id.endpoint})
	if errors.Is(err, storagepool.ErrPrecondition) {
		s.fail(w, info, &protocol.RequestError{Status: http.StatusConflict, Code: "enrollment_conflict",
			Message: "the device's record changed during this enrollment: enroll again", RetryAfter: 1})
		return
	}
	if err != nil {
		s.unavailable(w, info, err)
		return
	}
	s.metrics.bytesStored.WithLabelValues("device").Add(float64(len(data)))
	if id.prev == nil {
		s.recordUse(r.Context(), token, id.deviceID)
	}
	s.ok(w, info, protocol.EnrollResponse{DeviceID: id.deviceID, Credential: credential,
		ExpiresAt: time.Unix(claims.ExpiresAt, 0).UTC(), Endpoints: s.cfg.IngestEndpoints})
}

// identity is the device an enrollment gets.
type identity struct {
	deviceID string
	// prev and etag are the device's record as read; nil and "" for a device that has none yet. endpoint is the
	// storage endpoint that answered the read, where the record is written back to: an ETag is that endpoint's.
	prev     *Device
	etag     string
	endpoint string
	// reason is set when a request that named a device ID gets a new one instead.
	reason string
}

// identify decides which device an enrollment is for:
//
//   - no device ID: a new device;
//   - a device whose record holds a key: that device, once the request proves it holds the key (a signed
//     challenge); without a proof the answer is 401 proof_required with a challenge;
//   - a device enrolled before device keys: that device, binding the request's key, when the request presents
//     the device's latest credential (the one issued at its last enrollment) and proves it holds the key;
//   - a device without a record (expired with the retention period, lost, or not replicated here yet): that
//     device, binding the request's key, when the request presents a credential of the device and proves it
//     holds the key.
//
// An enrollment that names a device ID but proves nothing gets a new device instead: the enrollment token admits
// new devices, never an existing one. An error is a *protocol.RequestError for a refusal and a storage error
// otherwise.
func (s *Server) identify(ctx context.Context, req protocol.EnrollRequest) (identity, error) {
	var key ed25519.PublicKey
	if req.PublicKey != "" {
		var err error
		if key, err = protocol.ParsePublicKey(req.PublicKey); err != nil {
			return identity{}, &protocol.RequestError{Status: http.StatusBadRequest, Code: "invalid_public_key", Message: err.Error()}
		}
	}
	fresh := func(reason string) (identity, error) {
		id, err := protocol.NewDeviceID()
		if err != nil {
			return identity{}, err
		}
		return identity{deviceID: id, reason: reason}, nil
	}
	if req.DeviceID == "" {
		return fresh("")
	}
	if !protocol.ValidDeviceID(req.DeviceID) {
		return fresh("the requested device ID is malformed")
	}
	prev, etag, endpoint, err := s.readDevice(ctx, req.DeviceID)
	// issuedSince says whether the request presents a credential of this device issued at notBefore or later.
	issuedSince := func(notBefore time.Time) bool {
		c, err := s.signer.VerifyIgnoringExpiry(req.Credential)
		return err == nil && c.DeviceID == req.DeviceID && c.IssuedAt >= notBefore.Unix()-1
	}
	switch {
	case errors.Is(err, storagepool.ErrNotFound):
		if key == nil || !issuedSince(time.Time{}) {
			return fresh("no record of the device, and the request does not present its credential and key")
		}
		if err := s.checkProof(req, key); err != nil {
			return identity{}, err
		}
		return identity{deviceID: req.DeviceID, endpoint: endpoint}, nil
	case err != nil:
		return identity{}, err
	case prev.PublicKey == "":
		if key == nil || !issuedSince(prev.LastEnrolledAt) {
			return fresh("the device has no key yet, and the request does not present its latest credential and a key")
		}
		if err := s.checkProof(req, key); err != nil {
			return identity{}, err
		}
		return identity{deviceID: req.DeviceID, prev: &prev, etag: etag, endpoint: endpoint}, nil
	}
	stored, err := protocol.ParsePublicKey(prev.PublicKey)
	if err != nil {
		return identity{}, fmt.Errorf("device record of %s holds an unreadable key", req.DeviceID)
	}
	if key != nil && !key.Equal(stored) {
		return identity{}, &protocol.RequestError{Status: http.StatusForbidden, Code: "device_key_mismatch",
			Message: "the device is bound to another key: enroll as a new device"}
	}
	if err := s.checkProof(req, stored); err != nil {
		return identity{}, err
	}
	return identity{deviceID: req.DeviceID, prev: &prev, etag: etag, endpoint: endpoint}, nil
}

// checkProof verifies the request's answer to a challenge, and asks for one when there is none.
func (s *Server) checkProof(req protocol.EnrollRequest, key ed25519.PublicKey) error {
	if req.Challenge == "" || req.Signature == "" {
		challenge, err := s.signer.IssueChallenge(req.DeviceID)
		if err != nil {
			return err
		}
		return &protocol.RequestError{Status: http.StatusUnauthorized, Code: "proof_required", Challenge: challenge,
			Message: "sign the challenge with the device's key to enroll as this device"}
	}
	err := s.signer.VerifyProof(req.DeviceID, key, req.Challenge, req.Signature)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, protocol.ErrExpiredChallenge):
		challenge, cerr := s.signer.IssueChallenge(req.DeviceID)
		if cerr != nil {
			return cerr
		}
		return &protocol.RequestError{Status: http.StatusUnauthorized, Code: "proof_required", Challenge: challenge,
			Message: "the challenge expired: sign this one"}
	}
	return &protocol.RequestError{Status: http.StatusUnauthorized, Code: "invalid_proof", Message: err.Error()}
}

// readDevice reads a device's enrollment record, its ETag and the endpoint that answered; a missing one is
// storagepool.ErrNotFound.
func (s *Server) readDevice(ctx context.Context, id string) (Device, string, string, error) {
	var d Device
	obj, err := s.pool.Read(ctx, protocol.DeviceKey(id), maxEnrollBytes)
	if err != nil {
		return d, "", obj.Endpoint, err
	}
	if err := json.Unmarshal(obj.Data, &d); err != nil || d.EnrolledAt.IsZero() {
		return d, "", obj.Endpoint, fmt.Errorf("device record of %s is unreadable", id)
	}
	return d, obj.ETag, obj.Endpoint, nil
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
		return req, protocol.ReadError(err)
	}
	if len(raw) > maxEnrollBytes {
		return req, &protocol.RequestError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
			Message: fmt.Sprintf("enrollment body exceeds %d bytes", maxEnrollBytes)}
	}
	if err := protocol.StrictJSON(raw); err != nil {
		var re *protocol.RequestError
		errors.As(err, &re)
		return req, re
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

// refuseOrUnavailable answers an enrollment check's error: a refusal (*protocol.RequestError) as it says, anything
// else as the storage being unavailable.
func (s *Server) refuseOrUnavailable(w http.ResponseWriter, info *requestInfo, err error) {
	var re *protocol.RequestError
	if errors.As(err, &re) {
		s.fail(w, info, re)
		return
	}
	s.unavailable(w, info, err)
}
