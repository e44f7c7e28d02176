package main

import (
	"context"
	"flag"

	"github.com/supportstack/supportstack/internal/dashboard"
	"github.com/supportstack/supportstack/internal/ingest"
)

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
	return ingest.Run(ctx, cfg)
}

func runDashboard(ctx context.Context, args []string) error {
	var cfg dashboard.Config
	fs := flag.NewFlagSet("dashboard", flag.ContinueOnError)
	cfg.BindFlags(fs)
	fs.StringVar(&cfg.DisplayName, "display-name", "", "the tenant's name as the dashboard shows it")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := cfg.LoadEnv(); err != nil {
		return err
	}
	return dashboard.Run(ctx, cfg)
}
