package tenant_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/controllers"
	"github.com/supportstack/supportstack/controllers/tenant"
	"github.com/supportstack/supportstack/internal/harness/localbin"
	"github.com/supportstack/supportstack/internal/harness/localcluster"
	"github.com/supportstack/supportstack/internal/harness/localrunner"
	"github.com/supportstack/supportstack/internal/harness/miniotest"
	"github.com/supportstack/supportstack/internal/naming"
)

// The suite runs one real control plane (kube-apiserver, etcd, kube-controller-manager's garbage collector)
// and one operator for all tests. Tests that need running pods start a local workload runner for their own
// namespace; the others play kubelet themselves by writing workload status.

const (
	minioImage        = "minio-under-test:local"
	supportstackImage = "supportstack-under-test:local"
	resyncPeriod      = time.Second
)

var (
	cluster         *localcluster.Cluster
	k8s             client.Client // uncached, admin
	supportstackBin string
	writes          = &writeCounter{byNamespace: map[string]*atomic.Int64{}}
	storage         = &storageRouter{byNamespace: map[string]func(*v1alpha1.SupportTenant) (string, error){}, calls: map[string]*atomic.Int64{}}
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "tenant suite: "+format+"\n", args...)
		return 1
	}
	root, err := localbin.RepoRoot()
	if err != nil {
		return fail("%v", err)
	}
	binDir, err := os.MkdirTemp("", "supportstack-bin-")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(binDir)
	supportstackBin = filepath.Join(binDir, "supportstack")
	build := exec.Command("go", "build", "-o", supportstackBin, "./cmd/supportstack")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fail("build supportstack: %v", err)
	}

	cluster, err = localcluster.Start(localcluster.Options{CRDDir: filepath.Join(root, "config", "crd", "bases")})
	if err != nil {
		return fail("%v", err)
	}
	defer cluster.Stop()
	if k8s, err = client.New(cluster.Config, client.Options{Scheme: controllers.Scheme()}); err != nil {
		return fail("create client: %v", err)
	}

	// The operator runs as a user holding only the ClusterRole generated from its RBAC markers, so a missing
	// permission fails the tests as it would fail in a cluster.
	cfg, err := operatorConfig(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		return fail("%v", err)
	}
	// Its requests go through a counter, so tests can prove that a resync writes nothing.
	cfg.Wrap(writes.wrap)
	mgr, err := controllers.NewManager(cfg, controllers.Options{
		Tenant: tenant.Config{
			MinIOImage:        minioImage,
			SupportstackImage: supportstackImage,
			ClusterDomain:     "cluster.local",
			OperatorNamespace: "supportstack-system",
		},
		Storage:                storage,
		ResyncPeriod:           resyncPeriod,
		SiteCheckInterval:      resyncPeriod,
		SiteRetryInterval:      500 * time.Millisecond,
		MetricsBindAddress:     "0",
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return fail("%v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		return fail("operator: %v", err)
	}
	return code
}

// operatorConfig binds the generated ClusterRole to a new user and returns that user's config.
func operatorConfig(rolePath string) (*rest.Config, error) {
	const user = "supportstack-operator-under-test"
	if err := cluster.BindClusterRole(rolePath, user); err != nil {
		return nil, err
	}
	return cluster.UserConfig(user)
}

// writeCounter counts the operator's writes to the API server per namespace.
type writeCounter struct {
	mu          sync.Mutex
	byNamespace map[string]*atomic.Int64
}

func (w *writeCounter) counter(ns string) *atomic.Int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byNamespace[ns] == nil {
		w.byNamespace[ns] = &atomic.Int64{}
	}
	return w.byNamespace[ns]
}

func (w *writeCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			if _, rest, ok := strings.Cut(req.URL.Path, "/namespaces/"); ok {
				ns, _, _ := strings.Cut(rest, "/")
				w.counter(ns).Add(1)
			}
		}
		return rt.RoundTrip(req)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// storageRouter resolves each test namespace's MinIO: through its local workload runner, or to a MinIO server
// the test started itself. It counts the operator's lookups, one per reconcile of a tenant with ready storage.
type storageRouter struct {
	mu          sync.Mutex
	byNamespace map[string]func(*v1alpha1.SupportTenant) (string, error)
	calls       map[string]*atomic.Int64
}

func (s *storageRouter) set(ns string, f func(*v1alpha1.SupportTenant) (string, error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byNamespace[ns] = f
}

func (s *storageRouter) callCount(ns string) *atomic.Int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls[ns] == nil {
		s.calls[ns] = &atomic.Int64{}
	}
	return s.calls[ns]
}

func (s *storageRouter) StorageURL(_ context.Context, t *v1alpha1.SupportTenant) (string, error) {
	s.callCount(t.Namespace).Add(1)
	s.mu.Lock()
	f := s.byNamespace[t.Namespace]
	s.mu.Unlock()
	if f == nil {
		return "", fmt.Errorf("no storage for namespace %s", t.Namespace)
	}
	return f(t)
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T) string { return localcluster.TestNamespace(t, k8s) }

// startRunner runs the pods of ns as local processes until the test ends, and routes the operator's storage
// lookups for ns to the MinIO the runner started.
func startRunner(t *testing.T, ns string) *localrunner.Runner {
	t.Helper()
	minioBin, err := localbin.MinIO()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r, done, err := localrunner.Start(ctx, cluster.Config, localrunner.Options{
		Scheme:       controllers.Scheme(),
		Selector:     naming.ManagedSelector(),
		Images:       localrunner.Images{minioImage: minioBin, supportstackImage: supportstackBin},
		StateDir:     t.TempDir(),
		Namespaces:   []string{ns},
		ContainerEnv: miniotest.PodEnv(minioImage),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	storage.set(ns, func(t *v1alpha1.SupportTenant) (string, error) {
		addr, err := r.ServiceAddress(ns, naming.MinIO(t.Name), naming.MinIOPort)
		return "http://" + addr, err
	})
	return r
}
