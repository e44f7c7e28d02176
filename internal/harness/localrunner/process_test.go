package localrunner

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestProcessStopKillsGroupAfterGrace(t *testing.T) {
	dir := t.TempDir()
	childPID := filepath.Join(dir, "child.pid")
	// The shell and its child ignore SIGTERM, so only the SIGKILL to the
	// whole group after the grace period ends them.
	p := startProcess(testr.New(t), processSpec{
		Path: "/bin/sh",
		Args: []string{"-c", `trap "" TERM; sleep 300 & echo $! > ` + childPID + `; wait`},
		Dir:  dir,
		Log:  filepath.Join(dir, "out.log"),
	})
	var child int
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(childPID)
		if err != nil {
			return false
		}
		child, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	}, 10*time.Second, 10*time.Millisecond)
	leader, _ := p.state()
	require.NotZero(t, leader)

	start := time.Now()
	p.stop(300 * time.Millisecond)
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "SIGTERM was ignored, so stop waits out the grace period")
	assert.True(t, pidGone(leader), "leader %d should be gone", leader)
	require.Eventually(t, func() bool { return pidGone(child) }, 5*time.Second, 10*time.Millisecond,
		"child %d in the group should be killed too", child)
}

func TestProcessRestartsAfterExit(t *testing.T) {
	dir := t.TempDir()
	p := startProcess(testr.New(t), processSpec{
		Path: "/bin/sh",
		Args: []string{"-c", "echo run; exit 1"},
		Dir:  dir,
		Log:  filepath.Join(dir, "out.log"),
	})
	t.Cleanup(func() { p.stop(time.Second) })
	require.Eventually(t, func() bool {
		_, starts := p.state()
		return starts >= 3
	}, 10*time.Second, 10*time.Millisecond, "an exiting process is restarted with backoff")
	b, err := os.ReadFile(filepath.Join(dir, "out.log"))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, strings.Count(string(b), "run\n"), 2, "output is appended across restarts")
}

func TestContainerCommand(t *testing.T) {
	r := &Runner{
		Client:   fake.NewClientBuilder().Build(),
		Binaries: func(image string) (string, error) { return "/opt/bin/" + strings.Split(image, ":")[0], nil },
		StateDir: "/state",
		ContainerEnv: func(image string, ip netip.Addr) []string {
			return []string{"IMAGE=" + image, "OWN=" + ip.String()}
		},
		apiServerEnv: []string{"KUBERNETES_SERVICE_HOST=10.0.0.1", "KUBERNETES_SERVICE_PORT=443"},
	}
	dirs := newPodDirs("/state", "ns", "web-0", "127.42.0.5")
	meta := &podMeta{namespace: "ns", name: "web-0", ip: netip.MustParseAddr("127.42.0.5")}
	c := &corev1.Container{
		Name:    "main",
		Image:   "minio:latest",
		Command: []string{"/usr/bin/minio", "server"},
		Args: []string{"/data", "--address=$(POD_IP):9000", "--peer", "http://$(PEER).ns.svc:9000", "$$(POD_IP)",
			"http://web-1.web-hl.ns.svc.cluster.local:9000/data/x", "http://web-1.web-hl.ns.svc:9000/other"},
		WorkingDir: "/data",
		Env: []corev1.EnvVar{
			{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "PEER", Value: "other"},
			{Name: "CACHE", Value: "/data/cache"},
			{Name: "HOME", Value: "/data"},
		},
		VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
	}
	w := &workload{
		key:      workloadKey{Kind: kindStatefulSet, Namespace: "ns", Name: "web"},
		template: &corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{*c}}},
		claims:   map[string]bool{"data": true},
	}
	resolve := names{
		service: func(ref serviceRef) (string, error) {
			require.Equal(t, serviceRef{Name: "other", Namespace: "ns", Port: 9000}, ref)
			return "127.42.0.9:9100", nil
		},
		pod: func(ref podRef) (netip.Addr, error) {
			require.Equal(t, podRef{Pod: "web-1", Service: "web-hl", Namespace: "ns"}, ref)
			return netip.MustParseAddr("127.42.0.7"), nil
		},
	}
	cmd, err := r.containerCommand(context.Background(), newRefs(r.Client, "ns"), meta, w, c,
		map[string]string{"data": "/state/ns/web-0/data"}, dirs, resolve)
	require.NoError(t, err)

	assert.Equal(t, "/opt/bin/minio", cmd.Path, "the image maps to the binary; command[0] is dropped")
	assert.Equal(t, []string{
		"server", "/state/ns/web-0/data", "--address=127.42.0.5:9000", "--peer", "http://127.42.0.9:9100", "$(POD_IP)",
		// A sibling's URL path under the claim's mount is the sibling's claim; another path is left alone.
		"http://127.42.0.7:9000/state/ns/web-1/data/x", "http://127.42.0.7:9000/other",
	}, cmd.Args)
	assert.Equal(t, "/state/ns/web-0/data", cmd.Dir, "workingDir inside a mount is rewritten")
	assert.Equal(t, "/state/ns/web-0/main.log", cmd.Log)
	assert.Equal(t, []string{
		"PATH=" + os.Getenv("PATH"),
		"HOSTNAME=web-0",
		"HOME=/state/ns/web-0/.run-127.42.0.5/home",
		"TMPDIR=/state/ns/web-0/.run-127.42.0.5/tmp",
		"KUBERNETES_SERVICE_HOST=10.0.0.1",
		"KUBERNETES_SERVICE_PORT=443",
		"IMAGE=minio:latest",
		"OWN=127.42.0.5",
		"POD_IP=127.42.0.5",
		"PEER=other",
		"CACHE=/state/ns/web-0/data/cache",
		"HOME=/state/ns/web-0/data", // the container's own HOME comes last and wins in os/exec
	}, cmd.Env)
}
