package install_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// Two runs of hack/test-binaries.sh at once on one machine (two clones, a developer's and CI's) share the store:
// both succeed, the store holds one whole binary and no leftovers, and each run's link leads to it.
func TestTestBinariesConcurrentRuns(t *testing.T) {
	minio, err := filepath.EvalSymlinks(path(t, "bin", "minio"))
	if err != nil {
		t.Skipf("no MinIO binary to copy (make test-binaries makes one): %v", err)
	}
	store := t.TempDir()
	var wg sync.WaitGroup
	outs := make([][]byte, 4)
	errs := make([]error, 4)
	bins := make([]string, 4)
	for i := range outs {
		bins[i] = t.TempDir()
		wg.Go(func() {
			cmd := exec.Command("bash", path(t, "hack", "test-binaries.sh"), "minio")
			cmd.Env = append(os.Environ(), "ENVTEST_STORE="+store, "MINIO_FROM="+minio, "TEST_BINARIES_BIN="+bins[i])
			outs[i], errs[i] = cmd.CombinedOutput()
		})
	}
	wg.Wait()
	want, err := os.Stat(minio)
	require.NoError(t, err)
	var stored string
	for i := range outs {
		require.NoError(t, errs[i], "run %d: %s", i, outs[i])
		link, err := filepath.EvalSymlinks(filepath.Join(bins[i], "minio"))
		require.NoError(t, err)
		if stored == "" {
			stored = link
		}
		require.Equal(t, stored, link, "every run links the same binary")
	}
	got, err := os.Stat(stored)
	require.NoError(t, err)
	require.Equal(t, want.Size(), got.Size(), "the stored binary is whole")
	require.NotZero(t, got.Mode()&0o111, "and executable")
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(stored), ".work.*"))
	require.Empty(t, leftovers)
}
