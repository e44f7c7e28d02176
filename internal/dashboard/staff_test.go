package dashboard

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/supportstack/supportstack/internal/fleetindex"
)

// Staff accounts against a real dashboard and bucket: the admin adds one through the staff page, its owner
// signs in; staff members cannot manage accounts; bad names and passwords and forms without the CSRF token store
// nothing; a new password or a removal ends the account's sessions; a second dashboard on the same bucket (a
// restart, the other cluster's) knows the accounts after its first scan.
func TestStaffAccounts(t *testing.T) {
	srv := startStorage(t)
	mc := storageClient(t, srv)
	cfg := testConfig(srv)
	d := serve(t, cfg)
	signedIn(t, d)
	const (
		alicePass = "alice's first passphrase"
		aliceNew  = "alice's second passphrase"
		carolPass = "carol's own passphrase"
	)
	stored := func() []string { return bucketKeys(t, mc, fleetindex.StaffPrefix) }
	save := func(c *site, token, name, password string) *http.Response {
		resp, body := c.post("/staff", url.Values{"csrf": {token}, "name": {name}, "password": {password}})
		require.NotEqual(t, http.StatusInternalServerError, resp.StatusCode, body)
		return resp
	}

	// The admin adds alice through the form on the staff page: stored in the bucket with a bcrypt hash.
	code, page := d.get("/staff")
	require.Equal(t, http.StatusOK, code, page)
	require.Contains(t, page, `id="add-staff"`)
	resp := save(d, d.formToken("/staff"), "alice", alicePass)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/staff?notice=staff-saved", resp.Header.Get("Location"))
	require.Equal(t, []string{fleetindex.StaffKey("alice")}, stored())
	var acct fleetindex.StaffAccount
	readJSON(t, mc, fleetindex.StaffKey("alice"), &acct)
	require.Equal(t, "alice", acct.Name)
	require.Equal(t, AdminUser, acct.CreatedBy)
	require.False(t, acct.Removed)
	require.NoError(t, bcrypt.CompareHashAndPassword([]byte(acct.Hash), []byte(alicePass)), "the bucket holds the password's bcrypt hash")
	require.NotContains(t, acct.Hash, alicePass)
	_, page = d.get("/staff?notice=staff-saved")
	require.Contains(t, page, "<td>alice</td>")
	require.Contains(t, page, notices["staff-saved"])

	// alice signs in, and is a staff member, not the admin.
	alice := newClient(t, d.addr)
	resp, body := alice.signIn("alice", alicePass)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
	code, page = alice.get("/")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, `<strong id="user">alice</strong>`)
	require.NotContains(t, page, `href="/staff"`, "no staff link for a staff member")

	// A staff member may not see or change the staff accounts, even with a valid form token.
	code, _ = alice.get("/staff")
	require.Equal(t, http.StatusForbidden, code)
	aliceToken := alice.formToken("/")
	require.Equal(t, http.StatusForbidden, save(alice, aliceToken, "mallory", "mallory's passphrase").StatusCode)
	require.Equal(t, http.StatusForbidden, save(alice, aliceToken, "alice", "a passphrase of her choice").StatusCode)
	resp, _ = alice.post("/staff/alice/remove", url.Values{"csrf": {aliceToken}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Equal(t, []string{fleetindex.StaffKey("alice")}, stored(), "nothing changed")
	readJSON(t, mc, fleetindex.StaffKey("alice"), &acct)
	require.NoError(t, bcrypt.CompareHashAndPassword([]byte(acct.Hash), []byte(alicePass)))

	// Bad names and passwords are refused with a notice; nothing is stored.
	token := d.formToken("/staff")
	for _, c := range []struct{ name, password, notice string }{
		{"bob", "elevenchars", "staff-bad-pass"},
		{"bob", strings.Repeat("p", 73), "staff-bad-pass"},
		{"", "a long enough passphrase", "staff-bad-name"},
		{"b", "a long enough passphrase", "staff-bad-name"},
		{"Bob", "a long enough passphrase", "staff-bad-name"},
		{"admin", "a long enough passphrase", "staff-bad-name"},
		{"-bob", "a long enough passphrase", "staff-bad-name"},
		{"bob/../alice", "a long enough passphrase", "staff-bad-name"},
		{"bob smith", "a long enough passphrase", "staff-bad-name"},
	} {
		resp := save(d, token, c.name, c.password)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, "%+v", c)
		require.Equal(t, "/staff?notice="+c.notice, resp.Header.Get("Location"), "%+v", c)
	}
	require.Equal(t, []string{fleetindex.StaffKey("alice")}, stored(), "no refused account was stored")
	_, page = d.get("/staff?notice=staff-bad-pass")
	require.Contains(t, page, "A password has at least 12 characters")

	// A form without the session's CSRF token changes nothing.
	resp, _ = d.post("/staff", url.Values{"name": {"carol"}, "password": {carolPass}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Equal(t, http.StatusForbidden, save(d, "forged", "carol", carolPass).StatusCode)
	require.Equal(t, http.StatusForbidden, save(d, aliceToken, "carol", carolPass).StatusCode, "another session's token")
	resp, _ = d.post("/staff/alice/remove", url.Values{})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Equal(t, []string{fleetindex.StaffKey("alice")}, stored())
	code, _ = alice.get("/")
	require.Equal(t, http.StatusOK, code, "alice is still signed in")

	// A new password ends alice's older session; the old password no longer signs in, the new one does.
	resp = save(d, token, "alice", aliceNew)
	require.Equal(t, "/staff?notice=staff-saved", resp.Header.Get("Location"))
	code, _ = alice.get("/")
	require.Equal(t, http.StatusSeeOther, code, "the session opened with the old password ended")
	resp, _ = alice.signIn("alice", alicePass)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = alice.signIn("alice", aliceNew)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	code, _ = alice.get("/")
	require.Equal(t, http.StatusOK, code)

	// Removing the account ends its session and its sign-in; the bucket keeps a removed record without a hash.
	resp, _ = d.post("/staff/alice/remove", url.Values{"csrf": {token}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/staff?notice=staff-removed", resp.Header.Get("Location"))
	resp, _ = alice.do(mustRequest(t, http.MethodGet, "http://"+d.addr+"/devices"))
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.True(t, strings.HasPrefix(resp.Header.Get("Location"), "/login"), resp.Header.Get("Location"))
	resp, _ = alice.signIn("alice", aliceNew)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	readJSON(t, mc, fleetindex.StaffKey("alice"), &acct)
	require.True(t, acct.Removed)
	require.Empty(t, acct.Hash)
	_, page = d.get("/staff")
	require.NotContains(t, page, "<td>alice</td>")
	resp, _ = d.post("/staff/alice/remove", url.Values{"csrf": {token}})
	require.Equal(t, "/staff?notice=staff-not-found", resp.Header.Get("Location"), "a removed account is not removed twice")

	// carol is added and signs in.
	require.Equal(t, "/staff?notice=staff-saved", save(d, token, "carol", carolPass).Header.Get("Location"))
	carol := newClient(t, d.addr)
	resp, _ = carol.signIn("carol", carolPass)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	carolSession, adminSession := sessionValue(t, carol), sessionValue(t, d)

	// A second dashboard on the same bucket (restarted, or the other cluster's) knows carol and alice's removal
	// once it has scanned the bucket; the first one's sessions are valid there.
	d2 := serve(t, cfg)
	signedIn(t, d2)
	page = waitFor(t, d2, "/staff", "<td>carol</td>")
	require.NotContains(t, page, "<td>alice</td>")
	carol2 := newClient(t, d2.addr)
	resp, _ = carol2.signIn("carol", carolPass)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	code, page = carol2.get("/")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, `<strong id="user">carol</strong>`)
	code, page = withCookie(t, d2.addr, carolSession)
	require.Equal(t, http.StatusOK, code, "carol's session from the first dashboard")
	require.Contains(t, page, `<strong id="user">carol</strong>`)
	code, page = withCookie(t, d2.addr, adminSession)
	require.Equal(t, http.StatusOK, code, "the admin's session from the first dashboard")
	require.Contains(t, page, `<strong id="user">admin</strong>`)
	alice2 := newClient(t, d2.addr)
	resp, _ = alice2.signIn("alice", aliceNew)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the removal is known too")
}

// sessionValue is the session cookie a client holds for its dashboard.
func sessionValue(t *testing.T, c *site) string {
	t.Helper()
	u, err := url.Parse("http://" + c.addr + "/")
	require.NoError(t, err)
	for _, ck := range c.hc.Jar.Cookies(u) {
		if ck.Name == sessionCookie && ck.Value != "" {
			return ck.Value
		}
	}
	t.Fatal("the client holds no session")
	return ""
}

func mustRequest(t *testing.T, method, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	require.NoError(t, err)
	return req
}
