package dashboard

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/harness/miniotest"
	"github.com/supportstack/supportstack/internal/objectstore"
	"github.com/supportstack/supportstack/internal/protocol"
	"github.com/supportstack/supportstack/internal/webserver"
)

// The dashboard reads through the same storage pool as ingest: with its own cluster's storage stopped it keeps
// serving from the peer's, says which endpoint is unreachable, and stays ready.
func TestDashboardFallsBackToThePeersStorage(t *testing.T) {
	ctx := context.Background()
	opts := miniotest.Options{AccessKey: "dashtest", SecretKey: "dashtest-secret-key"}
	own, peer := miniotest.Start(t, opts), miniotest.Start(t, opts)
	for _, s := range []*miniotest.Server{own, peer} {
		mc, err := objectstore.NewClient(objectstore.Endpoint{URL: s.URL, AccessKey: s.AccessKey, SecretKey: s.SecretKey})
		require.NoError(t, err)
		_, err = objectstore.EnsureBucket(ctx, mc, "supportstack", 7)
		require.NoError(t, err)
		// Replication keeps both sides equal; here each gets the same question by hand.
		putQuestion(t, mc, "d1", "question-1", "Why is my printer offline?")
	}
	d := serve(t, Config{DisplayName: "Acme IT", StorageConfig: webserver.StorageConfig{Tenant: "acme",
		Bucket: "supportstack", Endpoints: []string{own.URL, peer.URL}, AccessKey: own.AccessKey, SecretKey: own.SecretKey}})

	// A dashboard the operator pointed at the peer's copy first (a declared failover, not yet failed back) says
	// so while both copies answer: the banner follows which copy is this cluster's, not the order.
	dPeer := serve(t, Config{DisplayName: "Acme IT", StorageConfig: webserver.StorageConfig{Tenant: "acme",
		Bucket: "supportstack", Endpoints: []string{peer.URL, own.URL}, Local: own.URL, AccessKey: own.AccessKey, SecretKey: own.SecretKey}})
	signedIn(t, dPeer)
	code, body := dPeer.get("/")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `id="failover-banner"`)

	signedIn(t, d)
	get := d.get
	waitFor(t, d, "/", `<span id="questions">1</span>`)
	code, body = get("/")
	require.Equal(t, http.StatusOK, code, body)
	require.NotContains(t, body, `id="failover-banner"`, "no banner while the own storage serves")

	own.Stop()
	require.Eventually(t, func() bool {
		code, body := get("/status")
		return code == http.StatusOK && strings.Count(body, "unreachable") == 1
	}, 20*time.Second, 100*time.Millisecond, "the status page never showed the own storage down")
	code, body = get("/")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `id="failover-banner"`, "the page says it is served from the peer's copy")
	_, status := get("/status")
	require.Contains(t, status, `id="failover-banner"`)
	require.Contains(t, body, `<span id="questions">1</span>`)
	code, _ = get("/readyz")
	require.Equal(t, http.StatusOK, code, "the peer's storage keeps the dashboard ready")

	peer.Stop()
	require.Eventually(t, func() bool { code, _ := get("/readyz"); return code == http.StatusServiceUnavailable }, 20*time.Second, 100*time.Millisecond)
	code, body = get("/status")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "Acme IT", "the status page still renders with every storage down")
}

// Sign-in secrets of the tests' dashboards.
const (
	testPassword   = "correct horse battery staple"
	testSessionKey = "0123456789abcdef0123456789abcdef-session"
)

// site is a dashboard under test and a browser-like client of it: a cookie jar, redirects not followed.
type site struct {
	t    *testing.T
	addr string
	hc   *http.Client
}

