package v1alpha1_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/harness/localbin"
	"github.com/supportstack/supportstack/internal/harness/localcluster"
)

// The API server, with the CRD's OpenAPI schema and CEL rules, rejects invalid specs with a message that
// names the field.
func TestInvalidSpecsAreRejected(t *testing.T) {
	ns := newNamespace(t)
	tests := map[string]struct {
		mutate func(*v1alpha1.SupportTenant)
		want   []string // substrings of the API server's message
	}{
		"maxReplicas below replicas": {
			func(s *v1alpha1.SupportTenant) { s.Spec.Ingest = v1alpha1.IngestSpec{Replicas: 5, MaxReplicas: 2} },
			[]string{"spec.ingest", "maxReplicas must be greater than or equal to replicas"},
		},
		"negative retention": {
			func(s *v1alpha1.SupportTenant) { s.Spec.Storage.RetentionDays = -1 },
			[]string{"spec.storage.retentionDays", "should be greater than or equal to 1"},
		},
		"tiny volume": {
			func(s *v1alpha1.SupportTenant) { s.Spec.Storage.Size = ptr.To(resource.MustParse("100Mi")) },
			[]string{"spec.storage.size", "size must be at least 1Gi"},
		},
		"two MinIO servers": {
			func(s *v1alpha1.SupportTenant) { s.Spec.Storage.Servers = 2 },
			[]string{"spec.storage.servers", "servers must be 1 or between 4 and 16"},
		},
		"TLS without host": {
			func(s *v1alpha1.SupportTenant) { s.Spec.Dashboard.TLSSecretName = "acme-tls" },
			[]string{"spec.dashboard", "tlsSecretName needs host"},
		},
		"bad host": {
			func(s *v1alpha1.SupportTenant) { s.Spec.Dashboard.Host = "Not A Host" },
			[]string{"spec.dashboard.host", "should match"},
		},
		"failover without replication": {
			func(s *v1alpha1.SupportTenant) {
				s.Spec.Failover = &v1alpha1.FailoverSpec{Mode: v1alpha1.FailoverManual}
			},
			[]string{"spec", "failover needs replication"},
		},
		"unknown failover mode": {
			func(s *v1alpha1.SupportTenant) {
				s.Spec.Replication = &v1alpha1.ReplicationSpec{Peer: "west"}
				s.Spec.Failover = &v1alpha1.FailoverSpec{Mode: "Sometimes"}
			},
			[]string{"spec.failover.mode", `supported values: "Automatic", "Manual"`},
		},
		"failover too eager": {
			func(s *v1alpha1.SupportTenant) {
				s.Spec.Replication = &v1alpha1.ReplicationSpec{Peer: "west"}
				s.Spec.Failover = &v1alpha1.FailoverSpec{UnhealthyAfter: metav1.Duration{Duration: 100 * 1e6}}
			},
			[]string{"spec.failover.unhealthyAfter", "between 1s and 1h"},
		},
		"empty display name": {
			func(s *v1alpha1.SupportTenant) { s.Spec.DisplayName = "" },
			[]string{"spec.displayName"},
		},
		"control character in the display name": {
			func(s *v1alpha1.SupportTenant) { s.Spec.DisplayName = "Acme\nIT" },
			[]string{"spec.displayName", "must not contain control characters"},
		},
		"text-direction override in the display name": {
			func(s *v1alpha1.SupportTenant) { s.Spec.DisplayName = "Acme \u202egnp.exe" },
			[]string{"spec.displayName", "text-direction overrides"},
		},
		"display name over 128 characters": {
			func(s *v1alpha1.SupportTenant) { s.Spec.DisplayName = strings.Repeat("ä", 129) },
			[]string{"spec.displayName", "128"},
		},
		"another namespace's Secret for TLS": {
			func(s *v1alpha1.SupportTenant) {
				s.Spec.Dashboard.Host = "acme.example.com"
				s.Spec.Dashboard.TLSSecretName = "kube-system/wildcard-tls"
			},
			[]string{"spec.dashboard.tlsSecretName", "own namespace"},
		},
		"another namespace's Secret for the ingest's TLS": {
			func(s *v1alpha1.SupportTenant) {
				s.Spec.Ingest.Host = "ingest.acme.example.com"
				s.Spec.Ingest.TLSSecretName = "other-tenant/tls"
			},
			[]string{"spec.ingest.tlsSecretName", "own namespace"},
		},
		"storage class that is no name": {
			func(s *v1alpha1.SupportTenant) { s.Spec.Storage.StorageClassName = ptr.To("Fast SSD") },
			[]string{"spec.storage.storageClassName", "must be a StorageClass's name"},
		},
		"ingress class that is no name": {
			func(s *v1alpha1.SupportTenant) {
				s.Spec.Dashboard.Host = "acme.example.com"
				s.Spec.Dashboard.IngressClassName = ptr.To("nginx/internal")
			},
			[]string{"spec.dashboard.ingressClassName", "must be an IngressClass's name"},
		},
		"image with a space": {
			func(s *v1alpha1.SupportTenant) { s.Spec.Storage.Image = "quay.io/minio/minio:latest --debug" },
			[]string{"spec.storage.image", "without spaces or control characters"},
		},
		"huge volume": {
			func(s *v1alpha1.SupportTenant) { s.Spec.Storage.Size = ptr.To(resource.MustParse("8Ei")) },
			[]string{"spec.storage.size", "size must be at most 64Ti"},
		},
		"requests over limits": {
			func(s *v1alpha1.SupportTenant) {
				s.Spec.Ingest.Resources = &corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100000")},
					Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
				}
			},
			[]string{"spec.ingest.resources", "requests must not exceed limits"},
		},
		"unknown reclaim policy": {
			func(s *v1alpha1.SupportTenant) { s.Spec.Storage.ReclaimPolicy = "Keep" },
			[]string{"spec.storage.reclaimPolicy", "Unsupported value"},
		},
		"name too long": {
			func(s *v1alpha1.SupportTenant) { s.Name = strings.Repeat("a", 41) },
			[]string{"metadata.name must be at most 40 characters"},
		},
		"name starting with a digit": {
			func(s *v1alpha1.SupportTenant) { s.Name = "1acme" },
			[]string{"metadata.name must start with a letter"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tn := newTenant(ns, "invalid")
			tc.mutate(tn)
			err := k8s.Create(context.Background(), tn)
			require.Error(t, err, "the API server accepted an invalid tenant")
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			if strings.HasPrefix(name, "name ") {
				// The refusal names the field, as kubectl shows it (not "<nil>").
				var status apierrors.APIStatus
				require.True(t, errors.As(err, &status))
				details := status.Status().Details
				require.NotNil(t, details)
				require.NotEmpty(t, details.Causes)
				require.Equal(t, "metadata.name", details.Causes[0].Field)
				require.Equal(t, metav1.CauseTypeFieldValueInvalid, details.Causes[0].Type)
			}
		})
	}
}

