package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"strings"

	"github.com/supportstack/supportstack/internal/dashboard"
	"github.com/supportstack/supportstack/internal/fleetindex"
	"github.com/supportstack/supportstack/internal/ingest"
)

// runIngest runs a tenant's ingest service. Its settings are flags; its secrets (storage credentials,
// ENROLLMENT_TOKEN, SIGNING_KEY) come from the environment only.
func runIngest(ctx context.Context, args []string) error {
	var cfg ingest.Config
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	cfg.BindFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := cfg.LoadEnv(); err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("component", "ingest", "tenant", cfg.Tenant)
	return ingest.Run(ctx, cfg)
}

func runDashboard(ctx context.Context, args []string) error {
	var cfg dashboard.Config
	fs := flag.NewFlagSet("dashboard", flag.ContinueOnError)
	cfg.BindFlags(fs)
	fs.StringVar(&cfg.DisplayName, "display-name", "", "the tenant's name as the dashboard shows it")
	fs.DurationVar(&cfg.IndexInterval, "index-interval", fleetindex.DefaultInterval, "how often the dashboard's index lists the bucket to find new objects")
	fs.DurationVar(&cfg.InsightsInterval, "insights-interval", dashboard.DefaultInsightsInterval, "how often the fleet's insights are computed and stored under aggregates/")
	fs.Func("ingest-endpoints", "comma-separated public ingest URLs of this tenant, preferred first, for the agent's install commands", func(v string) error {
		cfg.IngestEndpoints = nil
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				cfg.IngestEndpoints = append(cfg.IngestEndpoints, strings.TrimRight(e, "/"))
			}
		}
		return nil
	})
	fs.DurationVar(&cfg.SessionTTL, "session-ttl", dashboard.DefaultSessionTTL, "how long a sign-in lasts")
	fs.DurationVar(&cfg.StatusInterval, "status-interval", dashboard.DefaultStatusInterval, "how often the status page reads the replication heartbeats and the last failover")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := cfg.LoadEnv(); err != nil {
		return err
	}
	if err := cfg.LoadSecrets(); err != nil {
		return err
	}
	return dashboard.Run(ctx, cfg)
}
