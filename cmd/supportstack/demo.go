package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/controllers"
	"github.com/supportstack/supportstack/controllers/tenant"
)

type demoFlags struct {
	operatorFlags
	sample    string
	namespace string
	crds      string
	stateDir  string
}

func runDemo(ctx context.Context, args []string) error {
	var f demoFlags
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	f.bind(fs)
	fs.StringVar(&f.sample, "sample", "config/samples/supportstack_v1alpha1_supporttenant.yaml", "SupportTenant to apply")
	fs.StringVar(&f.namespace, "namespace", "tenant-acme", "namespace of the sample tenant")
	fs.StringVar(&f.crds, "crds", "config/crd/bases", "CRDs to install into the local control planes")
	fs.StringVar(&f.stateDir, "state-dir", "bin/demo", "where the local control planes and the tenant's data live")
	// The demo runs beside other things on a laptop: keep its own endpoints on loopback and off the defaults.
	_ = fs.Set("metrics-bind-address", "127.0.0.1:18080")
	_ = fs.Set("health-probe-bind-address", "127.0.0.1:18081")
	_ = fs.Set("resync-period", "5s")
	if err := parse(fs, args); err != nil {
		return err
	}
	f.complete()
	sample, err := readTenant(f.sample)
	if err != nil {
		return err
	}
	sample.Namespace = f.namespace
	if os.Getenv("KUBECONFIG") != "" {
		return runDemoOnCluster(ctx, f, sample)
	}
	return runDemoOnTwoPlanes(ctx, f, sample)
}

// runDemoOnCluster runs the operator against the cluster of $KUBECONFIG, which has kubelets of its own, and
// applies the sample tenant there.
func runDemoOnCluster(ctx context.Context, f demoFlags, sample *v1alpha1.SupportTenant) error {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load $KUBECONFIG: %w", err)
	}
	fmt.Printf("Running the operator against the cluster of $KUBECONFIG (%s)\n", os.Getenv("KUBECONFIG"))
	fmt.Println("Note: from outside the cluster the operator cannot resolve the tenants' MinIO Services, so the",
		"storage stays unchecked and the bucket unset; install the operator in the cluster (Helm) for that.")
	mgr, err := controllers.NewManager(cfg, f.opts)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- mgr.Start(ctx) }()
	c, err := client.New(cfg, client.Options{Scheme: controllers.Scheme()})
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	if err := applySample(ctx, c, sample); err != nil {
		return err
	}
	go reportProgress(ctx, c, f.opts.Tenant, sample)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return <-errc
	}
}

func readTenant(path string) (*v1alpha1.SupportTenant, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read sample tenant: %w", err)
	}
	t := &v1alpha1.SupportTenant{}
	if err := yaml.UnmarshalStrict(data, t); err != nil {
		return nil, fmt.Errorf("parse sample tenant %s: %w", path, err)
	}
	return t, nil
}

// applySample creates the namespace and the tenant, as `kubectl apply` would.
func applySample(ctx context.Context, c client.Client, t *v1alpha1.SupportTenant) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: t.Namespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", t.Namespace, err)
	}
	existing := &v1alpha1.SupportTenant{}
	err := c.Get(ctx, client.ObjectKeyFromObject(t), existing)
	switch {
	case apierrors.IsNotFound(err):
		if err := c.Create(ctx, t); err != nil {
			return fmt.Errorf("create tenant: %w", err)
		}
	case err != nil:
		return fmt.Errorf("get tenant: %w", err)
	default:
		t.ResourceVersion = existing.ResourceVersion
		if err := c.Update(ctx, t); err != nil {
			return fmt.Errorf("update tenant: %w", err)
		}
	}
	fmt.Printf("Applied SupportTenant %s/%s\n", t.Namespace, t.Name)
	return nil
}

// reportProgress prints how long the tenant took to get all its objects and to become Ready.
func reportProgress(ctx context.Context, c client.Client, cfg tenant.Config, t *v1alpha1.SupportTenant) {
	start := time.Now()
	children := cfg.ChildObjects(t)
	err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		for _, o := range children {
			if err := c.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return
	}
	fmt.Printf("All %d objects of the tenant created %s after apply\n", len(children), time.Since(start).Round(time.Millisecond))
	if waitConditions(ctx, c, client.ObjectKeyFromObject(t), v1alpha1.ConditionReady) == nil {
		fmt.Printf("Tenant %s is Ready %s after apply\nPress Ctrl-C to stop.\n", t.Name, time.Since(start).Round(time.Millisecond))
	}
}

// waitConditions waits until the tenant has every one of the conditions True.
func waitConditions(ctx context.Context, c client.Client, key client.ObjectKey, types ...string) error {
	return wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		got := &v1alpha1.SupportTenant{}
		if err := c.Get(ctx, key, got); err != nil {
			return false, nil
		}
		for _, typ := range types {
			if !meta.IsStatusConditionTrue(got.Status.Conditions, typ) {
				return false, nil
			}
		}
		return true, nil
	})
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
