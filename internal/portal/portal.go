// Package portal is `supportstack portal`: where business customers sign up and manage their support workspaces
// without kubectl. A customer signs in (OpenID Connect, or an invitation from platform ops), creates a workspace
// from a plan within their quota, watches it become ready, gets the dashboard's address and first sign-in and the
// agent's install command, and deletes it. Kubernetes is its only store: workspaces are namespaces labelled with
// their owner, plans and quotas a ConfigMap, invitations Secrets.
package portal

import (
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/webserver"
	"github.com/supportstack/supportstack/internal/websession"
)

// Config of the portal.
type Config struct {
	ListenAddress string
	// Namespace holds the catalog ConfigMap and the invitations (the portal's own namespace).
	Namespace string
	// NamespacePrefix starts the name of every workspace's namespace.
	NamespacePrefix string
	// SessionKey signs sessions (at least 32 characters; shared by the portal's replicas).
	SessionKey string
	// OIDC, when set, is the production sign-in.
	OIDC *OIDCConfig
	// ServiceAccount ("namespace/name") is the portal's own, bound in each workspace to read its Secret.
	ServiceAccount string
	// OwnerUserPrefix, when set, lets owners read their tenant through the Kubernetes API as the user
	// OwnerUserPrefix+email (the API server's OIDC username prefix); empty grants nothing.
	OwnerUserPrefix string
	// SessionTTL is how long a sign-in lasts (DefaultSessionTTL).
	SessionTTL time.Duration
	Logger     *slog.Logger
}

// Defaults.
const (
	DefaultSessionTTL      = 12 * time.Hour
	DefaultNamespacePrefix = "ws-"
)

// Portal serves the pages.
type Portal struct {
	cfg     Config
	client  client.Client
	signer  websession.Signer
	oidc    *OIDC
	now     func() time.Time
	log     *slog.Logger
	handler http.Handler
}

//go:embed templates/*.html
var templates embed.FS

//go:embed assets
var assets embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"storage": func(p Plan) string { return p.Storage.String() },
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
}).ParseFS(templates, "templates/*.html"))

// New makes a portal on the cluster c talks to.
func New(ctx context.Context, cfg Config, c client.Client) (*Portal, error) {
	if len(cfg.SessionKey) < 32 {
		return nil, fmt.Errorf("the session key must have at least 32 characters")
	}
	if cfg.Namespace == "" {
		return nil, fmt.Errorf("the portal's namespace is required")
	}
	cfg.NamespacePrefix = cmp.Or(cfg.NamespacePrefix, DefaultNamespacePrefix)
	cfg.SessionTTL = cmp.Or(cfg.SessionTTL, DefaultSessionTTL)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("component", "portal")
	}
	p := &Portal{cfg: cfg, client: c, signer: websession.NewSigner(cfg.SessionKey, "supportstack-portal-session"), now: time.Now, log: log}
	if cfg.OIDC != nil {
		o, err := NewOIDC(ctx, *cfg.OIDC, []byte(p.signer.Token("oidc-flow")), nil)
		if err != nil {
			return nil, fmt.Errorf("OpenID provider %s: %w", cfg.OIDC.IssuerURL, err)
		}
		p.oidc = o
	}
	p.handler = p.routes()
	return p, nil
}

// Handler serves the portal.
func (p *Portal) Handler() http.Handler { return p.handler }

// Run serves until ctx ends.
func (p *Portal) Run(ctx context.Context) error {
	return webserver.Serve(ctx, p.cfg.ListenAddress, p.handler)
}

func (p *Portal) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("GET /login", p.page(p.login))
	mux.HandleFunc("GET /auth/oidc/start", p.page(func(w http.ResponseWriter, r *http.Request) {
		if p.oidc == nil {
			p.fail(w, r, http.StatusNotFound, "This portal has no identity provider: sign in with an invitation link.")
			return
		}
		p.oidc.Start(w, r, r.URL.Query().Get("next"))
	}))
	mux.HandleFunc("GET /auth/oidc/callback", p.page(p.oidcCallback))
	mux.HandleFunc("GET /invite/{token}", p.page(p.showInvitation))
	mux.HandleFunc("POST /invite/{token}", p.page(p.acceptInvitation))
	mux.HandleFunc("POST /logout", p.signedIn(p.form(func(w http.ResponseWriter, r *http.Request, _ session) {
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	})))
	mux.HandleFunc("GET /{$}", p.signedIn(p.home))
	mux.HandleFunc("POST /workspaces", p.signedIn(p.form(p.createWorkspace)))
	mux.HandleFunc("GET /workspaces/{name}", p.signedIn(p.showWorkspace))
	mux.HandleFunc("GET /workspaces/{name}/progress.json", p.signedIn(p.progressJSON))
	mux.HandleFunc("GET /workspaces/{name}/delete", p.signedIn(p.confirmDelete))
	mux.HandleFunc("POST /workspaces/{name}/delete", p.signedIn(p.form(p.deleteWorkspace)))
	return mux
}

