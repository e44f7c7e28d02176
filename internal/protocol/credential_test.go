package protocol

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCredentials(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	acme := Signer{Tenant: "acme", Key: []byte("acme-signing-key-0123456789"), TTL: time.Hour, Now: clock}
	globex := Signer{Tenant: "globex", Key: []byte("globex-signing-key-0123456789"), TTL: time.Hour, Now: clock}
	id, err := NewDeviceID()
	require.NoError(t, err)
	cred, claims, err := acme.Issue(id)
	require.NoError(t, err)
	require.Equal(t, Claims{Tenant: "acme", DeviceID: id, IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix()}, claims)

	got, err := acme.Verify(cred)
	require.NoError(t, err)
	require.Equal(t, claims, got)

	// Another replica with the same key verifies without shared state.
	replica := Signer{Tenant: "acme", Key: []byte("acme-signing-key-0123456789"), Now: clock}
	_, err = replica.Verify(cred)
	require.NoError(t, err)

	globexCred, _, err := globex.Issue(id)
	require.NoError(t, err)
	// A credential forged with another tenant's claims but acme's key: the tenant check catches it.
	forged, _, err := Signer{Tenant: "globex", Key: acme.Key, Now: clock}.Issue(id)
	require.NoError(t, err)
	expired, _, err := Signer{Tenant: "acme", Key: acme.Key, TTL: time.Minute, Now: func() time.Time { return now.Add(-2 * time.Minute) }}.Issue(id)
	require.NoError(t, err)
	dot := strings.LastIndexByte(cred, '.')
	tampered := cred[:dot-2] + "AA" + cred[dot:]

	tests := map[string]struct {
		cred string
		want error
	}{
		"other tenant's credential": {globexCred, ErrBadSignature},
		"other tenant's claims":     {forged, ErrWrongTenant},
		"expired":                   {expired, ErrExpiredCredential},
		"tampered claims":           {tampered, ErrBadSignature},
		"empty":                     {"", ErrMalformedCredential},
		"no prefix":                 {strings.TrimPrefix(cred, "st1."), ErrMalformedCredential},
		"no signature":              {cred[:dot], ErrMalformedCredential},
		"garbage signature":         {cred[:dot] + ".!!!", ErrMalformedCredential},
		"huge":                      {"st1." + strings.Repeat("a", 2000), ErrMalformedCredential},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := acme.Verify(tc.cred)
			require.True(t, errors.Is(err, tc.want), "got %v, want %v", err, tc.want)
		})
	}
}

func TestWeakKeysAreRefused(t *testing.T) {
	weak := Signer{Tenant: "acme", Key: []byte("short")}
	_, _, err := weak.Issue("0123456789abcdef0123456789abcdef")
	require.ErrorIs(t, err, ErrWeakKey)
	_, err = weak.Verify("st1.e30.AAAA")
	require.ErrorIs(t, err, ErrWeakKey)
	_, err = Signer{Tenant: "acme"}.Verify("st1.e30.AAAA")
	require.ErrorIs(t, err, ErrWeakKey, "an empty key must never verify anything")
}

func TestDeviceIDs(t *testing.T) {
	a, err := NewDeviceID()
	require.NoError(t, err)
	b, err := NewDeviceID()
	require.NoError(t, err)
	require.NotEqual(t, a, b)
	require.True(t, ValidDeviceID(a))
	for _, bad := range []string{"", "../../etc", strings.ToUpper(a), a + "0", a[:31]} {
		require.False(t, ValidDeviceID(bad), bad)
	}
}
