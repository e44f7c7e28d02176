package ingest

import (
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/protocol"
)

// The enrollment token sits on every PC of a tenant. With it and another device's ID, nobody gets that device's
// credential: every way of asking is refused, the victim's record is unchanged, and its answers stay its own.
func TestIdentityCannotBeTakenOver(t *testing.T) {
	site := startSite(t)
	h := newHarness(t, testConfig(site))
	victimKey := newKey(t)
	victim := enrolled(t, h.enrollWithKey(protocol.EnrollRequest{Hostname: "victim"}, victimKey))
	record := mustRead(t, site, protocol.DeviceKey(victim.DeviceID))
	baseline := objects(t, site)

	attackerKey := newKey(t)
	attackerPub := protocol.EncodeKey(attackerKey.Public().(ed25519.PublicKey))
	challenge := func() string {
		r := h.do(http.MethodPost, protocol.PathEnroll, testEnrollmentToken,
			mustJSON(t, protocol.EnrollRequest{DeviceID: victim.DeviceID, Hostname: "x"}), nil)
		require.Equal(t, http.StatusUnauthorized, r.status, "%s", r.body)
		var e protocol.Error
		require.NoError(t, json.Unmarshal(r.body, &e))
		return e.Challenge
	}
	other := enrolled(t, h.enrollWithKey(protocol.EnrollRequest{Hostname: "other"}, attackerKey))
	baseline[protocol.DeviceKey(other.DeviceID)] = 1
	otherDevicesChallenge := func() string {
		r := h.do(http.MethodPost, protocol.PathEnroll, testEnrollmentToken,
			mustJSON(t, protocol.EnrollRequest{DeviceID: other.DeviceID, Hostname: "x"}), nil)
		var e protocol.Error
		require.NoError(t, json.Unmarshal(r.body, &e))
		return e.Challenge
	}()
	victimCredential := victim.Credential
	c := challenge()
	expired, err := protocol.Signer{Tenant: testTenant, Key: []byte(testSigningKey),
		Now: func() time.Time { return time.Now().Add(-time.Hour) }}.IssueChallenge(victim.DeviceID)
	require.NoError(t, err)

	tests := map[string]struct {
		req    protocol.EnrollRequest
		status int
		code   string
	}{
		"the ID alone": {protocol.EnrollRequest{DeviceID: victim.DeviceID}, 401, "proof_required"},
		"the ID and the attacker's key": {protocol.EnrollRequest{DeviceID: victim.DeviceID, PublicKey: attackerPub,
			Challenge: c, Signature: protocol.SignProof(attackerKey, victim.DeviceID, c)}, 403, "device_key_mismatch"},
		"a signature by another key, no key named": {protocol.EnrollRequest{DeviceID: victim.DeviceID,
			Challenge: c, Signature: protocol.SignProof(attackerKey, victim.DeviceID, c)}, 401, "invalid_proof"},
		"a garbage signature": {protocol.EnrollRequest{DeviceID: victim.DeviceID, Challenge: c, Signature: "AAAA"}, 401, "invalid_proof"},
		"another device's challenge, signed by the attacker": {protocol.EnrollRequest{DeviceID: victim.DeviceID,
			Challenge: otherDevicesChallenge, Signature: protocol.SignProof(attackerKey, victim.DeviceID, otherDevicesChallenge)}, 401, "invalid_proof"},
		"a forged challenge": {protocol.EnrollRequest{DeviceID: victim.DeviceID, Challenge: "sc1.e30.AAAA",
			Signature: protocol.SignProof(attackerKey, victim.DeviceID, "sc1.e30.AAAA")}, 401, "invalid_proof"},
		"the victim's own credential as proof": {protocol.EnrollRequest{DeviceID: victim.DeviceID, PublicKey: attackerPub,
			Credential: victimCredential}, 403, "device_key_mismatch"},
		"an expired challenge": {protocol.EnrollRequest{DeviceID: victim.DeviceID, Challenge: expired,
			Signature: protocol.SignProof(attackerKey, victim.DeviceID, expired)}, 401, "proof_required"},
		"a malformed key": {protocol.EnrollRequest{DeviceID: victim.DeviceID, PublicKey: "not-a-key"}, 400, "invalid_public_key"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tc.req.Hostname = "attacker"
			r := h.do(http.MethodPost, protocol.PathEnroll, testEnrollmentToken, mustJSON(t, tc.req), nil)
			require.Equal(t, tc.status, r.status, "%s", r.body)
			require.Equal(t, tc.code, r.errorCode(t))
			require.NotContains(t, string(r.body), "st1.", "no credential in a refusal")
			require.Equal(t, baseline, objects(t, site))
			require.Equal(t, record, mustRead(t, site, protocol.DeviceKey(victim.DeviceID)))
		})
	}

	// The victim itself still enrolls again.
	again := enrolled(t, h.enrollWithKey(protocol.EnrollRequest{DeviceID: victim.DeviceID, Hostname: "victim"}, victimKey))
	require.Equal(t, victim.DeviceID, again.DeviceID)
}