// page sets the security headers of every page.
func (p *Portal) page(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		websession.SecurityHeaders(w.Header())
		h(w, r)
	}
}

// base is what every page shows around its content.
type base struct {
	Title, User, CSRF, Error, Notice string
	// Refresh reloads the page every 2 seconds (a workspace being set up: polling without script).
	Refresh bool
}

func render(w http.ResponseWriter, code int, name string, data any) {
	websession.Render(w, code, pages, name, data)
}

// fail shows an error page.
func (p *Portal) fail(w http.ResponseWriter, _ *http.Request, code int, msg string) {
	render(w, code, "error.html", base{Title: "Something went wrong", Error: msg})
}

// problem answers an error from the portal's work: a refusal the customer can act on, or a failure of the
// cluster, logged and summarised.
func (p *Portal) problem(w http.ResponseWriter, r *http.Request, err error) {
	var ue *userError
	if errors.As(err, &ue) {
		p.fail(w, r, http.StatusUnprocessableEntity, ue.msg)
		return
	}
	p.log.Error("Request failed", "path", r.URL.Path, "error", err)
	p.fail(w, r, http.StatusServiceUnavailable, "The portal could not reach the cluster: try again in a moment.")
}

// notices are what a page says after a form was handled; the URL names one by its code.
var notices = map[string]string{
	"deleted":      "The workspace is deleted.",
	"deleted-kept": "The workspace is deleted. Its volumes are kept (its plan retains them); platform ops remove them and its namespace.",
}

type homePage struct {
	base
	Workspaces []Workspace
	Plans      []Plan
	Quota      Quota
	CatalogErr string
	// QuotaStorage is the storage quota, empty when there is none.
	QuotaStorage string
	Name, Plan   string
	MaxName      int
}

func (p *Portal) home(w http.ResponseWriter, r *http.Request, s session) {
	p.renderHome(w, r, s, http.StatusOK, "", "", "")
}

func (p *Portal) renderHome(w http.ResponseWriter, r *http.Request, s session, code int, errMsg, name, plan string) {
	page := homePage{base: base{Title: "Your workspaces", User: s.Email, CSRF: p.csrf(s), Error: errMsg,
		Notice: notices[r.URL.Query().Get("notice")]}, Name: name, Plan: plan, MaxName: MaxNameLength}
	ws, err := p.workspaces(r.Context(), s.Email)
	if err != nil {
		p.problem(w, r, err)
		return
	}
	page.Workspaces = ws
	if cat, err := p.catalog(r.Context()); err != nil {
		page.CatalogErr = "No plans are offered yet: platform ops have not configured the portal (" + err.Error() + ")."
	} else {
		page.Plans, page.Quota = cat.Plans, cat.QuotaOf(s.Email)
		if !page.Quota.Storage.IsZero() {
			page.QuotaStorage = page.Quota.Storage.String()
		}
	}
	render(w, code, "home.html", page)
}

func (p *Portal) createWorkspace(w http.ResponseWriter, r *http.Request, s session) {
	name, plan := strings.TrimSpace(r.PostForm.Get("name")), r.PostForm.Get("plan")
	ws, err := p.create(r.Context(), Identity{Email: s.Email, Subject: s.Subject, Issuer: s.Issuer}, name, plan)
	var ue *userError
	switch {
	case errors.As(err, &ue):
		p.renderHome(w, r, s, http.StatusUnprocessableEntity, ue.msg, name, plan)
		return
	case err != nil:
		p.problem(w, r, err)
		return
	}
	p.log.Info("Workspace created", "workspace", ws.Name, "namespace", ws.Namespace, "plan", ws.Plan, "owner", OwnerLabelValue(s.Email))
	http.Redirect(w, r, "/workspaces/"+url.PathEscape(ws.Name), http.StatusSeeOther)
}

