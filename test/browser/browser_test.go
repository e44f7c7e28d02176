// Package browser_test drives the dashboard in headless Chromium (chromedp), the way support staff use it: the
// real dashboard binary reads real MinIO servers that real agents filled through the real ingest binary. It signs
// in, searches devices, opens a chart, answers a question and sees the agent receive it, watches the banner and
// the status page as MinIO stops, and tries what a hostile visitor would: wrong passwords, a forged form,
// another tenant's cookie, an expired session and markup in every name a PC or a tenant chooses.
package browser_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/agent/client"
	"github.com/supportstack/supportstack/internal/harness/browsertest"
	"github.com/supportstack/supportstack/internal/harness/miniotest"
	"github.com/supportstack/supportstack/internal/harness/procs"
	"github.com/supportstack/supportstack/internal/objectstore"
	"github.com/supportstack/supportstack/internal/protocol"
)

const (
	bucket          = "supportstack"
	enrollmentToken = "browser-test-token"
	adminPassword   = "browser-test admin password"
	// Names a PC or a tenant chooses, made to run script if a page ever rendered them as markup.
	hostileHost     = `<img src=x onerror="alert('host')">pc-"quoted"&`
	hostileQuestion = `<script>alert('question')</script> my <b>screen</b> flickers`
	hostileDisplay  = `Acme <script>alert('tenant')</script>IT`
)

var bins procs.Binaries

func TestMain(m *testing.M) { os.Exit(procs.Main(m, &bins)) }

// env is a tenant's data plane on this machine.
type env struct {
	own, peer *miniotest.Server
	ingest    string
	dashboard string
}

