package ingest

import (
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

	before := time.Now()
	r := h.do(http.MethodPost, protocol.PathEnroll, testEnrollmentToken,
		mustJSON(t, protocol.EnrollRequest{Hostname: "pc-1", OS: "Windows 11 23H2", AgentVersion: "1.0.0"}), nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Equal(t, "no-store", r.header.Get("Cache-Control"), "a credential must not be cached")
	var enrolled protocol.EnrollResponse
	require.NoError(t, json.Unmarshal(r.body, &enrolled))
	require.True(t, protocol.ValidDeviceID(enrolled.DeviceID))
	require.Equal(t, h.cfg.IngestEndpoints, enrolled.Endpoints)
	require.WithinDuration(t, before.Add(protocol.DefaultCredentialTTL), enrolled.ExpiresAt, time.Minute)
	claims, err := protocol.Signer{Tenant: testTenant, Key: []byte(testSigningKey)}.Verify(enrolled.Credential)
	require.NoError(t, err)
	require.Equal(t, enrolled.DeviceID, claims.DeviceID)

	// The enrollment record was written before the answer.
	raw, ok := read(t, site, protocol.DeviceKey(enrolled.DeviceID))
	require.True(t, ok)
	var dev Device
	require.NoError(t, json.Unmarshal(raw, &dev))
	require.Equal(t, "pc-1", dev.Hostname)
	require.Equal(t, "Windows 11 23H2", dev.OS)
	require.Equal(t, "1.0.0", dev.AgentVersion)
	require.Equal(t, enrolled.DeviceID, dev.DeviceID)
	require.WithinDuration(t, before, dev.EnrolledAt, time.Minute)

	// The credential works for batches.
	r = h.postBatch(enrolled.Credential, protocol.Batch{DeviceID: enrolled.DeviceID, Records: telemetry(1, 3)})
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)

	// Enrolling again with the device ID keeps the identity and the first enrollment time.
	again := h.enroll(protocol.EnrollRequest{DeviceID: enrolled.DeviceID, Hostname: "pc-1-renamed", OS: "Windows 11 24H2", AgentVersion: "1.1.0"})
	require.Equal(t, enrolled.DeviceID, again.DeviceID)
	raw, _ = read(t, site, protocol.DeviceKey(enrolled.DeviceID))
	var dev2 Device
	require.NoError(t, json.Unmarshal(raw, &dev2))
	require.Equal(t, "pc-1-renamed", dev2.Hostname)
	require.Equal(t, "1.1.0", dev2.AgentVersion)
	require.True(t, dev.EnrolledAt.Equal(dev2.EnrolledAt), "re-enrollment keeps enrolledAt")
	require.False(t, dev2.LastEnrolledAt.Before(dev.LastEnrolledAt))
	r = h.postBatch(again.Credential, protocol.Batch{DeviceID: enrolled.DeviceID, Records: telemetry(4, 3)})
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)

	// An ID that is not a device ID gets a new identity.
	other := h.enroll(protocol.EnrollRequest{DeviceID: "../../etc/passwd", Hostname: "pc-2"})
	require.True(t, protocol.ValidDeviceID(other.DeviceID))
	require.NotEqual(t, enrolled.DeviceID, other.DeviceID)
	_, ok = read(t, site, protocol.DeviceKey(other.DeviceID))
	require.True(t, ok)

	require.ElementsMatch(t, []string{
		protocol.DeviceKey(enrolled.DeviceID), protocol.DeviceKey(other.DeviceID),
		protocol.BatchKey(enrolled.DeviceID, baseTime.Add(time.Second), 1, 3),
		protocol.BatchKey(enrolled.DeviceID, baseTime.Add(4*time.Second), 4, 6),
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
