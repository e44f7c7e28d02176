// Package operator_test runs the operator binary as platform ops do — several replicas with leader election — on a
// real control plane, and kills them.
package operator_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/controllers"
	"github.com/supportstack/supportstack/internal/harness/localbin"
	"github.com/supportstack/supportstack/internal/harness/localcluster"
	"github.com/supportstack/supportstack/internal/harness/procs"
)

var bins procs.Binaries

func TestMain(m *testing.M) { os.Exit(procs.Main(m, &bins)) }

// Lease timings of the test: short, so that a handover after a crash is seconds.
const (
	leaseDuration = 4 * time.Second
	renewDeadline = 3 * time.Second
	retryPeriod   = 500 * time.Millisecond
)

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
	root, err := localbin.RepoRoot()
	require.NoError(t, err)
	cluster, err := localcluster.Start(localcluster.Options{CRDDir: filepath.Join(root, "config", "crd", "bases"), Dir: t.TempDir(),
		WithoutControllerManager: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cluster.Stop() })
	c, err := client.New(cluster.Config, client.Options{Scheme: controllers.Scheme()})
	require.NoError(t, err)
	ctx := context.Background()
	for _, ns := range []string{"supportstack-system", "tenants"} {
		require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	}

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
