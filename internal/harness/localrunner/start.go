package localrunner

import (
	"context"
	"fmt"
	"net/netip"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Images maps container images to local executables.
type Images map[string]string

// Binary is a Runner.Binaries function.
func (m Images) Binary(image string) (string, error) {
	if path, ok := m[image]; ok {
		return path, nil
	}
	return "", fmt.Errorf("no local binary for image %q", image)
}

// Options of Start.
type Options struct {
	Scheme   *runtime.Scheme
	Selector labels.Selector
	Images   Images
	StateDir string
	// Namespaces limits the runner to these namespaces; empty means all.
	Namespaces []string
	// ContainerEnv is Runner.ContainerEnv.
	ContainerEnv func(image string, ip netip.Addr) []string
}

// Start runs a Runner in a manager of its own, as a kubelet is a process of its own, until ctx ends. The
// returned channel yields the manager's exit error.
func Start(ctx context.Context, cfg *rest.Config, o Options) (*Runner, <-chan error, error) {
	cacheOpts := cache.Options{}
	if len(o.Namespaces) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.Namespaces {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 o.Scheme,
		Cache:                  cacheOpts,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return nil, nil, fmt.Errorf("create runner manager: %w", err)
	}
	r := &Runner{Selector: o.Selector, Binaries: o.Images.Binary, StateDir: o.StateDir, ContainerEnv: o.ContainerEnv}
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return r, done, nil
}
