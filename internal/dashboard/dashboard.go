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
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/supportstack/supportstack/internal/fleetindex"
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
	// IndexInterval is how often the index scans the bucket (fleetindex.DefaultInterval); InsightsInterval how
	// often the fleet's insights are computed and stored (DefaultInsightsInterval).
	IndexInterval, InsightsInterval time.Duration
	// AdminPassword is the admin's password and SessionKey signs sessions; both come from the environment
	// (EnvAdminPassword, EnvSessionKey), which the operator fills from the tenant's Secret.
	AdminPassword, SessionKey string
	// SessionTTL is how long a sign-in lasts (DefaultSessionTTL).
	SessionTTL time.Duration
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

//go:embed assets
var assets embed.FS

var pages = template.Must(template.New("").Funcs(funcs).ParseFS(templates, "templates/*.html"))

// Run serves until ctx ends. The storage pool's health loop, the index's scans, the status page's refresh and
// the insights' writer run with the same context.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("component", "dashboard", "tenant", cfg.Tenant)
	}
	reg := prometheus.NewRegistry()
	pool, err := cfg.NewPool(storagepool.Options{Registerer: reg, Logger: cfg.Logger})
	if err != nil {
		return err
	}
	index := fleetindex.New(pool, fleetindex.Options{Interval: cfg.IndexInterval, Logger: cfg.Logger})
	d, err := newDashboard(cfg, pool, index)
	if err != nil {
		return err
	}
	// The background loops end with the server, also when it fails to start.
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() { pool.Run(ctx) })
	wg.Go(func() { index.Run(ctx) })
	wg.Go(func() { d.status.run(ctx, cmp.Or(cfg.StatusInterval, DefaultStatusInterval)) })
	wg.Go(func() { d.writeInsights(ctx, cmp.Or(cfg.InsightsInterval, DefaultInsightsInterval)) })

	mux := http.NewServeMux()
	webserver.HealthHandlers(mux, pool)
	webserver.MetricsHandler(mux, reg)
	d.routes(mux)
	return webserver.Serve(ctx, cfg.ListenAddress, mux)
}
