package portal

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/supportstack/supportstack/internal/harness/oidcprovider"
)

// oidcEnv is a portal's sign-in endpoints on an httptest server, signing in at a real OpenID provider.
type oidcEnv struct {
	p   *oidcprovider.Provider
	o   *OIDC
	srv *httptest.Server
}

// oidcResult is what the test server's callback answers.
type oidcResult struct {
	Status   int
	Error    string
	Identity Identity
	Next     string
}

func newOIDCEnv(t *testing.T, po oidcprovider.Options) *oidcEnv {
	t.Helper()
	env := &oidcEnv{p: oidcprovider.Start(t, po)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /auth/oidc/start", func(w http.ResponseWriter, r *http.Request) {
		env.o.Start(w, r, r.URL.Query().Get("next"))
	})
	mux.HandleFunc("GET /auth/oidc/callback", func(w http.ResponseWriter, r *http.Request) {
		id, next, err := env.o.Finish(w, r)
		res := oidcResult{Status: http.StatusOK, Identity: id, Next: next}
		if err != nil {
			res = oidcResult{Status: http.StatusUnauthorized, Error: err.Error()}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(res.Status)
		json.NewEncoder(w).Encode(res)
	})
	env.srv = httptest.NewServer(mux)
	t.Cleanup(env.srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o, err := NewOIDC(ctx, OIDCConfig{
		IssuerURL:    env.p.Issuer,
		ClientID:     env.p.ClientID,
		ClientSecret: env.p.ClientSecret,
		RedirectURL:  env.srv.URL + "/auth/oidc/callback",
	}, []byte("0123456789abcdef0123456789abcdef-test-key"), nil)
	if err != nil {
		t.Fatalf("NewOIDC: %v", err)
	}
	env.o = o
	return env
}

// browser is a client with a cookie jar that follows redirects, recording the requests of the redirect chain.
type oidcBrowser struct {
	*http.Client
	chain []*http.Request
}

func newOIDCBrowser(t *testing.T) *oidcBrowser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &oidcBrowser{}
	b.Client = &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(r *http.Request, via []*http.Request) error {
		b.chain = append(b.chain, r)
		return nil
	}}
	return b
}

// get fetches a URL of the portal and decodes the callback's answer.
func (b *oidcBrowser) get(t *testing.T, u string) oidcResult {
	t.Helper()
	resp, err := b.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var res oidcResult
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("GET %s: %s: %s", u, resp.Status, body)
	}
	return res
}

// signIn starts a sign-in and follows it to the portal's callback.
func (env *oidcEnv) signIn(t *testing.T, b *oidcBrowser, next string) oidcResult {
	t.Helper()
	return b.get(t, env.srv.URL+"/auth/oidc/start?next="+url.QueryEscape(next))
}

// authorize starts a sign-in and follows it up to the provider's redirect back, which it returns unfollowed;
// the browser holds the flow's cookie.
func (env *oidcEnv) authorize(t *testing.T, b *oidcBrowser, next string) *url.URL {
	t.Helper()
	var back *url.URL
	c := *b.Client
	c.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if r.URL.Path == "/auth/oidc/callback" {
			back = r.URL
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := c.Get(env.srv.URL + "/auth/oidc/start?next=" + url.QueryEscape(next))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if back == nil {
		t.Fatalf("the provider did not redirect back: %s", resp.Status)
	}
	return back
}

func (env *oidcEnv) flowCookie(b *oidcBrowser) *http.Cookie {
	u, _ := url.Parse(env.srv.URL + "/auth/oidc/callback")
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == oidcCookieName {
			return c
		}
	}
	return nil
}

func (env *oidcEnv) setFlowCookie(b *oidcBrowser, value string) {
	u, _ := url.Parse(env.srv.URL + "/auth/oidc/callback")
	b.Jar.SetCookies(u, []*http.Cookie{{Name: oidcCookieName, Value: value, Path: "/auth/oidc"}})
}

func oidcWantError(t *testing.T, res oidcResult, want string) {
	t.Helper()
	if res.Status != http.StatusUnauthorized || !strings.Contains(res.Error, want) {
		t.Fatalf("got %d %q %+v, want a refusal with %q", res.Status, res.Error, res.Identity, want)
	}
	if len(res.Error) > 200 {
		t.Errorf("error too long (%d bytes): %s", len(res.Error), res.Error)
	}
}

