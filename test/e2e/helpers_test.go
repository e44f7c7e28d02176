package e2e_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/harness/localcluster"
	"github.com/supportstack/supportstack/internal/harness/planes"
	"github.com/supportstack/supportstack/internal/naming"
)

// newReplicatedTenant creates a tenant in a fresh namespace of east that replicates to west, as small as the
// product allows.
func newReplicatedTenant(t *testing.T, name string, mutate ...func(*v1alpha1.SupportTenant)) *v1alpha1.SupportTenant {
	t.Helper()
	return createReplicatedTenant(t, localcluster.TestNamespace(t, east.Admin), name, mutate...)
}

// createReplicatedTenant creates a tenant in an existing namespace of east that replicates to west.
func createReplicatedTenant(t *testing.T, ns, name string, mutate ...func(*v1alpha1.SupportTenant)) *v1alpha1.SupportTenant {
	t.Helper()
	return createTenantOn(t, east, "west", ns, name, mutate...)
}

// createTenantOn creates a tenant in an existing namespace of a plane that replicates to the named peer.
func createTenantOn(t *testing.T, home *planes.Plane, peer, ns, name string, mutate ...func(*v1alpha1.SupportTenant)) *v1alpha1.SupportTenant {
	t.Helper()
	size := resource.MustParse("1Gi")
	tn := &v1alpha1.SupportTenant{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.SupportTenantSpec{
			DisplayName: "Replicated " + name,
			Storage:     v1alpha1.StorageSpec{Size: &size, ReclaimPolicy: v1alpha1.ReclaimDelete},
			Ingest:      v1alpha1.IngestSpec{Replicas: 1, MaxReplicas: 1},
			Replication: &v1alpha1.ReplicationSpec{Peer: peer},
		},
	}
	for _, m := range mutate {
		m(tn)
	}
	require.NoError(t, home.Admin.Create(context.Background(), tn))
	t.Cleanup(func() {
		// The namespace goes with the test; the standby in the peer must go with the home.
		_ = home.Admin.Delete(context.Background(), tn)
	})
	return tn
}

// get reads a tenant from a plane.
func get(t require.TestingT, p *planes.Plane, key client.ObjectKey) *v1alpha1.SupportTenant {
	tn := &v1alpha1.SupportTenant{}
	require.NoError(t, p.Admin.Get(context.Background(), key, tn))
	return tn
}

// conditionTrue asserts that a plane's tenant has a condition True.
func conditionTrue(c *assert.CollectT, p *planes.Plane, key client.ObjectKey, types ...string) bool {
	tn := &v1alpha1.SupportTenant{}
	if !assert.NoError(c, p.Admin.Get(context.Background(), key, tn)) {
		return false
	}
	ok := true
	for _, typ := range types {
		cond := meta.FindStatusCondition(tn.Status.Conditions, typ)
		if !assert.NotNil(c, cond, "%s: %s has no condition %s", p.Name, key, typ) {
			ok = false
			continue
		}
		ok = assert.Equal(c, metav1.ConditionTrue, cond.Status, "%s: %s %s: %s: %s", p.Name, key, typ, cond.Reason, cond.Message) && ok
	}
	return ok
}

// waitReplicating waits until the tenant is Ready and Replicating on east and west.
func waitReplicating(t *testing.T, key client.ObjectKey, timeout time.Duration) {
	t.Helper()
	waitReplicatingOn(t, key, timeout, east, west)
}

// waitReplicatingOn waits until the tenant is Ready and Replicating on the planes.
func waitReplicatingOn(t *testing.T, key client.ObjectKey, timeout time.Duration, on ...*planes.Plane) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, p := range on {
			conditionTrue(c, p, key, v1alpha1.ConditionReady, v1alpha1.ConditionPeerReachable, v1alpha1.ConditionReplicating)
		}
	}, timeout, 250*time.Millisecond)
}

// storage is a plane's copy of a tenant's bucket, reached with the MinIO's root credentials.
func storage(t require.TestingT, p *planes.Plane, key client.ObjectKey) *minio.Client {
	mc, err := p.RootStorage(context.Background(), key)
	require.NoError(t, err)
	return mc
}

