// Package websession holds what the dashboard and the portal share to keep browser sessions without server state:
// values signed with an HMAC key (sessions are signed cookies, so every replica accepts them), CSRF tokens bound to
// a session, the security headers of pages that run no script, and the checks a redirect target must pass.
package websession

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"strings"
)

// Signer signs and verifies values with a key derived for one purpose, so that a value signed for one use (a
// tenant's dashboard, the portal) is worth nothing in another that was given the same secret.
type Signer struct{ key []byte }

// NewSigner derives the signing key of purpose from secret.
func NewSigner(secret, purpose string) Signer {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(purpose))
	return Signer{key: mac.Sum(nil)}
}

// Sign returns payload and its MAC, base64url-encoded and joined by a dot.
func (s Signer) Sign(payload []byte) string {
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(s.mac(payload))
}

// Verify returns the payload of a value Sign made.
func (s Signer) Verify(value string) ([]byte, error) {
	p, sig, ok := strings.Cut(value, ".")
	if !ok {
		return nil, errors.New("malformed")
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p)
	mac, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil {
		return nil, errors.New("malformed")
	}
	if !hmac.Equal(mac, s.mac(payload)) {
		return nil, errors.New("bad signature")
	}
	return payload, nil
}

// Token is a MAC of parts, for tokens bound to a session (CSRF) or to a secret (a password's fingerprint).
func (s Signer) Token(parts ...string) string {
	mac := hmac.New(sha256.New, s.key)
	for _, p := range parts {
		mac.Write([]byte(p))
		mac.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (s Signer) mac(payload []byte) []byte {
	mac := hmac.New(sha256.New, s.key)
	mac.Write(payload)
	return mac.Sum(nil)
}

// RandomToken is 18 random bytes, base64url-encoded.
func RandomToken() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Equal compares two tokens in constant time; an empty token never matches.
func Equal(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// SecurityHeaders are set on every page: no script runs, nothing frames the page, forms post only to the site.
func SecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// LocalPath keeps a redirect target on this site: anything else is "/".
func LocalPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") || strings.ContainsAny(p, "\r\n") {
		return "/"
	}
	return p
}

// SecureRequest reports whether the browser reached the site over TLS (directly or through an ingress).
func SecureRequest(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// Render writes a page of pages; a template that fails leaves the response unwritten, so that the error is a
// clean 500 rather than half a page.
func Render(w http.ResponseWriter, code int, pages *template.Template, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "The page could not be rendered: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = buf.WriteTo(w)
}
