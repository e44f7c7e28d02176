package protocol

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// A device credential is "st1.<claims>.<mac>": base64url JSON claims and an HMAC-SHA256 over "st1.<claims>" with
// the tenant's signing key. Any ingest replica of the tenant, in either cluster, verifies it with the key alone:
// no shared state. The tenant's name is part of the claims and the key differs per tenant, so a credential is
// useless at another tenant's endpoint.

const credentialPrefix = "st1."

// Credential errors, matched with errors.Is.
var (
	ErrMalformedCredential = errors.New("malformed credential")
	ErrBadSignature        = errors.New("credential signature does not match")
	ErrWrongTenant         = errors.New("credential belongs to another tenant")
	ErrExpiredCredential   = errors.New("credential expired")
)

// Claims are what a credential says.
type Claims struct {
	Tenant    string `json:"t"`
	DeviceID  string `json:"d"`
	IssuedAt  int64  `json:"iat"`
	ExpiresAt int64  `json:"exp"`
}

// Signer issues and verifies the credentials of one tenant.
type Signer struct {
	Tenant string
	Key    []byte
	// TTL of issued credentials; the agent enrolls again when one expires.
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultCredentialTTL is how long a device credential is valid.
const DefaultCredentialTTL = 90 * 24 * time.Hour

func (s Signer) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s Signer) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.Key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// MinKeyBytes is the shortest signing key a Signer accepts: an empty or short key would make credentials
// forgeable.
const MinKeyBytes = 16

// ErrWeakKey is returned by Issue and Verify when the signing key is too short.
var ErrWeakKey = errors.New("signing key shorter than 16 bytes")

// Issue returns a credential for the device.
func (s Signer) Issue(deviceID string) (string, Claims, error) {
	if len(s.Key) < MinKeyBytes {
		return "", Claims{}, ErrWeakKey
	}
	ttl := s.TTL
	if ttl <= 0 {
		ttl = DefaultCredentialTTL
	}
	now := s.now()
	c := Claims{Tenant: s.Tenant, DeviceID: deviceID, IssuedAt: now.Unix(), ExpiresAt: now.Add(ttl).Unix()}
	raw, err := json.Marshal(c)
	if err != nil {
		return "", Claims{}, fmt.Errorf("encode claims: %w", err)
	}
	payload := credentialPrefix + base64.RawURLEncoding.EncodeToString(raw)
	return payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(payload)), c, nil
}

// Verify checks a credential's signature, tenant and expiry and returns its claims.
func (s Signer) Verify(credential string) (Claims, error) {
	if len(s.Key) < MinKeyBytes {
		return Claims{}, ErrWeakKey
	}
	if !strings.HasPrefix(credential, credentialPrefix) || len(credential) > 1024 {
		return Claims{}, ErrMalformedCredential
	}
	dot := strings.LastIndexByte(credential, '.')
	if dot <= len(credentialPrefix) {
		return Claims{}, ErrMalformedCredential
	}
	payload, sig := credential[:dot], credential[dot+1:]
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return Claims{}, ErrMalformedCredential
	}
	if !hmac.Equal(mac, s.mac(payload)) {
		return Claims{}, ErrBadSignature
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload[len(credentialPrefix):])
	if err != nil {
		return Claims{}, ErrMalformedCredential
	}
	var c Claims
	if err := json.Unmarshal(raw, &c); err != nil || !ValidDeviceID(c.DeviceID) {
		return Claims{}, ErrMalformedCredential
	}
	if c.Tenant != s.Tenant {
		return Claims{}, ErrWrongTenant
	}
	if s.now().Unix() >= c.ExpiresAt {
		return Claims{}, ErrExpiredCredential
	}
	return c, nil
}

var deviceIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// ValidDeviceID reports whether id has the form NewDeviceID makes; only such IDs become object keys.
func ValidDeviceID(id string) bool { return deviceIDPattern.MatchString(id) }

// NewDeviceID returns a random device ID.
func NewDeviceID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate device ID: %w", err)
	}
	return hex.EncodeToString(b), nil
}
