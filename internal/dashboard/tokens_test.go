package dashboard

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/enrolltoken"
)

var tokenValue = regexp.MustCompile(`id="token-value" readonly value="(sst_[^"]+)"`)

// The admin makes an enrollment token: it is shown once with install commands that point at the workspace's
// ingest, and only its hash is stored; bad names and limits store nothing; the list counts the PCs a token
// enrolled; a revocation is stored; staff cannot reach any of it.
func TestEnrollmentTokens(t *testing.T) {
	srv := startStorage(t)
	mc := storageClient(t, srv)
	cfg := testConfig(srv)
	cfg.IngestEndpoints = []string{"https://acme-ingest.east.example.com", "https://acme-ingest.west.example.com"}
	d := serve(t, cfg)
	signedIn(t, d)
	stored := func() []string { return bucketKeys(t, mc, enrolltoken.TokensPrefix) }

	for _, bad := range []url.Values{{"name": {""}}, {"name": {strings.Repeat("n", 101)}}, {"name": {"x"}, "days": {"-1"}},
		{"name": {"x"}, "uses": {"many"}}, {"name": {"x"}, "days": {"99999"}}} {
		bad.Set("csrf", d.formToken("/tokens"))
		resp, body := d.post("/tokens", bad)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
		require.Contains(t, resp.Header.Get("Location"), "/tokens?notice=token-bad-")
	}
	require.Empty(t, stored(), "a refused form stores nothing")
	resp, _ := d.post("/tokens", url.Values{"name": {"no csrf"}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	resp, page := d.post("/tokens", url.Values{"csrf": {d.formToken("/tokens")}, "name": {"Office <rollout>"}, "days": {"7"}, "uses": {"25"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, "the token is the answer to the POST, never in a URL: %s", page)
	m := tokenValue.FindStringSubmatch(page)
	require.NotNil(t, m, page)
	token := m[1]
	id, secret, ok := enrolltoken.Parse(token)
	require.True(t, ok)
	require.Contains(t, page, "curl -fsSL https://acme-ingest.east.example.com/install.sh | sudo sh -s -- --token &#39;"+token+"&#39;")
	require.Contains(t, page, "ingest_urls = https://acme-ingest.east.example.com,https://acme-ingest.west.example.com")
	require.Contains(t, page, "Office &lt;rollout&gt;")
	require.Equal(t, []string{enrolltoken.Key(id)}, stored())
	var rec enrolltoken.Record
	readJSON(t, mc, enrolltoken.Key(id), &rec)
	require.True(t, rec.Matches(secret))
	require.Equal(t, 25, rec.MaxUses)
	require.Equal(t, AdminUser, rec.CreatedBy)
	raw, _ := readObject(t, mc, enrolltoken.Key(id))
	require.NotContains(t, raw, secret, "only the secret's hash is stored")

	// The list shows it, without the secret, with the PCs it enrolled (ingest records a use per device).
	putJSON(t, mc, enrolltoken.UseKey(id, "device-1"), map[string]any{})
	page = waitFor(t, d, "/tokens", "<td class=\"n\">1 of 25</td>")
	require.NotContains(t, page, secret)
	require.Contains(t, page, "active")

	// Revoked: stored, and the list says so.
	resp, body := d.post("/tokens/"+id+"/revoke", url.Values{"csrf": {d.formToken("/tokens")}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
	readJSON(t, mc, enrolltoken.Key(id), &rec)
	require.False(t, rec.RevokedAt.IsZero())
	require.Equal(t, AdminUser, rec.RevokedBy)
	_, page = d.get("/tokens")
	require.Contains(t, page, "revoked")
	resp, _ = d.post("/tokens/"+id+"/revoke", url.Values{"csrf": {"forged"}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	// Staff see nothing of it.
	staff := addStaff(t, d, "bob", "bob's long passphrase")
	code, _ := staff.get("/tokens")
	require.Equal(t, http.StatusForbidden, code)
	resp, _ = staff.post("/tokens", url.Values{"csrf": {staff.formToken("/")}, "name": {"sneaky"}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Len(t, stored(), 1)
}

// readObject returns an object's content as text.
func readObject(t *testing.T, mc *minio.Client, key string) (string, error) {
	t.Helper()
	obj, err := mc.GetObject(context.Background(), "supportstack", key, minio.GetObjectOptions{})
	require.NoError(t, err)
	defer obj.Close()
	b, err := io.ReadAll(obj)
	require.NoError(t, err)
	return string(b), nil
}

// addStaff makes a staff account as the admin and returns a browser signed in with it.
func addStaff(t *testing.T, admin *site, name, password string) *site {
	t.Helper()
	resp, body := admin.post("/staff", url.Values{"csrf": {admin.formToken("/staff")}, "name": {name}, "password": {password}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
	c := newClient(t, admin.addr)
	resp, body = c.signIn(name, password)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
	return c
}
