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
	// IngestEndpoints are the tenant's public ingest URLs, preferred first: what the install commands point PCs at.
	IngestEndpoints []string
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
	index := fleetindex.New(pool, fleetindex.Options{Interval: cfg.IndexInterval, Logger: cfg.Logger, Snapshots: pool})
	if err := reg.Register(indexCollector{index}); err != nil {
		return err
	}
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

var (
	indexBuiltDesc = prometheus.NewDesc("supportstack_dashboard_index_built",
		"1 once the dashboard's index has read the whole bucket once; pages show what it has read so far until then.", nil, nil)
	indexScanDesc = prometheus.NewDesc("supportstack_dashboard_index_scan_seconds",
		"How long the index's last scan of the bucket took.", nil, nil)
	indexKeysDesc = prometheus.NewDesc("supportstack_dashboard_index_scan_keys",
		"Keys the index's last scan listed.", nil, nil)
	indexReadDesc = prometheus.NewDesc("supportstack_dashboard_index_scan_objects_read",
		"Objects the index's last scan read (new ones only).", nil, nil)
	indexDevicesDesc = prometheus.NewDesc("supportstack_dashboard_index_devices", "Devices in the index.", nil, nil)
)

// indexCollector reports the index's state.
type indexCollector struct{ x *fleetindex.Index }

func (c indexCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{indexBuiltDesc, indexScanDesc, indexKeysDesc, indexReadDesc, indexDevicesDesc} {
		ch <- d
	}
}

func (c indexCollector) Collect(ch chan<- prometheus.Metric) {
	built, st := c.x.Built()
	b := 0.0
	if built {
		b = 1
	}
	ch <- prometheus.MustNewConstMetric(indexBuiltDesc, prometheus.GaugeValue, b)
	ch <- prometheus.MustNewConstMetric(indexScanDesc, prometheus.GaugeValue, st.Duration.Seconds())
	ch <- prometheus.MustNewConstMetric(indexKeysDesc, prometheus.GaugeValue, float64(st.Keys))
	ch <- prometheus.MustNewConstMetric(indexReadDesc, prometheus.GaugeValue, float64(st.Read))
	ch <- prometheus.MustNewConstMetric(indexDevicesDesc, prometheus.GaugeValue, float64(c.x.Summary().Devices))
}
