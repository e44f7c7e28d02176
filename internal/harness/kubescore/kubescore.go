// Package kubescore runs kube-score (the binary `make tools` installs) on rendered manifests in tests, and holds
// the findings this project decided do not apply, with why (charts/supportstack/README.md says the same).
package kubescore

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/harness/localbin"
)

// Accepted are the critical findings that do not apply, by the text kube-score prints.
var Accepted = map[string]string{
	// Images are pinned to a version (the operator's to the build's own, MinIO's to a release), so
	// IfNotPresent pulls exactly what Always would, without a registry round trip per pod start.
	"ImagePullPolicy is not set to Always": "images are pinned to versions",
	// Ingest and MinIO are latency-sensitive: a CPU limit throttles them under a burst while the node has idle
	// CPU. Their CPU requests reserve what they need; memory and ephemeral storage are limited.
	"CPU limit is not set": "no CPU limits on the data plane (throttling); requests reserve CPU",
	// The operator sets ingest's replicas only when it creates the Deployment; from then on the autoscaler owns
	// the field and the operator leaves it out of what it applies.
	"The deployment is targeted by a HPA, but a static replica count is configured in the DeploymentSpec": "replicas are set once, then left to the HPA",
}

var finding = regexp.MustCompile(`^\[(CRITICAL|WARNING)\] ([^:]+): (.*)$`)

// Critical runs kube-score on the manifests and returns the critical findings not in Accepted. Without the binary
// the test is skipped, except in CI (CI=true), where it fails.
func Critical(t *testing.T, manifests []byte) []string {
	t.Helper()
	bin := os.Getenv("SUPPORTSTACK_KUBE_SCORE_BIN")
	if bin == "" {
		if root, err := localbin.RepoRoot(); err == nil {
			if m, _ := filepath.Glob(filepath.Join(root, "bin", "kube-score-*")); len(m) > 0 {
				bin = m[0]
			}
		}
	}
	if _, err := os.Stat(bin); bin == "" || err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kube-score not found: run `make tools`")
		}
		t.Skip("kube-score not found: run `make tools`")
	}
	file := filepath.Join(t.TempDir(), "manifests.yaml")
	require.NoError(t, os.WriteFile(file, manifests, 0o644))
	out, _ := exec.Command(bin, "score", "--output-format", "ci", file).CombinedOutput() // exits 1 on findings
	var left []string
	for _, line := range strings.Split(string(out), "\n") {
		m := finding.FindStringSubmatch(line)
		if m == nil || m[1] != "CRITICAL" {
			continue
		}
		msg := m[3]
		if i := strings.Index(msg, ") "); strings.HasPrefix(msg, "(") && i > 0 {
			msg = msg[i+2:] // "(container) message"
		}
		if _, ok := Accepted[msg]; !ok {
			left = append(left, m[2]+": "+m[3])
		}
	}
	require.NotEmpty(t, out, "kube-score printed nothing")
	return left
}
