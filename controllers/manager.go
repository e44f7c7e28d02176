// Package controllers assembles the supportstack operator: the scheme, the manager with its cache options, and the
// reconcilers. The manager subcommand, the demo and the integration tests all build the operator here, so that
// tests exercise the wiring that production runs.
package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/controllers/peer"
	"github.com/supportstack/supportstack/controllers/replication"
	"github.com/supportstack/supportstack/controllers/sitemonitor"
	"github.com/supportstack/supportstack/controllers/tenant"
	"github.com/supportstack/supportstack/internal/naming"
)

// Scheme knows the built-in kinds and supportstack.io/v1alpha1.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}

// Options configure the operator.
type Options struct {
	Tenant tenant.Config
	// WatchNamespaces limits the operator to these namespaces; empty means all.
	WatchNamespaces []string
	// Storage resolves tenants' MinIO addresses; nil means their in-cluster Services.
	Storage tenant.StorageResolver
	// ResyncPeriod overrides tenant.DefaultResyncPeriod.
	ResyncPeriod time.Duration
	// SiteCheckInterval and SiteRetryInterval override how often the site monitor checks each tenant's MinIO
	// when healthy and when failing (sitemonitor.DefaultInterval, DefaultRetryInterval).
	SiteCheckInterval, SiteRetryInterval time.Duration
	// MaxConcurrentReconciles overrides tenant.DefaultMaxConcurrentReconciles.
	MaxConcurrentReconciles int

	// ClusterName names this cluster to its peers: the standbys this operator mirrors say they are the standby
	// of it, and the peers' PeerClusters leading here carry this name.
	ClusterName string
	// PeerURL maps URLs of the PeerClusters' storageURLTemplate to addresses; nil uses them as they are.
	PeerURL replication.PeerURLResolver
	// Replication tunes the replication monitor (heartbeats, checks, catch-up).
	Replication replication.MonitorOptions
	// PeerInterval overrides how often each peer cluster is probed (peer.DefaultInterval).
	PeerInterval time.Duration
	// LagThreshold overrides replication.DefaultLagThreshold.
	LagThreshold time.Duration

	// SkipNameValidation lets several operators run in one process, one per control plane (the two-cluster
	// harness and demo): controller names are otherwise unique per process.
	SkipNameValidation bool

	MetricsBindAddress     string
	HealthProbeBindAddress string
	// PprofBindAddress serves Go's profiles (/debug/pprof/) when set; off by default.
	PprofBindAddress string
	LeaderElection   bool
	// LeaderElectionNamespace is needed when the operator runs outside a cluster with leader election.
	LeaderElectionNamespace string
	// LeaseDuration, RenewDeadline and RetryPeriod time the election (controller-runtime's defaults when zero:
	// 15s, 10s, 2s). A leader that dies without releasing its Lease is replaced within about LeaseDuration +
	// RetryPeriod; one that stops cleanly releases it at once.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// keepOwnManagedFields drops from a cached object the managedFields entries of every field manager but the
// operator's own: the operator reads only its own (to compare what it applied, and which status parts it holds),
// and the others — kube-controller-manager's status updates, the autoscaler's, kubectl's — are most of an
// object's managedFields and, over thousands of tenants, a large part of the cache.
func keepOwnManagedFields(in any) (any, error) {
	obj, err := apimeta.Accessor(in)
	if err != nil {
		return in, nil // not an object (a tombstone): nothing to trim
	}
	entries := obj.GetManagedFields()
	own := entries[:0:0]
	for _, e := range entries {
		if strings.HasPrefix(e.Manager, naming.FieldManagerPrefix) {
			own = append(own, e)
		}
	}
	if len(own) == 0 {
		own = nil
	}
	if len(own) < len(entries) {
		obj.SetManagedFields(own)
	}
	return in, nil
}

// LeaderElectionID names the operator's leader-election Lease.
const LeaderElectionID = "supportstack-operator.supportstack.io"

// NewManager builds a manager with the operator's controllers registered.
func NewManager(cfg *rest.Config, o Options) (ctrl.Manager, error) {
	// Every object the operator makes carries its managed-by label; caching only those keeps the cache small
	// in clusters with many Secrets and Deployments of other software.
	managed := cache.ByObject{Label: naming.ManagedSelector()}
	cacheOpts := cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:                         managed,
			&corev1.Service{}:                        managed,
			&corev1.ServiceAccount{}:                 managed,
			&appsv1.StatefulSet{}:                    managed,
			&appsv1.Deployment{}:                     managed,
			&autoscalingv2.HorizontalPodAutoscaler{}: managed,
			&policyv1.PodDisruptionBudget{}:          managed,
			&networkingv1.Ingress{}:                  managed,
			&networkingv1.NetworkPolicy{}:            managed,
		},
		DefaultTransform: keepOwnManagedFields,
	}
	if len(o.WatchNamespaces) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.WatchNamespaces {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  Scheme(),
		Cache:                   cacheOpts,
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress:  o.HealthProbeBindAddress,
		PprofBindAddress:        o.PprofBindAddress,
		LeaderElection:          o.LeaderElection,
		LeaderElectionID:        LeaderElectionID,
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		LeaseDuration:           durationOrNil(o.LeaseDuration),
		RenewDeadline:           durationOrNil(o.RenewDeadline),
		RetryPeriod:             durationOrNil(o.RetryPeriod),
		// The operator does nothing a second replica must not see half-done: release the Lease at once on
		// shutdown so a rollout hands over in seconds.
		LeaderElectionReleaseOnCancel: true,
		Controller:                    config.Controller{SkipNameValidation: ptr.To(o.SkipNameValidation)},
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("add readiness check: %w", err)
	}

	if err := peer.IndexTenants(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return nil, fmt.Errorf("index tenants by peer: %w", err)
	}
	storage := o.Storage
	if storage == nil {
		storage = tenant.ServiceResolver{Config: o.Tenant}
	}
	recorder := mgr.GetEventRecorder("supportstack-operator")
	monitor := sitemonitor.New(sitemonitor.Options{Interval: o.SiteCheckInterval, RetryInterval: o.SiteRetryInterval,
		Recorder: recorder, EventAction: tenant.ActionBootstrapStorage})
	if err := mgr.Add(monitor); err != nil {
		return nil, fmt.Errorf("add the site monitor: %w", err)
	}
	r := &tenant.Reconciler{
		Client:                  client.WithFieldOwner(mgr.GetClient(), naming.FieldOwner),
		APIReader:               mgr.GetAPIReader(),
		Config:                  o.Tenant,
		Storage:                 storage,
		Recorder:                recorder,
		Monitor:                 monitor,
		ResyncPeriod:            o.ResyncPeriod,
		MaxConcurrentReconciles: o.MaxConcurrentReconciles,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up %s controller: %w", tenant.ControllerName, err)
	}
	if err := setupReplication(mgr, o, storage, monitor); err != nil {
		return nil, err
	}
	return mgr, nil
}

