package peer_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/controllers"
	"github.com/supportstack/supportstack/controllers/peer"
	"github.com/supportstack/supportstack/internal/harness/localbin"
	"github.com/supportstack/supportstack/internal/harness/localcluster"
	"github.com/supportstack/supportstack/internal/harness/promtest"
)

const secretNamespace = "supportstack-system"

// TestPeerClusterConditions runs the PeerCluster controller against a second, real API server and breaks the way
// to it in every way a human can: each PeerCluster gets a condition that says what to fix, and a right one
// connects once the peer has the supportstack CRDs, and reconnects when its kubeconfig is rotated.
func TestPeerClusterConditions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two API servers")
	}
	ctx := context.Background()
	root, err := localbin.RepoRoot()
	require.NoError(t, err)
	local := startCluster(t, filepath.Join(root, "config", "crd", "bases"))
	// The peer starts without the supportstack CRDs.
	remote := startCluster(t, t.TempDir())

	admin, err := client.New(local.Config, client.Options{Scheme: controllers.Scheme()})
	require.NoError(t, err)
	remoteAdmin, err := client.New(remote.Config, client.Options{Scheme: withCRDs()})
	require.NoError(t, err)
	require.NoError(t, admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: secretNamespace}}))

	mgr, err := ctrl.NewManager(local.Config, ctrl.Options{Scheme: controllers.Scheme(),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	require.NoError(t, err)
	r := &peer.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Registry: peer.NewRegistry("local"),
		Recorder: mgr.GetEventRecorder("test"), Interval: 200 * time.Millisecond, ProbeTimeout: 2 * time.Second}
	require.NoError(t, r.SetupWithManager(mgr))
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	// The identity the peer's admin hands over: bound to the supportstack-peer ClusterRole there.
	require.NoError(t, remote.BindClusterRole(filepath.Join(root, "config", "peer-access", "role.yaml"), "peer-operator"))
	good, err := remote.UserKubeconfig("peer-operator")
	require.NoError(t, err)
	unbound, err := remote.UserKubeconfig("nobody-bound-me")
	require.NoError(t, err)
	wrongCA := withCA(t, good, local.Config.CAData)
	unreachable := withServer(t, good, "https://127.0.0.1:1")

	create := func(name string, data map[string][]byte) {
		t.Helper()
		if data != nil {
			require.NoError(t, admin.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: secretNamespace, Name: name}, Data: data}))
		}
		require.NoError(t, admin.Create(ctx, &v1alpha1.PeerCluster{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1alpha1.PeerClusterSpec{
				KubeconfigSecretRef: v1alpha1.SecretKeyReference{Namespace: secretNamespace, Name: name, Key: "kubeconfig"},
				StorageURLTemplate:  "https://{{tenant}}-s3.peer.example.com",
				IngestURLTemplate:   "https://{{tenant}}.peer.example.com",
			},
		}))
	}
	create("missing-secret", nil)
	create("missing-key", map[string][]byte{"config": good})
	create("garbage", map[string][]byte{"kubeconfig": []byte("apiVersion: v1\nclusters: [{{{")})
	create("wrong-ca", map[string][]byte{"kubeconfig": wrongCA})
	create("unbound", map[string][]byte{"kubeconfig": unbound})
	create("unreachable", map[string][]byte{"kubeconfig": unreachable})
	create("good", map[string][]byte{"kubeconfig": good})

	requireReason := func(name, reason, contains string) {
		t.Helper()
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			pc := &v1alpha1.PeerCluster{}
			if !assert.NoError(c, admin.Get(ctx, client.ObjectKey{Name: name}, pc)) {
				return
			}
			cond := meta.FindStatusCondition(pc.Status.Conditions, v1alpha1.PeerConditionReady)
			if assert.NotNil(c, cond, name) {
				assert.Equal(c, reason, cond.Reason, "%s: %s", name, cond.Message)
				assert.Contains(c, cond.Message, contains, name)
				assert.Equal(c, reason == v1alpha1.ReasonConnected, pc.Status.Reachable, name)
				assert.Equal(c, pc.Generation, cond.ObservedGeneration)
			}
		}, 30*time.Second, 100*time.Millisecond)
	}
	requireReason("missing-secret", v1alpha1.ReasonSecretMissing, "does not exist")
	requireReason("missing-key", v1alpha1.ReasonSecretMissing, `no key "kubeconfig"`)
	requireReason("garbage", v1alpha1.ReasonKubeconfigInvalid, "")
	requireReason("wrong-ca", v1alpha1.ReasonTLSFailed, "x509")
	requireReason("unreachable", v1alpha1.ReasonUnreachable, "127.0.0.1:1")
	requireReason("good", v1alpha1.ReasonCRDMissing, "install the supportstack CRDs")

	// The peer gets CRDs of an older supportstack, then the current ones.
	crd := currentCRD(t, root)
	outdated := crd.DeepCopy()
	replication := outdated.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["replication"]
	delete(replication.Properties, "standbyOf")
	delete(replication.Properties, "keepStandby")
	replication.XValidations = nil
	outdated.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["replication"] = replication
	require.NoError(t, remoteAdmin.Create(ctx, outdated))
	requireReason("good", v1alpha1.ReasonCRDOutdated, "spec.replication.standbyOf")
	requireReason("unbound", v1alpha1.ReasonUnauthorized, "supportstack-peer")

	current := &apiextensionsv1.CustomResourceDefinition{}
	require.NoError(t, remoteAdmin.Get(ctx, client.ObjectKey{Name: crd.Name}, current))
	current.Spec = crd.Spec
	require.NoError(t, remoteAdmin.Update(ctx, current))
	requireReason("good", v1alpha1.ReasonConnected, "answers")
	pc := &v1alpha1.PeerCluster{}
	require.NoError(t, admin.Get(ctx, client.ObjectKey{Name: "good"}, pc))
	require.NotNil(t, pc.Status.LastContact)
	require.Equal(t, 1.0, promtest.Value(t, metrics.Registry, "supportstack_peer_reachable", map[string]string{"peer": "good"}))
	p, err := r.Registry.Get("good")
	require.NoError(t, err)
	require.NoError(t, p.Reader.Get(ctx, client.ObjectKey{Name: crd.Name}, &apiextensionsv1.CustomResourceDefinition{}))
	_, err = r.Registry.Get("wrong-ca")
	var notReady *peer.NotReadyError
	require.ErrorAs(t, err, &notReady)
	require.Equal(t, v1alpha1.ReasonTLSFailed, notReady.Reason)

	// Rotating the kubeconfig rebuilds the client in place; breaking it makes the peer unusable at once.
	builds := func() float64 {
		return promtest.Value(t, metrics.Registry, "supportstack_peer_client_builds_total", map[string]string{"peer": "good"})
	}
	before := builds()
	require.NoError(t, remote.BindClusterRole(filepath.Join(root, "config", "peer-access", "role.yaml"), "peer-operator-2"))
	rotated, err := remote.UserKubeconfig("peer-operator-2")
	require.NoError(t, err)
	setKubeconfig(t, admin, "good", rotated)
	require.Eventually(t, func() bool { return builds() == before+1 }, 10*time.Second, 50*time.Millisecond)
	requireReason("good", v1alpha1.ReasonConnected, "answers")
	setKubeconfig(t, admin, "good", []byte("garbage"))
	requireReason("good", v1alpha1.ReasonKubeconfigInvalid, "")
	_, err = r.Registry.Get("good")
	require.ErrorAs(t, err, &notReady)

	// A deleted PeerCluster is forgotten.
	require.NoError(t, admin.Delete(ctx, &v1alpha1.PeerCluster{ObjectMeta: metav1.ObjectMeta{Name: "good"}}))
	require.Eventually(t, func() bool {
		_, err := r.Registry.Get("good")
		return errors.As(err, &notReady) && notReady.Message == "not connected yet"
	}, 10*time.Second, 50*time.Millisecond)
}

