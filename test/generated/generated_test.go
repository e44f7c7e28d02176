// Package generated_test fails when generated files are stale: the deepcopy code, the apply configurations, the
// CRDs and the RBAC role must be what controller-gen makes of the current markers (`make generate manifests`).
package generated_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/harness/localbin"
)

func controllerGen(t *testing.T, root string) string {
	t.Helper()
	bin := os.Getenv("SUPPORTSTACK_CONTROLLER_GEN_BIN")
	if bin == "" {
		matches, _ := filepath.Glob(filepath.Join(root, "bin", "controller-gen-*"))
		require.NotEmpty(t, matches, "controller-gen not found: run `make tools`")
		bin = matches[0]
	}
	_, err := os.Stat(bin)
	require.NoError(t, err, "controller-gen not found: run `make tools`")
	return bin
}

// copyTree copies the folders controller-gen reads into dst.
func copyTree(t *testing.T, src, dst string, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		err := filepath.WalkDir(filepath.Join(src, d), func(path string, e os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, path)
			if e.IsDir() {
				return os.MkdirAll(filepath.Join(dst, rel), 0o755)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
		})
		require.NoError(t, err)
	}
}

func TestGeneratedFilesAreFresh(t *testing.T) {
	root, err := localbin.RepoRoot()
	require.NoError(t, err)
	gen := controllerGen(t, root)
	work := t.TempDir()
	copyTree(t, root, work, "api", "controllers", "internal", "hack")
	for _, f := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(root, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(work, f), data, 0o644))
	}
	// The same invocations as the Makefile's generate and manifests targets.
	for _, args := range [][]string{
		{"object:headerFile=hack/boilerplate.go.txt", "paths=./api/..."},
		{"applyconfiguration:headerFile=hack/boilerplate.go.txt", "paths=./api/..."},
		{"rbac:roleName=supportstack-manager", "crd", "paths=./api/...", "paths=./controllers/...",
			"output:crd:artifacts:config=config/crd/bases", "output:rbac:artifacts:config=config/rbac"},
		{"rbac:roleName=supportstack-portal", "paths=./internal/portal/...", "output:rbac:artifacts:config=config/rbac/portal"},
	} {
		cmd := exec.Command(gen, args...)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "controller-gen %s: %s", strings.Join(args, " "), out)
	}
	// …and the schema's metadata.name, as make manifests declares it after controller-gen.
	patch := exec.Command("go", "run", "./hack/crd-metadata", "config/crd/bases/supportstack.io_supporttenants.yaml")
	patch.Dir = work
	out, err := patch.CombinedOutput()
	require.NoError(t, err, "crd-metadata: %s", out)
	generated := []string{"api/v1alpha1/zz_generated.deepcopy.go", "config/rbac/role.yaml", "config/rbac/portal/role.yaml"}
	acs, err := filepath.Glob(filepath.Join(work, "api/v1alpha1/applyconfiguration/*/*/*.go"))
	require.NoError(t, err)
	require.NotEmpty(t, acs)
	for _, f := range append(acs, filepath.Join(work, "api/v1alpha1/applyconfiguration/utils.go")) {
		rel, err := filepath.Rel(work, f)
		require.NoError(t, err)
		generated = append(generated, rel)
	}
	crds, err := filepath.Glob(filepath.Join(work, "config/crd/bases/*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, crds)
	for _, c := range crds {
		generated = append(generated, filepath.Join("config/crd/bases", filepath.Base(c)))
	}
	for _, f := range generated {
		want, err := os.ReadFile(filepath.Join(work, f))
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(root, f))
		require.NoError(t, err, "%s is missing: run `make generate manifests`", f)
		require.Equal(t, string(want), string(got), "%s is stale: run `make generate manifests`", f)
	}
}
