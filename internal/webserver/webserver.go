// Package webserver is what the ingest and dashboard servers share: their storage settings (and the flags and
// environment through which the operator hands them over), their storage pool, health endpoints and a graceful
// HTTP server.
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

	"github.com/supportstack/supportstack/internal/storagepool"
)

// The contract between the operator, which renders ingest's and the dashboard's pods, and the servers: flags for
// what anyone may read, environment variables (from the tenant's Secret) for the credentials.
const (
	FlagListenAddress    = "listen-address"
	FlagTenant           = "tenant"
	FlagBucket           = "bucket"
	FlagStorageEndpoints = "storage-endpoints"
	FlagLocalStorage     = "local-storage-endpoint"
	EnvStorageAccessKey  = "STORAGE_ACCESS_KEY"
	EnvStorageSecretKey  = "STORAGE_SECRET_KEY"
)

// StorageConfig says where a tenant's data lives. Credentials come from the environment only, so that they never
// show in a process listing or in the Deployment's args.
type StorageConfig struct {
	ListenAddress string
	Tenant        string
	Bucket        string
	// Endpoints in order of preference: this cluster's MinIO first, then the peer's — or the peer's first while
	// the operator has declared it the active copy.
	Endpoints []string
	// Local is this cluster's own endpoint, when it is not simply the first (LocalEndpoint).
	Local     string
	AccessKey string
	SecretKey string
}

// Args renders c's settings but the credentials as the flags BindFlags reads.
func (c StorageConfig) Args() []string {
	args := []string{
		"--" + FlagListenAddress + "=" + c.ListenAddress,
		"--" + FlagTenant + "=" + c.Tenant,
		"--" + FlagBucket + "=" + c.Bucket,
		"--" + FlagStorageEndpoints + "=" + strings.Join(c.Endpoints, ","),
	}
	if c.Local != "" {
		args = append(args, "--"+FlagLocalStorage+"="+c.Local)
	}
	return args
}

// LocalEndpoint is this cluster's own storage endpoint: Local, or else the first endpoint.
func (c StorageConfig) LocalEndpoint() string {
	if c.Local != "" || len(c.Endpoints) == 0 {
		return c.Local
	}
	return c.Endpoints[0]
}

// BindFlags registers the shared flags.
func (c *StorageConfig) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ListenAddress, FlagListenAddress, ":8080", "address to serve HTTP on")
	fs.StringVar(&c.Tenant, FlagTenant, "", "name of the tenant served")
	fs.StringVar(&c.Bucket, FlagBucket, "supportstack", "the tenant's bucket")
	fs.Func(FlagLocalStorage, "this cluster's own storage URL, one of --storage-endpoints (default: the first)", func(s string) error {
		c.Local = strings.TrimRight(strings.TrimSpace(s), "/")
		return nil
	})
	fs.Func(FlagStorageEndpoints, "comma-separated storage URLs, preferred first", func(s string) error {
		c.Endpoints = nil
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				c.Endpoints = append(c.Endpoints, strings.TrimRight(e, "/"))
			}
		}
		return nil
	})
}

// LoadEnv reads the credentials from the environment and checks the configuration.
func (c *StorageConfig) LoadEnv() error {
	c.AccessKey, c.SecretKey = os.Getenv(EnvStorageAccessKey), os.Getenv(EnvStorageSecretKey)
	var missing []string
	for name, v := range map[string]string{"--" + FlagTenant: c.Tenant, "--" + FlagStorageEndpoints: strings.Join(c.Endpoints, ","),
		EnvStorageAccessKey: c.AccessKey, EnvStorageSecretKey: c.SecretKey} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing configuration: %s", strings.Join(missing, ", "))
	}
	return nil
}

// NewPool builds the storage pool over c's endpoints, in order, with c's credentials: the one storage fallback of
// every server. It registers the pool's metrics in reg and logs breaker transitions to log; run its health loop
// with Pool.Run.
func (c *StorageConfig) NewPool(o storagepool.Options) (*storagepool.Pool, error) {
	o.Endpoints = make([]storagepool.Endpoint, 0, len(c.Endpoints))
	for _, u := range c.Endpoints {
		o.Endpoints = append(o.Endpoints, storagepool.Endpoint{URL: u, AccessKey: c.AccessKey, SecretKey: c.SecretKey})
	}
	o.Bucket = c.Bucket
	return storagepool.New(o)
}

// HealthHandlers serves /healthz (the process runs) and /readyz (some storage endpoint's breaker admits
// requests: a server that can reach no storage should get no traffic).
func HealthHandlers(mux *http.ServeMux, pool *storagepool.Pool) {
	mux.HandleFunc("GET /healthz", NoBody(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	}))
	mux.HandleFunc("GET /readyz", NoBody(func(w http.ResponseWriter, _ *http.Request) {
		if !pool.Ready() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"code":"storage_unavailable","message":"no storage endpoint is available"}` + "\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}))
}

// NoBody wraps a handler of requests that carry no body: one that comes with a body anyway is refused at once,
// without reading it, and its connection closed, so that a client trickling a body cannot hold the server.
func NoBody(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 { // a length, or -1 for a chunked body
			w.Header().Set("Connection", "close")
			_ = http.NewResponseController(w).SetReadDeadline(time.Now())
			http.Error(w, "this endpoint takes no request body", http.StatusBadRequest)
			return
		}
		h(w, r)
	}
}

// MetricsHandler serves the registry's metrics plus Go and process metrics.
func MetricsHandler(mux *http.ServeMux, reg *prometheus.Registry) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux.Handle("GET /metrics", NoBody(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}).ServeHTTP))
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
