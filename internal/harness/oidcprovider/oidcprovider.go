// Package oidcprovider runs a real OpenID Connect provider for tests and the local demo, built on
// github.com/oauth2-proxy/mockoidc: discovery, JWKS, the authorization-code flow and ID tokens signed with a
// fresh RSA key, userinfo. There is no sign-in page: each authorization request signs in the user queued with
// SignInAs (or the default user) and redirects straight back to the client.
//
// On top of mockoidc it is stricter and more standard in the ways the portal's tests rely on: PKCE with S256
// is required (a missing or plain challenge is refused, a wrong verifier fails the exchange), the client may
// authenticate with client_secret_basic as the discovery document advertises (mockoidc itself reads only the
// form), a public client (no secret, PKCE only) can be configured, email_verified is always stated (false
// included), requests are served one at a time (mockoidc's session store is not safe for concurrent use), and
// a test can make the next sign-in fail at the provider (DenyNext) or the next ID token carry other claims,
// still signed with the provider's key (TamperNextIDToken).
package oidcprovider

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
)

// Options of a provider; the zero value is a confidential client "supportstack-portal" with a random secret
// on 127.0.0.1 and a random port.
type Options struct {
	ClientID     string // default "supportstack-portal"
	ClientSecret string // default random; none for a public client
	// Public makes the client public: the token endpoint takes no secret and relies on PKCE alone.
	Public bool
	// Addr is the listen address; default 127.0.0.1:0.
	Addr string
	// Key signs the tokens; default a fresh 2048-bit RSA key.
	Key *rsa.PrivateKey
	// DefaultUser signs in when no SignInAs is queued; default mockoidc's jane.doe@example.com (verified).
	DefaultUser *User
}

// User is who the provider signs in.
type User struct {
	Subject       string // default derived from Email
	Email         string // in the ID token and userinfo with the email scope, omitted when empty
	EmailVerified bool   // email_verified, always stated with the email scope
	Name          string // name, with the profile scope, omitted when empty
}

// Provider is a running OpenID provider.
type Provider struct {
	// Issuer is the issuer URL (http://127.0.0.1:PORT/oidc); discovery is at
	// Issuer+"/.well-known/openid-configuration".
	Issuer       string
	ClientID     string
	ClientSecret string // empty for a public client

	m           *mockoidc.MockOIDC
	public      bool
	defaultUser *User

	serve   sync.Mutex // one request at a time
	mu      sync.Mutex // guards the fields below
	denials []string
	tampers []func(claims map[string]any)
}

// Start starts a provider for a test; it stops when the test ends.
func Start(t testing.TB, o Options) *Provider {
	t.Helper()
	p, err := StartServer(o)
	if err != nil {
		t.Fatalf("start OIDC provider: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// StartServer starts a provider outside a test (the demo). Close stops it.
func StartServer(o Options) (*Provider, error) {
	if o.ClientID == "" {
		o.ClientID = "supportstack-portal"
	}
	if o.Public {
		o.ClientSecret = ""
	} else if o.ClientSecret == "" {
		o.ClientSecret = randomString()
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	key := o.Key
	if key == nil {
		var err error
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, fmt.Errorf("generate signing key: %w", err)
		}
	}
	m, err := mockoidc.NewServer(key)
	if err != nil {
		return nil, err
	}
	if _, err := m.Keypair.KeyID(); err != nil { // computed once here rather than lazily by concurrent handlers
		return nil, err
	}
	m.ClientID = o.ClientID
	m.ClientSecret = o.ClientSecret
	if o.Public {
		// mockoidc insists on a secret: the token endpoint fills in this one for a public client's requests.
		m.ClientSecret = randomString()
	}
	m.CodeChallengeMethodsSupported = []string{mockoidc.CodeChallengeMethodS256}
	p := &Provider{ClientID: o.ClientID, ClientSecret: o.ClientSecret, m: m, public: o.Public}
	if o.DefaultUser != nil {
		u := *o.DefaultUser
		p.defaultUser = &u
	}
	if err := m.AddMiddleware(p.middleware); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if err := m.Start(ln, nil); err != nil {
		ln.Close()
		return nil, err
	}
	p.Issuer = m.Issuer()
	return p, nil
}

// Close stops the provider.
func (p *Provider) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if p.m.Server.Shutdown(ctx) != nil {
		p.m.Server.Close()
	}
}

// SignInAs queues a user: the next authorization request signs them in and redirects back at once.
func (p *Provider) SignInAs(u User) {
	p.m.QueueUser(mockUser{u})
}

// DenyNext makes the next authorization request fail at the provider: it redirects back to the client with
// ?error=code (e.g. "access_denied") and the request's state.
func (p *Provider) DenyNext(code string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.denials = append(p.denials, code)
}

// TamperNextIDToken makes the token endpoint's next successful answer carry an ID token whose claims f has
// changed (say "aud", "nonce", "iss", "exp"), signed with the provider's key like any other.
func (p *Provider) TamperNextIDToken(f func(claims map[string]any)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tampers = append(p.tampers, f)
}

func (p *Provider) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.serve.Lock()
		defer p.serve.Unlock()
		switch r.URL.Path {
		case mockoidc.AuthorizationEndpoint:
			p.authorize(next, w, r)
		case mockoidc.TokenEndpoint:
			p.token(next, w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func (p *Provider) authorize(next http.Handler, w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "unreadable request")
		return
	}
	if r.Form.Get("code_challenge_method") != mockoidc.CodeChallengeMethodS256 || r.Form.Get("code_challenge") == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "PKCE with code_challenge_method=S256 is required")
		return
	}
	p.mu.Lock()
	var denial string
	if len(p.denials) > 0 {
		denial, p.denials = p.denials[0], p.denials[1:]
	}
	p.mu.Unlock()
	if denial != "" {
		back, err := url.Parse(r.Form.Get("redirect_uri"))
		if err != nil || r.Form.Get("redirect_uri") == "" {
			oauthError(w, http.StatusBadRequest, "invalid_request", "bad redirect_uri")
			return
		}
		q := back.Query()
		q.Set("error", denial)
		q.Set("state", r.Form.Get("state"))
		back.RawQuery = q.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
		return
	}
	if p.defaultUser != nil {
		q := p.m.UserQueue
		q.Lock()
		if len(q.Queue) == 0 { // requests are serialized: nothing pops it before this request does
			q.Queue = append(q.Queue, mockUser{*p.defaultUser})
		}
		q.Unlock()
	}
	next.ServeHTTP(w, r)
}

