// Package operator_test runs the operator binary as platform ops do — several replicas with leader election — on a
// real control plane, and kills them.
package operator_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/controllers"
	"github.com/supportstack/supportstack/internal/harness/localbin"
	"github.com/supportstack/supportstack/internal/harness/localcluster"
	"github.com/supportstack/supportstack/internal/harness/procs"
	"github.com/supportstack/supportstack/internal/naming"
)

var bins procs.Binaries

func TestMain(m *testing.M) { os.Exit(procs.Main(m, &bins)) }

// Lease timings of the test: short, so that a handover after a crash is seconds.
const (
	leaseDuration = 4 * time.Second
	renewDeadline = 3 * time.Second
	retryPeriod   = 500 * time.Millisecond
)

// startCluster starts a control plane with the CRDs (and serviceCIDR, when set, for more Services than envtest's
// default range holds) and the operator's and the tenants' namespaces.
func startCluster(t *testing.T, serviceCIDR string) (*localcluster.Cluster, client.Client) {
	t.Helper()
	root, err := localbin.RepoRoot()
	require.NoError(t, err)
	cluster, err := localcluster.Start(localcluster.Options{CRDDir: filepath.Join(root, "config", "crd", "bases"), Dir: t.TempDir(),
		WithoutControllerManager: true, ServiceCIDR: serviceCIDR})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cluster.Stop() })
	c, err := client.New(cluster.Config, client.Options{Scheme: controllers.Scheme()})
	require.NoError(t, err)
	for _, ns := range []string{"supportstack-system", "tenants"} {
		require.NoError(t, c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	}
	return cluster, c
}

// replica is one operator process and its metrics address.
type replica struct {
	name    string
	proc    *procs.Process
	metrics string
}

func startReplica(t *testing.T, name, kubeconfig string) *replica {
	t.Helper()
	metrics := procs.FreeAddr(t)
	p := procs.Start(t, "manager-"+name, []string{"KUBECONFIG=" + kubeconfig, "POD_NAMESPACE=supportstack-system"},
		bins.Supportstack, "manager", "--leader-elect", "--metrics-bind-address="+metrics, "--health-probe-bind-address=0",
		"--leader-elect-lease-duration="+leaseDuration.String(), "--leader-elect-renew-deadline="+renewDeadline.String(),
		"--leader-elect-retry-period="+retryPeriod.String(), "--resync-period=1h")
	r := &replica{name: name, proc: p, metrics: "http://" + metrics + "/metrics"}
	require.Eventually(t, func() bool { _, err := r.scrape(); return err == nil }, 30*time.Second, 50*time.Millisecond, "%s never served metrics", name)
	return r
}

