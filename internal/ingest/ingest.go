// Package ingest is the tenant's ingest service: agents enroll with it and send their records, which it
// acknowledges only after a durable write to the tenant's storage.
//
// This first version serves the health and metrics endpoints the operator's probes and Prometheus need; the
// agent protocol (enroll, batches, answers, endpoints) is the next step (issue 3).
package ingest

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/supportstack/supportstack/internal/webserver"
)

// Config of the ingest service.
type Config struct {
	webserver.StorageConfig
}

// Run serves until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	mux := http.NewServeMux()
	webserver.HealthHandlers(mux, &cfg.StorageConfig)
	webserver.MetricsHandler(mux, prometheus.NewRegistry())
	return webserver.Serve(ctx, cfg.ListenAddress, mux)
}