func startCluster(t *testing.T, crds string) *localcluster.Cluster {
	t.Helper()
	c, err := localcluster.Start(localcluster.Options{CRDDir: crds, Dir: t.TempDir(), WithoutControllerManager: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Stop()) })
	return c
}

func withCRDs() *runtime.Scheme {
	s := controllers.Scheme()
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	return s
}

// withCA returns kubeconfig with another cluster's CA.
func withCA(t *testing.T, kubeconfig, ca []byte) []byte {
	t.Helper()
	cfg, err := clientcmd.Load(kubeconfig)
	require.NoError(t, err)
	for _, c := range cfg.Clusters {
		c.CertificateAuthorityData = ca
	}
	out, err := clientcmd.Write(*cfg)
	require.NoError(t, err)
	return out
}

// withServer returns kubeconfig pointing at another address.
func withServer(t *testing.T, kubeconfig []byte, server string) []byte {
	t.Helper()
	cfg, err := clientcmd.Load(kubeconfig)
	require.NoError(t, err)
	for _, c := range cfg.Clusters {
		c.Server = server
	}
	out, err := clientcmd.Write(*cfg)
	require.NoError(t, err)
	return out
}

func setKubeconfig(t *testing.T, c client.Client, name string, kubeconfig []byte) {
	t.Helper()
	s := &corev1.Secret{}
	require.NoError(t, c.Get(context.Background(), client.ObjectKey{Namespace: secretNamespace, Name: name}, s))
	s.Data["kubeconfig"] = kubeconfig
	require.NoError(t, c.Update(context.Background(), s))
}

// currentCRD is this repository's SupportTenant CRD.
func currentCRD(t *testing.T, root string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "config", "crd", "bases", "supportstack.io_supporttenants.yaml"))
	require.NoError(t, err)
	crd := &apiextensionsv1.CustomResourceDefinition{}
	require.NoError(t, yaml.Unmarshal(data, crd))
	return crd
}