// progress is a workspace's state, from its tenant's status.
type progress struct {
	Phase      string          `json:"phase"`
	Ready      bool            `json:"ready"`
	Conditions []conditionView `json:"conditions"`
	Dashboard  string          `json:"dashboard,omitempty"`
	Status     string          `json:"status,omitempty"`
	Ingest     string          `json:"ingest,omitempty"`
	ReadyAfter string          `json:"readyAfter,omitempty"`
}

type conditionView struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

func progressOf(w Workspace) progress {
	var pr progress
	t := w.Tenant
	if t == nil {
		pr.Phase = "Missing"
		return pr
	}
	pr.Phase = string(t.Status.Phase)
	for _, c := range t.Status.Conditions {
		pr.Conditions = append(pr.Conditions, conditionView{Type: c.Type, Status: string(c.Status), Reason: c.Reason, Message: c.Message})
		if c.Type == v1alpha1.ConditionReady && c.Status == "True" && c.ObservedGeneration == t.Generation {
			pr.Ready = true
		}
	}
	pr.Dashboard, pr.Status, pr.Ingest = t.Status.Endpoints.Dashboard, t.Status.Endpoints.Status, t.Status.Endpoints.Ingest
	if t.Status.FirstReadyTime != nil {
		pr.ReadyAfter = t.Status.FirstReadyTime.Sub(t.CreationTimestamp.Time).Round(100 * time.Millisecond).String()
	}
	return pr
}

type workspacePage struct {
	base
	Workspace
	Progress progress
	Creds    credentials
	Install  string
}

// showWorkspace shows a workspace's progress until it is ready (the page reloads itself every 2 s, no script),
// then how to use it.
func (p *Portal) showWorkspace(w http.ResponseWriter, r *http.Request, s session) {
	ws, err := p.workspace(r.Context(), s.Email, r.PathValue("name"))
	if err != nil {
		p.problem(w, r, err)
		return
	}
	page := workspacePage{base: base{Title: ws.Name, User: s.Email, CSRF: p.csrf(s)}, Workspace: ws, Progress: progressOf(ws)}
	page.Refresh = !page.Progress.Ready
	if page.Progress.Ready {
		if creds, err := p.credentials(r.Context(), ws); err != nil {
			page.Error = "The workspace's sign-in could not be read: try again in a moment."
			p.log.Error("Reading a workspace's credentials failed", "namespace", ws.Namespace, "error", err)
		} else {
			page.Creds = creds
			if page.Progress.Ingest != "" {
				page.Install = fmt.Sprintf("curl -fsSL %s/install.sh | sudo sh -s -- --token '%s'", page.Progress.Ingest, creds.EnrollmentToken)
			}
		}
	}
	render(w, http.StatusOK, "workspace.html", page)
}

func (p *Portal) progressJSON(w http.ResponseWriter, r *http.Request, s session) {
	ws, err := p.workspace(r.Context(), s.Email, r.PathValue("name"))
	var ue *userError
	switch {
	case errors.As(err, &ue):
		http.Error(w, ue.msg, http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, "the cluster could not be reached", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(progressOf(ws))
}

type deletePage struct {
	base
	Workspace
	Retained bool
}

func (p *Portal) confirmDelete(w http.ResponseWriter, r *http.Request, s session) {
	ws, err := p.workspace(r.Context(), s.Email, r.PathValue("name"))
	if err != nil {
		p.problem(w, r, err)
		return
	}
	render(w, http.StatusOK, "delete.html", deletePage{base: base{Title: "Delete " + ws.Name, User: s.Email, CSRF: p.csrf(s)},
		Workspace: ws, Retained: ws.Tenant != nil && ws.Tenant.Spec.Storage.ReclaimPolicy == v1alpha1.ReclaimRetain})
}

// deleteWorkspace needs the name typed again.
func (p *Portal) deleteWorkspace(w http.ResponseWriter, r *http.Request, s session) {
	name := r.PathValue("name")
	if r.PostForm.Get("confirm") != name {
		p.fail(w, r, http.StatusUnprocessableEntity, "To delete the workspace, type its name exactly: nothing was deleted.")
		return
	}
	kept, err := p.remove(r.Context(), s.Email, name)
	if err != nil {
		p.problem(w, r, err)
		return
	}
	p.log.Info("Workspace deleted", "workspace", name, "volumesKept", kept, "owner", OwnerLabelValue(s.Email))
	notice := "deleted"
	if kept {
		notice = "deleted-kept"
	}
	http.Redirect(w, r, "/?notice="+notice, http.StatusSeeOther)
}
