// Package planes starts several local control planes joined as peer clusters, in the spirit of k8ssandra's
// MultiClusterTestEnv: each plane is a kube-apiserver with etcd and the garbage collector (localcluster), the
// local workload runner standing in for its kubelets (localrunner), and the operator, running as a user that
// holds only the ClusterRole generated from its RBAC markers. Each plane has a PeerCluster for every other plane,
// whose kubeconfig Secret holds an identity with only the supportstack-peer ClusterRole there, and whose URL
// templates name the other plane's Services under <service>.<namespace>.<plane>.test — names the runners resolve
// to a gateway in front of the other plane's pods, so each side's MinIO, ingest and dashboard reach the other's
// as they would across two clusters, and a test can cut the traffic between them.
package planes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/minio/minio-go/v7"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/controllers"
	"github.com/supportstack/supportstack/controllers/tenant"
	"github.com/supportstack/supportstack/internal/harness/localbin"
	"github.com/supportstack/supportstack/internal/harness/localcluster"
	"github.com/supportstack/supportstack/internal/harness/localrunner"
	"github.com/supportstack/supportstack/internal/harness/miniotest"
	"github.com/supportstack/supportstack/internal/naming"
	"github.com/supportstack/supportstack/internal/objectstore"
)

// Images the runners map to local binaries.
const (
	MinIOImage        = "supportstack.local/minio:planes"
	SupportstackImage = "supportstack.local/supportstack:planes"
)

// OperatorNamespace holds each plane's PeerCluster Secrets.
const OperatorNamespace = "supportstack-system"

// Options of Start.
type Options struct {
	// SupportstackBin runs the tenants' ingest and dashboard; MinIOBin their storage (default: localbin.MinIO).
	SupportstackBin, MinIOBin string
	// Operator tunes every plane's operator. The harness sets the cluster name, images, storage and peer
	// resolvers, and turns the metrics and health endpoints off.
	Operator controllers.Options
	// Dir holds each plane's control plane files and pods; a temporary folder when empty.
	Dir string
	// CRDDir holds the CRDs to install; the repository's config/crd/bases when empty.
	CRDDir string
}

// Plane is one control plane with its runner and operator.
type Plane struct {
	Name    string
	Cluster *localcluster.Cluster
	// Admin is an uncached admin client.
	Admin  client.Client
	Runner *localrunner.Runner
	// Suffix is the DNS suffix under which the other planes reach this plane's Services.
	Suffix string

	// stopOperator, stopRunner and stopCluster stop the plane's parts; every plane's operator stops before any
	// runner, and every runner before any control plane.
	stopOperator, stopRunner, stopCluster func() error
}

// Env is a set of planes.
type Env struct {
	planes map[string]*Plane
	order  []string
	gw     *gateway
}

// CutTraffic stops the other planes' pods and operators from reaching the named plane's Services (its MinIO and
// ingest), as a network partition between the clusters would; the plane itself and its API server keep running.
func (e *Env) CutTraffic(plane string) { e.gw.setCut(plane, true) }

// RestoreTraffic ends CutTraffic.
func (e *Env) RestoreTraffic(plane string) { e.gw.setCut(plane, false) }

// PublicURL is the address of a plane's Service as something outside the clusters reaches it (an agent on a
// PC through an ingress or load balancer): it stays the same while the pods behind the Service come and go.
// CutTraffic cuts it too.
func (e *Env) PublicURL(plane, namespace, service string, port int32) (string, error) {
	p := e.planes[plane]
	if p == nil {
		return "", fmt.Errorf("no plane %s", plane)
	}
	addr, err := e.gw.address(p, namespace, service, port)
	if err != nil {
		return "", err
	}
	return "http://" + addr, nil
}

// Plane returns the named plane.
func (e *Env) Plane(name string) *Plane { return e.planes[name] }

// StartPlanes starts the named planes for a test and stops them when it ends.
func StartPlanes(t testing.TB, o Options, names ...string) *Env {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	env, err := Start(o, names...)
	if err != nil {
		t.Fatalf("start planes %v: %v", names, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop planes: %v", err)
		}
	})
	return env
}

