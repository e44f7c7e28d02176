package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/harness/miniotest"
	"github.com/supportstack/supportstack/internal/objectstore"
	"github.com/supportstack/supportstack/internal/webserver"
)

// Sign-in against a real dashboard: every page but the status page needs it; wrong passwords, a lockout, CSRF,
// tampered, expired and other tenants' cookies are refused; sign-out ends the session.
func TestSignIn(t *testing.T) {
	srv := startStorage(t)
	cfg := Config{DisplayName: "Acme IT", StorageConfig: webserver.StorageConfig{Tenant: "acme", Bucket: "supportstack",
		Endpoints: []string{srv.URL}, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}}
	d := serve(t, cfg)

	// Without a session: sent to the sign-in page, which remembers where the browser was going.
	code, _ := d.get("/")
	require.Equal(t, http.StatusSeeOther, code)
	code, page := d.get("/login?next=/")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, `<label for="password">Password</label>`)
	code, _ = d.get("/status")
	require.NotEqual(t, http.StatusSeeOther, code, "the status page needs no sign-in")

	// A form that did not come from the sign-in page (no token, or another browser's) changes nothing.
	resp, body := d.post("/login", url.Values{"user": {AdminUser}, "password": {testPassword}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode, body)
	require.Contains(t, body, "did not come from this page")
	other := newClient(t, d.addr)
	resp, _ = d.post("/login", url.Values{"csrf": {other.formToken("/login")}, "user": {AdminUser}, "password": {testPassword}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Empty(t, sessionOf(resp))

	// A wrong password: 401, no session.
	resp, body = d.signIn(AdminUser, "wrong password")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Contains(t, body, "Wrong name or password")
	require.Empty(t, sessionOf(resp))

	// The right one: a session cookie that scripts cannot read and other sites do not send.
	resp, _ = d.signIn(AdminUser, testPassword)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	c := sessionOf(resp)
	require.NotNil(t, c)
	require.True(t, c.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, c.SameSite)
	code, page = d.get("/")
	require.Equal(t, http.StatusOK, code, page)
	require.Contains(t, page, `<strong id="user">admin</strong>`)

	// Sign-out needs the session's form token.
	resp, body = d.post("/logout", url.Values{"csrf": {"forged"}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode, body)
	code, _ = d.get("/")
	require.Equal(t, http.StatusOK, code, "a forged sign-out ends nothing")
	resp, _ = d.post("/logout", url.Values{"csrf": {d.formToken("/")}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	code, _ = d.get("/")
	require.Equal(t, http.StatusSeeOther, code, "signed out")

	// Cookies the dashboard did not issue to this tenant, or that expired, are no session.
	a, err := newAuth("acme", testPassword, testSessionKey, nil)
	require.NoError(t, err)
	other2, err := newAuth("globex", testPassword, testSessionKey, nil)
	require.NoError(t, err)
	expired, err := newAuth("acme", testPassword, testSessionKey, nil)
	require.NoError(t, err)
	expired.now = func() time.Time { return time.Now().Add(-DefaultSessionTTL - time.Minute) }
	valid, _ := a.issue(AdminUser, false)
	forOther, _ := other2.issue(AdminUser, false)
	old, _ := expired.issue(AdminUser, false)
	payload, _ := json.Marshal(session{Tenant: "acme", User: AdminUser, Expires: time.Now().Add(time.Hour).Unix(), Nonce: "x"})
	unsigned := a.signer.Sign(payload)
	tampered := strings.Replace(unsigned, ".", "A.", 1)
	for name, value := range map[string]string{"another tenant's": forOther.Value, "an expired": old.Value,
		"a tampered": tampered, "a garbage": "not-a-cookie", "an unknown user's": a.signer.Sign(mustJSON(t, session{Tenant: "acme",
			User: "mallory", Expires: time.Now().Add(time.Hour).Unix(), Nonce: "y"}))} {
		code, _ := withCookie(t, d.addr, value)
		require.Equal(t, http.StatusSeeOther, code, "%s cookie was taken as a session", name)
	}
	code, _ = withCookie(t, d.addr, valid.Value)
	require.Equal(t, http.StatusOK, code, "a cookie signed with the shared key works on any replica")

	// Five wrong passwords from one address (one was above) lock it and the name out, even with the right one
	// after them.
	locked := newClient(t, d.addr)
	for range maxFailures - 1 {
		resp, _ := locked.signIn(AdminUser, "guess")
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
	resp, body = locked.signIn(AdminUser, testPassword)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, body)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	require.Contains(t, body, "Too many failed sign-ins")
	require.Empty(t, sessionOf(resp))
}

// The sign-in page renders names inert and takes a redirect only to a path of its own site.
func TestSignInPageIsInert(t *testing.T) {
	srv := startStorage(t)
	d := serve(t, Config{DisplayName: `<script>alert(1)</script>`, StorageConfig: webserver.StorageConfig{Tenant: "acme",
		Bucket: "supportstack", Endpoints: []string{srv.URL}, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}})
	_, page := d.get(`/login?next=//evil.example/"><script>`)
	require.NotContains(t, page, "<script>")
	require.Contains(t, page, "&lt;script&gt;alert(1)&lt;/script&gt;")
	require.Contains(t, page, `name="next" value="/"`, "an off-site redirect becomes the front page")
	resp, _ := d.post("/login", url.Values{"csrf": {d.formToken("/login")}, "user": {AdminUser}, "password": {testPassword},
		"next": {"https://evil.example/"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/", resp.Header.Get("Location"))
	code, _ := d.get("/")
	require.Equal(t, http.StatusOK, code)
}

// The dashboard refuses to start without its sign-in secrets, or with weak ones.
func TestSignInSecretsRequired(t *testing.T) {
	_, err := newAuth("acme", "short", testSessionKey, nil)
	require.ErrorContains(t, err, EnvAdminPassword)
	_, err = newAuth("acme", testPassword, "short", nil)
	require.ErrorContains(t, err, EnvSessionKey)
	t.Setenv(EnvAdminPassword, "")
	var cfg Config
	require.ErrorContains(t, cfg.LoadSecrets(), EnvSessionKey)
}

func sessionOf(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie && c.MaxAge >= 0 && c.Value != "" {
			return c
		}
	}
	return nil
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// withCookie fetches the front page with only the given session cookie.
func withCookie(t *testing.T, addr, value string) (int, string) {
	c := newClient(t, addr)
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: value})
	resp, body := c.do(req)
	return resp.StatusCode, body
}

// startStorage is a MinIO server with the tenant's bucket.
func startStorage(t *testing.T) *miniotest.Server {
	srv := miniotest.Start(t, miniotest.Options{AccessKey: "signin", SecretKey: "signin-secret-key"})
	mc, err := objectstore.NewClient(objectstore.Endpoint{URL: srv.URL, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	require.NoError(t, err)
	_, err = objectstore.EnsureBucket(context.Background(), mc, "supportstack", 7)
	require.NoError(t, err)
	return srv
}
