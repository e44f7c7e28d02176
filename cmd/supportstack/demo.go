package main

import (
	"context"
	"errors"
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
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/controllers/tenant"
	"github.com/supportstack/supportstack/internal/harness/localbin"
	"github.com/supportstack/supportstack/internal/harness/localcluster"
	"github.com/supportstack/supportstack/internal/harness/localrunner"
	"github.com/supportstack/supportstack/internal/naming"
	"github.com/supportstack/supportstack/controllers"
)

// Images the demo's local workload runner maps to local binaries when it runs without a cluster.
const (
	demoMinIOImage        = "supportstack.local/minio:demo"
	demoSupportstackImage = "supportstack.local/supportstack:demo"
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
	fs.StringVar(&f.crds, "crds", "config/crd/bases", "CRDs to install into the local control plane")
	fs.StringVar(&f.stateDir, "state-dir", "bin/demo", "where the local control plane and the tenant's data live")
	// The demo runs beside other things on a laptop: keep its own endpoints on loopback and off the defaults.
	_ = fs.Set("metrics-bind-address", "127.0.0.1:18080")
	_ = fs.Set("health-probe-bind-address", "127.0.0.1:18081")
	_ = fs.Set("resync-period", "5s")
	if err := parse(fs, args); err != nil {
		return err
	}
	f.complete()
	log := ctrl.Log.WithName("demo")

	sample, err := readTenant(f.sample)
	if err != nil {
		return err
	}
	sample.Namespace = f.namespace

	var cfg *rest.Config
	var runner *localrunner.Runner
	if os.Getenv("KUBECONFIG") != "" {
		// A real cluster has kubelets: only the operator runs here.
		if cfg, err = ctrl.GetConfig(); err != nil {
			return fmt.Errorf("load $KUBECONFIG: %w", err)
		}
		fmt.Printf("Running the operator against the cluster of $KUBECONFIG (%s)\n", os.Getenv("KUBECONFIG"))
		fmt.Println("Note: from outside the cluster the operator cannot resolve the tenants' MinIO Services, so the",
			"storage stays unchecked and the bucket unset; install the operator in the cluster (Helm) for that.")
	} else {
		cluster, err := localcluster.Start(localcluster.Options{CRDDir: f.crds, Dir: filepath.Join(f.stateDir, "cluster")})
		if err != nil {
			return err
		}
		defer func() {
			if err := cluster.Stop(); err != nil {
				log.Error(err, "Stopping the control plane")
			}
		}()
		cfg = cluster.Config
		// The embedded control plane starts empty, so the sample tenant gets new credentials: MinIO data left
		// by an earlier demo could not be opened with them.
		if err := os.RemoveAll(filepath.Join(f.stateDir, "pods")); err != nil {
			return fmt.Errorf("clear the previous demo's data: %w", err)
		}
		f.opts.Tenant.MinIOImage, f.opts.Tenant.SupportstackImage = demoMinIOImage, demoSupportstackImage
		// The runner must stop its processes before the control plane goes: its own context, cancelled and
		// waited for by a deferred call that runs before cluster.Stop.
		runnerCtx, stopRunner := context.WithCancel(ctx)
		var runnerDone <-chan error
		if runner, runnerDone, err = startDemoRunner(runnerCtx, cfg, filepath.Join(f.stateDir, "pods")); err != nil {
			stopRunner()
			return err
		}
		defer func() {
			stopRunner()
			if err := <-runnerDone; err != nil {
				log.Error(err, "Local workload runner stopped")
			}
		}()
		f.opts.Storage = tenant.ResolverFunc(func(_ context.Context, t *v1alpha1.SupportTenant) (string, error) {
			addr, err := runner.ServiceAddress(t.Namespace, naming.MinIO(t.Name), naming.MinIOPort)
			return "http://" + addr, err
		})
		kubectl := filepath.Join(filepath.Dir(cluster.Kubeconfig), "..", "..", "k8s", "kubectl")
		if p, err := localbin.ControlPlaneDir(); err == nil {
			kubectl = filepath.Join(p, "kubectl")
		}
		fmt.Printf("Local control plane is up. In another shell:\n  export KUBECONFIG=%s\n  %s get supporttenants -A\n",
			absPath(cluster.Kubeconfig), kubectl)
	}

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
	go reportProgress(ctx, c, f.opts.Tenant, sample, runner, f.stateDir)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		fmt.Println("Stopping. The tenant's data and logs stay in", f.stateDir, "until the next demo.")
		return <-errc
	}
}

