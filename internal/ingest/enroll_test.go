package ingest

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/protocol"
)

func TestEnrollAndReenroll(t *testing.T) {
	site := startSite(t)
	h := newHarness(t, testConfig(site))
	key := newKey(t)

	before := time.Now()
	r := h.enrollWithKey(protocol.EnrollRequest{Hostname: "pc-1", OS: "Windows 11 23H2", AgentVersion: "1.0.0"}, key)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Equal(t, "no-store", r.header.Get("Cache-Control"), "a credential must not be cached")
	var first protocol.EnrollResponse
	require.NoError(t, json.Unmarshal(r.body, &first))
	require.True(t, protocol.ValidDeviceID(first.DeviceID))
	require.Equal(t, h.cfg.IngestEndpoints, first.Endpoints)
	require.WithinDuration(t, before.Add(protocol.DefaultCredentialTTL), first.ExpiresAt, time.Minute)
	claims, err := protocol.Signer{Tenant: testTenant, Key: []byte(testSigningKey)}.Verify(first.Credential)
	require.NoError(t, err)
	require.Equal(t, first.DeviceID, claims.DeviceID)

	// The enrollment record, with the device's key, was written before the answer.
	raw, ok := read(t, site, protocol.DeviceKey(first.DeviceID))
	require.True(t, ok)
	var dev Device
	require.NoError(t, json.Unmarshal(raw, &dev))
	require.Equal(t, "pc-1", dev.Hostname)
	require.Equal(t, "Windows 11 23H2", dev.OS)
	require.Equal(t, "1.0.0", dev.AgentVersion)
	require.Equal(t, first.DeviceID, dev.DeviceID)
	require.Equal(t, protocol.EncodeKey(key.Public().(ed25519.PublicKey)), dev.PublicKey)
	require.WithinDuration(t, before, dev.EnrolledAt, time.Minute)

	// The credential works for batches.
	r = h.postBatch(first.Credential, protocol.Batch{DeviceID: first.DeviceID, Records: telemetry(1, 3)})
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)

	// Enrolling again with the device ID, proving the key, keeps the identity and the first enrollment time.
	again := enrolled(t, h.enrollWithKey(protocol.EnrollRequest{DeviceID: first.DeviceID, Hostname: "pc-1-renamed",
		OS: "Windows 11 24H2", AgentVersion: "1.1.0"}, key))
	require.Equal(t, first.DeviceID, again.DeviceID)
	raw, _ = read(t, site, protocol.DeviceKey(first.DeviceID))
	var dev2 Device
	require.NoError(t, json.Unmarshal(raw, &dev2))
	require.Equal(t, "pc-1-renamed", dev2.Hostname)
	require.Equal(t, "1.1.0", dev2.AgentVersion)
	require.Equal(t, dev.PublicKey, dev2.PublicKey)
	require.True(t, dev.EnrolledAt.Equal(dev2.EnrolledAt), "re-enrollment keeps enrolledAt")
	require.False(t, dev2.LastEnrolledAt.Before(dev.LastEnrolledAt))
	r = h.postBatch(again.Credential, protocol.Batch{DeviceID: first.DeviceID, Records: telemetry(4, 3)})
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)

	// An ID that is not a device ID gets a new identity.
	other := h.enroll(protocol.EnrollRequest{DeviceID: "../../etc/passwd", Hostname: "pc-2"})
	require.True(t, protocol.ValidDeviceID(other.DeviceID))
	require.NotEqual(t, first.DeviceID, other.DeviceID)
	_, ok = read(t, site, protocol.DeviceKey(other.DeviceID))
	require.True(t, ok)

	require.ElementsMatch(t, []string{
		protocol.DeviceKey(first.DeviceID), protocol.DeviceKey(other.DeviceID), protocol.LedgerKey(first.DeviceID),
		protocol.BatchKey(first.DeviceID, baseTime.Add(time.Second), 1, 3),
		protocol.BatchKey(first.DeviceID, baseTime.Add(4*time.Second), 4, 6),
	}, keys(t, site))
}

func TestEndpoints(t *testing.T) {
	site := startSite(t)
	h := newHarness(t, testConfig(site))
	dev := h.enroll(protocol.EnrollRequest{Hostname: "pc-1"})

	r := h.do(http.MethodGet, protocol.PathEndpoints, dev.Credential, nil, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	var got protocol.EndpointsResponse
	require.NoError(t, json.Unmarshal(r.body, &got))
	require.Equal(t, protocol.EndpointsResponse{Endpoints: h.cfg.IngestEndpoints, MaxRecordsPerSecond: DefaultDrainRecordsPerSecond}, got)

	r = h.do(http.MethodGet, protocol.PathEndpoints, "", nil, nil)
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Equal(t, "missing_credential", r.errorCode(t))

	// Without configured endpoints the list is empty, not null: the agent keeps the endpoints it has.
	cfg := testConfig(site)
	cfg.IngestEndpoints = nil
	h2 := newHarness(t, cfg)
	r = h2.do(http.MethodGet, protocol.PathEndpoints, dev.Credential, nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, fmt.Sprintf(`{"endpoints":[],"maxRecordsPerSecond":%d}`, cfg.DrainRecordsPerSecond), string(r.body))
}
