package install_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// The chart carries copies of what controller-gen generates; hack/sync-chart.sh (run by `make manifests`) makes
// them. These tests fail when the copies are stale.
const staleHint = "the chart's copy is stale: run `make manifests`"

// yamlFiles returns the names and contents of the *.yaml files of a folder.
func yamlFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	require.NoError(t, err)
	files := make(map[string][]byte, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		files[filepath.Base(p)] = b
	}
	return files
}

// sortedKeys lists a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// rulesSection is what hack/sync-chart.sh extracts from a generated ClusterRole: every line after "rules:".
func rulesSection(t *testing.T, role []byte) []byte {
	t.Helper()
	lines := bytes.SplitAfter(role, []byte("\n"))
	for i, l := range lines {
		if string(bytes.TrimRight(l, " \t\r\n")) == "rules:" {
			return bytes.Join(lines[i+1:], nil)
		}
	}
	t.Fatal("config/rbac/role.yaml has no top-level rules: line")
	return nil
}

func TestChartCRDsInSync(t *testing.T) {
	bases := yamlFiles(t, path(t, "config", "crd", "bases"))
	require.NotEmpty(t, bases, "no generated CRDs in config/crd/bases: run `make manifests`")
	chart := yamlFiles(t, path(t, "charts", "supportstack", "crds"))
	require.Equal(t, sortedKeys(bases), sortedKeys(chart), "CRD files of charts/supportstack/crds: "+staleHint)
	for name, want := range bases {
		require.Equal(t, string(want), string(chart[name]), "charts/supportstack/crds/%s: %s", name, staleHint)
	}
}

func TestChartRBACRulesInSync(t *testing.T) {
	role, err := os.ReadFile(path(t, "config", "rbac", "role.yaml"))
	require.NoError(t, err, "read the generated ClusterRole: run `make manifests`")
	got, err := os.ReadFile(path(t, "charts", "supportstack", "files", "manager-rbac-rules.yaml"))
	require.NoError(t, err, staleHint)
	require.Equal(t, string(rulesSection(t, role)), string(got), "charts/supportstack/files/manager-rbac-rules.yaml: "+staleHint)

	// The same, as API objects.
	var rules []rbacv1.PolicyRule
	require.NoError(t, yaml.UnmarshalStrict(got, &rules))
	require.Equal(t, generatedRules(t), rules, staleHint)

	// The peer-access role (written by hand, with comments the copy drops).
	peerRole := &rbacv1.ClusterRole{}
	data, err := os.ReadFile(path(t, "config", "peer-access", "role.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.UnmarshalStrict(data, peerRole))
	got, err = os.ReadFile(path(t, "charts", "supportstack", "files", "peer-rbac-rules.yaml"))
	require.NoError(t, err, staleHint)
	rules = nil
	require.NoError(t, yaml.UnmarshalStrict(got, &rules))
	require.Equal(t, peerRole.Rules, rules, "charts/supportstack/files/peer-rbac-rules.yaml: "+staleHint)
}

// TestSyncChartScript runs hack/sync-chart.sh on a copy of the repository's inputs: it reproduces the chart's
// committed copies, removes CRDs that no longer exist, and a second run changes nothing.
func TestSyncChartScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	require.NoError(t, err, "hack/sync-chart.sh needs bash")

	root := t.TempDir()
	for _, dir := range []string{"hack", "config/crd/bases", "config/rbac/portal", "config/peer-access", "charts/supportstack/crds"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, dir), 0o755))
	}
	copyFile(t, path(t, "hack", "sync-chart.sh"), filepath.Join(root, "hack", "sync-chart.sh"))
	copyFile(t, path(t, "config", "rbac", "role.yaml"), filepath.Join(root, "config", "rbac", "role.yaml"))
	copyFile(t, path(t, "config", "peer-access", "role.yaml"), filepath.Join(root, "config", "peer-access", "role.yaml"))
	for _, name := range []string{"role.yaml", "workspace_roles.yaml"} {
		copyFile(t, path(t, "config", "rbac", "portal", name), filepath.Join(root, "config", "rbac", "portal", name))
	}
	for name := range yamlFiles(t, path(t, "config", "crd", "bases")) {
		copyFile(t, path(t, "config", "crd", "bases", name), filepath.Join(root, "config", "crd", "bases", name))
	}
	stale := filepath.Join(root, "charts", "supportstack", "crds", "supportstack.io_removedkinds.yaml")
	require.NoError(t, os.WriteFile(stale, []byte("stale\n"), 0o644))

	sync := func() {
		t.Helper()
		mustRun(t, root, bash, filepath.Join(root, "hack", "sync-chart.sh"))
	}
	snapshot := func() map[string][]byte {
		t.Helper()
		files := map[string][]byte{}
		for _, dir := range []string{"charts/supportstack/crds", "charts/supportstack/files"} {
			for name, b := range yamlFiles(t, filepath.Join(root, dir)) {
				files[dir+"/"+name] = b
			}
		}
		return files
	}

	sync()
	first := snapshot()
	require.NoFileExists(t, stale, "sync-chart.sh removes copies of CRDs that no longer exist")
	want := map[string][]byte{}
	for name, b := range yamlFiles(t, path(t, "config", "crd", "bases")) {
		want["charts/supportstack/crds/"+name] = b
	}
	for name, b := range yamlFiles(t, path(t, "charts", "supportstack", "files")) {
		want["charts/supportstack/files/"+name] = b
	}
	require.Equal(t, stringMap(want), stringMap(first), "sync-chart.sh reproduces the chart's committed copies")

	mtimes := func() map[string]time.Time {
		t.Helper()
		m := map[string]time.Time{}
		for name := range first {
			info, err := os.Stat(filepath.Join(root, name))
			require.NoError(t, err)
			m[name] = info.ModTime()
		}
		return m
	}
	before := mtimes()
	sync()
	require.Equal(t, stringMap(first), stringMap(snapshot()), "a second run of sync-chart.sh changes nothing")
	require.Equal(t, before, mtimes(), "a second run of sync-chart.sh rewrites no file")
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	info, err := os.Stat(src)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(dst, b, info.Mode().Perm()))
}

// stringMap makes file contents readable in a failure's diff.
func stringMap(files map[string][]byte) map[string]string {
	m := make(map[string]string, len(files))
	for k, v := range files {
		m[k] = string(v)
	}
	return m
}
