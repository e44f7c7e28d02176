package install_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/harness/kubescore"
)

// kube-score finds nothing critical in the chart — with the portal and with watched namespaces too — but what
// the project decided does not apply (kubescore.Accepted, the chart's README).
func TestKubeScoreChart(t *testing.T) {
	for name, set := range map[string][]string{
		"defaults":          nil,
		"portal":            {"--set", "portal.enabled=true", "--set", "portal.host=portal.example.com"},
		"watched namespace": {"--set", "watchNamespaces={tenant-a}"},
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"template", releaseName, "charts/supportstack", "--namespace", operatorNamespace}, set...)
			out, err := run(t, repoRoot(t), helmBin(t), args...)
			require.NoError(t, err)
			require.Empty(t, kubescore.Critical(t, out))
		})
	}
}

// The check sees what it should: without the NetworkPolicies, kube-score's finding comes through.
func TestKubeScoreChartCatchesAMissingNetworkPolicy(t *testing.T) {
	out, err := run(t, repoRoot(t), helmBin(t), "template", releaseName, "charts/supportstack", "--namespace", operatorNamespace,
		"--set", "networkPolicy.enabled=false")
	require.NoError(t, err)
	left := kubescore.Critical(t, out)
	require.Len(t, left, 1, "%v", left)
	require.Contains(t, left[0], "does not have a matching NetworkPolicy")
}