// readLocal reads an object from one copy only (MinIO's proxying off).
func readLocal(mc *minio.Client, key string) ([]byte, error) {
	opts := minio.GetObjectOptions{}
	opts.Internal.ReplicationProxyRequest = "false"
	obj, err := mc.GetObject(context.Background(), naming.BucketName, key, opts)
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	return io.ReadAll(obj)
}

// ingestURL is the address of a plane's ingest pods for the tenant.
func ingestURL(t require.TestingT, p *planes.Plane, key client.ObjectKey) string {
	addr, err := p.Runner.ServiceAddress(key.Namespace, naming.Ingest(key.Name), 80)
	require.NoError(t, err)
	return "http://" + addr
}

// agent is one PC's agent, driven through its CLI.
type agent struct{ state string }

func (a agent) cmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(agentBin, append(args, "--state-dir", a.state)...).CombinedOutput()
	require.NoError(t, err, "supportstack-agent %s: %s", strings.Join(args, " "), out)
	return string(out)
}

// ask queues a question and returns its ID.
func (a agent) ask(t *testing.T, text string) string {
	t.Helper()
	id, state, ok := strings.Cut(strings.TrimSpace(a.cmd(t, "ask", text)), " ")
	require.True(t, ok)
	require.Equal(t, "queued", state)
	return id
}

// deviceID is the agent's device.
func (a agent) deviceID(t *testing.T) string {
	t.Helper()
	var s struct {
		Enrollment struct {
			DeviceID string `json:"deviceId"`
		} `json:"enrollment"`
	}
	require.NoError(t, json.Unmarshal([]byte(a.cmd(t, "status", "--json")), &s))
	return s.Enrollment.DeviceID
}

// run starts the agent's daemon on test time scales until the test ends (or stop is called); extra flags override
// the test's defaults. stop ends it the way a PC shutting down does (SIGTERM) and waits for it.
func (a agent) run(t *testing.T, extra ...string) (stop func()) {
	t.Helper()
	log, err := os.Create(filepath.Join(t.TempDir(), "agent.log"))
	require.NoError(t, err)
	args := []string{"run", "--state-dir", a.state, "--perf-interval=1s", "--inbox-poll-interval=500ms",
		"--status-interval=500ms", "--backoff-min=100ms", "--backoff-max=1s", "--spool-sync-interval=100ms"}
	cmd := exec.Command(agentBin, append(args, extra...)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			log.Close()
			if t.Failed() {
				out, _ := os.ReadFile(log.Name())
				t.Logf("agent log:\n%s", out[max(0, len(out)-4000):])
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// secretData reads a Secret of a plane.
func secretData(t require.TestingT, p *planes.Plane, namespace, name string) map[string][]byte {
	secret := &corev1.Secret{}
	require.NoError(t, p.Admin.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, secret))
	return secret.Data
}

// eventsList lists events.k8s.io Events.
type eventsList = eventsv1.EventList

// workloadLists are the lists of the tenant's workloads and their companions.
func workloadLists() []client.ObjectList {
	return []client.ObjectList{&appsv1.DeploymentList{}, &appsv1.StatefulSetList{}, &autoscalingv2.HorizontalPodAutoscalerList{},
		&policyv1.PodDisruptionBudgetList{}, &networkingv1.NetworkPolicyList{}, &networkingv1.IngressList{}}
}

// sharedToken is the tenant's enrollment token, as both sides hold it.
func sharedToken(t *testing.T, key client.ObjectKey) string {
	t.Helper()
	return string(secretData(t, east, key.Namespace, naming.SharedSecret(key.Name))[naming.SecretKeyEnrollmentToken])
}

// update changes a plane's tenant, reading it again when another writer (the operators write status all the
// time) got there first.
func update(t *testing.T, p *planes.Plane, key client.ObjectKey, mutate func(*v1alpha1.SupportTenant)) {
	t.Helper()
	require.NoError(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		tn := &v1alpha1.SupportTenant{}
		if err := p.Admin.Get(context.Background(), key, tn); err != nil {
			return err
		}
		mutate(tn)
		return p.Admin.Update(context.Background(), tn)
	}))
}
