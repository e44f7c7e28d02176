package portal

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Identity is who signed in to the portal.
type Identity struct {
	Email   string // lower-cased, verified
	Subject string
	Issuer  string
	Name    string // display name when the provider gives one
}

// OIDCConfig configures the provider (Helm values feed these as flags/env of `supportstack portal`).
type OIDCConfig struct {
	IssuerURL    string
	ClientID     string
	ClientSecret string   // may be empty for a public client (PKCE only)
	RedirectURL  string   // e.g. https://portal.example.com/auth/oidc/callback
	Scopes       []string // default openid email profile
}

// OIDC signs users in to the portal with the OpenID Connect authorization-code flow and PKCE (S256). The state
// of a sign-in in progress (state, nonce, PKCE verifier, where to go next) is kept in the browser, in a short-
// lived HMAC-signed cookie: nothing is stored on the server, so any replica can finish a sign-in that another
// started. It is safe for concurrent use.
type OIDC struct {
	provider   *oidc.Provider
	verifier   *oidc.IDTokenVerifier
	oauth      oauth2.Config
	client     *http.Client
	issuer     string
	key        []byte // HMAC key of the flow cookie, derived from the cookie key
	cookiePath string
	now        func() time.Time
}

const (
	oidcCookieName = "supportstack_oidc"
	oidcFlowTTL    = 10 * time.Minute
	// OIDCMinCookieKey is the shortest cookie key NewOIDC accepts.
	OIDCMinCookieKey = 32
)

// NewOIDC discovers the provider (go-oidc) and keeps a cookie key for the flow's state.
//
// The cookie key must have at least OIDCMinCookieKey bytes; a key of its own for the flow cookie is derived
// from it, so the portal may use the same key for other cookies. httpClient (nil: a client with a 30-second
// timeout) makes the requests to the provider: discovery, keys, token exchange, userinfo. ctx bounds only
// discovery. The flow cookie's path is the folder of the redirect URL's path (/auth/oidc for
// https://portal.example.com/auth/oidc/callback).
func NewOIDC(ctx context.Context, cfg OIDCConfig, cookieKey []byte, httpClient *http.Client) (*OIDC, error) {
	if cfg.IssuerURL == "" || cfg.ClientID == "" || cfg.RedirectURL == "" {
		return nil, errors.New("oidc: the issuer URL, the client ID and the redirect URL are required")
	}
	if u, err := url.Parse(cfg.IssuerURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("oidc: the issuer URL %q is not an http(s) URL", cfg.IssuerURL)
	}
	redirect, err := url.Parse(cfg.RedirectURL)
	if err != nil || (redirect.Scheme != "https" && redirect.Scheme != "http") || redirect.Host == "" || redirect.Path == "" {
		return nil, fmt.Errorf("oidc: the redirect URL %q is not an absolute http(s) URL with a path", cfg.RedirectURL)
	}
	if len(cookieKey) < OIDCMinCookieKey {
		return nil, fmt.Errorf("oidc: the cookie key has %d bytes, at least %d are needed", len(cookieKey), OIDCMinCookieKey)
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, httpClient), cfg.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("oidc: discovering the provider at %s: %w", cfg.IssuerURL, err)
	}
	var meta struct {
		CodeChallengeMethods []string `json:"code_challenge_methods_supported"`
		TokenAuthMethods     []string `json:"token_endpoint_auth_methods_supported"`
	}
	if err := provider.Claims(&meta); err != nil {
		return nil, fmt.Errorf("oidc: reading the provider's discovery document: %w", err)
	}
	// Providers that do not publish their PKCE methods often support S256 all the same; one that publishes
	// a list without it does not.
	if meta.CodeChallengeMethods != nil && !slices.Contains(meta.CodeChallengeMethods, "S256") {
		return nil, fmt.Errorf("oidc: the provider does not support PKCE with S256 (it lists %q)", meta.CodeChallengeMethods)
	}
	endpoint := provider.Endpoint()
	switch {
	case cfg.ClientSecret == "":
		endpoint.AuthStyle = oauth2.AuthStyleInParams // a public client sends its ID only
	case len(meta.TokenAuthMethods) == 0 || slices.Contains(meta.TokenAuthMethods, "client_secret_basic"):
		endpoint.AuthStyle = oauth2.AuthStyleInHeader // the default of OpenID Connect Discovery
	case slices.Contains(meta.TokenAuthMethods, "client_secret_post"):
		endpoint.AuthStyle = oauth2.AuthStyleInParams
	default:
		return nil, fmt.Errorf("oidc: the provider supports neither client_secret_basic nor client_secret_post (it lists %q)", meta.TokenAuthMethods)
	}
	scopes := cfg.Scopes
	if len(scopes) == 0 {
		scopes = []string{oidc.ScopeOpenID, "email", "profile"}
	} else if !slices.Contains(scopes, oidc.ScopeOpenID) {
		scopes = append([]string{oidc.ScopeOpenID}, scopes...)
	}
	mac := hmac.New(sha256.New, cookieKey)
	mac.Write([]byte("supportstack portal: OIDC sign-in cookie"))
	cookiePath := path.Dir(redirect.Path)
	if cookiePath == "." || cookiePath == "" {
		cookiePath = "/"
	}
	return &OIDC{
		provider: provider,
		verifier: provider.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
		oauth: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			Endpoint:     endpoint,
			RedirectURL:  cfg.RedirectURL,
			Scopes:       scopes,
		},
		client:     httpClient,
		issuer:     cfg.IssuerURL, // go-oidc checked that discovery names this issuer
		key:        mac.Sum(nil),
		cookiePath: cookiePath,
		now:        time.Now,
	}, nil
}

