package dashboard

import (
	"cmp"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/supportstack/supportstack/internal/fleetindex"
	"github.com/supportstack/supportstack/internal/storagepool"

	"github.com/supportstack/supportstack/internal/websession"
)

// dashboard serves the pages. Every page but the status page and the sign-in form needs a session; every form
// that changes something carries the session's CSRF token.
type dashboard struct {
	cfg    Config
	pool   *storagepool.Pool
	index  *fleetindex.Index
	auth   *auth
	status *statusTracker

	insightsMu  sync.Mutex
	insightsKey string
}

func newDashboard(cfg Config, pool *storagepool.Pool, index *fleetindex.Index) (*dashboard, error) {
	staffHash := func(name string) ([]byte, bool) {
		a, _, ok := index.StaffAccount(name)
		if !ok || a.Removed {
			return nil, false
		}
		return []byte(a.Hash), true
	}
	signIn, err := newAuth(cfg.Tenant, cfg.AdminPassword, cfg.SessionKey, staffHash)
	if err != nil {
		return nil, err
	}
	signIn.ttl = cmp.Or(cfg.SessionTTL, DefaultSessionTTL)
	return &dashboard{cfg: cfg, pool: pool, index: index, auth: signIn, status: newStatusTracker(cfg, pool)}, nil
}

func (d *dashboard) routes(mux *http.ServeMux) {
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})))
	d.auth.loginHandlers(mux, d.cfg.DisplayName)
	mux.HandleFunc("GET /status", d.status.serveStatus(false))
	mux.HandleFunc("GET /status.json", d.status.serveStatus(true))
	mux.HandleFunc("GET /{$}", d.auth.signedIn(d.overview))
	mux.HandleFunc("GET /devices", d.auth.signedIn(d.devices))
	mux.HandleFunc("GET /devices/{id}", d.auth.signedIn(d.device))
	mux.HandleFunc("GET /questions", d.auth.signedIn(d.questions))
	mux.HandleFunc("POST /devices/{id}/questions/{qid}/answers", d.auth.signedIn(d.form(d.answer)))
	mux.HandleFunc("GET /insights", d.auth.signedIn(d.insights))
	mux.HandleFunc("GET /insights.json", d.auth.signedIn(d.insightsJSON))
	mux.HandleFunc("GET /tokens", d.auth.signedIn(adminOnly(d.tokens)))
	mux.HandleFunc("POST /tokens", d.auth.signedIn(adminOnly(d.form(d.createToken))))
	mux.HandleFunc("POST /tokens/{id}/revoke", d.auth.signedIn(adminOnly(d.form(d.revokeToken))))
	mux.HandleFunc("GET /staff", d.auth.signedIn(adminOnly(d.staff)))
	mux.HandleFunc("POST /staff", d.auth.signedIn(adminOnly(d.form(d.saveStaff))))
	mux.HandleFunc("POST /staff/{name}/remove", d.auth.signedIn(adminOnly(d.form(d.removeStaff))))
}

// base is what every signed-in page shows around its content.
type base struct {
	Title, DisplayName, Tenant string
	// Nav names the current section.
	Nav       string
	User      string
	CSRF      string
	Admin     bool
	FromPeer  bool
	NoStorage bool
	// IndexReady is false until the first scan of the bucket completed.
	IndexReady bool
	IndexAt    time.Time
	Notice     string
	Error      string
}

func (d *dashboard) base(r *http.Request, s session, title, nav string) base {
	st := d.status.health(time.Now())
	ready, scan := d.index.Built()
	return base{Title: title, DisplayName: d.cfg.DisplayName, Tenant: d.cfg.Tenant, Nav: nav, User: s.User,
		CSRF: d.auth.csrf(s), Admin: s.User == AdminUser, FromPeer: st.FromPeer, NoStorage: st.Serving == "",
		IndexReady: ready, IndexAt: scan.At, Notice: notices[r.URL.Query().Get("notice")]}
}

func render(w http.ResponseWriter, code int, name string, data any) {
	websession.Render(w, code, pages, name, data)
}

// form wraps a POST handler: it reads the form (bounded) and refuses a request without the session's CSRF token.
func (d *dashboard) form(next func(http.ResponseWriter, *http.Request, session)) func(http.ResponseWriter, *http.Request, session) {
	return func(w http.ResponseWriter, r *http.Request, s session) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "The form could not be read (at most 64 KiB): nothing was changed.", http.StatusRequestEntityTooLarge)
			return
		}
		if !websession.Equal(r.PostForm.Get("csrf"), d.auth.csrf(s)) {
			http.Error(w, "This request did not come from the dashboard's own form (CSRF token missing or wrong): nothing was changed.", http.StatusForbidden)
			return
		}
		next(w, r, s)
	}
}