func TestOIDCSignIn(t *testing.T) {
	env := newOIDCEnv(t, oidcprovider.Options{})
	env.p.SignInAs(oidcprovider.User{Subject: "sub-ann", Email: "Ann.Example@Example.COM", EmailVerified: true, Name: "Ann Example"})
	b := newOIDCBrowser(t)
	res := env.signIn(t, b, "/workspaces/acme?tab=agents")
	want := Identity{Email: "ann.example@example.com", Subject: "sub-ann", Issuer: env.p.Issuer, Name: "Ann Example"}
	if res.Status != http.StatusOK || res.Identity != want || res.Next != "/workspaces/acme?tab=agents" {
		t.Fatalf("signed in: %+v, want %+v and the next path", res, want)
	}

	// The redirect chain: 303 to the provider with PKCE S256 and a nonce, setting the flow cookie; back to the callback.
	if len(b.chain) != 2 {
		t.Fatalf("redirect chain of %d", len(b.chain))
	}
	toProvider := b.chain[0]
	if toProvider.Response.StatusCode != http.StatusSeeOther || !strings.HasPrefix(toProvider.URL.String(), env.p.Issuer+"/") {
		t.Fatalf("Start answered %d to %s", toProvider.Response.StatusCode, toProvider.URL)
	}
	q := toProvider.URL.Query()
	if q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 || len(q.Get("nonce")) < 43 ||
		len(q.Get("state")) < 43 || q.Get("scope") != "openid email profile" || q.Get("client_id") != env.p.ClientID {
		t.Fatalf("authorization request %s", toProvider.URL.RawQuery)
	}
	var flowCookie *http.Cookie
	for _, c := range toProvider.Response.Cookies() {
		if c.Name == oidcCookieName {
			flowCookie = c
		}
	}
	if flowCookie == nil || !flowCookie.HttpOnly || flowCookie.Path != "/auth/oidc" || flowCookie.SameSite != http.SameSiteLaxMode ||
		flowCookie.MaxAge != 600 || flowCookie.Secure {
		t.Fatalf("flow cookie %+v", flowCookie)
	}
	if cc := toProvider.Response.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Start's Cache-Control %q", cc)
	}
	// Finish cleared the cookie.
	if c := env.flowCookie(b); c != nil {
		t.Fatalf("flow cookie kept after sign-in: %+v", c)
	}
}

func TestOIDCSecureCookieBehindTLS(t *testing.T) {
	env := newOIDCEnv(t, oidcprovider.Options{})
	for name, r := range map[string]*http.Request{
		"X-Forwarded-Proto": func() *http.Request {
			r := httptest.NewRequest("GET", "http://portal.example/auth/oidc/start", nil)
			r.Header.Set("X-Forwarded-Proto", "https")
			return r
		}(),
		"TLS": httptest.NewRequest("GET", "https://portal.example/auth/oidc/start", nil),
	} {
		w := httptest.NewRecorder()
		env.o.Start(w, r, "/")
		cookies := w.Result().Cookies()
		if w.Code != http.StatusSeeOther || len(cookies) != 1 || !cookies[0].Secure {
			t.Errorf("%s: %d %+v", name, w.Code, cookies)
		}
	}
}

func TestOIDCPublicClient(t *testing.T) {
	env := newOIDCEnv(t, oidcprovider.Options{Public: true, DefaultUser: &oidcprovider.User{Subject: "demo", Email: "demo@example.com", EmailVerified: true}})
	res := env.signIn(t, newOIDCBrowser(t), "/")
	if res.Status != http.StatusOK || res.Identity.Email != "demo@example.com" || res.Identity.Name != "" {
		t.Fatalf("public client: %+v", res)
	}
}

func TestOIDCNextPath(t *testing.T) {
	env := newOIDCEnv(t, oidcprovider.Options{})
	for _, next := range []string{"//evil.example", "https://evil", "/\\evil.example", "evil", "/a\r\nSet-Cookie: x=y", "/\t/evil.example", ""} {
		res := env.signIn(t, newOIDCBrowser(t), next)
		if res.Status != http.StatusOK || res.Next != "/" {
			t.Errorf("next %q: %+v", next, res)
		}
	}
	for next, want := range map[string]string{
		"/":                 "/",
		"/workspaces/a?b=c": "/workspaces/a?b=c",
		"/a//b":             "/",
		"/%2F%2Fevil":       "/%2F%2Fevil", // a path, not a host
		"http:/evil":        "/",
		"/ok#frag":          "/ok#frag",
	} {
		if got := oidcSafeNext(next); got != want {
			t.Errorf("oidcSafeNext(%q) = %q, want %q", next, got, want)
		}
	}
}

