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
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/agent/client"
	"github.com/supportstack/supportstack/internal/harness/localbin"
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

func TestMain(m *testing.M) {
	var err error
	if bins, err = procs.Build(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	bins.Remove()
	os.Exit(code)
}

// chromium finds the browser; without one the tests skip, except in CI, where they fail.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("SUPPORTSTACK_CHROMIUM_BIN"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium found (install Debian's chromium package, or set SUPPORTSTACK_CHROMIUM_BIN): the browser tests must run in CI")
	}
	t.Skip("no Chromium found: install Debian's chromium package (make test does when it may) to run the browser tests")
	return ""
}

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
	waitReady(t, url)
	return url
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "%s never became ready", url)
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
	waitReady(t, e.ingest)
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

// browser is a headless Chromium tab. Any JavaScript dialog that opens is counted: none may.
type browser struct {
	t       *testing.T
	ctx     context.Context
	dialogs *atomic.Int32
	shots   string
}

type step = chromedp.Action[chromedp.Void]

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx, dialogs: new(atomic.Int32)}
	require.NoError(t, chromedp.Do(ctx)) // starts the browser
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			b.dialogs.Add(1)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	if root, err := localbin.RepoRoot(); err == nil {
		b.shots = filepath.Join(root, "bin", "screenshots")
		_ = os.MkdirAll(b.shots, 0o755)
	}
	return b
}

// run runs one action with a deadline and returns its value.
func run[T any](b *browser, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	require.NoError(b.t, err)
	return v
}

// do runs steps in order with a deadline.
func (b *browser) do(steps ...step) {
	b.t.Helper()
	run(b, chromedp.Steps(steps...))
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return run(b, chromedp.Text(chromedp.CSS(sel)))
}

func (b *browser) eval(js string) any {
	b.t.Helper()
	return run(b, chromedp.Evaluate[any](js))
}

func (b *browser) location() string {
	b.t.Helper()
	return run(b, chromedp.Location())
}

