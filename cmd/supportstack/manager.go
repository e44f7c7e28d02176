package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/supportstack/supportstack/controllers/sitemonitor"
	"github.com/supportstack/supportstack/controllers/tenant"
	"github.com/supportstack/supportstack/controllers"
)

// Default images. MinIO's community edition is published as source only; platforms are expected to set
// --minio-image to an image they build or trust.
const (
	defaultMinIOImage        = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
	defaultSupportstackImage = "ghcr.io/supportstack/supportstack:latest"
)

// operatorFlags are the flags the manager and the demo share.
type operatorFlags struct {
	opts            controllers.Options
	watchNamespaces string
	zap             zap.Options
}

func (f *operatorFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.opts.MetricsBindAddress, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 disables it")
	fs.StringVar(&f.opts.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.BoolVar(&f.opts.LeaderElection, "leader-elect", false, "elect a leader among operator replicas (use it with more than one replica)")
	fs.StringVar(&f.watchNamespaces, "watch-namespaces", "", "comma-separated namespaces to watch; empty watches all")
	fs.StringVar(&f.opts.Tenant.MinIOImage, "minio-image", defaultMinIOImage, "default MinIO image of tenants")
	fs.StringVar(&f.opts.Tenant.SupportstackImage, "supportstack-image", defaultSupportstackImage, "image that runs tenants' ingest and dashboard")
	fs.StringVar(&f.opts.Tenant.ClusterDomain, "cluster-domain", "cluster.local", "DNS suffix of the cluster's Services")
	fs.DurationVar(&f.opts.ResyncPeriod, "resync-period", tenant.DefaultResyncPeriod, "how often each tenant is reconciled when nothing changes")
	fs.DurationVar(&f.opts.SiteCheckInterval, "storage-check-interval", sitemonitor.DefaultInterval, "how often each tenant's MinIO is checked while healthy")
	fs.DurationVar(&f.opts.SiteRetryInterval, "storage-retry-interval", sitemonitor.DefaultRetryInterval, "how often each tenant's MinIO is checked while failing")
	fs.IntVar(&f.opts.MaxConcurrentReconciles, "max-concurrent-reconciles", tenant.DefaultMaxConcurrentReconciles, "how many tenants are reconciled at once")
	f.zap.BindFlags(fs)
}

// complete fills what flags alone do not say.
func (f *operatorFlags) complete() {
	for _, ns := range strings.Split(f.watchNamespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			f.opts.WatchNamespaces = append(f.opts.WatchNamespaces, ns)
		}
	}
	f.opts.Tenant.OperatorNamespace = os.Getenv("POD_NAMESPACE")
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&f.zap)))
}

func runManager(ctx context.Context, args []string) error {
	var f operatorFlags
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	f.bind(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	f.complete()
	if f.opts.ResyncPeriod < time.Second || f.opts.SiteCheckInterval < 100*time.Millisecond || f.opts.SiteRetryInterval < 100*time.Millisecond {
		return fmt.Errorf("--resync-period must be at least 1s and the storage check intervals at least 100ms")
	}
	if f.opts.MaxConcurrentReconciles < 1 {
		return fmt.Errorf("--max-concurrent-reconciles must be at least 1, got %d", f.opts.MaxConcurrentReconciles)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	mgr, err := controllers.NewManager(cfg, f.opts)
	if err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("Starting operator", "version", version,
		"watchNamespaces", f.opts.WatchNamespaces, "leaderElection", f.opts.LeaderElection)
	return mgr.Start(ctx)
}
