package tenant

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/harness/kubescore"
)

// renderTenant is the YAML of every object the operator makes for a tenant (but the credentials Secret).
func renderTenant(t *testing.T, tn *v1alpha1.SupportTenant) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, c := range (Config{ClusterDomain: "cluster.local", MinIOImage: "registry.example.com/minio:RELEASE.2025-09-07T16-13-09Z",
		SupportstackImage: "registry.example.com/supportstack:v0.1.0"}).children(tn, world{scale: ingestScale{current: -1}}) {
		data, err := json.Marshal(c.desired)
		require.NoError(t, err)
		y, err := yaml.JSONToYAML(data)
		require.NoError(t, err)
		buf.WriteString("---\n")
		buf.Write(y)
	}
	return buf.Bytes()
}

// kube-score finds nothing critical in what the operator makes for a tenant — one server or four, replicated or
// not — but what the project decided does not apply (kubescore.Accepted).
func TestKubeScoreTenant(t *testing.T) {
	for name, mutate := range map[string]func(*v1alpha1.SupportTenant){
		"one server": func(*v1alpha1.SupportTenant) {},
		"four servers with an ingress": func(tn *v1alpha1.SupportTenant) {
			tn.Spec.Storage.Servers = 4
			tn.Spec.Ingest.Host = "acme-ingest.example.com"
			tn.Spec.Dashboard.Host = "acme.example.com"
		},
	} {
		t.Run(name, func(t *testing.T) {
			tn := &v1alpha1.SupportTenant{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-acme", Name: "acme"}}
			tn.Spec.Storage.Servers = 1
			tn.Spec.Ingest.Replicas, tn.Spec.Ingest.MaxReplicas = 2, 4
			tn.Spec.Dashboard.Replicas = 1
			mutate(tn)
			require.Empty(t, kubescore.Critical(t, renderTenant(t, tn)))
		})
	}
}