func TestOIDCRefusesBadState(t *testing.T) {
	env := newOIDCEnv(t, oidcprovider.Options{})

	t.Run("missing cookie", func(t *testing.T) {
		back := env.authorize(t, newOIDCBrowser(t), "/")
		oidcWantError(t, newOIDCBrowser(t).get(t, back.String()), "state cookie is missing")
	})
	t.Run("tampered cookie", func(t *testing.T) {
		b := newOIDCBrowser(t)
		back := env.authorize(t, b, "/")
		value := env.flowCookie(b).Value
		payload, sig, _ := strings.Cut(value, ".")
		raw, _ := base64.RawURLEncoding.DecodeString(payload)
		raw = []byte(strings.Replace(string(raw), `"x":"/"`, `"x":"/admin"`, 1))
		env.setFlowCookie(b, base64.RawURLEncoding.EncodeToString(raw)+"."+sig)
		oidcWantError(t, b.get(t, back.String()), "state cookie is invalid")

		back = env.authorize(t, b, "/")
		env.setFlowCookie(b, "garbage")
		oidcWantError(t, b.get(t, back.String()), "state cookie is invalid")
	})
	t.Run("expired cookie", func(t *testing.T) {
		b := newOIDCBrowser(t)
		back := env.authorize(t, b, "/")
		o := *env.o
		o.now = func() time.Time { return time.Now().Add(11 * time.Minute) }
		r := httptest.NewRequest("GET", back.String(), nil)
		r.AddCookie(env.flowCookie(b))
		_, _, err := o.Finish(httptest.NewRecorder(), r)
		if err == nil || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("expired flow: %v", err)
		}
	})
	t.Run("state mismatch", func(t *testing.T) {
		b := newOIDCBrowser(t)
		back := env.authorize(t, b, "/")
		q := back.Query()
		q.Set("state", "not-the-state")
		back.RawQuery = q.Encode()
		oidcWantError(t, b.get(t, back.String()), "state does not match")

		// Another browser's state and code with this browser's cookie.
		back = env.authorize(t, newOIDCBrowser(t), "/")
		env.authorize(t, b, "/")
		oidcWantError(t, b.get(t, back.String()), "state does not match")
	})
}

func TestOIDCRefusesReusedCodeAndWrongVerifier(t *testing.T) {
	env := newOIDCEnv(t, oidcprovider.Options{})
	b := newOIDCBrowser(t)
	back := env.authorize(t, b, "/")
	cookie := env.flowCookie(b)
	if res := b.get(t, back.String()); res.Status != http.StatusOK {
		t.Fatalf("first use: %+v", res)
	}
	env.setFlowCookie(b, cookie.Value) // the same cookie, state and verifier again
	oidcWantError(t, b.get(t, back.String()), "refused the authorization code (invalid_grant)")

	// A cookie that the portal signed for this state but with another PKCE verifier.
	back = env.authorize(t, b, "/")
	f, err := env.o.readFlow(env.flowCookie(b).Value)
	if err != nil {
		t.Fatal(err)
	}
	f.Verifier = strings.Repeat("A", 43)
	payload, _ := json.Marshal(f)
	value := base64.RawURLEncoding.EncodeToString(payload)
	env.setFlowCookie(b, value+"."+base64.RawURLEncoding.EncodeToString(env.o.mac(value)))
	oidcWantError(t, b.get(t, back.String()), "refused the authorization code (invalid_grant)")
}

func TestOIDCRefusesEmail(t *testing.T) {
	env := newOIDCEnv(t, oidcprovider.Options{})
	env.p.SignInAs(oidcprovider.User{Subject: "u1", Email: "eve@example.com", EmailVerified: false})
	oidcWantError(t, env.signIn(t, newOIDCBrowser(t), "/"), "not verified")

	env.p.SignInAs(oidcprovider.User{Subject: "u2", EmailVerified: true})
	oidcWantError(t, env.signIn(t, newOIDCBrowser(t), "/"), "no email address")

	// email_verified absent: accepted (not every provider states it).
	env.p.SignInAs(oidcprovider.User{Subject: "u3", Email: "Bob@example.com", EmailVerified: true})
	env.p.TamperNextIDToken(func(c map[string]any) { delete(c, "email_verified") })
	if res := env.signIn(t, newOIDCBrowser(t), "/"); res.Status != http.StatusOK || res.Identity.Email != "bob@example.com" {
		t.Fatalf("no email_verified claim: %+v", res)
	}

	// An ID token without the email: the email comes from userinfo, verified there or refused.
	env.p.SignInAs(oidcprovider.User{Subject: "u4", Email: "carol@example.com", EmailVerified: true, Name: "Carol"})
	env.p.TamperNextIDToken(func(c map[string]any) { delete(c, "email"); delete(c, "email_verified") })
	if res := env.signIn(t, newOIDCBrowser(t), "/"); res.Status != http.StatusOK || res.Identity.Email != "carol@example.com" || res.Identity.Name != "Carol" {
		t.Fatalf("email from userinfo: %+v", res)
	}
	env.p.SignInAs(oidcprovider.User{Subject: "u5", Email: "dave@example.com", EmailVerified: false})
	env.p.TamperNextIDToken(func(c map[string]any) { delete(c, "email"); delete(c, "email_verified") })
	oidcWantError(t, env.signIn(t, newOIDCBrowser(t), "/"), "not verified")

	env.p.SignInAs(oidcprovider.User{Subject: "u6", Email: "x@example.com", EmailVerified: true})
	env.p.TamperNextIDToken(func(c map[string]any) { c["email"] = "Mallory <x@example.com>" })
	oidcWantError(t, env.signIn(t, newOIDCBrowser(t), "/"), "not a plain email address")
}

