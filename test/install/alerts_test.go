package install_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// exportedMetrics are the metric names the project's code exports (found in its Go sources), and those of
// controller-runtime and the Go client the operator also serves.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{
		"controller_runtime_reconcile_total": true, "controller_runtime_reconcile_errors_total": true,
		"process_resident_memory_bytes": true,
	}
	name := regexp.MustCompile(`"(supportstack_[a-z_]+)"`)
	for _, dir := range []string{"controllers", "internal"} {
		err := filepath.WalkDir(path(t, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			b, err := os.ReadFile(p)
			for _, m := range name.FindAllStringSubmatch(string(b), -1) {
				names[m[1]] = true
			}
			return err
		})
		require.NoError(t, err)
	}
	return names
}

// metricsOf parses a PromQL expression with Prometheus's own parser and returns the metrics it names.
func metricsOf(t *testing.T, expr string) []string {
	t.Helper()
	e, err := parser.ParseExpr(expr)
	require.NoError(t, err, "%s", expr)
	var out []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if v, ok := n.(*parser.VectorSelector); ok {
			out = append(out, v.Name)
		}
		return nil
	})
	require.NotEmpty(t, out, "%s names no metric", expr)
	return out
}

type alertRule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// Every alert parses with Prometheus's parser, names only metrics the code exports, has a severity, a summary and
// a runbook section that exists; the chart renders them as a PrometheusRule.
func TestAlerts(t *testing.T) {
	exported := exportedMetrics(t)
	data, err := os.ReadFile(path(t, "charts", "supportstack", "monitoring", "alerts.yaml"))
	require.NoError(t, err)
	var groups []struct {
		Name  string      `json:"name"`
		Rules []alertRule `json:"rules"`
	}
	require.NoError(t, yaml.UnmarshalStrict(data, &groups))
	runbook, err := os.ReadFile(path(t, "docs", "runbook.md"))
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, g := range groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert)
			require.False(t, seen[r.Alert], "%s twice", r.Alert)
			seen[r.Alert] = true
			for _, m := range metricsOf(t, r.Expr) {
				require.True(t, exported[m], "%s: %s is not a metric the code exports", r.Alert, m)
			}
			require.Contains(t, []string{"warning", "critical"}, r.Labels["severity"], r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			require.True(t, strings.HasSuffix(r.Annotations["runbook_url"], "docs/runbook.md#"+strings.ToLower(r.Alert)), r.Alert)
			require.Contains(t, string(runbook), "\n## "+r.Alert+"\n", "%s has no runbook section", r.Alert)
		}
	}
	require.GreaterOrEqual(t, len(seen), 8)

	objs := mustHelmTemplate(t, "--set", "metrics.prometheusRule.enabled=true", "--set", "metrics.grafanaDashboard.enabled=true")
	rule := find(t, objs, "PrometheusRule", releaseName)
	rendered, found, err := unstructured.NestedSlice(rule.obj.Object, "spec", "groups")
	require.NoError(t, err)
	require.True(t, found)
	require.Len(t, rendered, len(groups))
	find(t, objs, "ConfigMap", releaseName+"-dashboard")
}

// The Grafana dashboard is valid JSON whose every query parses and names metrics the code exports.
func TestGrafanaDashboard(t *testing.T) {
	exported := exportedMetrics(t)
	data, err := os.ReadFile(path(t, "charts", "supportstack", "monitoring", "grafana-dashboard.json"))
	require.NoError(t, err)
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(data, &dash))
	require.NotEmpty(t, dash.Panels)
	for _, p := range dash.Panels {
		require.NotEmpty(t, p.Targets, p.Title)
		for _, q := range p.Targets {
			for _, m := range metricsOf(t, q.Expr) {
				require.True(t, exported[m], "%s: %s is not a metric the code exports", p.Title, m)
			}
		}
	}
}