// TestHostileButValidSpecs: what a customer may legitimately write is accepted and kept as written: a display
// name in any script with emoji, the largest volume, huge but consistent resources.
func TestHostileButValidSpecs(t *testing.T) {
	ns := newNamespace(t)
	tn := newTenant(ns, "unicode")
	tn.Spec.DisplayName = "Müller & Söhne GmbH — 東京 · دعم 🚀👩‍💻 <script>"
	tn.Spec.Storage.Size = ptr.To(resource.MustParse("64Ti"))
	tn.Spec.Storage.Resources = &corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("512Gi")},
	}
	require.NoError(t, k8s.Create(context.Background(), tn))
	got := &v1alpha1.SupportTenant{}
	require.NoError(t, k8s.Get(context.Background(), client.ObjectKeyFromObject(tn), got))
	require.Equal(t, tn.Spec.DisplayName, got.Spec.DisplayName)
}

func TestImmutableStorageFields(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	tn := newTenant(ns, "fixed")
	tn.Spec.Storage.StorageClassName = ptr.To("fast")
	require.NoError(t, k8s.Create(ctx, tn))

	tests := map[string]struct {
		mutate func(*v1alpha1.SupportTenant)
		want   string
	}{
		"storage class":       {func(s *v1alpha1.SupportTenant) { s.Spec.Storage.StorageClassName = ptr.To("slow") }, "storageClassName is immutable"},
		"storage class unset": {func(s *v1alpha1.SupportTenant) { s.Spec.Storage.StorageClassName = nil }, "storageClassName is immutable"},
		"size":                {func(s *v1alpha1.SupportTenant) { s.Spec.Storage.Size = ptr.To(resource.MustParse("20Gi")) }, "size is immutable"},
		"servers":             {func(s *v1alpha1.SupportTenant) { s.Spec.Storage.Servers = 4 }, "servers is immutable"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := getTenant(t, ns, "fixed")
			tc.mutate(got)
			err := k8s.Update(ctx, got)
			require.Error(t, err)
			require.Contains(t, err.Error(), "spec.storage")
			require.Contains(t, err.Error(), tc.want)
		})
	}

	// Fields that may change still can.
	got := getTenant(t, ns, "fixed")
	got.Spec.Storage.RetentionDays = 10
	require.NoError(t, k8s.Update(ctx, got))
}

