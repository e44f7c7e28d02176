// Package ingest is the tenant's ingest service (`supportstack ingest`): agents enroll with it, send their
// records in batches and fetch the answers to their users' questions. A batch is acknowledged only after every
// object it maps to has been written to the tenant's storage; when this cluster's storage fails, writes fall
// through to the peer cluster's storage (internal/storagepool), so an outage costs the agent seconds, not data.
//
// Files: config.go (flags and environment), server.go (routes, middleware), enroll.go, batches.go,
// answers.go (the protocol's handlers), ratelimit.go (per-device token buckets), metrics.go.
package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/supportstack/supportstack/internal/webserver"
)

// Run serves until ctx ends. The storage pool's health loop runs with the same context.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("tenant", cfg.Tenant)
	}
	s, err := New(cfg, prometheus.NewRegistry())
	if err != nil {
		return fmt.Errorf("set up ingest: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Pool().Run(ctx)
	}()
	cfg.Logger.Info("Serving ingest", "address", cfg.ListenAddress,
		"storageEndpoints", cfg.Endpoints, "ingestEndpoints", cfg.IngestEndpoints)
	err = webserver.Serve(ctx, cfg.ListenAddress, s.Handler())
	<-done
	return err
}
