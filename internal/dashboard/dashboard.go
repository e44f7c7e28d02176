// Package dashboard is the tenant's web dashboard: support staff see their customers' PCs and questions there.
// It reads the tenant's bucket through the first healthy storage endpoint, so it keeps working when this
// cluster's storage fails and the peer's takes over.
package dashboard

import (
	"context"
	"embed"
	"html/template"
	"net/http"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/supportstack/supportstack/internal/objectstore"
	"github.com/supportstack/supportstack/internal/webserver"
)

// Config of the dashboard.
type Config struct {
	webserver.StorageConfig
	DisplayName string
}

//go:embed templates/*.html
var templates embed.FS

var pages = template.Must(template.ParseFS(templates, "templates/*.html"))

// overview is what the front page shows.
type overview struct {
	DisplayName string
	Tenant      string
	// Storage is the endpoint serving reads now, empty when none is healthy.
	Storage   string
	Endpoints []endpointHealth
	Devices   int
	Questions int
	Error     string
	Checked   time.Time
}

type endpointHealth struct {
	URL     string
	Healthy bool
}

// Run serves until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	mux := http.NewServeMux()
	webserver.HealthHandlers(mux, &cfg.StorageConfig)
	webserver.MetricsHandler(mux, prometheus.NewRegistry())
	hc := &http.Client{}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		render(w, "index.html", cfg.look(r.Context(), hc))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		render(w, "status.html", cfg.look(r.Context(), hc))
	})
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

// look checks every storage endpoint and counts devices and questions through the first healthy one.
func (c Config) look(ctx context.Context, hc *http.Client) overview {
	o := overview{DisplayName: c.DisplayName, Tenant: c.Tenant, Checked: time.Now().UTC()}
	for _, ep := range c.Endpoints {
		healthy := objectstore.Health(ctx, hc, ep) == nil
		o.Endpoints = append(o.Endpoints, endpointHealth{URL: ep, Healthy: healthy})
		if healthy && o.Storage == "" {
			o.Storage = ep
		}
	}
	if o.Storage == "" {
		o.Error = "no storage endpoint is reachable"
		return o
	}
	mc, err := objectstore.NewClient(objectstore.Endpoint{URL: o.Storage, AccessKey: c.AccessKey, SecretKey: c.SecretKey})
	if err != nil {
		o.Error = err.Error()
		return o
	}
	var cerr error
	if o.Devices, cerr = countPrefixes(ctx, mc, c.Bucket, "devices/"); cerr == nil {
		o.Questions, cerr = countObjects(ctx, mc, c.Bucket, "questions/")
	}
	if cerr != nil {
		o.Error = "reading the bucket failed: " + cerr.Error()
	}
	return o
}

func countPrefixes(ctx context.Context, mc *minio.Client, bucket, prefix string) (int, error) {
	n := 0
	for obj := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if obj.Err != nil {
			return n, obj.Err
		}
		n++
	}
	return n, nil
}

func countObjects(ctx context.Context, mc *minio.Client, bucket, prefix string) (int, error) {
	n := 0
	for obj := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return n, obj.Err
		}
		n++
	}
	return n, nil
}
