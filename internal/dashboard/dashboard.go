// Package dashboard is the tenant's web dashboard: support staff see their customers' PCs and questions there.
// It reads the tenant's bucket through the storage pool (internal/storagepool), the same ordered endpoints with a
// breaker each that ingest uses, so it keeps working when this cluster's storage fails and the peer's takes over.
package dashboard

import (
	"cmp"
	"context"
	"embed"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/supportstack/supportstack/internal/storagepool"
	"github.com/supportstack/supportstack/internal/webserver"
)

// Config of the dashboard.
type Config struct {
	webserver.StorageConfig
	DisplayName string
	// Logger receives the storage pool's breaker transitions; nil means JSON on stderr.
	Logger *slog.Logger
	// StatusInterval is how often the status page's snapshot is refreshed (DefaultStatusInterval).
	StatusInterval time.Duration
	// AdminPassword is the admin's password and SessionKey signs sessions; both come from the environment
	// (EnvAdminPassword, EnvSessionKey), which the operator fills from the tenant's Secret.
	AdminPassword, SessionKey string
}

// LoadSecrets reads the sign-in secrets from the environment.
func (c *Config) LoadSecrets() error {
	c.AdminPassword, c.SessionKey = os.Getenv(EnvAdminPassword), os.Getenv(EnvSessionKey)
	if c.AdminPassword == "" || c.SessionKey == "" {
		return fmt.Errorf("$%s and $%s must be set: staff sign in with the admin password, sessions are signed with the key",
			EnvAdminPassword, EnvSessionKey)
	}
	return nil
}

//go:embed templates/*.html
var templates embed.FS

var pages = template.Must(template.ParseFS(templates, "templates/*.html"))

// overview is what the front page shows.
type overview struct {
	DisplayName string
	Tenant      string
	// Storage is the endpoint serving reads now, empty when none is available.
	Storage string
	// FromPeer says Storage is not this cluster's own copy: the page says so in a banner.
	FromPeer  bool
	Endpoints []endpointHealth
	Devices   int
	Questions int
	Error     string
	Checked   time.Time
	// User is who is signed in; CSRF the token of their forms.
	User, CSRF string
}

type endpointHealth struct {
	URL     string
	Healthy bool
}

// maxCount bounds what the front page counts.
const maxCount = 100_000

// Run serves until ctx ends. The storage pool's health loop runs with the same context.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("component", "dashboard", "tenant", cfg.Tenant)
	}
	signIn, err := newAuth(cfg.Tenant, cfg.AdminPassword, cfg.SessionKey)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	pool, err := cfg.NewPool(storagepool.Options{Registerer: reg, Logger: cfg.Logger})
	if err != nil {
		return err
	}
	// The background loops end with the server, also when it fails to start.
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); pool.Run(ctx) }()
	defer func() { cancel(); <-done }()

	mux := http.NewServeMux()
	webserver.HealthHandlers(mux, pool)
	webserver.MetricsHandler(mux, reg)
	signIn.loginHandlers(mux, cfg.DisplayName)
	mux.HandleFunc("GET /{$}", signIn.signedIn(func(w http.ResponseWriter, r *http.Request, s session) {
		o := cfg.look(r.Context(), pool)
		o.User, o.CSRF = s.User, signIn.csrf(s)
		render(w, "index.html", o)
	}))
	status := newStatusTracker(cfg, pool)
	statusDone := make(chan struct{})
	go func() { defer close(statusDone); status.run(ctx, cmp.Or(cfg.StatusInterval, DefaultStatusInterval)) }()
	defer func() { cancel(); <-statusDone }()
	mux.HandleFunc("GET /status", status.serveStatus(false))
	mux.HandleFunc("GET /status.json", status.serveStatus(true))
	return webserver.Serve(ctx, cfg.ListenAddress, mux)
}

func render(w http.ResponseWriter, name string, data overview) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if data.Storage == "" {
		// The page still renders, so that the status stays visible during an outage.
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = pages.ExecuteTemplate(w, name, data)
}

// look reports the pool's view of the storage endpoints and counts devices and questions through it.
func (c Config) look(ctx context.Context, pool *storagepool.Pool) overview {
	o := overview{DisplayName: c.DisplayName, Tenant: c.Tenant, Checked: time.Now().UTC()}
	for _, st := range pool.State() {
		healthy := st.State != storagepool.Open
		o.Endpoints = append(o.Endpoints, endpointHealth{URL: st.URL, Healthy: healthy})
		if healthy && o.Storage == "" {
			o.Storage, o.FromPeer = st.URL, st.URL != c.LocalEndpoint()
		}
	}
	if o.Storage == "" {
		o.Error = "no storage endpoint is reachable"
		return o
	}
	devices, err := pool.List(ctx, storagepool.ListOptions{Prefix: "devices/", Limit: maxCount})
	if err == nil {
		o.Devices = len(devices)
		var questions []string
		questions, err = pool.List(ctx, storagepool.ListOptions{Prefix: "questions/", Recursive: true, Limit: maxCount})
		o.Questions = len(questions)
	}
	if err != nil {
		o.Error = "reading the bucket failed: " + err.Error()
	}
	return o
}