func startStorage(t *testing.T) *miniotest.Server {
	t.Helper()
	srv := miniotest.Start(t, miniotest.Options{AccessKey: "browsertest", SecretKey: "browsertest-secret-key"})
	mc, err := objectstore.NewClient(objectstore.Endpoint{URL: srv.URL, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	require.NoError(t, err)
	_, err = objectstore.EnsureBucket(context.Background(), mc, bucket, 30)
	require.NoError(t, err)
	return srv
}

func storageEnv(s *miniotest.Server) []string {
	return []string{"STORAGE_ACCESS_KEY=" + s.AccessKey, "STORAGE_SECRET_KEY=" + s.SecretKey}
}

// startDashboard runs `supportstack dashboard` as the operator renders it and waits until it is ready.
func startDashboard(t *testing.T, tenant, displayName, sessionKey string, storage []*miniotest.Server, extra ...string) string {
	t.Helper()
	addr := procs.FreeAddr(t)
	var urls []string
	for _, s := range storage {
		urls = append(urls, s.URL)
	}
	args := append([]string{"dashboard", "--listen-address=" + addr, "--tenant=" + tenant, "--bucket=" + bucket,
		"--display-name=" + displayName, "--storage-endpoints=" + strings.Join(urls, ","),
		"--index-interval=300ms", "--status-interval=200ms"}, extra...)
	procs.Start(t, "dashboard-"+tenant, append(storageEnv(storage[0]), "DASHBOARD_ADMIN_PASSWORD="+adminPassword,
		"DASHBOARD_SESSION_KEY="+sessionKey), bins.Supportstack, args...)
	url := "http://" + addr
	procs.WaitReady(t, url)
	return url
}

func startEnv(t *testing.T) *env {
	t.Helper()
	e := &env{own: startStorage(t), peer: startStorage(t)}
	endpoints := e.own.URL + "," + e.peer.URL
	addr := procs.FreeAddr(t)
	procs.Start(t, "ingest", append(storageEnv(e.own), "ENROLLMENT_TOKEN="+enrollmentToken,
		"SIGNING_KEY=browser-test-signing-key-0123456789"), bins.Supportstack, "ingest", "--listen-address="+addr,
		"--tenant=acme", "--bucket="+bucket, "--storage-endpoints="+endpoints, "--storage-health-interval=200ms",
		"--max-records-per-second=0")
	e.ingest = "http://" + addr
	procs.WaitReady(t, e.ingest)
	e.dashboard = startDashboard(t, "acme", hostileDisplay, "acme-session-key-0123456789abcdef-0123", []*miniotest.Server{e.own, e.peer})
	return e
}

// agent is a real agent process on this machine.
type agent struct {
	state    string
	deviceID string
}

func (a *agent) cmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(bins.Agent, append(args, "--state-dir", a.state)...).CombinedOutput()
	require.NoError(t, err, "supportstack-agent %s: %s", strings.Join(args, " "), out)
	return string(out)
}

func startAgent(t *testing.T, ingest string) *agent {
	t.Helper()
	a := &agent{state: t.TempDir()}
	a.cmd(t, "enroll", "--url", ingest, "--token", enrollmentToken)
	procs.Start(t, "agent", nil, bins.Agent, "run", "--state-dir", a.state, "--perf-interval=200ms",
		"--inbox-poll-interval=100ms", "--status-interval=100ms", "--backoff-min=100ms", "--backoff-max=1s",
		"--answer-interval=1s")
	var st struct {
		Enrollment struct {
			DeviceID string `json:"deviceId"`
		} `json:"enrollment"`
	}
	require.NoError(t, json.Unmarshal([]byte(a.cmd(t, "status", "--json")), &st))
	a.deviceID = st.Enrollment.DeviceID
	require.NotEmpty(t, a.deviceID)
	return a
}

// hostileDevice enrolls a device the way any client of the public ingest API may, naming itself in markup, and
// sends an inventory, samples and a question in markup too.
func hostileDevice(t *testing.T, ingest string) string {
	t.Helper()
	ctx := context.Background()
	key, err := protocol.NewDeviceKey()
	require.NoError(t, err)
	c := &client.Client{HTTP: client.NewHTTPClient(5*time.Second, 10*time.Second)}
	resp, err := c.Enroll(ctx, ingest, enrollmentToken, protocol.EnrollRequest{Hostname: hostileHost, OS: "linux/amd64",
		AgentVersion: `<i>9</i>`, PublicKey: protocol.EncodeKey(key.Public().(ed25519.PublicKey))})
	require.NoError(t, err)
	now := time.Now().UTC()
	raw := func(v any) json.RawMessage { b, _ := json.Marshal(v); return b }
	recs := []protocol.Record{{Seq: 1, Kind: protocol.KindInventory, Time: now.Add(-10 * time.Minute), Data: raw(map[string]any{
		"hostname": hostileHost, "os": "linux", "platform": `<svg onload=alert(1)>`, "platformVersion": "1",
		"cpu": map[string]any{"model": `"><script>alert('cpu')</script>`}, "memoryBytes": 8 << 30, "disks": []any{}})}}
	for i := range 10 {
		recs = append(recs, protocol.Record{Seq: uint64(2 + i), Kind: protocol.KindPerf, Time: now.Add(time.Duration(i-10) * time.Minute),
			Data: raw(map[string]any{"intervalSeconds": 60, "cpuPercent": 20, "memUsedPercent": 95, "uptimeSeconds": 600 + 60*i})})
	}
	recs = append(recs, protocol.Record{Seq: 12, Kind: protocol.KindQuestion, Time: now, Data: raw(protocol.Question{ID: "hostile-question-1", Text: hostileQuestion})})
	_, err = c.SendBatch(ctx, ingest, resp.Credential, &protocol.Batch{DeviceID: resp.DeviceID, Records: recs})
	require.NoError(t, err)
	return resp.DeviceID
}

func signIn(b *browsertest.Browser, base, user, password string) {
	b.T.Helper()
	b.Do(chromedp.Navigate(base + "/login"))
	fillSignIn(b, user, password)
}

// fillSignIn submits the sign-in form of the page and waits for the answer.
func fillSignIn(b *browsertest.Browser, user, password string) {
	b.T.Helper()
	b.Navigating(chromedp.WaitVisible(chromedp.ID("user")), chromedp.SendKeys(chromedp.ID("user"), user),
		chromedp.SendKeys(chromedp.ID("password"), password), chromedp.Submit(chromedp.ID("password")))
}

func TestDashboardInABrowser(t *testing.T) {
	e := startEnv(t)
	agents := []*agent{startAgent(t, e.ingest), startAgent(t, e.ingest)}
	hostile := hostileDevice(t, e.ingest)
	question := "My printer says offline since this morning"
	qid, _, _ := strings.Cut(strings.TrimSpace(agents[0].cmd(t, "ask", question)), " ")
	b := browsertest.New(t)

	// Every page but the status page needs a sign-in.
	b.Do(chromedp.Navigate(e.dashboard + "/devices"))
	require.Contains(t, b.Location(), "/login?next=%2Fdevices")
	b.Shot("login")
	fillSignIn(b, "admin", adminPassword)
	require.True(t, strings.HasSuffix(b.Location(), "/devices"), "sign-in returns to the page asked for: %s", b.Location())
	require.Equal(t, hostileDisplay, b.Text(`.brand`), "the tenant's display name is shown as text")
	b.Inert("device list")
	styled(b, "the device list")

	// The index fills from the bucket: all three devices, the hostile one by its name as text.
	b.Until(e.dashboard+"/devices", `document.querySelectorAll('#device-table tbody tr a').length === 3`, 30*time.Second, "the device list never showed the three devices")
	b.Until(e.dashboard+"/devices", `[...document.querySelectorAll('#device-table a')].some(a => a.textContent === `+jsString(hostileHost)+`)`,
		10*time.Second, "the hostile hostname is not shown as text")
	b.Inert("device list with a hostile hostname")
	b.Shot("devices")

	// Search, then open the device and its chart.
	b.Navigating(chromedp.SendKeys(chromedp.ID("q"), agents[1].deviceID[:12]), chromedp.Click(chromedp.ID("apply")))
	require.Equal(t, "1 of 3 devices", b.Text(`#count`))
	b.Navigating(chromedp.Click(chromedp.CSS(`#device-table tbody a`)))
	require.Contains(t, b.Location(), "/devices/"+agents[1].deviceID)
	b.Until(e.dashboard+"/devices/"+agents[1].deviceID+"?period=1h", `document.querySelectorAll('svg.chart path').length >= 2 && +document.querySelector('#samples').textContent > 3`,
		30*time.Second, "the device's chart never drew its samples")
	require.Equal(t, "true", fmt.Sprint(b.Eval(`document.querySelector('#period-1h').getAttribute('aria-current') === 'page'`)))
	require.Contains(t, b.Text(`#inventory`), agents[1].deviceID)
	b.Shot("device")

	// The hostile device's page: every field it chose is text.
	b.Do(chromedp.Navigate(e.dashboard + "/devices/" + hostile))
	require.Equal(t, hostileHost, b.Text(`#device-name`))
	require.Equal(t, "pressure", b.Text(`#health`), "memory at 95 % is pressure")
	require.Contains(t, b.Text(`#inventory`), `"><script>alert('cpu')</script>`)
	require.Contains(t, b.Text(`.question-text`), hostileQuestion)
	b.Inert("hostile device page")

	// Answer the agent's question in the inbox; the agent fetches the answer and shows it to its user.
	b.Until(e.dashboard+"/questions", `!!document.querySelector('#a-`+qid+`')`, 30*time.Second, "the question never reached the inbox")
	require.Contains(t, b.Text(`#q-`+qid+` .question-text`), question)
	b.Shot("questions")
	answer := "Switch the printer off and on again; we are looking at the queue."
	b.Navigating(chromedp.SendKeys(chromedp.ID("a-"+qid), answer), chromedp.Submit(chromedp.ID("a-"+qid)))
	require.Contains(t, b.Text(`#notice`), "Answer stored")
	require.Eventually(t, func() bool { return strings.Contains(agents[0].cmd(t, "status"), answer) }, 30*time.Second, 200*time.Millisecond,
		"the agent's status never showed the answer")
	require.Contains(t, agents[0].cmd(t, "status"), question, "status shows the answer with its question")
	b.Do(chromedp.Navigate(e.dashboard + "/questions?show=all"))
	require.Contains(t, b.Text(`#q-`+qid), answer)

	// A form whose CSRF token is not the session's changes nothing.
	b.Do(chromedp.Navigate(e.dashboard+"/questions?show=all"), chromedp.WaitVisible(chromedp.ID("a-"+qid)),
		chromedp.SetAttributeValue(chromedp.CSS(`#q-`+qid+` input[name=csrf]`), "value", "forged"),
		chromedp.SendKeys(chromedp.ID("a-"+qid), "forged answer"))
	b.Navigating(chromedp.Submit(chromedp.ID("a-" + qid)))
	require.Contains(t, b.Text(`body`), "CSRF token missing or wrong")
	b.Do(chromedp.Navigate(e.dashboard + "/questions?show=all"))
	require.NotContains(t, b.Text(`body`), "forged answer")

	// Insights are computed from the devices' records.
	b.Do(chromedp.Navigate(e.dashboard + "/insights"))
	require.Contains(t, b.Text(`#mp-h + p + table`), "95", "the hostile device's memory use ranks first")
	b.Inert("insights")
	b.Shot("insights")

	// The own storage stops: the banner says the peer's copy serves, the status page says which copy is down.
	b.Do(chromedp.Navigate(e.dashboard + "/status"))
	styled(b, "the status page")
	b.Shot("status")
	e.own.Stop()
	b.Until(e.dashboard+"/", `!!document.querySelector('#failover-banner')`, 30*time.Second, "the banner never showed the peer's copy serving")
	b.Shot("overview-failover")
	b.Until(e.dashboard+"/status", `document.querySelector('#endpoints').textContent.includes('unreachable')`, 10*time.Second, "the status page never showed the own copy down")
	// Every copy stops: the status page still renders at once, from memory.
	e.peer.Stop()
	b.Until(e.dashboard+"/status", `document.body.textContent.includes('No copy of the storage answers')`, 30*time.Second, "the status page never said no copy answers")
	b.Shot("status-all-down")
	b.Do(chromedp.Navigate(e.dashboard + "/devices"))
	require.Equal(t, "3 of 3 devices", b.Text(`#count`), "the device list is served from the index with all storage down")
	require.True(t, b.Eval(`!!document.querySelector('#storage-banner')`).(bool))
}

// Sessions end: another tenant's cookie opens nothing here, an expired one sends to the sign-in page, and
// repeated wrong passwords lock the name out.
func TestSessionsInABrowser(t *testing.T) {
	storage := startStorage(t)
	acme := startDashboard(t, "acme", "Acme IT", "acme-session-key-0123456789abcdef-0123", []*miniotest.Server{storage})
	globex := startDashboard(t, "globex", "Globex", "globex-session-key-0123456789abcdef-01", []*miniotest.Server{storage}, "--session-ttl=3s")
	b := browsertest.New(t)

	// Both dashboards are on 127.0.0.1, so the browser sends globex's session cookie to acme too.
	signIn(b, globex, "admin", adminPassword)
	require.Equal(t, "admin", b.Text(`#user`))
	b.Do(chromedp.Navigate(acme + "/"))
	require.Contains(t, b.Location(), "/login", "acme took globex's session")
	// globex's session expires after its 3 s (and not before: the page is still open right after sign-in).
	b.Do(chromedp.Navigate(globex + "/"))
	require.NotContains(t, b.Location(), "/login")
	b.Until(globex+"/", `location.pathname === '/login'`, 10*time.Second, "the expired session was still accepted")

	// Wrong passwords: each is refused, and after five even the right one is, for a while.
	for i := range 5 {
		signIn(b, acme, "admin", fmt.Sprintf("wrong password %d", i))
		require.Equal(t, "Wrong name or password.", b.Text(`#error`))
	}
	signIn(b, acme, "admin", adminPassword)
	require.Contains(t, b.Text(`#error`), "Too many failed sign-ins")
	require.Contains(t, b.Location(), "/login")
	b.Shot("login-locked")
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// styled checks that the page's stylesheet loaded: its CSP lets it in and it was served.
func styled(b *browsertest.Browser, where string) {
	b.T.Helper()
	ok, _ := b.Eval(`document.styleSheets.length === 1 && document.styleSheets[0].cssRules.length > 10`).(bool)
	require.True(b.T, ok, "%s has no stylesheet", where)
}
