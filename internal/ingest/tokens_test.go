package ingest

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/enrolltoken"
	"github.com/supportstack/supportstack/internal/protocol"
)

// putToken stores a staff-made token's record as the dashboard does and returns the token.
func putToken(t *testing.T, mc *minio.Client, validFor time.Duration, maxUses int, revoked bool) (enrolltoken.Record, string) {
	t.Helper()
	rec, token, err := enrolltoken.New("rollout", "admin", time.Now(), validFor, maxUses)
	require.NoError(t, err)
	if revoked {
		rec.RevokedAt, rec.RevokedBy = time.Now().UTC(), "admin"
	}
	data := mustJSON(t, rec)
	_, err = mc.PutObject(context.Background(), testBucket, enrolltoken.Key(rec.ID), strings.NewReader(string(data)), int64(len(data)), minio.PutObjectOptions{})
	require.NoError(t, err)
	return rec, token
}

// Staff-made tokens enroll new devices until revoked, expired or used up, each refusal with its own code; a
// device they enrolled keeps enrolling again (its key proves it) after its token is revoked; a forged or unknown
// token is refused like a wrong one; the tenant's own token keeps working.
func TestStaffMadeEnrollmentTokens(t *testing.T) {
	site := startSite(t)
	mc := siteClient(t, site)
	h := newHarness(t, testConfig(site))
	device := func() protocol.EnrollRequest {
		return protocol.EnrollRequest{Hostname: "pc", OS: "linux/amd64", AgentVersion: "test"}
	}

	rec, token := putToken(t, mc, time.Hour, 2, false)
	keyA, keyB, keyC := newKey(t), newKey(t), newKey(t)
	a := enrolled(t, h.enrollWithToken(token, device(), keyA))
	// A device enrolling again does not use the token again.
	again := device()
	again.DeviceID = a.DeviceID
	require.Equal(t, a.DeviceID, enrolled(t, h.enrollWithToken(token, again, keyA)).DeviceID)
	enrolled(t, h.enrollWithToken(token, device(), keyB))
	r := h.enrollWithToken(token, device(), keyC)
	require.Equal(t, http.StatusForbidden, r.status, "%s", r.body)
	require.Equal(t, "enrollment_token_used_up", r.errorCode(t))
	uses := 0
	for _, k := range keys(t, site) {
		if strings.HasPrefix(k, enrolltoken.UsesOf(rec.ID)) {
			uses++
		}
	}
	require.Equal(t, 2, uses, "one use per device the token enrolled")

	// Revoked: no new device, but the devices it enrolled enroll again.
	revokedRec := rec
	revokedRec.RevokedAt = time.Now().UTC()
	data := mustJSON(t, revokedRec)
	_, err := mc.PutObject(context.Background(), testBucket, enrolltoken.Key(rec.ID), strings.NewReader(string(data)), int64(len(data)), minio.PutObjectOptions{})
	require.NoError(t, err)
	r = h.enrollWithToken(token, device(), newKey(t))
	require.Equal(t, http.StatusForbidden, r.status)
	require.Equal(t, "enrollment_token_revoked", r.errorCode(t))
	require.Equal(t, a.DeviceID, enrolled(t, h.enrollWithToken(token, again, keyA)).DeviceID, "revoking a token never disconnects a PC")

	_, expired := putToken(t, mc, time.Nanosecond, 0, false)
	r = h.enrollWithToken(expired, device(), newKey(t))
	require.Equal(t, http.StatusForbidden, r.status)
	require.Equal(t, "enrollment_token_expired", r.errorCode(t))

	// Unknown IDs and wrong secrets are one answer: nothing tells them apart.
	_, unlimited := putToken(t, mc, 0, 0, false)
	id, _, _ := enrolltoken.Parse(unlimited)
	for _, bad := range []string{unlimited + "x", "sst_" + id + ".wrong", "sst_aaaaaaaaaaaa.secret", "sst_", "sst_../../x.y", "garbage"} {
		r = h.enrollWithToken(bad, device(), newKey(t))
		require.Equal(t, http.StatusUnauthorized, r.status, "%q: %s", bad, r.body)
		require.Equal(t, "invalid_enrollment_token", r.errorCode(t))
	}
	enrolled(t, h.enrollWithToken(unlimited, device(), newKey(t)))
	enrolled(t, h.enrollWithToken(testEnrollmentToken, device(), newKey(t)))

	// The token's secret is stored nowhere, not even hashed in a log.
	for _, k := range keys(t, site) {
		body, _ := read(t, site, k)
		require.NotContains(t, string(body), strings.TrimPrefix(token, "sst_"+rec.ID+"."), k)
	}
	require.NotContains(t, h.logs.String(), strings.Split(token, ".")[1])
	var stored enrolltoken.Record
	body, _ := read(t, site, enrolltoken.Key(rec.ID))
	require.NoError(t, json.Unmarshal(body, &stored))
	require.Equal(t, rec.Hash, stored.Hash)
}
