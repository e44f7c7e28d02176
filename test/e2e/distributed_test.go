package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/harness/localcluster"
	"github.com/supportstack/supportstack/internal/harness/localrunner"
	"github.com/supportstack/supportstack/internal/naming"
	"github.com/supportstack/supportstack/internal/objectstore"
	"github.com/supportstack/supportstack/internal/protocol"
)

// TestDistributedStorage: a tenant with storage.servers 4 runs one erasure set of four MinIO servers that find
// each other by their names under the headless Service. It becomes Ready with its bucket set up and its agents'
// records stored, each object spread over all four drives. With one server down the set keeps serving reads and
// writes (four drives, two of them parity: a write needs three), and the tenant stays Ready; when the server is
// back, what was written meanwhile is healed onto its drive.
func TestDistributedStorage(t *testing.T) {
	const servers = 4
	ns := localcluster.TestNamespace(t, east.Admin)
	home := createTenantOn(t, east, "", ns, "spread", func(tn *v1alpha1.SupportTenant) {
		tn.Spec.Storage.Servers = servers
		tn.Spec.Replication = nil
	})
	key := client.ObjectKeyFromObject(home)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		conditionTrue(c, east, key, v1alpha1.ConditionReady)
	}, 3*time.Minute, 250*time.Millisecond)
	pods := minioPods(t, key)
	require.Len(t, pods, servers)

	f := startFleet(t, key, 10)
	f.ask(t, "asked with four servers")
	mc := storage(t, east, key)
	f.requireQuestionsIn(t, mc, time.Minute)
	for d, qs := range f.questions {
		for _, p := range pods {
			assert.FileExists(t, objectMeta(key, p.Name, protocol.QuestionKey(d, qs[0])), "every drive holds a part of the question")
		}
	}

	// The runner fixes a Service's address when a process starts, where a cluster would balance connections
	// over the ready servers: the server taken down is one the tenant's own processes do not write through.
	victim := serverNotInUse(t, key, pods)
	var survivor localrunner.PodInfo
	for _, p := range pods {
		if p.Name != victim.Name {
			survivor = p
			break
		}
	}
	release, err := east.Runner.Hold(ns, victim.Name)
	require.NoError(t, err)
	t.Cleanup(release)
	viaSurvivor := rootStorageAt(t, key, survivor.IP)
	f.ask(t, "asked with a server down")
	f.requireQuestionsIn(t, viaSurvivor, time.Minute)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		conditionTrue(c, east, key, v1alpha1.ConditionReady)
	}, 10*time.Second, 250*time.Millisecond, "one server down of four leaves the tenant serving")
	storageReady := meta.FindStatusCondition(get(t, east, key).Status.Conditions, v1alpha1.ConditionStorageReady)
	require.Equal(t, v1alpha1.ReasonServersUnavailable, storageReady.Reason, storageReady.Message)
	requireEvent(t, east, key, "StorageDegraded")
	var written []string
	for d, qs := range f.questions {
		q := protocol.QuestionKey(d, qs[1])
		written = append(written, q)
		assert.NoFileExists(t, objectMeta(key, victim.Name, q), "written while %s was down", victim.Name)
	}

	release()
	healed := time.Now()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, q := range written {
			// A read that finds a part missing queues the object for healing, as does MinIO's scanner.
			_, err := readLocal(viaSurvivor, q)
			assert.NoError(c, err)
			assert.FileExists(c, objectMeta(key, victim.Name, q))
		}
	}, 2*time.Minute, time.Second, "what was written while %s was down is healed onto its drive", victim.Name)
	t.Logf("%d objects written during the outage healed onto %s within %s of its return", len(written), victim.Name,
		time.Since(healed).Round(100*time.Millisecond))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		storageReady := meta.FindStatusCondition(get(t, east, key).Status.Conditions, v1alpha1.ConditionStorageReady)
		assert.Equal(c, v1alpha1.ReasonAvailable, storageReady.Reason, storageReady.Message)
	}, time.Minute, 250*time.Millisecond, "every server is back")
	f.requireAllDelivered(t, map[string]*minio.Client{"east": mc})
}

// minioPods waits until the tenant's MinIO servers all run and are ready, and returns them.
func minioPods(t *testing.T, key client.ObjectKey) []localrunner.PodInfo {
	t.Helper()
	var pods []localrunner.PodInfo
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		pods = pods[:0]
		for _, p := range east.Runner.Pods() {
			if p.Namespace == key.Namespace && p.Workload == naming.MinIO(key.Name) {
				assert.True(c, p.Ready, "%s is ready", p.Name)
				pods = append(pods, p)
			}
		}
	}, time.Minute, 250*time.Millisecond)
	return pods
}

// serverNotInUse is a MinIO server whose address no other process of the tenant was given.
func serverNotInUse(t *testing.T, key client.ObjectKey, servers []localrunner.PodInfo) localrunner.PodInfo {
	t.Helper()
	var given strings.Builder
	for _, p := range east.Runner.Pods() {
		if p.Namespace != key.Namespace || p.Workload == naming.MinIO(key.Name) {
			continue
		}
		for _, pid := range p.PIDs {
			for _, f := range []string{"cmdline", "environ"} {
				b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), f))
				require.NoError(t, err)
				given.Write(b)
			}
		}
	}
	for i := len(servers) - 1; i >= 0; i-- {
		if !strings.Contains(given.String(), servers[i].IP+":") {
			return servers[i]
		}
	}
	require.FailNow(t, "every MinIO server is in use", "%v", servers)
	return localrunner.PodInfo{}
}

// objectMeta is where a MinIO server keeps an object's metadata (and, for a small object, its part) on its drive.
func objectMeta(key client.ObjectKey, server, object string) string {
	return filepath.Join(east.Runner.ClaimDir(key.Namespace, server, "data"), naming.BucketName, object, "xl.meta")
}

// rootStorageAt reaches the tenant's bucket through one MinIO server with the root credentials.
func rootStorageAt(t *testing.T, key client.ObjectKey, ip string) *minio.Client {
	t.Helper()
	creds := secretData(t, east, key.Namespace, naming.CredentialsSecret(key.Name))
	mc, err := objectstore.NewFailFastClient(objectstore.Endpoint{URL: fmt.Sprintf("http://%s:%d", ip, naming.MinIOPort),
		AccessKey: string(creds[naming.SecretKeyRootUser]), SecretKey: string(creds[naming.SecretKeyRootPassword])})
	require.NoError(t, err)
	_, err = mc.BucketExists(context.Background(), naming.BucketName)
	require.NoError(t, err)
	return mc
}