// until reloads url until the page satisfies js (a boolean expression), with a deadline.
func (b *browser) until(url, js string, within time.Duration, msg string) {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for {
		b.do(chromedp.Navigate(url))
		if ok, _ := b.eval(js).(bool); ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s (waited %s for %s on %s); the page said:\n%s", msg, within, js, url, b.eval(`document.body.innerText`))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// shot saves a screenshot of the page under bin/screenshots (gitignored) for a person to look at.
func (b *browser) shot(name string) {
	b.t.Helper()
	if b.shots == "" {
		return
	}
	png := run(b, chromedp.FullScreenshot(100))
	require.NoError(b.t, os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644))
}

// inert checks that the page runs no script: none is in it and no dialog ever opened.
func (b *browser) inert(where string) {
	b.t.Helper()
	require.EqualValues(b.t, 0, b.eval(`document.scripts.length`), "%s: a script element made it into the page", where)
	require.EqualValues(b.t, 0, b.eval(`document.querySelectorAll('[onerror],[onload]').length`), "%s: an event handler attribute made it into the page", where)
	require.Zero(b.t, b.dialogs.Load(), "%s: a JavaScript dialog opened", where)
}

func (b *browser) signIn(base, user, password string) {
	b.t.Helper()
	b.do(chromedp.Navigate(base + "/login"))
	b.fillSignIn(user, password)
}

// fillSignIn submits the sign-in form of the page and waits for the answer.
func (b *browser) fillSignIn(user, password string) {
	b.t.Helper()
	b.navigating(chromedp.WaitVisible(chromedp.ID("user")), chromedp.SendKeys(chromedp.ID("user"), user),
		chromedp.SendKeys(chromedp.ID("password"), password), chromedp.Submit(chromedp.ID("password")))
}

// navigating runs steps that load another page (a click on a link, a form sent) and waits until it is loaded:
// the current page is marked first, and the new one does not carry the mark.
func (b *browser) navigating(steps ...step) {
	b.t.Helper()
	b.eval(`window.__before = true`)
	b.do(steps...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ok, _ := b.eval(`!window.__before && document.readyState === 'complete'`).(bool); ok {
			return
		}
		require.True(b.t, time.Now().Before(deadline), "no new page loaded")
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDashboardInABrowser(t *testing.T) {
	e := startEnv(t)
	agents := []*agent{startAgent(t, e.ingest), startAgent(t, e.ingest)}
	hostile := hostileDevice(t, e.ingest)
	question := "My printer says offline since this morning"
	qid, _, _ := strings.Cut(strings.TrimSpace(agents[0].cmd(t, "ask", question)), " ")
	b := newBrowser(t)

	// Every page but the status page needs a sign-in.
	b.do(chromedp.Navigate(e.dashboard + "/devices"))
	require.Contains(t, b.location(), "/login?next=%2Fdevices")
	b.shot("login")
	b.fillSignIn("admin", adminPassword)
	require.True(t, strings.HasSuffix(b.location(), "/devices"), "sign-in returns to the page asked for: %s", b.location())
	require.Equal(t, hostileDisplay, b.text(`.brand`), "the tenant's display name is shown as text")
	b.inert("device list")

	// The index fills from the bucket: all three devices, the hostile one by its name as text.
	b.until(e.dashboard+"/devices", `document.querySelectorAll('#device-table tbody tr a').length === 3`, 30*time.Second, "the device list never showed the three devices")
	b.until(e.dashboard+"/devices", `[...document.querySelectorAll('#device-table a')].some(a => a.textContent === `+jsString(hostileHost)+`)`,
		10*time.Second, "the hostile hostname is not shown as text")
	b.inert("device list with a hostile hostname")
	b.shot("devices")

	// Search, then open the device and its chart.
	b.navigating(chromedp.SendKeys(chromedp.ID("q"), agents[1].deviceID[:12]), chromedp.Click(chromedp.ID("apply")))
	require.Equal(t, "1 of 3 devices", b.text(`#count`))
	b.navigating(chromedp.Click(chromedp.CSS(`#device-table tbody a`)))
	require.Contains(t, b.location(), "/devices/"+agents[1].deviceID)
	b.until(e.dashboard+"/devices/"+agents[1].deviceID+"?period=1h", `document.querySelectorAll('svg.chart path').length >= 2 && +document.querySelector('#samples').textContent > 3`,
		30*time.Second, "the device's chart never drew its samples")
	require.Equal(t, "true", fmt.Sprint(b.eval(`document.querySelector('#period-1h').getAttribute('aria-current') === 'page'`)))
	require.Contains(t, b.text(`#inventory`), agents[1].deviceID)
	b.shot("device")

	// The hostile device's page: every field it chose is text.
	b.do(chromedp.Navigate(e.dashboard + "/devices/" + hostile))
	require.Equal(t, hostileHost, b.text(`#device-name`))
	require.Equal(t, "pressure", b.text(`#health`), "memory at 95 % is pressure")
	require.Contains(t, b.text(`#inventory`), `"><script>alert('cpu')</script>`)
	require.Contains(t, b.text(`.question-text`), hostileQuestion)
	b.inert("hostile device page")

	// Answer the agent's question in the inbox; the agent fetches the answer and shows it to its user.
	b.until(e.dashboard+"/questions", `!!document.querySelector('#a-`+qid+`')`, 30*time.Second, "the question never reached the inbox")
	require.Contains(t, b.text(`#q-`+qid+` .question-text`), question)
	b.shot("questions")
	answer := "Switch the printer off and on again; we are looking at the queue."
	b.navigating(chromedp.SendKeys(chromedp.ID("a-"+qid), answer), chromedp.Submit(chromedp.ID("a-"+qid)))
	require.Contains(t, b.text(`#notice`), "Answer stored")
	require.Eventually(t, func() bool { return strings.Contains(agents[0].cmd(t, "status"), answer) }, 30*time.Second, 200*time.Millisecond,
		"the agent's status never showed the answer")
	require.Contains(t, agents[0].cmd(t, "status"), question, "status shows the answer with its question")
	b.do(chromedp.Navigate(e.dashboard + "/questions?show=all"))
	require.Contains(t, b.text(`#q-`+qid), answer)

	// A form whose CSRF token is not the session's changes nothing.
	b.do(chromedp.Navigate(e.dashboard+"/questions?show=all"), chromedp.WaitVisible(chromedp.ID("a-"+qid)),
		chromedp.SetAttributeValue(chromedp.CSS(`#q-`+qid+` input[name=csrf]`), "value", "forged"),
		chromedp.SendKeys(chromedp.ID("a-"+qid), "forged answer"))
	b.navigating(chromedp.Submit(chromedp.ID("a-" + qid)))
	require.Contains(t, b.text(`body`), "CSRF token missing or wrong")
	b.do(chromedp.Navigate(e.dashboard + "/questions?show=all"))
	require.NotContains(t, b.text(`body`), "forged answer")

	// Insights are computed from the devices' records.
	b.do(chromedp.Navigate(e.dashboard + "/insights"))
	require.Contains(t, b.text(`#mp-h + p + table`), "95", "the hostile device's memory use ranks first")
	b.inert("insights")
	b.shot("insights")

	// The own storage stops: the banner says the peer's copy serves, the status page says which copy is down.
	b.do(chromedp.Navigate(e.dashboard + "/status"))
	b.shot("status")
	e.own.Stop()
	b.until(e.dashboard+"/", `!!document.querySelector('#failover-banner')`, 30*time.Second, "the banner never showed the peer's copy serving")
	b.shot("overview-failover")
	b.until(e.dashboard+"/status", `document.querySelector('#endpoints').textContent.includes('unreachable')`, 10*time.Second, "the status page never showed the own copy down")
	// Every copy stops: the status page still renders at once, from memory.
	e.peer.Stop()
	b.until(e.dashboard+"/status", `document.body.textContent.includes('No copy of the storage answers')`, 30*time.Second, "the status page never said no copy answers")
	b.shot("status-all-down")
	b.do(chromedp.Navigate(e.dashboard + "/devices"))
	require.Equal(t, "3 of 3 devices", b.text(`#count`), "the device list is served from the index with all storage down")
	require.True(t, b.eval(`!!document.querySelector('#storage-banner')`).(bool))
}

// Sessions end: another tenant's cookie opens nothing here, an expired one sends to the sign-in page, and
// repeated wrong passwords lock the name out.
func TestSessionsInABrowser(t *testing.T) {
	storage := startStorage(t)
	acme := startDashboard(t, "acme", "Acme IT", "acme-session-key-0123456789abcdef-0123", []*miniotest.Server{storage})
	globex := startDashboard(t, "globex", "Globex", "globex-session-key-0123456789abcdef-01", []*miniotest.Server{storage}, "--session-ttl=3s")
	b := newBrowser(t)

	// Both dashboards are on 127.0.0.1, so the browser sends globex's session cookie to acme too.
	b.signIn(globex, "admin", adminPassword)
	require.Equal(t, "admin", b.text(`#user`))
	b.do(chromedp.Navigate(acme + "/"))
	require.Contains(t, b.location(), "/login", "acme took globex's session")
	// globex's session expires after its 3 s (and not before: the page is still open right after sign-in).
	b.do(chromedp.Navigate(globex + "/"))
	require.NotContains(t, b.location(), "/login")
	b.until(globex+"/", `location.pathname === '/login'`, 10*time.Second, "the expired session was still accepted")

	// Wrong passwords: each is refused, and after five even the right one is, for a while.
	for i := range 5 {
		b.signIn(acme, "admin", fmt.Sprintf("wrong password %d", i))
		require.Equal(t, "Wrong name or password.", b.text(`#error`))
	}
	b.signIn(acme, "admin", adminPassword)
	require.Contains(t, b.text(`#error`), "Too many failed sign-ins")
	require.Contains(t, b.location(), "/login")
	b.shot("login-locked")
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
