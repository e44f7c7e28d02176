package main

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The operator's default tenant image is the version the binary was built from, never a moving tag.
func TestDefaultImageIsTheBuildsVersion(t *testing.T) {
	var f operatorFlags
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	f.bind(fs)
	require.Equal(t, supportstackImageRepository+":"+version, fs.Lookup("supportstack-image").DefValue)

	// Built with a version, the binary's default says so.
	bin := filepath.Join(t.TempDir(), "supportstack")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v1.2.3-test", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())
	out, _ := exec.Command(bin, "manager", "--help").CombinedOutput()
	require.Contains(t, string(out), `"ghcr.io/supportstack/supportstack:v1.2.3-test"`)
	require.False(t, strings.Contains(string(out), ":latest"), "%s", out)
	version, err := exec.Command(bin, "version").Output()
	require.NoError(t, err)
	require.Equal(t, "v1.2.3-test\n", string(version))
}
