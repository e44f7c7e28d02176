package ingest

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/supportstack/supportstack/internal/enrolltoken"
	"github.com/supportstack/supportstack/internal/protocol"
	"github.com/supportstack/supportstack/internal/storagepool"
)

// Enrollment tokens: the tenant's own (ENROLLMENT_TOKEN, from its Secret) and the ones staff make in the
// dashboard (internal/enrolltoken), whose records are in the bucket.

// maxTokenRecordBytes bounds a token's record as read.
const maxTokenRecordBytes = 16 << 10

// tokenGrant is the token an enrollment presented.
type tokenGrant struct {
	// id is the staff-made token's ID, empty for the tenant's own token.
	id string
	// secret is a staff-made token's secret, to be checked against its record.
	secret string
}

var errInvalidToken = &protocol.RequestError{Status: http.StatusUnauthorized, Code: "invalid_enrollment_token",
	Message: "Authorization: Bearer <an enrollment token of this workspace> is required"}

// presentedToken recognises the request's token without touching storage: the tenant's own (compared in
// constant time, hashes first so that not even the length leaks) or one shaped like a staff-made token, whose
// record is read later, under admission control.
func (s *Server) presentedToken(r *http.Request) (tokenGrant, *protocol.RequestError) {
	token, ok := bearer(r)
	if !ok {
		return tokenGrant{}, errInvalidToken
	}
	got := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) == 1 {
		return tokenGrant{}, nil
	}
	id, secret, ok := enrolltoken.Parse(token)
	if !ok {
		return tokenGrant{}, errInvalidToken
	}
	return tokenGrant{id: id, secret: secret}, nil
}

// tokenRecord reads and checks a staff-made token's record; nil for the tenant's own token. A refusal is a
// *protocol.RequestError, anything else a storage failure.
func (s *Server) tokenRecord(ctx context.Context, g tokenGrant) (*enrolltoken.Record, error) {
	if g.id == "" {
		return nil, nil
	}
	data, err := s.pool.Get(ctx, enrolltoken.Key(g.id), maxTokenRecordBytes)
	switch {
	case errors.Is(err, storagepool.ErrNotFound), errors.Is(err, storagepool.ErrTooLarge):
		return nil, errInvalidToken
	case err != nil:
		return nil, err
	}
	var rec enrolltoken.Record
	if json.Unmarshal(data, &rec) != nil || rec.ID != g.id || !rec.Matches(g.secret) {
		return nil, errInvalidToken
	}
	return &rec, nil
}

// admitNewDevice checks that a staff-made token may enroll one more device (a device that proved its identity
// needs no admission: revoking a token never disconnects a PC). A refusal is a *protocol.RequestError.
func (s *Server) admitNewDevice(ctx context.Context, rec *enrolltoken.Record) error {
	if rec == nil {
		return nil
	}
	uses := 0
	if rec.MaxUses > 0 {
		keys, err := s.pool.List(ctx, storagepool.ListOptions{Prefix: enrolltoken.UsesOf(rec.ID), Recursive: true, Limit: rec.MaxUses})
		if err != nil {
			return err
		}
		uses = len(keys)
	}
	err := rec.Admits(s.now(), uses)
	if err == nil {
		return nil
	}
	code := "enrollment_token_used_up"
	switch {
	case errors.Is(err, enrolltoken.ErrRevoked):
		code = "enrollment_token_revoked"
	case errors.Is(err, enrolltoken.ErrExpired):
		code = "enrollment_token_expired"
	}
	return &protocol.RequestError{Status: http.StatusForbidden, Code: code,
		Message: err.Error() + ": devices it enrolled keep reporting; a new PC needs another token"}
}

// recordUse notes that the token enrolled the device. Two enrollments at once may both pass admission: a use
// limit can be exceeded by the enrollments racing for its last use.
func (s *Server) recordUse(ctx context.Context, rec *enrolltoken.Record, deviceID string) {
	if rec == nil {
		return
	}
	_, _, err := s.pool.Write(ctx, enrolltoken.UseKey(rec.ID, deviceID), []byte("{}"),
		storagepool.WriteOptions{ContentType: "application/json", IfAbsent: true})
	if err != nil && !errors.Is(err, storagepool.ErrPrecondition) {
		s.log.Warn("Could not record an enrollment token's use", "token", rec.ID, "deviceId", deviceID, "error", err)
	}
}