// startDemoRunner runs the tenant's pods as local processes: MinIO from bin/, ingest and dashboard from this
// very binary.
func startDemoRunner(ctx context.Context, cfg *rest.Config, stateDir string) (*localrunner.Runner, <-chan error, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("find own executable: %w", err)
	}
	minio, err := localbin.MinIO()
	if err != nil {
		return nil, nil, err
	}
	return localrunner.Start(ctx, cfg, localrunner.Options{
		Scheme:   controllers.Scheme(),
		Selector: naming.ManagedSelector(),
		Images:   localrunner.Images{demoMinIOImage: minio, demoSupportstackImage: self},
		StateDir: stateDir,
	})
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

// reportProgress prints how long the tenant took to get all its objects and to become Ready, then where its
// dashboard answers and how to enroll an agent on this machine.
func reportProgress(ctx context.Context, c client.Client, cfg tenant.Config, t *v1alpha1.SupportTenant, runner *localrunner.Runner, stateDir string) {
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
	err = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		got := &v1alpha1.SupportTenant{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(t), got); err != nil {
			return false, nil
		}
		return meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionReady), nil
	})
	if err != nil {
		return
	}
	fmt.Printf("Tenant %s is Ready %s after apply\n", t.Name, time.Since(start).Round(time.Millisecond))
	if runner != nil {
		if addr, err := runner.ServiceAddress(t.Namespace, naming.Dashboard(t.Name), 80); err == nil {
			fmt.Printf("Dashboard: http://%s/   Status page: http://%s/status\n", addr, addr)
		} else if !errors.Is(err, context.Canceled) {
			fmt.Printf("Dashboard address unknown: %v\n", err)
		}
		if err := printAgentHowTo(ctx, c, t, runner, stateDir); err != nil && !errors.Is(err, context.Canceled) {
			fmt.Printf("Cannot tell how to enroll an agent: %v\n", err)
		}
	}
	fmt.Println("Press Ctrl-C to stop.")
}

// printAgentHowTo writes the tenant's enrollment token to a file only this user can read and prints the commands
// that enroll and run an agent on this machine against the tenant's ingest. Ingest advertises an address of this
// machine (the local runner gives a pod that names its own Service its own address), so the agent delivers at
// once.
func printAgentHowTo(ctx context.Context, c client.Client, t *v1alpha1.SupportTenant, runner *localrunner.Runner, stateDir string) error {
	addr, err := runner.ServiceAddress(t.Namespace, naming.Ingest(t.Name), 80)
	if err != nil {
		return err
	}
	secret := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: naming.CredentialsSecret(t.Name)}, secret); err != nil {
		return err
	}
	tokenFile := absPath(filepath.Join(stateDir, "enrollment-token"))
	if err := os.WriteFile(tokenFile, secret.Data[naming.SecretKeyEnrollmentToken], 0o600); err != nil {
		return err
	}
	agentDir := absPath(filepath.Join(stateDir, "agent"))
	// make demo builds the agent next to this binary.
	bin := "supportstack-agent"
	if self, err := os.Executable(); err == nil {
		bin = filepath.Join(filepath.Dir(self), "supportstack-agent")
	}
	fmt.Printf("Ingest: http://%s   An agent on this machine:\n  %s enroll --state-dir %s --url http://%s --token-file %s\n  %s run --state-dir %s\n  %s ask --state-dir %s \"Why is my PC slow?\"\n",
		addr, bin, agentDir, addr, tokenFile, bin, agentDir, bin, agentDir)
	return nil
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