func TestOIDCRefusesProviderError(t *testing.T) {
	env := newOIDCEnv(t, oidcprovider.Options{})
	env.p.DenyNext("access_denied")
	oidcWantError(t, env.signIn(t, newOIDCBrowser(t), "/"), "refused the sign-in (access_denied)")

	// An error code that is not one is not repeated.
	b := newOIDCBrowser(t)
	back := env.authorize(t, b, "/")
	q := back.Query()
	q.Del("code")
	q.Set("error", "<script>alert(1)</script>")
	q.Set("error_description", "evil")
	back.RawQuery = q.Encode()
	res := b.get(t, back.String())
	oidcWantError(t, res, "refused the sign-in (unrecognized error code)")
	if strings.Contains(res.Error, "script") || strings.Contains(res.Error, "evil") {
		t.Fatalf("error repeats the attacker's values: %s", res.Error)
	}
}

func TestOIDCRefusesIDToken(t *testing.T) {
	env := newOIDCEnv(t, oidcprovider.Options{})
	for _, tc := range []struct {
		name   string
		tamper func(map[string]any)
		want   string
	}{
		{"audience", func(c map[string]any) { c["aud"] = []string{"another-client"} }, "for another client (audience)"},
		{"issuer", func(c map[string]any) { c["iss"] = "https://evil.example" }, "from another identity provider (issuer)"},
		{"expired", func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() }, "expired"},
		{"nonce", func(c map[string]any) { c["nonce"] = "replayed" }, "nonce does not match"},
		{"no nonce", func(c map[string]any) { delete(c, "nonce") }, "nonce does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env.p.TamperNextIDToken(tc.tamper)
			oidcWantError(t, env.signIn(t, newOIDCBrowser(t), "/"), tc.want)
		})
	}
}

func TestOIDCConfig(t *testing.T) {
	env := newOIDCEnv(t, oidcprovider.Options{})
	ctx := context.Background()
	good := OIDCConfig{IssuerURL: env.p.Issuer, ClientID: "c", RedirectURL: env.srv.URL + "/auth/oidc/callback"}
	key := []byte(strings.Repeat("k", 32))
	for name, tc := range map[string]struct {
		cfg  func(OIDCConfig) OIDCConfig
		key  []byte
		want string
	}{
		"short key":    {func(c OIDCConfig) OIDCConfig { return c }, key[:31], "cookie key"},
		"no client":    {func(c OIDCConfig) OIDCConfig { c.ClientID = ""; return c }, key, "required"},
		"bad redirect": {func(c OIDCConfig) OIDCConfig { c.RedirectURL = "/callback"; return c }, key, "redirect URL"},
		"issuer":       {func(c OIDCConfig) OIDCConfig { c.IssuerURL += "/"; return c }, key, "discovering"},
		"no provider":  {func(c OIDCConfig) OIDCConfig { c.IssuerURL = env.srv.URL; return c }, key, "discovering"},
	} {
		if _, err := NewOIDC(ctx, tc.cfg(good), tc.key, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
	o, err := NewOIDC(ctx, OIDCConfig{IssuerURL: env.p.Issuer, ClientID: "c", RedirectURL: "https://portal.example/prefix/auth/oidc/callback", Scopes: []string{"email"}}, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.cookiePath != "/prefix/auth/oidc" || strings.Join(o.oauth.Scopes, " ") != "openid email" {
		t.Fatalf("cookie path %q, scopes %q", o.cookiePath, o.oauth.Scopes)
	}
}
