package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/supportstack/supportstack/controllers"
	"github.com/supportstack/supportstack/controllers/peer"
	"github.com/supportstack/supportstack/controllers/replication"
	"github.com/supportstack/supportstack/controllers/sitemonitor"
	"github.com/supportstack/supportstack/controllers/tenant"
)

// Default images. MinIO's community edition is published as source only; platforms are expected to set
// --minio-image to an image they build or trust.
const (
	defaultMinIOImage           = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
	supportstackImageRepository = "ghcr.io/supportstack/supportstack"
)

// defaultSupportstackImage is the image of the version this binary was built from (never a moving tag such as
// latest): tenants' ingest and dashboard then run the code the operator was tested with.
func defaultSupportstackImage() string { return supportstackImageRepository + ":" + version }

// operatorFlags are the flags the manager and the demo share.
type operatorFlags struct {
	opts            controllers.Options
	watchNamespaces string
	zap             zap.Options
}

func (f *operatorFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.opts.MetricsBindAddress, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 disables it")
	fs.StringVar(&f.opts.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.StringVar(&f.opts.PprofBindAddress, "pprof-bind-address", "", "address of Go's profiles (/debug/pprof/), for diagnosing memory and CPU; empty disables it")
	fs.BoolVar(&f.opts.LeaderElection, "leader-elect", false, "elect a leader among operator replicas (use it with more than one replica)")
	fs.StringVar(&f.opts.LeaderElectionNamespace, "leader-elect-namespace", "", "namespace of the leader-election Lease (default: the operator's own, $POD_NAMESPACE)")
	fs.DurationVar(&f.opts.LeaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long a leader's Lease holds without renewal: a leader that dies is replaced within about this plus the retry period")
	fs.DurationVar(&f.opts.RenewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long the leader keeps trying to renew before it gives up leading")
	fs.DurationVar(&f.opts.RetryPeriod, "leader-elect-retry-period", 2*time.Second, "how often candidates try to take the Lease")
	fs.StringVar(&f.watchNamespaces, "watch-namespaces", "", "comma-separated namespaces to watch; empty watches all")
	fs.StringVar(&f.opts.Tenant.MinIOImage, "minio-image", defaultMinIOImage, "default MinIO image of tenants")
	fs.StringVar(&f.opts.Tenant.SupportstackImage, "supportstack-image", defaultSupportstackImage(), "image that runs tenants' ingest and dashboard")
	fs.StringVar(&f.opts.Tenant.ClusterDomain, "cluster-domain", "cluster.local", "DNS suffix of the cluster's Services")
	fs.DurationVar(&f.opts.ResyncPeriod, "resync-period", tenant.DefaultResyncPeriod, "how often each tenant is reconciled when nothing changes")
	fs.DurationVar(&f.opts.SiteCheckInterval, "storage-check-interval", sitemonitor.DefaultInterval, "how often each tenant's MinIO is checked while healthy")
	fs.DurationVar(&f.opts.SiteRetryInterval, "storage-retry-interval", sitemonitor.DefaultRetryInterval, "how often each tenant's MinIO is checked while failing")
	fs.IntVar(&f.opts.MaxConcurrentReconciles, "max-concurrent-reconciles", tenant.DefaultMaxConcurrentReconciles, "how many tenants are reconciled at once")
	fs.StringVar(&f.opts.ClusterName, "cluster-name", "", "name of this cluster to its peers (DNS label): the name of the PeerCluster in each peer that leads back here; needed to replicate tenants")
	fs.DurationVar(&f.opts.PeerInterval, "peer-check-interval", peer.DefaultInterval, "how often each peer cluster's API server is probed and its kubeconfig Secret read again")
	fs.DurationVar(&f.opts.Replication.HeartbeatInterval, "heartbeat-interval", replication.DefaultHeartbeatInterval, "how often each replicated tenant's copy writes its heartbeat")
	fs.DurationVar(&f.opts.Replication.ProbeInterval, "heartbeat-probe-interval", replication.DefaultProbeInterval, "how often each replicated tenant's copy reads the peer's heartbeat (the lag's resolution)")
	fs.DurationVar(&f.opts.LagThreshold, "lag-threshold", replication.DefaultLagThreshold, "replication lag above which a tenant's Replicating condition turns False")
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
	if f.opts.LeaderElectionNamespace == "" {
		f.opts.LeaderElectionNamespace = f.opts.Tenant.OperatorNamespace
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&f.zap)))
}

// operatorGCPercent is the manager's GOGC unless the environment sets one.
const operatorGCPercent = 50

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
	if f.opts.ClusterName != "" && !isDNSLabel(f.opts.ClusterName) {
		return fmt.Errorf("--cluster-name %q must be a DNS label: lowercase letters, digits and '-', at most 63", f.opts.ClusterName)
	}
	if f.opts.Replication.HeartbeatInterval < 100*time.Millisecond || f.opts.Replication.ProbeInterval < 50*time.Millisecond {
		return fmt.Errorf("--heartbeat-interval must be at least 100ms and --heartbeat-probe-interval at least 50ms")
	}
	if f.opts.MaxConcurrentReconciles < 1 {
		return fmt.Errorf("--max-concurrent-reconciles must be at least 1, got %d", f.opts.MaxConcurrentReconciles)
	}
	if os.Getenv("GOGC") == "" {
		// The operator's CPU idles between bursts and its memory is what a platform budgets: half Go's default
		// heap headroom keeps 1,000 tenants near 210 MB instead of 265-305 MB without slowing their convergence
		// (make bench BENCH_FLAGS="--only scale"). GOGC overrides it.
		debug.SetGCPercent(operatorGCPercent)
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
		"watchNamespaces", f.opts.WatchNamespaces, "leaderElection", f.opts.LeaderElection, "clusterName", f.opts.ClusterName)
	return mgr.Start(ctx)
}

// isDNSLabel reports whether s is an RFC 1123 label, as PeerCluster names of replicated tenants must be.
func isDNSLabel(s string) bool {
	return len(validation.IsDNS1123Label(s)) == 0
}
