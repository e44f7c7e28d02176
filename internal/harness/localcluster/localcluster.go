// Package localcluster starts a Kubernetes control plane on this machine for the demo and the integration
// tests: kube-apiserver and etcd through controller-runtime's envtest, plus kube-controller-manager running only
// the garbage collector and the namespace controller, so that deleting a SupportTenant removes its children for
// real. There is no kubelet and no scheduler: the local workload runner (internal/harness/localrunner) stands in for
// them.
package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/supportstack/supportstack/internal/harness/localbin"
)

// Options configure a control plane.
type Options struct {
	// CRDDir holds the CRDs to install (config/crd/bases).
	CRDDir string
	// Dir receives the admin kubeconfig and the controller manager's log; a temporary folder when empty.
	Dir string
	// WithoutControllerManager skips kube-controller-manager (no garbage collection), for tests that need only
	// the API server.
	WithoutControllerManager bool
	// ServiceCIDR is the Services' ClusterIP range; envtest's default (a /24) holds about 250 Services.
	ServiceCIDR string
}

// Cluster is a running control plane.
type Cluster struct {
	// Config is an admin REST config.
	Config *rest.Config
	// Kubeconfig is the path of an admin kubeconfig file, for kubectl.
	Kubeconfig string

	env *envtest.Environment
	kcm *exec.Cmd
}

// Start starts the control plane and installs the CRDs.
func Start(o Options) (*Cluster, error) {
	assets, err := localbin.ControlPlaneDir()
	if err != nil {
		return nil, err
	}
	if o.Dir == "" {
		o.Dir, err = os.MkdirTemp("", "supportstack-cluster-")
	} else {
		err = os.MkdirAll(o.Dir, 0o700)
	}
	if err != nil {
		return nil, fmt.Errorf("create control plane folder: %w", err)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{o.CRDDir},
		ErrorIfCRDPathMissing: true,
	}
	if o.ServiceCIDR != "" {
		env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", o.ServiceCIDR)
	}
	cfg, err := env.Start()
	if err != nil {
		// A failure after the processes started (installing the CRDs) must not leave them running.
		return nil, errors.Join(fmt.Errorf("start kube-apiserver and etcd from %s: %w", assets, err), env.Stop())
	}
	c := &Cluster{Config: cfg, env: env, Kubeconfig: filepath.Join(o.Dir, "kubeconfig")}

	admin, err := env.AddUser(envtest.User{Name: "supportstack-admin", Groups: []string{"system:masters"}}, cfg)
	if err == nil {
		var kubeconfig []byte
		if kubeconfig, err = admin.KubeConfig(); err == nil {
			err = os.WriteFile(c.Kubeconfig, kubeconfig, 0o600)
		}
	}
	if err == nil && !o.WithoutControllerManager {
		err = c.startControllerManager(assets, o.Dir)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("set up control plane: %w", err), c.Stop())
	}
	return c, nil
}

// startControllerManager runs kube-controller-manager with only the controllers that have work without nodes.
func (c *Cluster) startControllerManager(assets, dir string) error {
	bin := filepath.Join(assets, "kube-controller-manager")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("kube-controller-manager in %s: %w", assets, localbin.ErrMissing)
	}
	log, err := os.Create(filepath.Join(dir, "kube-controller-manager.log"))
	if err != nil {
		return fmt.Errorf("create controller manager log: %w", err)
	}
	cmd := exec.Command(bin,
		"--kubeconfig="+c.Kubeconfig,
		"--controllers=garbagecollector,namespace",
		"--leader-elect=false",
		"--secure-port=0",
		"--concurrent-gc-syncs=5",
	)
	cmd.Stdout, cmd.Stderr = log, log
	// The controller manager must not outlive a test binary that dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start kube-controller-manager: %w", err)
	}
	c.kcm = cmd
	return nil
}

// UserConfig returns a REST config that authenticates as the named user with the groups: the API server
// authorizes it with RBAC, so tests can run the operator with exactly the permissions it will have.
func (c *Cluster) UserConfig(name string, groups ...string) (*rest.Config, error) {
	u, err := c.env.AddUser(envtest.User{Name: name, Groups: groups}, c.Config)
	if err != nil {
		return nil, fmt.Errorf("add user %s: %w", name, err)
	}
	return u.Config(), nil
}

// UserKubeconfig returns a kubeconfig that authenticates as the named user with the groups (a client
// certificate), for handing to another process or cluster: a peer's PeerCluster Secret.
func (c *Cluster) UserKubeconfig(name string, groups ...string) ([]byte, error) {
	u, err := c.env.AddUser(envtest.User{Name: name, Groups: groups}, c.Config)
	if err != nil {
		return nil, fmt.Errorf("add user %s: %w", name, err)
	}
	kubeconfig, err := u.KubeConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig of user %s: %w", name, err)
	}
	return kubeconfig, nil
}

// BindClusterRole creates the ClusterRole of a manifest (unless it exists) and binds it to the named user, so
// that a client of that user (UserConfig, UserKubeconfig) holds exactly the role's permissions.
func (c *Cluster) BindClusterRole(manifest, user string) error {
	data, err := os.ReadFile(manifest)
	if err != nil {
		return fmt.Errorf("read %s: %w", manifest, err)
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(data, role); err != nil {
		return fmt.Errorf("parse %s: %w", manifest, err)
	}
	s := runtime.NewScheme()
	if err := rbacv1.AddToScheme(s); err != nil {
		return err
	}
	admin, err := client.New(c.Config, client.Options{Scheme: s})
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	ctx := context.Background()
	if err := admin.Create(ctx, role); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create ClusterRole %s: %w", role.Name, err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name + "-" + user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if err := admin.Create(ctx, binding); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("bind ClusterRole %s to %s: %w", role.Name, user, err)
	}
	return nil
}

// Stop stops the controller manager, kube-apiserver and etcd.
func (c *Cluster) Stop() error {
	var errs []error
	if c.kcm != nil {
		_ = c.kcm.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- c.kcm.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = c.kcm.Process.Kill()
			<-done
		}
		c.kcm = nil
	}
	if c.env != nil {
		if err := c.env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop kube-apiserver and etcd: %w", err))
		}
		c.env = nil
	}
	return errors.Join(errs...)
}

// ApplyRBAC creates the ClusterRoles and Roles of a multi-document manifest with c; those that exist are left as
// they are.
func ApplyRBAC(ctx context.Context, c client.Client, manifest string) error {
	data, err := os.ReadFile(manifest)
	if err != nil {
		return fmt.Errorf("read %s: %w", manifest, err)
	}
	for _, doc := range bytes.Split(data, []byte("\n---")) {
		doc = bytes.TrimPrefix(bytes.TrimSpace(doc), []byte("---"))
		var obj client.Object
		switch {
		case bytes.Contains(doc, []byte("\nkind: ClusterRole\n")) || bytes.HasPrefix(doc, []byte("kind: ClusterRole\n")):
			obj = &rbacv1.ClusterRole{}
		case bytes.Contains(doc, []byte("\nkind: Role\n")) || bytes.HasPrefix(doc, []byte("kind: Role\n")):
			obj = &rbacv1.Role{}
		default:
			continue
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return fmt.Errorf("parse %s: %w", manifest, err)
		}
		if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %T %s: %w", obj, obj.GetName(), err)
		}
	}
	return nil
}
