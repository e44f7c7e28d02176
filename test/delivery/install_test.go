package delivery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/enrolltoken"
	"github.com/supportstack/supportstack/internal/harness/procs"
)

// A PC gets the agent the way the dashboard tells staff to: the workspace's install.sh with a token made for the
// rollout. The script checks the download against the published SHA-256, the installed agent runs with its config
// file alone, enrolls and its records are stored. Revoking the token keeps a second PC out while the first keeps
// reporting; a download that is not the published one installs nothing.
func TestInstallFromTheWorkspace(t *testing.T) {
	srv, mc := startStorage(t)
	// Ingest serves the agents kept beside its binary (as /agents beside /supportstack in the image).
	agents := filepath.Join(filepath.Dir(supportstackBin), "agents")
	require.NoError(t, os.MkdirAll(agents, 0o755))
	published := filepath.Join(agents, "supportstack-agent-"+runtime.GOOS+"-"+runtime.GOARCH)
	copyFile(t, agentBin, published)
	ingest := startIngest(t, srv)
	rec, token, err := enrolltoken.New("first rollout", "admin", time.Now(), 24*time.Hour, 0)
	require.NoError(t, err)
	putToken(t, mc, rec)

	pc := installOnPC(t, ingest, token)
	require.NoError(t, pc.err, "install.sh: %s", pc.out)
	info, err := os.Stat(pc.config)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the config holds the token: only its owner reads it")
	config, _ := os.ReadFile(pc.config)
	require.Contains(t, string(config), "ingest_urls = "+ingest+"\n")
	require.Contains(t, string(config), "enrollment_token = "+token+"\n")
	require.NotContains(t, pc.out, token, "the script does not print the token")

	// The installed agent, with its config and nothing else (the flags only make it sample on test time scales),
	// enrolls and reports.
	first := &agent{state: t.TempDir()}
	procs.Start(t, "installed-agent", nil, pc.binary, append([]string{"run", "--config", pc.config, "--state-dir", first.state}, fast...)...)
	var device string
	require.Eventually(t, func() bool {
		device = installedStatus(t, pc.binary, pc.config, first.state).Enrollment.DeviceID
		return device != ""
	}, 30*time.Second, 100*time.Millisecond, "the installed agent never enrolled")
	require.Eventually(t, func() bool { return len(storedSeqs(t, mc, device)) > 0 }, 60*time.Second, 200*time.Millisecond,
		"the installed agent's first records were never stored")

	// The token is revoked: a second PC with the same config cannot enroll; the first keeps reporting.
	rec.RevokedAt, rec.RevokedBy = time.Now().UTC(), "admin"
	putToken(t, mc, rec)
	second := t.TempDir()
	procs.Start(t, "second-agent", nil, pc.binary, append([]string{"run", "--config", pc.config, "--state-dir", second}, fast...)...)
	require.Eventually(t, func() bool {
		st := installedStatus(t, pc.binary, pc.config, second)
		return st.Enrollment.DeviceID == "" && strings.Contains(st.EnrollmentError, "revoked")
	}, 30*time.Second, 200*time.Millisecond, "the second PC was not told its token is revoked")
	before := len(storedSeqs(t, mc, device))
	require.Eventually(t, func() bool { return len(storedSeqs(t, mc, device)) > before }, 60*time.Second, 200*time.Millisecond,
		"the first PC stopped reporting when its token was revoked")

	// What is downloaded is not what was published (ingest read the list at its first request): nothing is installed.
	require.NoError(t, os.WriteFile(published, []byte("#!/bin/sh\necho tampered\n"), 0o755))
	tampered := installOnPC(t, ingest, token)
	require.Error(t, tampered.err)
	require.Contains(t, tampered.out, "is not the published one")
	_, err = os.Stat(tampered.binary)
	require.True(t, os.IsNotExist(err), "a binary was installed from a download that failed its check")
}

// installed is the outcome of install.sh on a PC of its own (a folder).
type installed struct {
	binary, config, out string
	err                 error
}

// installOnPC runs the workspace's install.sh as a PC would (curl … | sh -s -- --token …), into a folder of its
// own rather than the machine's paths, and without a service.
func installOnPC(t *testing.T, ingest, token string) installed {
	t.Helper()
	resp, err := http.Get(ingest + "/install.sh")
	require.NoError(t, err)
	script, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", script)
	root := t.TempDir()
	pc := installed{binary: filepath.Join(root, "bin", "supportstack-agent"), config: filepath.Join(root, "etc", "agent.conf")}
	cmd := exec.Command("sh", "-s", "--", "--token", token)
	cmd.Stdin = bytes.NewReader(script)
	cmd.Env = append(os.Environ(), "SUPPORTSTACK_PREFIX="+filepath.Dir(pc.binary), "SUPPORTSTACK_CONFIG="+pc.config, "SUPPORTSTACK_NO_SERVICE=1")
	out, err := cmd.CombinedOutput()
	pc.out, pc.err = string(out), err
	return pc
}

type installedAgentStatus struct {
	Enrollment struct {
		DeviceID string `json:"deviceId"`
	} `json:"enrollment"`
	EnrollmentError string `json:"enrollmentError"`
}

func installedStatus(t *testing.T, bin, config, state string) installedAgentStatus {
	t.Helper()
	out, err := exec.Command(bin, "status", "--json", "--config", config, "--state-dir", state).Output()
	require.NoError(t, err, "%s", out)
	var st installedAgentStatus
	require.NoError(t, json.Unmarshal(out, &st), "%s", out)
	return st
}

func putToken(t *testing.T, mc *minio.Client, rec enrolltoken.Record) {
	t.Helper()
	data, err := json.Marshal(rec)
	require.NoError(t, err)
	_, err = mc.PutObject(context.Background(), bucket, enrolltoken.Key(rec.ID), bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
	require.NoError(t, err)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, data, 0o755))
}
