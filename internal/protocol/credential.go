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
// useless at another tenant's endpoint. An enrollment challenge (devicekey.go) is sealed the same way under
// another prefix, so neither can pass for the other.

const credentialPrefix = "st1."

// b64 is the encoding of every binary field of the protocol: base64url without padding, strict, so that each
// value has exactly one spelling. Decode with decodeB64.
var b64 = base64.RawURLEncoding.Strict()

// errSpelling is a base64 field that is not in its one spelling.
var errSpelling = errors.New("not canonical base64url")

// decodeB64 decodes a binary field. Strict decoding still skips line breaks, which would give a value a second
// spelling: they are refused.
func decodeB64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errSpelling
	}
	return b64.DecodeString(s)
}

// maxSealedBytes bounds a credential or challenge as presented.
const maxSealedBytes = 1024

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

// seal returns prefix + base64(JSON of v) + "." + base64(HMAC of what precedes the dot).
func (s Signer) seal(prefix string, v any) (string, error) {
	if len(s.Key) < MinKeyBytes {
		return "", ErrWeakKey
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode claims: %w", err)
	}
	payload := prefix + b64.EncodeToString(raw)
	return payload + "." + b64.EncodeToString(s.mac(payload)), nil
}

// open checks a sealed value's prefix and MAC and decodes its claims into v.
func (s Signer) open(prefix, sealed string, v any) error {
	if len(s.Key) < MinKeyBytes {
		return ErrWeakKey
	}
	if !strings.HasPrefix(sealed, prefix) || len(sealed) > maxSealedBytes {
		return ErrMalformedCredential
	}
	dot := strings.LastIndexByte(sealed, '.')
	if dot <= len(prefix) {
		return ErrMalformedCredential
	}
	payload, sig := sealed[:dot], sealed[dot+1:]
	// Strict base64: the unused low bits of the last character must be zero, so a value has one spelling.
	mac, err := decodeB64(sig)
	if err != nil {
		return ErrMalformedCredential
	}
	if !hmac.Equal(mac, s.mac(payload)) {
		return ErrBadSignature
	}
	raw, err := decodeB64(payload[len(prefix):])
	if err != nil {
		return ErrMalformedCredential
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return ErrMalformedCredential
	}
	return nil
}

// Issue returns a credential for the device.
func (s Signer) Issue(deviceID string) (string, Claims, error) {
	ttl := s.TTL
	if ttl <= 0 {
		ttl = DefaultCredentialTTL
	}
	now := s.now()
	c := Claims{Tenant: s.Tenant, DeviceID: deviceID, IssuedAt: now.Unix(), ExpiresAt: now.Add(ttl).Unix()}
	cred, err := s.seal(credentialPrefix, c)
	if err != nil {
		return "", Claims{}, err
	}
	return cred, c, nil
}

// Verify checks a credential's signature, tenant and expiry and returns its claims.
func (s Signer) Verify(credential string) (Claims, error) {
	c, err := s.VerifyIgnoringExpiry(credential)
	if err != nil {
		return Claims{}, err
	}
	if s.now().Unix() >= c.ExpiresAt {
		return Claims{}, ErrExpiredCredential
	}
	return c, nil
}

// VerifyIgnoringExpiry checks a credential's signature and tenant but not its expiry. It is for one purpose: a
// device enrolled before device keys existed proves with its last credential, expired or not, that it is the
// device it says it is when it binds its first key.
func (s Signer) VerifyIgnoringExpiry(credential string) (Claims, error) {
	var c Claims
	if err := s.open(credentialPrefix, credential, &c); err != nil {
		return Claims{}, err
	}
	if !ValidDeviceID(c.DeviceID) {
		return Claims{}, ErrMalformedCredential
	}
	if c.Tenant != s.Tenant {
		return Claims{}, ErrWrongTenant
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
