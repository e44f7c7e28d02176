package protocol

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDeviceProof(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	acme := Signer{Tenant: "acme", Key: []byte("acme-signing-key-0123456789"), Now: func() time.Time { return now }}
	globex := Signer{Tenant: "globex", Key: []byte("globex-signing-key-0123456789"), Now: acme.Now}
	key, err := NewDeviceKey()
	require.NoError(t, err)
	pub := key.Public().(ed25519.PublicKey)
	other, err := NewDeviceKey()
	require.NoError(t, err)
	const dev, dev2 = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"

	c, err := acme.IssueChallenge(dev)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(c, "sc1."))
	require.NoError(t, acme.VerifyProof(dev, pub, c, SignProof(key, dev, c)))

	c2, err := acme.IssueChallenge(dev2)
	require.NoError(t, err)
	foreign, err := globex.IssueChallenge(dev)
	require.NoError(t, err)
	cred, _, err := acme.Issue(dev)
	require.NoError(t, err)
	later := Signer{Tenant: "acme", Key: acme.Key, Now: func() time.Time { return now.Add(ChallengeTTL) }}

	tests := map[string]struct {
		s         Signer
		device    string
		challenge string
		sig       string
		want      error
	}{
		"signed by another key":         {acme, dev, c, SignProof(other, dev, c), ErrBadProof},
		"signed for another device":     {acme, dev, c, SignProof(key, dev2, c), ErrBadProof},
		"another device's challenge":    {acme, dev, c2, SignProof(key, dev, c2), ErrBadChallenge},
		"another tenant's challenge":    {acme, dev, foreign, SignProof(key, dev, foreign), ErrBadChallenge},
		"a credential as the challenge": {acme, dev, cred, SignProof(key, dev, cred), ErrBadChallenge},
		"expired":                       {later, dev, c, SignProof(key, dev, c), ErrExpiredChallenge},
		"garbage signature":             {acme, dev, c, "!!", ErrBadProof},
		"empty signature":               {acme, dev, c, "", ErrBadProof},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.s.VerifyProof(tc.device, pub, tc.challenge, tc.sig)
			require.True(t, errors.Is(err, tc.want), "got %v, want %v", err, tc.want)
		})
	}

	// A challenge cannot pass for a credential either.
	_, err = acme.Verify(c)
	require.ErrorIs(t, err, ErrMalformedCredential)
}

func TestKeyEncoding(t *testing.T) {
	key, err := NewDeviceKey()
	require.NoError(t, err)
	pub := key.Public().(ed25519.PublicKey)
	got, err := ParsePublicKey(EncodeKey(pub))
	require.NoError(t, err)
	require.True(t, pub.Equal(got))
	priv, err := ParsePrivateKey(EncodeKey(key.Seed()))
	require.NoError(t, err)
	require.True(t, key.Equal(priv))
	for _, bad := range []string{"", "AAAA", EncodeKey(pub) + "A", EncodeKey(pub[:31])} {
		_, err := ParsePublicKey(bad)
		require.ErrorIs(t, err, ErrBadPublicKey, bad)
	}
}

// A line break inside a base64 field would be skipped by the decoder and give the value a second spelling.
func TestLineBreaksDoNotSpellAValueTwice(t *testing.T) {
	acme := Signer{Tenant: "acme", Key: []byte("acme-signing-key-0123456789")}
	cred, _, err := acme.Issue("0123456789abcdef0123456789abcdef")
	require.NoError(t, err)
	dot := strings.LastIndexByte(cred, '.')
	_, err = acme.Verify(cred[:dot+5] + "\n" + cred[dot+5:])
	require.ErrorIs(t, err, ErrMalformedCredential, "a line break in the signature")
	_, err = acme.Verify(cred[:10] + "\r" + cred[10:])
	require.Error(t, err, "a line break in the claims")
	key, err := NewDeviceKey()
	require.NoError(t, err)
	pub := EncodeKey(key.Public().(ed25519.PublicKey))
	_, err = ParsePublicKey(pub[:20] + "\n" + pub[20:])
	require.ErrorIs(t, err, ErrBadPublicKey)
}