// Devices enrolled before device keys existed have no key in their record. An old agent enrolling again by ID
// proves nothing, so it gets a new identity (and keeps working under it); an upgraded agent binds its first key
// by presenting its last credential, keeps its ID, and from then on the key is required.
func TestDevicesFromBeforeKeys(t *testing.T) {
	site := startSite(t)
	h := newHarness(t, testConfig(site))
	legacy := h.enroll(protocol.EnrollRequest{Hostname: "old-agent"}) // no key: an agent from before keys
	raw := mustRead(t, site, protocol.DeviceKey(legacy.DeviceID))
	var dev Device
	require.NoError(t, json.Unmarshal(raw, &dev))
	require.Empty(t, dev.PublicKey)
	require.Equal(t, http.StatusOK, h.postBatch(legacy.Credential, protocol.Batch{DeviceID: legacy.DeviceID, Records: telemetry(1, 2)}).status,
		"an enrolled device keeps working with its credential")

	// Anyone naming the ID without the device's credential gets a new identity, never the old one.
	attackerKey := newKey(t)
	forged := legacy.Credential[:len(legacy.Credential)-3] + "AAA"
	for name, tc := range map[string]struct {
		req     protocol.EnrollRequest
		withKey bool
	}{
		"old agent or attacker, ID only": {protocol.EnrollRequest{DeviceID: legacy.DeviceID, Hostname: "x"}, false},
		"a key but no credential":        {protocol.EnrollRequest{DeviceID: legacy.DeviceID, Hostname: "x"}, true},
		"a key and a forged credential":  {protocol.EnrollRequest{DeviceID: legacy.DeviceID, Hostname: "x", Credential: forged}, true},
	} {
		var got protocol.EnrollResponse
		if tc.withKey {
			got = enrolled(t, h.enrollWithKey(tc.req, attackerKey))
		} else {
			got = h.enroll(tc.req)
		}
		require.NotEqual(t, legacy.DeviceID, got.DeviceID, name)
		require.True(t, protocol.ValidDeviceID(got.DeviceID), name)
	}
	require.Equal(t, raw, mustRead(t, site, protocol.DeviceKey(legacy.DeviceID)), "the old record is untouched")

	// The upgraded agent: its key and its last credential (expired or not) bind the key to its ID.
	key := newKey(t)
	bound := enrolled(t, h.enrollWithKey(protocol.EnrollRequest{DeviceID: legacy.DeviceID, Hostname: "old-agent",
		Credential: legacy.Credential}, key))
	require.Equal(t, legacy.DeviceID, bound.DeviceID)
	require.NoError(t, json.Unmarshal(mustRead(t, site, protocol.DeviceKey(legacy.DeviceID)), &dev))
	require.Equal(t, protocol.EncodeKey(key.Public().(ed25519.PublicKey)), dev.PublicKey)
	require.Equal(t, http.StatusOK, h.postBatch(bound.Credential, protocol.Batch{DeviceID: legacy.DeviceID, Records: telemetry(3, 2)}).status)

	// From now on the old credential binds nothing: the key is required.
	r := h.enrollWithKey(protocol.EnrollRequest{DeviceID: legacy.DeviceID, Hostname: "x", Credential: legacy.Credential}, attackerKey)
	require.Equal(t, http.StatusForbidden, r.status, "%s", r.body)
	require.Equal(t, "device_key_mismatch", r.errorCode(t))
}

// A device whose record is gone (expired with the retention period, lost, or not replicated to this cluster yet)
// keeps its ID when it presents a credential of that ID and proves it holds the key it names. Without the
// credential, naming the ID gets a new identity: the token and an ID are not enough.
func TestDeviceWithoutARecordKeepsItsIDWithItsCredential(t *testing.T) {
	site := startSite(t)
	h := newHarness(t, testConfig(site))
	id, err := protocol.NewDeviceID()
	require.NoError(t, err)
	key := newKey(t)

	stranger := enrolled(t, h.enrollWithKey(protocol.EnrollRequest{DeviceID: id, Hostname: "pc"}, key))
	require.NotEqual(t, id, stranger.DeviceID, "an ID alone, even with a key, binds nothing")

	cred, _, err := protocol.Signer{Tenant: testTenant, Key: []byte(testSigningKey), TTL: time.Hour,
		Now: func() time.Time { return time.Now().Add(-24 * time.Hour) }}.Issue(id) // expired long ago
	require.NoError(t, err)
	got := enrolled(t, h.enrollWithKey(protocol.EnrollRequest{DeviceID: id, Hostname: "pc", Credential: cred}, key))
	require.Equal(t, id, got.DeviceID)
	var dev Device
	require.NoError(t, json.Unmarshal(mustRead(t, site, protocol.DeviceKey(id)), &dev))
	require.Equal(t, protocol.EncodeKey(key.Public().(ed25519.PublicKey)), dev.PublicKey)
}

// Binding a key to a device from before keys takes its latest credential, the one issued at its last enrollment:
// an older one (an old disk image, a log) binds nothing.
func TestOnlyTheLatestCredentialBindsAKey(t *testing.T) {
	site := startSite(t)
	h := newHarness(t, testConfig(site))
	legacy := h.enroll(protocol.EnrollRequest{Hostname: "old-agent"})
	older, _, err := protocol.Signer{Tenant: testTenant, Key: []byte(testSigningKey),
		Now: func() time.Time { return time.Now().Add(-30 * 24 * time.Hour) }}.Issue(legacy.DeviceID)
	require.NoError(t, err)
	got := enrolled(t, h.enrollWithKey(protocol.EnrollRequest{DeviceID: legacy.DeviceID, Hostname: "x", Credential: older}, newKey(t)))
	require.NotEqual(t, legacy.DeviceID, got.DeviceID)
	var dev Device
	require.NoError(t, json.Unmarshal(mustRead(t, site, protocol.DeviceKey(legacy.DeviceID)), &dev))
	require.Empty(t, dev.PublicKey, "no key was bound")
}