// setupReplication adds the PeerCluster controller with its registry of peer clients, the replication monitor
// and the replication controller.
func setupReplication(mgr ctrl.Manager, o Options, storage tenant.StorageResolver, sites *sitemonitor.Monitor) error {
	recorder := mgr.GetEventRecorder("supportstack-operator")
	registry := peer.NewRegistry(o.ClusterName)
	pr := &peer.Reconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Registry:  registry,
		Recorder:  recorder,
		Interval:  o.PeerInterval,
	}
	if err := pr.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up %s controller: %w", peer.ControllerName, err)
	}
	mo := o.Replication
	mo.Recorder = recorder
	mo.BucketReady = replication.BucketReady(sites)
	monitor := replication.NewMonitor(mo)
	if err := mgr.Add(monitor); err != nil {
		return fmt.Errorf("add the replication monitor: %w", err)
	}
	rr := &replication.Reconciler{
		Client:                  client.WithFieldOwner(mgr.GetClient(), naming.FieldOwner),
		APIReader:               mgr.GetAPIReader(),
		ClusterName:             o.ClusterName,
		Registry:                registry,
		Monitor:                 monitor,
		Sites:                   sites,
		Storage:                 storage,
		PeerURL:                 o.PeerURL,
		Recorder:                recorder,
		ResyncPeriod:            o.ResyncPeriod,
		LagThreshold:            o.LagThreshold,
		MaxConcurrentReconciles: o.MaxConcurrentReconciles,
	}
	if err := rr.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up %s controller: %w", replication.ControllerName, err)
	}
	return nil
}

func durationOrNil(d time.Duration) *time.Duration {
	if d <= 0 {
		return nil
	}
	return &d
}
