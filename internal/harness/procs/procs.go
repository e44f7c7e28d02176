// Package procs runs this repository's binaries in tests: it builds them once per test binary and runs each as
// a process that ends with its test, its output kept in a log file that a failed test prints.
package procs

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/harness/localbin"
)

// Binaries are the paths of the built binaries.
type Binaries struct {
	Supportstack, Agent string
	dir                 string
}

// Build builds supportstack and supportstack-agent into a temporary folder; Remove deletes it.
func Build() (Binaries, error) {
	dir, err := os.MkdirTemp("", "supportstack-bin-")
	if err != nil {
		return Binaries{}, err
	}
	root, err := localbin.RepoRoot()
	if err != nil {
		return Binaries{}, err
	}
	b := Binaries{Supportstack: filepath.Join(dir, "supportstack"), Agent: filepath.Join(dir, "supportstack-agent"), dir: dir}
	for bin, pkg := range map[string]string{b.Supportstack: "./cmd/supportstack", b.Agent: "./cmd/supportstack-agent"} {
		build := exec.Command("go", "build", "-o", bin, pkg)
		build.Dir, build.Stderr = root, os.Stderr
		if err := build.Run(); err != nil {
			os.RemoveAll(dir)
			return Binaries{}, fmt.Errorf("build %s: %w", pkg, err)
		}
	}
	return b, nil
}

// Remove deletes the built binaries.
func (b Binaries) Remove() { os.RemoveAll(b.dir) }

// Process is a running binary.
type Process struct {
	cmd *exec.Cmd
	Log string
}

// Start runs bin until the test ends (or Kill), with env added to this process's environment.
func Start(t *testing.T, name string, env []string, bin string, args ...string) *Process {
	t.Helper()
	log := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(log)
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	p := &Process{cmd: cmd, Log: log}
	t.Cleanup(func() {
		p.Kill(syscall.SIGKILL)
		f.Close()
		if t.Failed() {
			out, _ := os.ReadFile(log)
			t.Logf("%s log:\n%s", name, tail(out, 4000))
		}
	})
	return p
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// Kill signals the process and waits for it; a process already gone is fine.
func (p *Process) Kill(sig syscall.Signal) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	_ = p.cmd.Wait()
}

// FreeAddr is a free local TCP address.
func FreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// Main builds the binaries into *bins, runs the hooks (which may take the paths), runs the tests and removes the
// binaries: a test package's TestMain.
func Main(m *testing.M, bins *Binaries, hooks ...func()) int {
	var err error
	if *bins, err = Build(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		return 1
	}
	defer bins.Remove()
	for _, h := range hooks {
		h()
	}
	return m.Run()
}

// WaitReady waits until url/readyz answers 200.
func WaitReady(t *testing.T, url string) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "%s never became ready", url)
}
