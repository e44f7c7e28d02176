package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The agent builds without cgo for every supported OS and architecture. Sizes are of release builds
// (-trimpath, -ldflags "-s -w").
func TestCrossCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("six full builds: skipped with -short")
	}
	out := t.TempDir()
	for _, goos := range []string{"linux", "windows", "darwin"} {
		for _, goarch := range []string{"amd64", "arm64"} {
			bin := filepath.Join(out, "supportstack-agent-"+goos+"-"+goarch)
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
			cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("build %s/%s: %v\n%s", goos, goarch, err, b)
				continue
			}
			info, err := os.Stat(bin)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s/%s: %.1f MiB (%d bytes)", goos, goarch, float64(info.Size())/(1<<20), info.Size())
		}
	}
}