// notices are what a page says after a form was handled. The URL names one by its code, so that a link made
// elsewhere cannot put words of its own on the dashboard.
var notices = map[string]string{
	"answered":         "Answer stored: the PC fetches it within its answer interval.",
	"empty-answer":     "The answer was empty: nothing was sent.",
	"bad-answer":       "The answer must be UTF-8 text of at most 16 KiB: nothing was sent.",
	"answer-failed":    "The answer could not be stored (the storage did not take it): nothing was sent. Try again.",
	"no-storage":       "No copy of the storage answers now: nothing was stored. Try again when the status page shows storage back.",
	"token-bad-name":   "A token needs a name (at most 100 characters), saying what it is for.",
	"token-bad-limits": "Valid for is 0 (never expires) to 3650 days; uses is 0 (no limit) to 1,000,000.",
	"token-failed":     "The token could not be stored: nothing was changed. Try again.",
	"token-not-found":  "No such token: nothing was changed.",
	"token-revoked":    "The token is revoked: it enrolls no new PC; the PCs it enrolled keep reporting.",
	"staff-saved":      "The account is saved: its owner signs in with the new password now; its older sessions ended.",
	"staff-removed":    "The account is removed: its sessions ended.",
	"staff-bad-name":   "A name is 2–63 characters: lower-case letters, digits, '.', '_' or '-', starting with a letter or digit, and not \"admin\".",
	"staff-bad-pass":   "A password has at least 12 characters (and at most 72 bytes).",
	"staff-failed":     "The account could not be stored: nothing was changed. Try again.",
	"staff-not-found":  "No such account: nothing was changed.",
}

// redirect sends the browser back to a local page with a notice (a code of notices).
func redirect(w http.ResponseWriter, r *http.Request, path, notice string) {
	u := websession.LocalPath(path)
	if notice != "" {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "notice=" + url.QueryEscape(notice)
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

type overviewPage struct {
	base
	Summary fleetindex.Summary
	Storage []CopyHealth
}

func (d *dashboard) overview(w http.ResponseWriter, r *http.Request, s session) {
	p := overviewPage{base: d.base(r, s, "Overview", "overview"), Summary: d.index.Summary(),
		Storage: d.status.health(time.Now()).Storage}
	render(w, http.StatusOK, "index.html", p)
}

// Device list.

const devicesPerPage = 100

type devicesPage struct {
	base
	fleetindex.Result
	Query  url.Values
	Search string
	OS     string
	Health string
	Seen   string
	Sort   string
	Desc   bool
	Page   int
	Pages  int
	Now    time.Time
	// Healths and SeenOptions are the filters' choices.
	Healths     []string
	SeenOptions []option
}

type option struct{ Value, Label string }

var seenOptions = []option{
	{"", "any time"}, {"1h", "within the last hour"}, {"24h", "within the last day"}, {"7d", "within the last 7 days"},
	{"not-1d", "not for a day or more"}, {"not-7d", "not for 7 days or more"}, {"not-30d", "not for 30 days or more"},
}

func (d *dashboard) devices(w http.ResponseWriter, r *http.Request, s session) {
	q := r.URL.Query()
	p := devicesPage{base: d.base(r, s, "Devices", "devices"), Query: q, Search: q.Get("q"), OS: q.Get("os"),
		Health: q.Get("health"), Seen: q.Get("seen"), Sort: q.Get("sort"), Desc: q.Get("dir") == "desc",
		Now: time.Now(), Healths: []string{fleetindex.HealthOK, fleetindex.HealthPressure, fleetindex.HealthStale, fleetindex.HealthNoData},
		SeenOptions: seenOptions}
	p.Page, _ = strconv.Atoi(q.Get("page"))
	p.Page = max(p.Page, 1)
	fq := fleetindex.Query{Search: p.Search, OS: p.OS, Health: p.Health, Sort: p.Sort, Desc: p.Desc,
		Offset: (p.Page - 1) * devicesPerPage, Limit: devicesPerPage}
	fq.SeenWithin, fq.NotSeenFor = parseSeen(p.Seen)
	p.Result = d.index.Devices(fq)
	p.Pages = max(1, (p.Total+devicesPerPage-1)/devicesPerPage)
	render(w, http.StatusOK, "devices.html", p)
}

func parseSeen(v string) (within, notFor time.Duration) {
	day := 24 * time.Hour
	switch v {
	case "1h":
		return time.Hour, 0
	case "24h":
		return day, 0
	case "7d":
		return 7 * day, 0
	case "not-1d":
		return 0, day
	case "not-7d":
		return 0, 7 * day
	case "not-30d":
		return 0, 30 * day
	}
	return 0, 0
}

// Device page.

type devicePage struct {
	base
	fleetindex.DeviceDetail
	Period  string
	Periods []option
	Chart   template.HTML
	Series  fleetindex.Series
	Now     time.Time
}

var periods = []struct {
	option
	d time.Duration
}{
	{option{"1h", "1 hour"}, time.Hour}, {option{"24h", "24 hours"}, 24 * time.Hour},
	{option{"7d", "7 days"}, 7 * 24 * time.Hour}, {option{"30d", "30 days"}, 30 * 24 * time.Hour},
}

// chartPoints is how many points a chart draws at most.
const chartPoints = 400

func (d *dashboard) device(w http.ResponseWriter, r *http.Request, s session) {
	id := r.PathValue("id")
	detail, ok := d.index.Device(id)
	if !ok {
		p := d.base(r, s, "No such device", "devices")
		p.Error = "No device " + strconv.Quote(id) + " is in this workspace."
		render(w, http.StatusNotFound, "error.html", p)
		return
	}
	p := devicePage{base: d.base(r, s, detail.Name(), "devices"), DeviceDetail: detail, Period: "24h", Now: time.Now()}
	span := 24 * time.Hour
	for _, o := range periods {
		p.Periods = append(p.Periods, o.option)
		if o.Value == r.URL.Query().Get("period") {
			p.Period, span = o.Value, o.d
		}
	}
	to := time.Now()
	series, err := d.index.Series(r.Context(), id, to.Add(-span), to, chartPoints)
	if err != nil {
		p.Error = "The samples could not be read from the storage now: " + err.Error()
	}
	p.Series = series
	p.Chart = chart(series)
	render(w, http.StatusOK, "device.html", p)
}
