package localrunner

import (
	"fmt"
	"github.com/supportstack/supportstack/internal/harness/localbin"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// The control plane and the workload binary are shared by the integration
// tests of this package and started on first use, so that the pure unit
// tests run without them.
var (
	envOnce sync.Once
	env     *envtest.Environment
	envCfg  *rest.Config
	envErr  error

	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	// envtest logs through the global logger; the runner under test gets a
	// per-test logger.
	ctrl.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, nil)))
	code := m.Run()
	if env != nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop control plane:", err)
		}
	}
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// controlPlane returns a running kube-apiserver and etcd. Missing binaries
// fail the test rather than skip it: a skipped integration test would hide
// that the runner was never exercised.
func controlPlane(t *testing.T) *rest.Config {
	t.Helper()
	envOnce.Do(func() {
		var assets string
		if assets, envErr = localbin.ControlPlaneDir(); envErr != nil {
			return
		}
		env = &envtest.Environment{BinaryAssetsDirectory: assets}
		envCfg, envErr = env.Start()
		if envErr != nil {
			envErr = fmt.Errorf("start control plane from %s: %w", assets, envErr)
		}
	})
	if envErr != nil {
		t.Fatal(envErr)
	}
	return envCfg
}

// workloadBinary builds testdata/workload once per test binary.
func workloadBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "localrunner-workload-")
		if binErr != nil {
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		binPath = filepath.Join(binDir, "workload")
		cmd := exec.Command(goBin, "build", "-o", binPath, "./testdata/workload")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("build testdata/workload: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}