func TestDefaultsAreApplied(t *testing.T) {
	ns := newNamespace(t)
	tn := &v1alpha1.SupportTenant{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "minimal"},
		Spec: v1alpha1.SupportTenantSpec{DisplayName: "Minimal"}}
	require.NoError(t, k8s.Create(context.Background(), tn))
	got := getTenant(t, ns, "minimal")
	require.Equal(t, "10Gi", got.Spec.Storage.Size.String())
	require.Equal(t, int32(1), got.Spec.Storage.Servers)
	require.Equal(t, int32(365), got.Spec.Storage.RetentionDays)
	require.Equal(t, v1alpha1.ReclaimRetain, got.Spec.Storage.ReclaimPolicy)
	require.Equal(t, int32(2), got.Spec.Ingest.Replicas)
	require.Equal(t, int32(10), got.Spec.Ingest.MaxReplicas)
	require.Equal(t, int32(70), got.Spec.Ingest.TargetCPUUtilizationPercentage)
	require.Equal(t, int32(1), got.Spec.Dashboard.Replicas)
}

func TestInvalidPeerClusterIsRejected(t *testing.T) {
	peer := &v1alpha1.PeerCluster{
		ObjectMeta: metav1.ObjectMeta{Name: "west"},
		Spec: v1alpha1.PeerClusterSpec{
			KubeconfigSecretRef: v1alpha1.SecretKeyReference{Namespace: "supportstack-system", Name: "west-kubeconfig"},
			StorageURLTemplate:  "https://s3.west.example.com",
			IngestURLTemplate:   "https://{{tenant}}-ingest.west.example.com",
		},
	}
	err := k8s.Create(context.Background(), peer)
	require.Error(t, err)
	require.Contains(t, err.Error(), "spec.storageURLTemplate")
	require.Contains(t, err.Error(), "must contain {{tenant}}")
}

// The inbound path of a PeerCluster names namespaces and CIDRs; anything else is refused with the field named.
func TestPeerInboundIsValidated(t *testing.T) {
	valid := func() *v1alpha1.PeerCluster {
		return &v1alpha1.PeerCluster{
			ObjectMeta: metav1.ObjectMeta{Name: "peer-" + strings.ToLower(rand.Text()[:8])},
			Spec: v1alpha1.PeerClusterSpec{
				KubeconfigSecretRef: v1alpha1.SecretKeyReference{Namespace: "supportstack-system", Name: "west-kubeconfig"},
				StorageURLTemplate:  "https://{{tenant}}-s3.west.example.com",
				IngestURLTemplate:   "https://{{tenant}}-ingest.west.example.com",
			},
		}
	}
	ok := valid()
	ok.Spec.Inbound = &v1alpha1.PeerInbound{Namespaces: []string{"ingress-nginx"}, CIDRs: []string{"203.0.113.0/24", "2001:db8::/32"}}
	require.NoError(t, k8s.Create(context.Background(), ok))
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), ok) })

	for name, tc := range map[string]struct {
		inbound v1alpha1.PeerInbound
		want    []string
	}{
		"not a CIDR":          {v1alpha1.PeerInbound{CIDRs: []string{"203.0.113.7"}}, []string{"spec.inbound.cidrs", "must be a CIDR"}},
		"not a namespace":     {v1alpha1.PeerInbound{Namespaces: []string{"Ingress_NGINX"}}, []string{"spec.inbound.namespaces[0]"}},
		"a CIDR among others": {v1alpha1.PeerInbound{CIDRs: []string{"10.0.0.0/8", "everywhere"}}, []string{"spec.inbound.cidrs", "must be a CIDR"}},
	} {
		t.Run(name, func(t *testing.T) {
			p := valid()
			p.Spec.Inbound = &tc.inbound
			err := k8s.Create(context.Background(), p)
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

// k8s talks to a control plane of the package's own, with the CRDs as generated: the schema is what these tests
// check, so no operator runs.
var k8s client.Client

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := localbin.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cluster, err := localcluster.Start(localcluster.Options{CRDDir: filepath.Join(root, "config", "crd", "bases"),
		WithoutControllerManager: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cluster.Stop()
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	if k8s, err = client.New(cluster.Config, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func newNamespace(t *testing.T) string { return localcluster.TestNamespace(t, k8s) }

// newTenant returns a small valid tenant; the API server fills in the defaults.
func newTenant(ns, name string) *v1alpha1.SupportTenant {
	return &v1alpha1.SupportTenant{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.SupportTenantSpec{
			DisplayName: "Acme IT Services",
			Ingest:      v1alpha1.IngestSpec{Replicas: 1, MaxReplicas: 3},
		},
	}
}

func getTenant(t *testing.T, ns, name string) *v1alpha1.SupportTenant {
	t.Helper()
	got := &v1alpha1.SupportTenant{}
	require.NoError(t, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, got))
	return got
}
