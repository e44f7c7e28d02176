// Package webserver is what the ingest and dashboard servers share: their storage settings, health endpoints
// and a graceful HTTP server.
package webserver

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/supportstack/supportstack/internal/objectstore"
)

// StorageConfig says where a tenant's data lives. Credentials come from the environment only, so that they never
// show in a process listing or in the Deployment's args.
type StorageConfig struct {
	ListenAddress string
	Tenant        string
	Bucket        string
	// Endpoints in order of preference: this cluster's MinIO first, then the peer's.
	Endpoints []string
	AccessKey string
	SecretKey string
}

// BindFlags registers the shared flags.
func (c *StorageConfig) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ListenAddress, "listen-address", ":8080", "address to serve HTTP on")
	fs.StringVar(&c.Tenant, "tenant", "", "name of the tenant served")
	fs.StringVar(&c.Bucket, "bucket", "supportstack", "the tenant's bucket")
	fs.Func("storage-endpoints", "comma-separated storage URLs, preferred first", func(s string) error {
		c.Endpoints = nil
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				c.Endpoints = append(c.Endpoints, strings.TrimRight(e, "/"))
			}
		}
		return nil
	})
}

// LoadEnv reads the credentials from STORAGE_ACCESS_KEY and STORAGE_SECRET_KEY and checks the configuration.
func (c *StorageConfig) LoadEnv() error {
	c.AccessKey, c.SecretKey = os.Getenv("STORAGE_ACCESS_KEY"), os.Getenv("STORAGE_SECRET_KEY")
	var missing []string
	for name, v := range map[string]string{"--tenant": c.Tenant, "--storage-endpoints": strings.Join(c.Endpoints, ","),
		"STORAGE_ACCESS_KEY": c.AccessKey, "STORAGE_SECRET_KEY": c.SecretKey} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing configuration: %s", strings.Join(missing, ", "))
	}
	return nil
}

// HealthHandlers serves /healthz (the process runs) and /readyz (some storage endpoint is healthy: a server that
// can store nothing should get no traffic).
func HealthHandlers(mux *http.ServeMux, cfg *StorageConfig) {
	hc := &http.Client{}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if _, err := objectstore.FirstHealthy(r.Context(), hc, cfg.Endpoints); err != nil {
			http.Error(w, "no storage endpoint is healthy", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
}

// MetricsHandler serves the registry's metrics plus Go and process metrics.
func MetricsHandler(mux *http.ServeMux, reg *prometheus.Registry) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
}

// NewServer returns an HTTP server for h with the deadlines every server here needs: a client gets 10 seconds
// for its headers and at most a minute for the rest of its request (handlers set tighter deadlines per route),
// two minutes for its response, and an idle connection is closed after 90 seconds. A client trickling bytes
// therefore holds a connection for seconds, not for as long as it likes.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// Serve serves h on addr until ctx ends, then drains connections for up to 10 seconds.
func Serve(ctx context.Context, addr string, h http.Handler) error {
	srv := NewServer(addr, h)
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down server on %s: %w", addr, err)
	}
	return nil
}