// Start starts the named planes, joined as peers of each other. Stop stops them.
func Start(o Options, names ...string) (_ *Env, err error) {
	if o.MinIOBin == "" {
		if o.MinIOBin, err = localbin.MinIO(); err != nil {
			return nil, err
		}
	}
	if o.SupportstackBin == "" {
		return nil, errors.New("planes: SupportstackBin is required")
	}
	// The runners start processes in folders of their own: relative paths would not lead to the binaries.
	for _, p := range []*string{&o.SupportstackBin, &o.MinIOBin} {
		if *p, err = filepath.Abs(*p); err != nil {
			return nil, err
		}
	}
	if o.Dir == "" {
		if o.Dir, err = os.MkdirTemp("", "supportstack-planes-"); err != nil {
			return nil, err
		}
	}
	root, err := localbin.RepoRoot()
	if err != nil {
		return nil, err
	}
	env := &Env{planes: map[string]*Plane{}, gw: newGateway()}
	defer func() {
		if err != nil {
			err = errors.Join(err, env.Stop())
		}
	}()
	for _, name := range names {
		p, err := startPlane(root, o, name)
		if p != nil {
			env.planes[name], env.order = p, append(env.order, name)
		}
		if err != nil {
			return env, fmt.Errorf("plane %s: %w", name, err)
		}
	}
	for _, a := range names {
		for _, b := range names {
			if a != b {
				peer := env.planes[b]
				env.planes[a].Runner.AddPeer(peer.Suffix, func(namespace, service string, port int32) (string, error) {
					return env.gw.address(peer, namespace, service, port)
				})
				if err := join(root, env.planes[a], env.planes[b]); err != nil {
					return env, fmt.Errorf("join %s to %s: %w", a, b, err)
				}
			}
		}
	}
	for _, name := range names {
		if err := startOperator(root, o, env.planes[name]); err != nil {
			return env, fmt.Errorf("operator of plane %s: %w", name, err)
		}
	}
	return env, nil
}

// startPlane starts a control plane and its runner.
func startPlane(root string, o Options, name string) (*Plane, error) {
	dir := filepath.Join(o.Dir, name)
	crds := o.CRDDir
	if crds == "" {
		crds = filepath.Join(root, "config", "crd", "bases")
	}
	cluster, err := localcluster.Start(localcluster.Options{CRDDir: crds, Dir: filepath.Join(dir, "cluster")})
	if err != nil {
		return nil, err
	}
	p := &Plane{Name: name, Cluster: cluster, Suffix: name + ".test", stopCluster: cluster.Stop}
	if p.Admin, err = client.New(cluster.Config, client.Options{Scheme: controllers.Scheme()}); err != nil {
		return p, fmt.Errorf("create client: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runner, done, err := localrunner.Start(ctx, cluster.Config, localrunner.Options{
		Scheme:       controllers.Scheme(),
		Selector:     naming.ManagedSelector(),
		Images:       localrunner.Images{MinIOImage: o.MinIOBin, SupportstackImage: o.SupportstackBin},
		StateDir:     filepath.Join(dir, "pods"),
		ContainerEnv: miniotest.PodEnv(MinIOImage),
	})
	if err != nil {
		cancel()
		return p, err
	}
	p.Runner = runner
	p.stopRunner = func() error { cancel(); return <-done }
	return p, nil
}

// join gives plane a a PeerCluster for plane b, with a kubeconfig of b's supportstack-peer identity.
func join(root string, a, b *Plane) error {
	ctx := context.Background()
	user := "supportstack-peer-" + a.Name
	if err := b.Cluster.BindClusterRole(filepath.Join(root, "config", "peer-access", "role.yaml"), user); err != nil {
		return err
	}
	kubeconfig, err := b.Cluster.UserKubeconfig(user)
	if err != nil {
		return err
	}
	if err := ensureNamespace(ctx, a.Admin, OperatorNamespace); err != nil {
		return err
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: OperatorNamespace, Name: "peer-" + b.Name},
		Data: map[string][]byte{"kubeconfig": kubeconfig}}
	if err := a.Admin.Create(ctx, secret); err != nil {
		return fmt.Errorf("create kubeconfig Secret: %w", err)
	}
	pc := &v1alpha1.PeerCluster{
		ObjectMeta: metav1.ObjectMeta{Name: b.Name},
		Spec: v1alpha1.PeerClusterSpec{
			KubeconfigSecretRef: v1alpha1.SecretKeyReference{Namespace: OperatorNamespace, Name: secret.Name, Key: "kubeconfig"},
			StorageURLTemplate:  "http://{{tenant}}-minio.{{namespace}}." + b.Suffix + fmt.Sprintf(":%d", naming.MinIOPort),
			IngestURLTemplate:   "http://{{tenant}}-ingest.{{namespace}}." + b.Suffix,
		},
	}
	if err := a.Admin.Create(ctx, pc); err != nil {
		return fmt.Errorf("create PeerCluster %s: %w", b.Name, err)
	}
	return nil
}

