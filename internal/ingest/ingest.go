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
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/supportstack/supportstack/internal/storagepool"
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
	go s.checkConditionalWrites(ctx)
	cfg.Logger.Info("Serving ingest", "address", cfg.ListenAddress,
		"storageEndpoints", cfg.Endpoints, "ingestEndpoints", cfg.IngestEndpoints)
	err = webserver.Serve(ctx, cfg.ListenAddress, s.Handler())
	<-done
	return err
}

// conditionalWriteCheckKey is written twice at start, under the unversioned ledger prefix.
const conditionalWriteCheckKey = "ledger/.conditional-write-check"

// checkConditionalWrites finds out, once storage is ready, whether it honours If-None-Match: a storage that
// ignores it (a MinIO older than 2024, another S3 service) lets racing writers replace a write-once object.
// Ingest keeps serving, but says so loudly: in its log and in supportstack_ingest_conditional_writes_supported.
func (s *Server) checkConditionalWrites(ctx context.Context) {
	for !s.pool.Ready() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	write := func() error {
		_, _, err := s.pool.Write(ctx, conditionalWriteCheckKey, []byte("{}"), storagepool.WriteOptions{ContentType: "application/json", IfAbsent: true})
		return err
	}
	if err := write(); err != nil && !errors.Is(err, storagepool.ErrPrecondition) {
		s.log.Warn("Cannot check whether storage honours conditional writes", "error", err.Error())
		return
	}
	switch err := write(); {
	case errors.Is(err, storagepool.ErrPrecondition):
		s.metrics.conditionalWrites.Set(1)
	case err == nil:
		s.metrics.conditionalWrites.Set(0)
		s.log.Error("Storage ignores conditional writes (If-None-Match): racing writers could replace acknowledged records; use a MinIO release from 2024 or later")
	default:
		s.log.Warn("Cannot check whether storage honours conditional writes", "error", err.Error())
	}
}