func (p *Provider) token(next http.Handler, w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "unreadable request")
		return
	}
	// client_secret_basic (RFC 6749 2.3.1: both parts form-encoded), which mockoidc does not read itself.
	if id, secret, ok := r.BasicAuth(); ok {
		id, err1 := url.QueryUnescape(id)
		secret, err2 := url.QueryUnescape(secret)
		if err1 != nil || err2 != nil || r.PostForm.Get("client_secret") != "" {
			oauthError(w, http.StatusUnauthorized, "invalid_client", "bad client authentication")
			return
		}
		setForm(r, "client_id", id)
		setForm(r, "client_secret", secret)
	}
	if p.public && r.Form.Get("client_secret") == "" && r.Form.Get("client_id") == p.ClientID {
		if r.Form.Get("grant_type") == "authorization_code" && r.Form.Get("code_verifier") == "" {
			oauthError(w, http.StatusBadRequest, "invalid_request", "a public client must send code_verifier")
			return
		}
		setForm(r, "client_secret", p.m.ClientSecret)
	}
	p.mu.Lock()
	var tamper func(map[string]any)
	if len(p.tampers) > 0 {
		tamper = p.tampers[0]
	}
	p.mu.Unlock()
	if tamper == nil {
		next.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	if rec.Code == http.StatusOK {
		rewritten, err := p.tamperTokenResponse(body, tamper)
		if err != nil {
			oauthError(w, http.StatusInternalServerError, "server_error", err.Error())
			return
		}
		body = rewritten
		p.mu.Lock()
		p.tampers = p.tampers[1:]
		p.mu.Unlock()
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.Code)
	w.Write(body)
}

func (p *Provider) tamperTokenResponse(body []byte, tamper func(map[string]any)) ([]byte, error) {
	var resp map[string]any
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, err
	}
	raw, _ := resp["id_token"].(string)
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, errors.New("no ID token to tamper with")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	claims := map[string]any{}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, err
	}
	tamper(claims)
	if resp["id_token"], err = p.m.Keypair.SignJWT(jwt.MapClaims(claims)); err != nil {
		return nil, err
	}
	return json.Marshal(resp)
}

func setForm(r *http.Request, key, value string) {
	r.Form.Set(key, value)
	if r.PostForm != nil {
		r.PostForm.Set(key, value)
	}
}

func oauthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}

// mockUser is a User as mockoidc's sessions hold it.
type mockUser struct{ u User }

func (m mockUser) ID() string {
	if m.u.Subject != "" {
		return m.u.Subject
	}
	return "user-" + strings.ToLower(m.u.Email)
}

// scoped is the user's claims that the scopes grant.
func (m mockUser) scoped(scopes []string) map[string]any {
	claims := map[string]any{}
	for _, s := range scopes {
		switch s {
		case "email":
			if m.u.Email != "" {
				claims["email"] = m.u.Email
			}
			claims["email_verified"] = m.u.EmailVerified
		case "profile":
			if m.u.Name != "" {
				claims["name"] = m.u.Name
			}
		}
	}
	return claims
}

func (m mockUser) Userinfo(scopes []string) ([]byte, error) {
	claims := m.scoped(scopes)
	claims["sub"] = m.ID()
	return json.Marshal(claims)
}

func (m mockUser) Claims(scopes []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	b, err := json.Marshal(base)
	if err != nil {
		return nil, err
	}
	claims := jwt.MapClaims{}
	if err := json.Unmarshal(b, &claims); err != nil {
		return nil, err
	}
	for k, v := range m.scoped(scopes) {
		claims[k] = v
	}
	return claims, nil
}

func randomString() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