// startOperator runs the plane's operator as a user holding only the generated ClusterRole.
func startOperator(root string, o Options, p *Plane) error {
	const user = "supportstack-operator"
	if err := p.Cluster.BindClusterRole(filepath.Join(root, "config", "rbac", "role.yaml"), user); err != nil {
		return err
	}
	cfg, err := p.Cluster.UserConfig(user)
	if err != nil {
		return err
	}
	opts := o.Operator
	opts.ClusterName = p.Name
	opts.Tenant.MinIOImage, opts.Tenant.SupportstackImage = MinIOImage, SupportstackImage
	if opts.Tenant.ClusterDomain == "" {
		opts.Tenant.ClusterDomain = "cluster.local"
	}
	opts.Tenant.OperatorNamespace = OperatorNamespace
	opts.Storage = tenant.ResolverFunc(func(_ context.Context, t *v1alpha1.SupportTenant) (string, error) {
		addr, err := p.Runner.ServiceAddress(t.Namespace, naming.MinIO(t.Name), naming.MinIOPort)
		return "http://" + addr, err
	})
	opts.PeerURL = func(_ *v1alpha1.PeerCluster, url string) (string, error) { return p.Runner.ResolveURL(url) }
	opts.SkipNameValidation = true
	opts.MetricsBindAddress, opts.HealthProbeBindAddress = "0", "0"
	mgr, err := controllers.NewManager(cfg, opts)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	p.stopOperator = func() error { cancel(); return <-done }
	return nil
}

func ensureNamespace(ctx context.Context, c client.Client, name string) error {
	err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// Stop stops every plane: operators first, then runners, then control planes.
func (e *Env) Stop() error {
	if e.gw != nil {
		defer e.gw.close()
	}
	planes := make([]*Plane, 0, len(e.order))
	for _, name := range e.order {
		planes = append(planes, e.planes[name])
	}
	return stop(planes)
}

// StopPlane stops one plane entirely — its operator, its pods (MinIO, ingest, dashboard) and its control plane —
// as a whole cluster lost at once. The other planes go on and find it gone.
func (e *Env) StopPlane(name string) error {
	p := e.planes[name]
	if p == nil {
		return fmt.Errorf("no plane %s", name)
	}
	return stop([]*Plane{p})
}

// stop stops the planes' operators, then their runners, then their control planes; a part stopped before is
// skipped.
func stop(planes []*Plane) error {
	var errs []error
	for _, part := range []func(*Plane) *func() error{
		func(p *Plane) *func() error { return &p.stopOperator },
		func(p *Plane) *func() error { return &p.stopRunner },
		func(p *Plane) *func() error { return &p.stopCluster },
	} {
		for _, p := range planes {
			stop := part(p)
			if *stop == nil {
				continue
			}
			if err := (*stop)(); err != nil && !errors.Is(err, context.Canceled) {
				errs = append(errs, fmt.Errorf("plane %s: %w", p.Name, err))
			}
			*stop = nil
		}
	}
	return errors.Join(errs...)
}

// RootStorage reaches the plane's copy of a tenant's bucket with its MinIO's root credentials.
func (p *Plane) RootStorage(ctx context.Context, key client.ObjectKey) (*minio.Client, error) {
	return p.storage(ctx, key, naming.CredentialsSecret(key.Name), naming.SecretKeyRootUser, naming.SecretKeyRootPassword)
}

// DataPlaneStorage reaches the plane's copy of a replicated tenant's bucket as its ingest does: with the data-plane
// user of its shared Secret.
func (p *Plane) DataPlaneStorage(ctx context.Context, key client.ObjectKey) (*minio.Client, error) {
	return p.storage(ctx, key, naming.SharedSecret(key.Name), naming.SharedKeyDataPlaneUser, naming.SharedKeyDataPlanePassword)
}

func (p *Plane) storage(ctx context.Context, key client.ObjectKey, secretName, userKey, passwordKey string) (*minio.Client, error) {
	secret := &corev1.Secret{}
	if err := p.Admin.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: secretName}, secret); err != nil {
		return nil, err
	}
	addr, err := p.Runner.ServiceAddress(key.Namespace, naming.MinIO(key.Name), naming.MinIOPort)
	if err != nil {
		return nil, err
	}
	return objectstore.NewFailFastClient(objectstore.Endpoint{URL: "http://" + addr,
		AccessKey: string(secret.Data[userKey]), SecretKey: string(secret.Data[passwordKey])})
}

// Config is the admin REST config of the plane.
func (p *Plane) Config() *rest.Config { return p.Cluster.Config }