// oidcFlow is a sign-in in progress, as its cookie keeps it.
type oidcFlow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"x"`
	Expires  int64  `json:"e"` // Unix seconds
}

// Start begins a sign-in: random state, nonce and PKCE verifier kept in a short-lived (10 min) cookie that is
// HMAC-signed with cookieKey (HttpOnly, Path=/auth/oidc, SameSite=Lax — Strict would drop it on the provider's
// redirect back —, Secure when the request came over TLS or X-Forwarded-Proto https), then a redirect (303) to
// the provider's authorization URL with code_challenge (S256) and nonce. `next` is a local path to return to
// after sign-in (validate: must start with a single "/", no "//", no backslash, no CR/LF; otherwise "/").
//
// A new sign-in replaces one in progress in the same browser.
func (o *OIDC) Start(w http.ResponseWriter, r *http.Request, next string) {
	f := oidcFlow{
		State:    oidcRandom(),
		Nonce:    oidcRandom(),
		Verifier: oauth2.GenerateVerifier(),
		Next:     oidcSafeNext(next),
		Expires:  o.now().Add(oidcFlowTTL).Unix(),
	}
	payload, _ := json.Marshal(f)
	value := base64.RawURLEncoding.EncodeToString(payload)
	value += "." + base64.RawURLEncoding.EncodeToString(o.mac(value))
	o.setCookie(w, r, value, int(oidcFlowTTL/time.Second))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, o.oauth.AuthCodeURL(f.State, oauth2.S256ChallengeOption(f.Verifier), oidc.Nonce(f.Nonce)), http.StatusSeeOther)
}

// Finish handles the callback: checks the state against the cookie (constant time), refuses provider errors
// (?error=...) with a clear error, exchanges the code with the verifier, verifies the ID token (issuer, audience
// = ClientID, expiry, signature, nonce), requires an email claim and email_verified true when the claim is
// present, clears the cookie, and returns the identity and the `next` path.
//
// When the ID token has no email claim, the email (and email_verified, name) are taken from the provider's
// userinfo endpoint, for the same subject, as OpenID Connect allows for the code flow. Finish writes no body:
// the caller answers, on success typically with a session cookie and a redirect (303) to next, on error with
// a page that shows the error (short, safe to show; it never contains a token or a code) and a link to start
// again.
func (o *OIDC) Finish(w http.ResponseWriter, r *http.Request) (Identity, string, error) {
	cookie, cookieErr := r.Cookie(oidcCookieName)
	if cookieErr == nil {
		o.setCookie(w, r, "", -1) // one use, whatever comes of it
	}
	w.Header().Set("Cache-Control", "no-store")
	q := r.URL.Query()
	if code := q.Get("error"); code != "" {
		return Identity{}, "", fmt.Errorf("sign-in: the identity provider refused the sign-in (%s)", oidcErrorCode(code))
	}
	if cookieErr != nil {
		return Identity{}, "", errors.New("sign-in: the sign-in state cookie is missing (expired, or the sign-in was started in another browser); please sign in again")
	}
	f, err := o.readFlow(cookie.Value)
	if err != nil {
		return Identity{}, "", err
	}
	state := q.Get("state")
	if state == "" || subtle.ConstantTimeCompare([]byte(state), []byte(f.State)) != 1 {
		return Identity{}, "", errors.New("sign-in: the state does not match this browser's sign-in; please sign in again")
	}
	if iss := q.Get("iss"); iss != "" && iss != o.issuer { // RFC 9207, where the provider sends it
		return Identity{}, "", errors.New("sign-in: the answer comes from another identity provider (iss)")
	}
	code := q.Get("code")
	if code == "" {
		return Identity{}, "", errors.New("sign-in: the identity provider sent no authorization code")
	}

	ctx := oidc.ClientContext(r.Context(), o.client)
	tok, err := o.oauth.Exchange(ctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) { // its message holds the provider's whole answer: not shown
			why := oidcErrorCode(re.ErrorCode)
			if re.ErrorCode == "" && re.Response != nil {
				why = fmt.Sprintf("HTTP %d", re.Response.StatusCode)
			}
			return Identity{}, "", fmt.Errorf("sign-in: the identity provider refused the authorization code (%s); please sign in again", why)
		}
		// A network or protocol failure: the error names the token endpoint, never the code (sent in the body).
		return Identity{}, "", fmt.Errorf("sign-in: exchanging the authorization code: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Identity{}, "", errors.New("sign-in: the identity provider sent no ID token")
	}
	idt, err := o.verifier.Verify(ctx, raw)
	if err != nil {
		return Identity{}, "", oidcVerifyError(err)
	}
	if idt.Nonce == "" || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		return Identity{}, "", errors.New("sign-in: the ID token's nonce does not match this sign-in")
	}
	var claims oidcClaims
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, "", errors.New("sign-in: the ID token's claims are malformed")
	}
	if claims.Email == "" && o.provider.UserInfoEndpoint() != "" && tok.AccessToken != "" {
		info, err := o.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return Identity{}, "", errors.New("sign-in: the ID token has no email and the identity provider's userinfo could not be read")
		}
		if info.Subject != idt.Subject {
			return Identity{}, "", errors.New("sign-in: the identity provider's userinfo is about another subject")
		}
		var more oidcClaims
		if err := info.Claims(&more); err != nil {
			return Identity{}, "", errors.New("sign-in: the identity provider's userinfo is malformed")
		}
		if claims.Name != "" || claims.GivenName != "" || claims.FamilyName != "" {
			more.Name, more.GivenName, more.FamilyName = claims.Name, claims.GivenName, claims.FamilyName
		}
		if len(more.EmailVerified) == 0 { // an email_verified of the ID token still counts
			more.EmailVerified = claims.EmailVerified
		}
		claims = more
	}
	email, err := claims.email()
	if err != nil {
		return Identity{}, "", err
	}
	return Identity{Email: email, Subject: idt.Subject, Issuer: idt.Issuer, Name: claims.name()}, oidcSafeNext(f.Next), nil
}

func (o *OIDC) mac(value string) []byte {
	m := hmac.New(sha256.New, o.key)
	m.Write([]byte(value))
	return m.Sum(nil)
}

func (o *OIDC) readFlow(value string) (oidcFlow, error) {
	invalid := errors.New("sign-in: the sign-in state cookie is invalid; please sign in again")
	payload, sig, ok := strings.Cut(value, ".")
	if !ok {
		return oidcFlow{}, invalid
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, o.mac(payload)) {
		return oidcFlow{}, invalid
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	var f oidcFlow
	if err != nil || json.Unmarshal(b, &f) != nil || f.State == "" || f.Nonce == "" || f.Verifier == "" {
		return oidcFlow{}, invalid
	}
	if o.now().Unix() > f.Expires {
		return oidcFlow{}, errors.New("sign-in: the sign-in took longer than 10 minutes and expired; please sign in again")
	}
	return f, nil
}

func (o *OIDC) setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	c := &http.Cookie{
		Name:     oidcCookieName,
		Value:    value,
		Path:     o.cookiePath,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   oidcOverTLS(r),
		SameSite: http.SameSiteLaxMode,
	}
	if maxAge > 0 {
		c.Expires = o.now().Add(time.Duration(maxAge) * time.Second)
	}
	http.SetCookie(w, c)
}

// oidcOverTLS tells whether the browser reached the portal over TLS, directly or through a proxy that says so.
func oidcOverTLS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	return strings.EqualFold(strings.TrimSpace(proto), "https")
}

// oidcSafeNext returns next when it is a local path (a single leading "/", no "//", no backslash, no control
// character such as CR, LF or tab, at most 2,048 bytes), "/" otherwise.
func oidcSafeNext(next string) string {
	if len(next) > 2048 || !strings.HasPrefix(next, "/") || strings.Contains(next, "//") || strings.ContainsRune(next, '\\') {
		return "/"
	}
	for _, c := range next {
		if c < 0x20 || c == 0x7f || c == unicode.ReplacementChar {
			return "/"
		}
	}
	if u, err := url.Parse(next); err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return next
}

// oidcErrorCode is an OAuth error code fit to show: the code itself when it has the shape of one
// (access_denied, invalid_grant, ...), otherwise a placeholder.
func oidcErrorCode(code string) string {
	if code == "" {
		return "no error code"
	}
	if len(code) > 64 {
		return "unrecognized error code"
	}
	for _, c := range code {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' && c != '-' && c != '.' {
			return "unrecognized error code"
		}
	}
	return code
}

// oidcVerifyError says why go-oidc refused an ID token, without its details (which quote the token).
func oidcVerifyError(err error) error {
	var expired *oidc.TokenExpiredError
	msg := err.Error()
	switch {
	case errors.As(err, &expired):
		return errors.New("sign-in: the ID token has expired")
	case strings.Contains(msg, "expected audience"):
		return errors.New("sign-in: the ID token is for another client (audience)")
	case strings.Contains(msg, "issued by a different provider"):
		return errors.New("sign-in: the ID token is from another identity provider (issuer)")
	case strings.Contains(msg, "verify signature"), strings.Contains(msg, "signing algorithm"), strings.Contains(msg, "not signed"):
		return errors.New("sign-in: the ID token's signature is not valid")
	case strings.Contains(msg, "before the nbf"):
		return errors.New("sign-in: the ID token is not valid yet (clock skew?)")
	case strings.Contains(msg, "malformed"):
		return errors.New("sign-in: the ID token is malformed")
	}
	return errors.New("sign-in: the ID token could not be verified")
}

// oidcClaims are the claims of the ID token (or userinfo) that the portal reads.
type oidcClaims struct {
	Email         string          `json:"email"`
	EmailVerified json.RawMessage `json:"email_verified"` // a boolean; some providers send "true"
	Name          string          `json:"name"`
	GivenName     string          `json:"given_name"`
	FamilyName    string          `json:"family_name"`
}

// email is the verified, lower-cased email address.
func (c oidcClaims) email() (string, error) {
	if c.Email == "" {
		return "", errors.New("sign-in: the identity provider gave no email address (is the email scope allowed for this client?)")
	}
	switch v := strings.TrimSpace(string(c.EmailVerified)); v {
	case "", "null", "true", `"true"`:
	default:
		return "", errors.New("sign-in: the identity provider has not verified the account's email address")
	}
	email := strings.ToLower(strings.TrimSpace(c.Email))
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || len(email) > 254 || strings.ContainsAny(email, " \t\r\n<>\"") {
		return "", errors.New("sign-in: the identity provider's email claim is not a plain email address")
	}
	return email, nil
}

// name is the display name: name, else given and family name; control characters dropped, at most 200 runes.
func (c oidcClaims) name() string {
	n := strings.TrimSpace(c.Name)
	if n == "" {
		n = strings.TrimSpace(c.GivenName + " " + c.FamilyName)
	}
	n = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, n)
	if r := []rune(n); len(r) > 200 {
		n = string(r[:200])
	}
	return n
}

func oidcRandom() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