// serve runs a dashboard on a free port until the test ends and waits until it is ready. cfg's sign-in secrets
// default to the tests'.
func serve(t *testing.T, cfg Config) *site {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	cfg.ListenAddress = addr
	cfg.AdminPassword = cmp.Or(cfg.AdminPassword, testPassword)
	cfg.SessionKey = cmp.Or(cfg.SessionKey, testSessionKey)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	t.Cleanup(func() { cancel(); <-done })
	d := newClient(t, addr)
	require.Eventually(t, func() bool { code, _ := d.get("/readyz"); return code == http.StatusOK }, 20*time.Second, 50*time.Millisecond)
	return d
}

// newClient is another browser of the same dashboard, with cookies of its own.
func newClient(t *testing.T, addr string) *site {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &site{t: t, addr: addr, hc: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (d *site) do(req *http.Request) (*http.Response, string) {
	resp, err := d.hc.Do(req)
	if err != nil {
		return &http.Response{StatusCode: 0, Header: http.Header{}}, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// get fetches a page and returns its code and body.
func (d *site) get(path string) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+d.addr+path, nil)
	resp, body := d.do(req)
	return resp.StatusCode, body
}

// post sends a form.
func (d *site) post(path string, form url.Values) (*http.Response, string) {
	req, _ := http.NewRequest(http.MethodPost, "http://"+d.addr+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return d.do(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// formToken reads the CSRF token of the form on a page.
func (d *site) formToken(path string) string {
	d.t.Helper()
	_, body := d.get(path)
	m := csrfField.FindStringSubmatch(body)
	require.NotNil(d.t, m, "no form token on %s: %s", path, body)
	return m[1]
}

// signIn signs in through the sign-in form and returns the answer to the form.
func (d *site) signIn(user, password string) (*http.Response, string) {
	d.t.Helper()
	return d.post("/login", url.Values{"csrf": {d.formToken("/login")}, "user": {user}, "password": {password}, "next": {"/"}})
}

// signedIn signs d in as the admin.
func signedIn(t *testing.T, d *site) {
	t.Helper()
	resp, body := d.signIn(AdminUser, testPassword)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
}

// The public status page: which copy serves, each copy's health, the replication heartbeats and the last
// failover, named without any address; a JSON variant for monitors; and an answer at once, from memory, when
// every storage endpoint hangs.
func TestStatusPage(t *testing.T) {
	ctx := context.Background()
	opts := miniotest.Options{AccessKey: "statustest", SecretKey: "statustest-secret-key"}
	own, peer := miniotest.Start(t, opts), miniotest.Start(t, opts)
	now := time.Now()
	for _, s := range []*miniotest.Server{own, peer} {
		mc, err := objectstore.NewClient(objectstore.Endpoint{URL: s.URL, AccessKey: s.AccessKey, SecretKey: s.SecretKey})
		require.NoError(t, err)
		_, err = objectstore.EnsureBucket(ctx, mc, "supportstack", 7)
		require.NoError(t, err)
		require.NoError(t, objectstore.WriteHeartbeat(ctx, mc, "supportstack", "home", now.Add(-time.Second)))
		require.NoError(t, objectstore.WriteHeartbeat(ctx, mc, "supportstack", "standby", now.Add(-3*time.Second)))
		for _, sw := range []protocol.StorageSwitch{
			{Server: "ingest-a", From: own.URL, To: peer.URL, FailedAt: now.Add(-time.Hour), ResumedAt: now.Add(-time.Hour + time.Second)},
			{Server: "ingest-b", From: own.URL, To: peer.URL, FailedAt: now.Add(-10 * time.Minute), ResumedAt: now.Add(-10*time.Minute + 250*time.Millisecond)},
		} {
			body, err := json.Marshal(sw)
			require.NoError(t, err)
			_, err = mc.PutObject(ctx, "supportstack", protocol.SwitchKey(sw.Server, sw.ResumedAt), bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
			require.NoError(t, err)
		}
	}
	d := serve(t, Config{DisplayName: "Acme <b>IT</b>", StatusInterval: 200 * time.Millisecond,
		StorageConfig: webserver.StorageConfig{Tenant: "acme", Bucket: "supportstack", Endpoints: []string{own.URL, peer.URL},
			AccessKey: own.AccessKey, SecretKey: own.SecretKey}})
	get := d.get
	status := func() (int, Status) {
		code, body := get("/status.json")
		var s Status
		require.NoError(t, json.Unmarshal([]byte(body), &s), body)
		return code, s
	}
	var s Status
	require.Eventually(t, func() bool { _, s = status(); return s.LastSwitch != nil && len(s.Heartbeats) == 2 }, 20*time.Second, 100*time.Millisecond)
	require.Equal(t, "this cluster", s.Serving)
	require.False(t, s.FromPeer)
	require.Len(t, s.Storage, 2)
	require.Equal(t, []string{"this cluster", "the peer cluster"}, []string{s.Storage[0].Site, s.Storage[1].Site})
	require.True(t, s.Storage[0].Healthy && s.Storage[1].Healthy)
	require.NotNil(t, s.ReplicationLagSeconds)
	require.InDelta(t, 3, *s.ReplicationLagSeconds, 2, "the older heartbeat's age")
	require.Equal(t, "this cluster", s.LastSwitch.From, "the newest switch record")
	require.Equal(t, "the peer cluster", s.LastSwitch.To)
	require.InDelta(t, 0.25, s.LastSwitch.WaitSeconds, 0.001)
	resp, err := http.Get("http://" + d.addr + "/status")
	require.NoError(t, err)
	resp.Body.Close()
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'", "no script may run on the public page")
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'")
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	code, page := get("/status")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, "Writes moved from this cluster's storage to the peer cluster's")
	require.Regexp(t, `Replication lag: at most <strong id="lag">\d+\.\d s</strong>`, page)
	require.Regexp(t, `home copy's heartbeat written \d+\.\d s ago`, page)
	require.Contains(t, page, "Acme &lt;b&gt;IT&lt;/b&gt;", "names are escaped")
	for _, srv := range []*miniotest.Server{own, peer} {
		require.NotContains(t, page, srv.Addr, "the public page names copies, not addresses")
	}

	// Every copy hangs: the page answers at once from what it knew, then says no copy answers.
	thawOwn, thawPeer := own.Freeze(), peer.Freeze()
	defer thawOwn()
	defer thawPeer()
	for range 10 {
		start := time.Now()
		code, _ := get("/status")
		require.NotZero(t, code)
		require.Less(t, time.Since(start), 500*time.Millisecond, "the status page never waits on storage")
		time.Sleep(100 * time.Millisecond)
	}
	require.Eventually(t, func() bool { code, s = status(); return code == http.StatusServiceUnavailable && s.Serving == "" },
		30*time.Second, 200*time.Millisecond)
	require.NotNil(t, s.LastSwitch, "the last failover stays on the page through the outage")
	code, page = get("/status")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, page, "No copy of the storage answers")
}

// putQuestion stores a question as ingest does (protocol.QuestionKey, the record as JSON).
func putQuestion(t *testing.T, mc *minio.Client, deviceID, id, text string) {
	t.Helper()
	data, err := json.Marshal(protocol.Question{ID: id, Text: text})
	require.NoError(t, err)
	rec, err := json.Marshal(protocol.Record{Seq: 1, Kind: protocol.KindQuestion, Time: time.Now().UTC(), Data: data})
	require.NoError(t, err)
	_, err = mc.PutObject(context.Background(), "supportstack", protocol.QuestionKey(deviceID, id), bytes.NewReader(rec), int64(len(rec)), minio.PutObjectOptions{})
	require.NoError(t, err)
}

// waitFor waits until the page contains want: the index fills within a scan.
func waitFor(t *testing.T, d *site, path, want string) string {
	t.Helper()
	var body string
	require.Eventually(t, func() bool {
		var code int
		code, body = d.get(path)
		return code == http.StatusOK && strings.Contains(body, want)
	}, 20*time.Second, 50*time.Millisecond, "%s never showed %q", path, want)
	return body
}