func (r *replica) scrape() (string, error) {
	resp, err := http.Get(r.metrics)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

var (
	leading    = regexp.MustCompile(`(?m)^leader_election_master_status\{name="supportstack-operator\.supportstack\.io"\} 1$`)
	reconciles = regexp.MustCompile(`(?m)^controller_runtime_reconcile_total\{controller="supporttenant",result="[a-z_]+"\} (\d+)$`)
)

// leads reports whether the replica holds the Lease, by its own account.
func (r *replica) leads() bool {
	m, err := r.scrape()
	return err == nil && leading.MatchString(m)
}

// tenantReconciles counts the replica's reconciles of tenants.
func (r *replica) tenantReconciles(t *testing.T) int {
	t.Helper()
	m, err := r.scrape()
	require.NoError(t, err)
	n := 0
	for _, c := range reconciles.FindAllStringSubmatch(m, -1) {
		v, _ := strconv.Atoi(c[1])
		n += v
	}
	return n
}

// Of several operator replicas exactly one reconciles; when it is killed (SIGKILL: no chance to release its Lease)
// another takes over within the lease timings, and when it stops cleanly (SIGTERM) it hands over at once.
func TestLeaderElection(t *testing.T) {
	cluster, c := startCluster(t, "")
	ctx := context.Background()

	a, b := startReplica(t, "a", cluster.Kubeconfig), startReplica(t, "b", cluster.Kubeconfig)
	var leader, follower *replica
	require.Eventually(t, func() bool {
		switch {
		case a.leads() && !b.leads():
			leader, follower = a, b
		case b.leads() && !a.leads():
			leader, follower = b, a
		}
		return leader != nil
	}, 30*time.Second, 50*time.Millisecond, "no single leader")

	reconciled := func(name string) {
		t.Helper()
		tn := &v1alpha1.SupportTenant{ObjectMeta: metav1.ObjectMeta{Namespace: "tenants", Name: name},
			Spec: v1alpha1.SupportTenantSpec{DisplayName: name}}
		require.NoError(t, c.Create(ctx, tn))
		require.Eventually(t, func() bool {
			got := &v1alpha1.SupportTenant{}
			return c.Get(ctx, client.ObjectKeyFromObject(tn), got) == nil && got.Status.ObservedGeneration == got.Generation
		}, 30*time.Second, 50*time.Millisecond, "tenant %s was never reconciled", name)
	}
	reconciled("first")
	require.Positive(t, leader.tenantReconciles(t))
	require.Zero(t, follower.tenantReconciles(t), "the follower reconciled")

	// The leader crashes: the follower takes the Lease once it expires.
	killed := time.Now()
	leader.proc.Kill(syscall.SIGKILL)
	require.Eventually(t, follower.leads, leaseDuration+10*time.Second, 20*time.Millisecond, "nobody took over")
	afterCrash := time.Since(killed)
	reconciled("second")
	require.Less(t, afterCrash, leaseDuration+2*retryPeriod+time.Second, "handover after a crash took longer than the lease allows")

	// A new replica joins; the leader stops cleanly and releases the Lease: the handover is immediate.
	third := startReplica(t, "c", cluster.Kubeconfig)
	require.False(t, third.leads())
	stopped := time.Now()
	follower.proc.Kill(syscall.SIGTERM)
	require.Eventually(t, third.leads, 10*time.Second, 20*time.Millisecond, "nobody took over after a clean stop")
	afterStop := time.Since(stopped)
	reconciled("third")
	require.Less(t, afterStop, leaseDuration, "a clean stop released the Lease")
	t.Logf("handover: %s after SIGKILL (lease %s, retry %s), %s after SIGTERM", afterCrash.Round(10*time.Millisecond),
		leaseDuration, retryPeriod, afterStop.Round(10*time.Millisecond))
}

// The operator killed (SIGKILL) at random points while 100 tenants converge, five times: after each restart every
// tenant converges, and in the end each has exactly its children — one of each, owned by it, none left over.
func TestKilledWhileConverging(t *testing.T) {
	cluster, c := startCluster(t, "10.96.0.0/16")
	ctx := context.Background()
	const tenants = 100
	for i := range tenants {
		name := fmt.Sprintf("t%03d", i)
		require.NoError(t, c.Create(ctx, &v1alpha1.SupportTenant{ObjectMeta: metav1.ObjectMeta{Namespace: "tenants", Name: name},
			Spec: v1alpha1.SupportTenantSpec{DisplayName: name}}))
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for round := range 5 {
		r := startReplica(t, fmt.Sprintf("round%d", round), cluster.Kubeconfig)
		// Somewhere between its first writes and its last.
		time.Sleep(time.Duration(200+rng.IntN(2500)) * time.Millisecond) // the kill point itself, chosen at random
		r.proc.Kill(syscall.SIGKILL)
	}
	startReplica(t, "last", cluster.Kubeconfig)
	require.Eventually(t, func() bool {
		var list v1alpha1.SupportTenantList
		if c.List(ctx, &list, client.InNamespace("tenants")) != nil {
			return false
		}
		done := 0
		for _, tn := range list.Items {
			if tn.Status.ObservedGeneration == tn.Generation && len(tn.Status.Conditions) > 0 {
				done++
			}
		}
		return done == tenants
	}, 3*time.Minute, 200*time.Millisecond, "not every tenant converged after the kills")

	// Every child: one per kind and name a tenant has, owned by exactly that tenant (as its controller).
	counts := map[string]int{}
	check := func(kind string, items []metav1.Object) {
		for _, o := range items {
			var owner string
			for _, ref := range o.GetOwnerReferences() {
				if ref.Controller != nil && *ref.Controller {
					require.Empty(t, owner, "%s %s has two controllers", kind, o.GetName())
					owner = ref.Name
				}
			}
			require.NotEmpty(t, owner, "%s %s has no controller: an orphan", kind, o.GetName())
			require.Equal(t, owner, o.GetLabels()[naming.LabelInstance], "%s %s is owned by another tenant", kind, o.GetName())
			counts[kind+"/"+owner]++
		}
	}
	managed := client.MatchingLabels{naming.LabelManagedBy: naming.ManagedBy}
	var deps appsv1.DeploymentList
	require.NoError(t, c.List(ctx, &deps, client.InNamespace("tenants"), managed))
	check("Deployment", metaOf(deps.Items))
	var sts appsv1.StatefulSetList
	require.NoError(t, c.List(ctx, &sts, client.InNamespace("tenants"), managed))
	check("StatefulSet", metaOf(sts.Items))
	var svcs corev1.ServiceList
	require.NoError(t, c.List(ctx, &svcs, client.InNamespace("tenants"), managed))
	check("Service", metaOf(svcs.Items))
	var secrets corev1.SecretList
	require.NoError(t, c.List(ctx, &secrets, client.InNamespace("tenants"), managed))
	for i := range tenants {
		name := fmt.Sprintf("t%03d", i)
		require.Equal(t, 2, counts["Deployment/"+name], "%s: ingest and dashboard", name)
		require.Equal(t, 1, counts["StatefulSet/"+name], name)
		require.Equal(t, 4, counts["Service/"+name], "%s: MinIO (two), ingest, dashboard", name)
	}
	require.Len(t, deps.Items, 2*tenants)
	require.Len(t, sts.Items, tenants)
	creds := 0
	for _, s := range secrets.Items {
		if strings.HasSuffix(s.Name, "-credentials") {
			creds++
		}
	}
	require.Equal(t, tenants, creds, "one credentials Secret per tenant: a kill between generating and storing them made no second")
}

func metaOf[T any, P interface {
	*T
	metav1.Object
}](items []T) []metav1.Object {
	out := make([]metav1.Object, len(items))
	for i := range items {
		out[i] = P(&items[i])
	}
	return out
}
