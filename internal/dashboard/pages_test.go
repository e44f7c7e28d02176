package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/agent/collect"
	"github.com/supportstack/supportstack/internal/fleetindex"
	"github.com/supportstack/supportstack/internal/harness/miniotest"
	"github.com/supportstack/supportstack/internal/harness/stored"
	"github.com/supportstack/supportstack/internal/ingest"
	"github.com/supportstack/supportstack/internal/objectstore"
	"github.com/supportstack/supportstack/internal/protocol"
	"github.com/supportstack/supportstack/internal/webserver"
)

// The pages' test fleet.
const (
	evilID    = "dev-0001-evil" // a hostname and a question made of HTML
	evilHost  = `<script>alert("host")</script>`
	evilQ     = "q-evil-0001"
	evilText  = `<img src=x onerror=alert(1)>Why is it <b>slow</b>?`
	plainID   = "dev-0002-plain"
	plainHost = "bravo-desk"
	plainQ    = "q-plain-0001"
)

// signedInPages are every page that needs a session.
var signedInPages = []string{"/", "/devices", "/devices/" + evilID, "/devices/" + evilID + "?period=30d", "/questions",
	"/questions?show=all", "/insights", "/insights.json", "/staff"}

// Every signed-in page answers with the security headers and, without a session, sends the browser to sign in;
// an unknown device is a 404 that says so; the device list filters; answers are stored where ingest serves
// them, by the signed-in user, and refused when empty, too long or to no question; notices are only the
// dashboard's own; names and questions are escaped; the stylesheet is served as CSS.
func TestPages(t *testing.T) {
	srv := startStorage(t)
	mc := storageClient(t, srv)
	now := time.Now().UTC()
	putJSON(t, mc, protocol.DeviceKey(evilID), ingest.Device{DeviceID: evilID, Hostname: evilHost, OS: "linux", AgentVersion: "1.4.0",
		EnrolledAt: now.Add(-time.Hour), LastEnrolledAt: now.Add(-time.Hour)})
	putJSON(t, mc, protocol.InventoryKey(evilID, now, 1), testRecord(t, 1, protocol.KindInventory, now,
		collect.Inventory{Hostname: evilHost, OS: "linux", Platform: "ubuntu", PlatformVersion: "24.04", CPU: collect.CPUInfo{Model: "Intel i5"}}))
	var recs []protocol.Record
	for i := range 5 {
		cpu, mem := float64(10*i), 50.0
		at := now.Add(-time.Duration(4-i) * time.Minute)
		recs = append(recs, testRecord(t, uint64(2+i), protocol.KindPerf, at, collect.Perf{CPUPercent: &cpu, MemUsedPercent: &mem,
			Disks: []collect.DiskUsage{{Mount: "/", UsedPercent: 60}}}))
	}
	putBatch(t, mc, evilID, recs)
	putJSON(t, mc, protocol.DeviceKey(plainID), ingest.Device{DeviceID: plainID, Hostname: plainHost, OS: "windows", AgentVersion: "1.4.0",
		EnrolledAt: now.Add(-time.Hour), LastEnrolledAt: now.Add(-time.Hour)})
	putQuestion(t, mc, evilID, evilQ, evilText)
	putQuestion(t, mc, plainID, plainQ, "Printer offline")

	d := serve(t, testConfig(srv))

	// Without a session, every page sends the browser to the sign-in page, which returns it there.
	for _, p := range signedInPages {
		resp, _ := d.fetch(p)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, p)
		loc, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		require.Equal(t, "/login", loc.Path, p)
		require.Equal(t, p, loc.Query().Get("next"), p)
	}

	// The stylesheet needs no session and is CSS.
	resp, css := d.fetch("/assets/app.css")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/css; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	require.NotEmpty(t, css)

	signedIn(t, d)
	waitFor(t, d, "/questions", "Printer offline") // the index has read the bucket

	// Every page answers with headers that let no script run, no other site frame it, no type be guessed; no
	// page holds a script or the fleet's HTML unescaped.
	for _, p := range signedInPages {
		resp, body := d.fetch(p)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", p, body)
		requireSecurityHeaders(t, resp, p)
		require.NotContains(t, body, "<script", p)
		require.NotContains(t, body, "<img src=x", p)
	}
	resp, body := d.fetch("/insights.json")
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var in fleetindex.Insights
	require.NoError(t, json.Unmarshal([]byte(body), &in))
	require.Equal(t, 2, in.Devices)

	// The device page: its samples and the chosen period.
	_, page := d.get("/devices/" + evilID)
	require.Contains(t, page, `<span id="samples">5</span>`)
	require.Contains(t, page, `id="period-24h" aria-current="page"`)
	_, page = d.get("/devices/" + evilID + "?period=30d")
	require.Contains(t, page, `id="period-30d" aria-current="page"`)
	require.Contains(t, page, `<span id="samples">5</span>`)

	// An unknown device: 404, saying which, escaped.
	resp, page = d.fetch("/devices/no-such-device")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	requireSecurityHeaders(t, resp, "404")
	require.Contains(t, page, `No device &#34;no-such-device&#34; is in this workspace.`)
	resp, page = d.fetch("/devices/" + url.PathEscape("<b>x</b>"))
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.NotContains(t, page, "<b>x</b>")
	require.Contains(t, page, "&lt;b&gt;x&lt;/b&gt;")

	// The device list's search.
	_, page = d.get("/devices?q=BRAVO")
	require.Contains(t, page, `<a href="/devices/`+plainID+`">`+plainHost+`</a>`)
	require.NotContains(t, page, `href="/devices/`+evilID+`"`)
	require.Contains(t, page, `<p id="count" role="status">1 of 2 devices`)
	_, page = d.get("/devices?q=" + url.QueryEscape("no such thing"))
	require.Contains(t, page, "No device matches.")
	require.Contains(t, page, `<p id="count" role="status">0 of 2 devices`)

	// HTML in a hostname and a question is shown as text: in the list, on the device page, in the inbox.
	escapedHost := `&lt;script&gt;alert(&#34;host&#34;)&lt;/script&gt;`
	escapedText := `&lt;img src=x onerror=alert(1)&gt;Why is it &lt;b&gt;slow&lt;/b&gt;?`
	_, page = d.get("/devices")
	require.Contains(t, page, escapedHost)
	_, page = d.get("/devices/" + evilID)
	require.Contains(t, page, `<h1 id="device-name">`+escapedHost+`</h1>`)
	require.Contains(t, page, escapedText)
	_, page = d.get("/questions")
	require.Contains(t, page, escapedHost)
	require.Contains(t, page, escapedText)

	// A staff member answers: the answer is stored where ingest serves it to the PC, by that member.
	require.Equal(t, "/staff?notice=staff-saved", postForm(t, d, "/staff", url.Values{"csrf": {d.formToken("/staff")},
		"name": {"sam"}, "password": {"sam's passphrase!"}}).Header.Get("Location"))
	sam := newClient(t, d.addr)
	resp, _ = sam.signIn("sam", "sam's passphrase!")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	samToken := sam.formToken("/questions")
	answerPath := func(device, qid string) string { return "/devices/" + device + "/questions/" + qid + "/answers" }
	resp = postForm(t, sam, answerPath(plainID, plainQ), url.Values{"csrf": {samToken}, "back": {"/questions"},
		"answer": {"  Turn it off and on.\r\nThen print again.  "}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/questions?notice=answered", resp.Header.Get("Location"))
	keys := bucketKeys(t, mc, protocol.AnswersPrefix(plainID, plainQ))
	require.Len(t, keys, 1)
	var a protocol.Answer
	readJSON(t, mc, keys[0], &a)
	require.Equal(t, protocol.AnswerKey(plainID, plainQ, a.ID), keys[0])
	require.NotEmpty(t, a.ID)
	require.Equal(t, plainQ, a.QuestionID)
	require.Equal(t, "sam", a.Author, "the signed-in user")
	require.Equal(t, "Turn it off and on.\nThen print again.", a.Text)
	require.WithinDuration(t, time.Now(), a.Time, time.Minute)
	_, page = sam.get("/questions")
	require.NotContains(t, page, `id="q-`+plainQ+`"`, "answered: no longer waiting")
	_, page = sam.get("/questions?show=all")
	require.Contains(t, page, `id="q-`+plainQ+`"`)
	require.Contains(t, page, "Then print again.")

	// Refused answers store nothing: empty, over 16 KiB, not UTF-8, without the form token, to no such question
	// (nor to another device's question).
	for answer, notice := range map[string]string{
		" \r\n\t ":                    "empty-answer",
		strings.Repeat("a", 16<<10+1): "bad-answer",
		"\xff\xfe not UTF-8":          "bad-answer",
	} {
		resp := postForm(t, sam, answerPath(plainID, plainQ), url.Values{"csrf": {samToken}, "answer": {answer}})
		require.Equal(t, "/devices/"+plainID+"?notice="+notice, resp.Header.Get("Location"))
	}
	resp = postForm(t, sam, answerPath(plainID, plainQ), url.Values{"answer": {"No token"}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Len(t, bucketKeys(t, mc, protocol.AnswersPrefix(plainID, plainQ)), 1, "no refused answer was stored")
	for _, p := range []string{answerPath(plainID, "q-nope-0001"), answerPath(evilID, plainQ), answerPath("dev-nope", plainQ)} {
		resp, body := sam.post(p, url.Values{"csrf": {samToken}, "answer": {"Hello"}})
		require.Equal(t, http.StatusNotFound, resp.StatusCode, p)
		require.Contains(t, body, "No such question")
	}
	require.Empty(t, bucketKeys(t, mc, protocol.DeviceAnswersPrefix(evilID)))
	require.Empty(t, bucketKeys(t, mc, protocol.AnswersPrefix(plainID, "q-nope-0001")))

	// 16 KiB exactly is taken; a redirect to another site becomes the front page.
	resp = postForm(t, d, answerPath(evilID, evilQ), url.Values{"csrf": {d.formToken("/questions")}, "back": {"//evil.example/"},
		"answer": {strings.Repeat("b", 16<<10)}})
	require.Equal(t, "/?notice=answered", resp.Header.Get("Location"))
	keys = bucketKeys(t, mc, protocol.AnswersPrefix(evilID, evilQ))
	require.Len(t, keys, 1)
	readJSON(t, mc, keys[0], &a)
	require.Equal(t, AdminUser, a.Author)
	require.Len(t, a.Text, 16<<10)

	// Notices: the dashboard's own, by code; any other text in the URL shows nothing.
	_, page = d.get("/?notice=answered")
	require.Contains(t, page, `<p class="notice" id="notice" role="status">`+notices["answered"]+`</p>`)
	_, page = d.get("/devices?notice=" + url.QueryEscape("Call 555-0100 now: your PC is infected"))
	require.NotContains(t, page, `id="notice"`)
	require.NotContains(t, page, "555-0100")
	_, page = d.get("/questions?notice=" + url.QueryEscape("<b>Call us</b>"))
	require.NotContains(t, page, `id="notice"`)
	require.NotContains(t, page, "Call us")
}

func requireSecurityHeaders(t *testing.T, resp *http.Response, what string) {
	t.Helper()
	csp := resp.Header.Get("Content-Security-Policy")
	for _, directive := range []string{"default-src 'none'", "style-src 'self'", "frame-ancestors 'none'"} {
		require.Contains(t, csp, directive, what)
	}
	require.NotContains(t, csp, "script-src", what)
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), what)
}

// testConfig is a dashboard of tenant acme on srv, scanning its bucket every 100 ms.
func testConfig(srv *miniotest.Server) Config {
	return Config{DisplayName: "Acme IT", IndexInterval: 100 * time.Millisecond, StorageConfig: webserver.StorageConfig{Tenant: "acme",
		Bucket: "supportstack", Endpoints: []string{srv.URL}, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}}
}

// fetch gets a page with its headers.
func (d *site) fetch(path string) (*http.Response, string) {
	req, err := http.NewRequest(http.MethodGet, "http://"+d.addr+path, nil)
	require.NoError(d.t, err)
	return d.do(req)
}

// postForm posts a form and fails the test on a server error.
func postForm(t *testing.T, c *site, path string, form url.Values) *http.Response {
	t.Helper()
	resp, body := c.post(path, form)
	require.NotZero(t, resp.StatusCode, body)
	require.Less(t, resp.StatusCode, 500, body)
	return resp
}

func storageClient(t *testing.T, srv *miniotest.Server) *minio.Client {
	t.Helper()
	mc, err := objectstore.NewClient(objectstore.Endpoint{URL: srv.URL, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	require.NoError(t, err)
	return mc
}

// bucketKeys lists the keys under prefix.
func bucketKeys(t *testing.T, mc *minio.Client, prefix string) []string {
	t.Helper()
	var keys []string
	for o := range mc.ListObjectsIter(context.Background(), "supportstack", minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		require.NoError(t, o.Err)
		keys = append(keys, o.Key)
	}
	return keys
}

func readJSON(t *testing.T, mc *minio.Client, key string, v any) {
	t.Helper()
	obj, err := mc.GetObject(context.Background(), "supportstack", key, minio.GetObjectOptions{})
	require.NoError(t, err)
	defer obj.Close()
	data, err := io.ReadAll(obj)
	require.NoError(t, err, key)
	require.NoError(t, json.Unmarshal(data, v), key)
}

func putJSON(t *testing.T, mc *minio.Client, key string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	_, err = mc.PutObject(context.Background(), "supportstack", key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
	require.NoError(t, err)
}

// putBatch stores records as ingest stores a batch: gzip NDJSON at the BatchKey of the first record.
func putBatch(t *testing.T, mc *minio.Client, deviceID string, recs []protocol.Record) {
	t.Helper()
	key, data, err := stored.Batch(deviceID, recs)
	require.NoError(t, err)
	_, err = mc.PutObject(context.Background(), "supportstack", key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
	require.NoError(t, err)
}

func testRecord(t *testing.T, seq uint64, kind protocol.Kind, at time.Time, data any) protocol.Record {
	t.Helper()
	raw, err := json.Marshal(data)
	require.NoError(t, err)
	return protocol.Record{Seq: seq, Kind: kind, Time: at, Data: raw}
}
