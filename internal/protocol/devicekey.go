package protocol

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"time"
)

// Device keys bind a device's identity to a secret only that PC holds. The enrollment token sits on every PC
// of a tenant, so it may admit new devices but must never let one PC become another. At its first enrollment a
// device makes an Ed25519 key pair and sends the public key, which the server keeps in the device's record. To
// enroll again under the same device ID it must sign a challenge the server sealed for that device:
//
//	POST /v1/enroll {deviceId, publicKey}                        -> 401 proof_required {challenge}
//	POST /v1/enroll {deviceId, publicKey, challenge, signature}  -> 200
//
// A challenge is stateless (sealed with the tenant's signing key like a credential, under the prefix "sc1."),
// names the device and expires after ChallengeTTL, so any replica in either cluster checks it and it cannot be
// used for another device or tenant. The signature covers ProofMessage.
//
// Devices enrolled before device keys existed have no key in their record. An upgraded agent binds its first key
// by presenting its last device credential (expired or not) with the key; an agent too old to have a key that
// enrolls again by device ID is enrolled as a new device instead of being handed the old identity.

const challengePrefix = "sc1."

// ChallengeTTL is how long a challenge can be answered.
const ChallengeTTL = 5 * time.Minute

// Proof errors, matched with errors.Is.
var (
	ErrBadChallenge     = errors.New("challenge is not valid for this device")
	ErrExpiredChallenge = errors.New("challenge expired")
	ErrBadProof         = errors.New("signature does not match the device's key")
	ErrBadPublicKey     = errors.New("public key is not a base64url Ed25519 key")
)

type challengeClaims struct {
	Tenant    string `json:"t"`
	DeviceID  string `json:"d"`
	ExpiresAt int64  `json:"exp"`
	Nonce     string `json:"n"`
}

// IssueChallenge returns a challenge for the device to sign.
func (s Signer) IssueChallenge(deviceID string) (string, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("generate challenge: %w", err)
	}
	return s.seal(challengePrefix, challengeClaims{Tenant: s.Tenant, DeviceID: deviceID,
		ExpiresAt: s.now().Add(ChallengeTTL).Unix(), Nonce: b64.EncodeToString(nonce)})
}

// VerifyProof checks that challenge was issued by this tenant for deviceID and has not expired, and that
// signature (base64url) is the device key's signature of ProofMessage.
func (s Signer) VerifyProof(deviceID string, key ed25519.PublicKey, challenge, signature string) error {
	var c challengeClaims
	if err := s.open(challengePrefix, challenge, &c); err != nil {
		if errors.Is(err, ErrWeakKey) {
			return err
		}
		return ErrBadChallenge
	}
	if c.Tenant != s.Tenant || c.DeviceID != deviceID {
		return ErrBadChallenge
	}
	if s.now().Unix() >= c.ExpiresAt {
		return ErrExpiredChallenge
	}
	sig, err := decodeB64(signature)
	if err != nil || len(sig) != ed25519.SignatureSize || len(key) != ed25519.PublicKeySize ||
		!ed25519.Verify(key, ProofMessage(deviceID, challenge), sig) {
		return ErrBadProof
	}
	return nil
}

// ProofMessage is what a device signs to answer a challenge. The domain string keeps the signature from meaning
// anything anywhere else.
func ProofMessage(deviceID, challenge string) []byte {
	return []byte("supportstack enrollment proof v1\n" + deviceID + "\n" + challenge)
}

// SignProof answers a challenge with the device's private key.
func SignProof(key ed25519.PrivateKey, deviceID, challenge string) string {
	return b64.EncodeToString(ed25519.Sign(key, ProofMessage(deviceID, challenge)))
}

// NewDeviceKey makes a device's key pair.
func NewDeviceKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate device key: %w", err)
	}
	return priv, nil
}

// EncodeKey returns the wire form of a public key, or of a private key's seed.
func EncodeKey(b []byte) string { return b64.EncodeToString(b) }

// ParsePublicKey reads a public key in wire form.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := decodeB64(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, ErrBadPublicKey
	}
	return ed25519.PublicKey(b), nil
}

// ParsePrivateKey reads a private key stored as its seed in wire form.
func ParsePrivateKey(s string) (ed25519.PrivateKey, error) {
	b, err := decodeB64(s)
	if err != nil || len(b) != ed25519.SeedSize {
		return nil, errors.New("device key is not a base64url Ed25519 seed")
	}
	return ed25519.NewKeyFromSeed(b), nil
}
