package localrunner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

const (
	testImage = "example.com/workload:test"
	managedBy = "app.kubernetes.io/managed-by"
	operator  = "supportstack-operator"
	// Starting a pod includes the first probe; the control plane may be slow on a busy machine.
	waitLong = 30 * time.Second
	tick     = 100 * time.Millisecond
)

// harness is one namespace with a manager and a Runner that watches only it.
type harness struct {
	t        *testing.T
	ns       string
	c        client.Client
	runner   *Runner
	stateDir string
	flagDir  string // host directory tests use to flip readiness
	stop     func()
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	cfg := controlPlane(t)
	bin := workloadBinary(t)
	c, err := client.New(cfg, client.Options{})
	require.NoError(t, err)

	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "localrunner-"}}
	require.NoError(t, c.Create(ctx, ns))

	h := &harness{t: t, ns: ns.Name, c: c, stateDir: t.TempDir(), flagDir: t.TempDir()}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Logger:  testr.NewWithOptions(t, testr.Options{Verbosity: 1}),
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   cache.Options{DefaultNamespaces: map[string]cache.Config{ns.Name: {}}},
	})
	require.NoError(t, err)
	h.runner = &Runner{
		Client:   c,
		Selector: labels.SelectorFromSet(labels.Set{managedBy: operator}),
		Binaries: func(image string) (string, error) {
			if image != testImage {
				return "", fmt.Errorf("no binary for image %s", image)
			}
			return bin, nil
		},
		StateDir:      h.stateDir,
		ProbePeriod:   200 * time.Millisecond,
		RetryInterval: 200 * time.Millisecond,
	}
	require.NoError(t, h.runner.SetupWithManager(mgr))

	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	var stopped bool
	h.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		require.NoError(t, <-done)
	}
	t.Cleanup(func() {
		h.stop()
		_ = c.Delete(context.Background(), ns)
	})
	return h
}

// podSpec is a pod of the test workload serving on $(POD_IP):8080 with a
// readiness probe on /ready.
func podSpec(args ...string) corev1.PodSpec {
	return corev1.PodSpec{
		TerminationGracePeriodSeconds: ptr.To[int64](5),
		Containers: []corev1.Container{{
			Name:    "main",
			Image:   testImage,
			Command: []string{"/usr/local/bin/workload"},
			Args:    append([]string{"--listen=$(POD_IP):8080"}, args...),
			Env: []corev1.EnvVar{
				{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
				{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			},
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("http")}},
				PeriodSeconds: 1, FailureThreshold: 1,
			},
		}},
	}
}

func (h *harness) deployment(name string, replicas int32, spec corev1.PodSpec) *appsv1.Deployment {
	h.t.Helper()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: name, Labels: map[string]string{managedBy: operator}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}}, Spec: spec},
		},
	}
	require.NoError(h.t, h.c.Create(context.Background(), d))
	return d
}

func (h *harness) statefulSet(name string, replicas int32, spec corev1.PodSpec, claims ...string) *appsv1.StatefulSet {
	h.t.Helper()
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: name, Labels: map[string]string{managedBy: operator}},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To(replicas),
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template:    corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}}, Spec: spec},
		},
	}
	for _, claim := range claims {
		s.Spec.VolumeClaimTemplates = append(s.Spec.VolumeClaimTemplates, corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: claim},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			},
		})
	}
	require.NoError(h.t, h.c.Create(context.Background(), s))
	return s
}

// update re-reads obj, applies mutate and writes it, retrying on conflicts
// with the runner's status writes.
func (h *harness) update(obj client.Object, mutate func()) {
	h.t.Helper()
	require.Eventually(h.t, func() bool {
		if err := h.c.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return false
		}
		mutate()
		return h.c.Update(context.Background(), obj) == nil
	}, waitLong, tick)
}

// pods lists the runner's pods of one workload.
func (h *harness) pods(workload string) []PodInfo {
	var out []PodInfo
	for _, p := range h.runner.Pods() {
		if p.Namespace == h.ns && p.Workload == workload {
			out = append(out, p)
		}
	}
	return out
}

// readyPods waits until the workload has n pods, all ready, and returns them.
func (h *harness) readyPods(workload string, n int) []PodInfo {
	h.t.Helper()
	var pods []PodInfo
	require.Eventually(h.t, func() bool {
		pods = h.pods(workload)
		if len(pods) != n {
			return false
		}
		for _, p := range pods {
			if !p.Ready || p.PIDs[0] == 0 {
				return false
			}
		}
		return true
	}, waitLong, tick, "%s should have %d ready pods", workload, n)
	return pods
}

func (h *harness) deploymentStatus(name string) appsv1.DeploymentStatus {
	d := &appsv1.Deployment{}
	require.NoError(h.t, h.c.Get(context.Background(), client.ObjectKey{Namespace: h.ns, Name: name}, d))
	return d.Status
}

func (h *harness) statefulSetStatus(name string) appsv1.StatefulSetStatus {
	s := &appsv1.StatefulSet{}
	require.NoError(h.t, h.c.Get(context.Background(), client.ObjectKey{Namespace: h.ns, Name: name}, s))
	return s.Status
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// get fetches http://addr/path and returns the body; non-2xx is an error.
func get(addr, path string) (string, error) {
	resp, err := httpClient.Get("http://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return string(b), nil
}

func post(addr, path, body string) error {
	resp, err := httpClient.Post("http://"+addr+path, "text/plain", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, b)
	}
	return nil
}

func pidGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestDeploymentRunsReplicasOnDistinctAddresses(t *testing.T) {
	h := newHarness(t)
	h.deployment("web", 2, podSpec())

	pods := h.readyPods("web", 2)
	assert.Equal(t, []string{"web-0", "web-1"}, []string{pods[0].Name, pods[1].Name})
	assert.NotEqual(t, pods[0].IP, pods[1].IP, "each pod needs its own loopback address")
	for _, p := range pods {
		assert.True(t, strings.HasPrefix(p.IP, "127.42."), "pod address %s", p.IP)
		addr := p.IP + ":8080"
		pid, err := get(addr, "/pid")
		require.NoError(t, err)
		assert.Equal(t, strconv.Itoa(p.PIDs[0]), pid, "the process behind %s is the one the runner reports", addr)
		ip, err := get(addr, "/env?name=POD_IP")
		require.NoError(t, err)
		assert.Equal(t, p.IP, ip)
		name, err := get(addr, "/env?name=HOSTNAME")
		require.NoError(t, err)
		assert.Equal(t, p.Name, name)
	}

	require.Eventually(t, func() bool {
		st := h.deploymentStatus("web")
		return st.ReadyReplicas == 2 && st.AvailableReplicas == 2 && st.Replicas == 2 && st.UpdatedReplicas == 2 &&
			st.UnavailableReplicas == 0 && st.ObservedGeneration == 1 &&
			len(st.Conditions) == 1 && st.Conditions[0].Type == appsv1.DeploymentAvailable && st.Conditions[0].Status == corev1.ConditionTrue
	}, waitLong, tick, "status should report 2 ready replicas")

	logFile := filepath.Join(h.stateDir, h.ns, "web-0", "main.log")
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(logFile)
		return err == nil && strings.Contains(string(b), "starting: listen="+pods[0].IP+":8080")
	}, waitLong, tick, "container output should go to %s", logFile)
}

func TestReadinessFlipUpdatesStatus(t *testing.T) {
	h := newHarness(t)
	// The flag directory is a hostPath volume: the test flips a pod's
	// readiness by creating or removing /flags/ready-<pod>.
	spec := podSpec("--ready-file=/flags/ready-$(POD_NAME)")
	spec.Volumes = []corev1.Volume{{Name: "flags", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: h.flagDir}}}}
	spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "flags", MountPath: "/flags"}}
	flag := func(pod string) string { return filepath.Join(h.flagDir, "ready-"+pod) }
	require.NoError(t, os.WriteFile(flag("web-0"), nil, 0o644))
	require.NoError(t, os.WriteFile(flag("web-1"), nil, 0o644))

	h.deployment("web", 2, spec)
	readyReplicas := func(n int32) func() bool {
		return func() bool { return h.deploymentStatus("web").ReadyReplicas == n }
	}
	require.Eventually(t, readyReplicas(2), waitLong, tick)

	require.NoError(t, os.Remove(flag("web-1")))
	// One probe period plus one status write: well within 5 s.
	require.Eventually(t, readyReplicas(1), 5*time.Second, tick, "readyReplicas should drop when a pod fails its probe")
	st := h.deploymentStatus("web")
	assert.Equal(t, int32(2), st.Replicas, "the unready pod keeps running")
	assert.Equal(t, corev1.ConditionFalse, st.Conditions[0].Status, "2 replicas at 25%% maxUnavailable need both available")

	require.NoError(t, os.WriteFile(flag("web-1"), nil, 0o644))
	require.Eventually(t, readyReplicas(2), 5*time.Second, tick, "readyReplicas should come back")
}

func TestSecretsReachTheProcess(t *testing.T) {
	h := newHarness(t)
	spec := podSpec("--data=/etc/creds")
	c := &spec.Containers[0]
	c.Env = append(c.Env,
		corev1.EnvVar{Name: "ACCESS_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "accessKey",
		}}},
		corev1.EnvVar{Name: "OPTIONAL", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Key: "k", Optional: ptr.To(true),
		}}},
	)
	c.EnvFrom = []corev1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "settings"},
	}}}
	spec.Volumes = []corev1.Volume{{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds"}}}}
	c.VolumeMounts = []corev1.VolumeMount{{Name: "creds", MountPath: "/etc/creds", ReadOnly: true}}

	// The workload comes first: its pod must wait for the Secret and ConfigMap.
	h.deployment("app", 1, spec)
	ctx := context.Background()
	require.NoError(t, h.c.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "settings"},
		Data:       map[string]string{"region": "eu-west"},
	}))
	require.NoError(t, h.c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "creds"},
		Data:       map[string][]byte{"accessKey": []byte("AKIA-test"), "secretKey": []byte("s3cr3t")},
	}))

	addr := h.readyPods("app", 1)[0].IP + ":8080"
	v, err := get(addr, "/env?name=ACCESS_KEY")
	require.NoError(t, err)
	assert.Equal(t, "AKIA-test", v)
	v, err = get(addr, "/env?name=CFG_region")
	require.NoError(t, err)
	assert.Equal(t, "eu-west", v)
	_, err = get(addr, "/env?name=OPTIONAL")
	assert.Error(t, err, "an optional ref to a missing Secret leaves the variable unset")
	v, err = get(addr, "/read?name=secretKey")
	require.NoError(t, err)
	assert.Equal(t, "s3cr3t", v, "the Secret volume is written as files under the rewritten mount path")
	home, err := get(addr, "/env?name=HOME")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(home, h.stateDir), "HOME %s should be under the state dir", home)
}

func TestServiceNameRewrittenToReadyPod(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()

	// The client comes first and must wait until the store behind the Service is ready.
	app := podSpec()
	app.Containers[0].Env = append(app.Containers[0].Env,
		corev1.EnvVar{Name: "STORE_URL", Value: "http://store." + h.ns + ".svc.cluster.local:9000"},
		corev1.EnvVar{Name: "STORE_HOST", Value: "store." + h.ns + ".svc:9000"},
	)
	h.deployment("app", 1, app)

	store := podSpec("--ready-file=/flags/store-ready")
	store.Volumes = []corev1.Volume{{Name: "flags", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: h.flagDir}}}}
	store.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "flags", MountPath: "/flags"}}
	h.statefulSet("store", 1, store)
	require.NoError(t, h.c.Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "store"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "store"},
			Ports:    []corev1.ServicePort{{Name: "s3", Port: 9000, TargetPort: intstr.FromString("http")}},
		},
	}))

	require.Eventually(t, func() bool {
		pods := h.pods("store")
		return len(pods) == 1 && pods[0].PIDs[0] != 0
	}, waitLong, tick, "the store runs, but is not ready before its flag file exists")
	_, err := h.runner.ServiceAddress(h.ns, "store", 9000)
	assert.Error(t, err, "no pod behind the Service is ready")
	assert.Empty(t, h.pods("app"), "app must not start with an unresolved Service name")

	require.NoError(t, os.WriteFile(filepath.Join(h.flagDir, "store-ready"), nil, 0o644))
	var storeAddr string
	require.Eventually(t, func() bool {
		storeAddr, err = h.runner.ServiceAddress(h.ns, "store", 9000)
		return err == nil
	}, waitLong, tick)
	storePods := h.pods("store")
	require.Len(t, storePods, 1)
	assert.Equal(t, storePods[0].IP+":8080", storeAddr, "Service port 9000 maps to the named target port")

	appAddr := h.readyPods("app", 1)[0].IP + ":8080"
	v, err := get(appAddr, "/env?name=STORE_URL")
	require.NoError(t, err)
	assert.Equal(t, "http://"+storeAddr, v)
	v, err = get(appAddr, "/env?name=STORE_HOST")
	require.NoError(t, err)
	assert.Equal(t, storeAddr, v)
	v, err = get(appAddr, "/fetch?env=STORE_URL&path=/env%3Fname%3DPOD_NAME")
	require.NoError(t, err)
	assert.Equal(t, "store-0", v, "app reaches the store through the rewritten Service URL")

	_, err = h.runner.ServiceAddress(h.ns, "store", 1234)
	assert.Error(t, err, "the Service has no port 1234")

	// With its only pod held down, the Service still resolves, to an address where connections fail, as a
	// Service without endpoints does in a cluster.
	release, err := h.runner.Hold(h.ns, "store-0")
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, err := get(storeAddr, "/env?name=POD_NAME"); return err != nil }, waitLong, tick)
	held, err := h.runner.ServiceAddress(h.ns, "store", 9000)
	require.NoError(t, err)
	assert.Equal(t, storeAddr, held)
	release()
	require.Eventually(t, func() bool { v, err := get(storeAddr, "/env?name=POD_NAME"); return err == nil && v == "store-0" }, waitLong, tick)
}

func TestStatefulSetClaimSurvivesScaleToZero(t *testing.T) {
	h := newHarness(t)
	spec := podSpec("--data=/var/lib/db")
	spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	spec.Containers[0].VolumeMounts = []corev1.VolumeMount{
		{Name: "data", MountPath: "/var/lib/db"},
		{Name: "scratch", MountPath: "/scratch"},
	}
	spec.Containers[0].Env = append(spec.Containers[0].Env, corev1.EnvVar{Name: "SCRATCH", Value: "/scratch/tmp"})
	s := h.statefulSet("db", 1, spec, "data")

	pod := h.readyPods("db", 1)[0]
	assert.Equal(t, "db-0", pod.Name)
	scratch, err := get(pod.IP+":8080", "/env?name=SCRATCH")
	var b []byte
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(scratch, filepath.Join(h.stateDir, h.ns, "db-0")+"/"), "emptyDir path %s rewritten into the pod dir", scratch)
	emptyDir := filepath.Dir(scratch)
	assert.DirExists(t, emptyDir)
	require.NoError(t, post(pod.IP+":8080", "/write?name=hello", "kept"))
	b, err = os.ReadFile(filepath.Join(h.stateDir, h.ns, "db-0", "data", "hello"))
	require.NoError(t, err, "the claim lives under StateDir/<ns>/<pod>/<claim>")
	assert.Equal(t, "kept", string(b))
	require.Eventually(t, func() bool {
		st := h.statefulSetStatus("db")
		return st.ReadyReplicas == 1 && st.Replicas == 1 && st.AvailableReplicas == 1 && st.CurrentReplicas == 1 &&
			st.UpdatedReplicas == 1 && st.ObservedGeneration == 1 && st.CurrentRevision != "" && st.CurrentRevision == st.UpdateRevision
	}, waitLong, tick)

	h.update(s, func() { s.Spec.Replicas = ptr.To[int32](0) })
	require.Eventually(t, func() bool { return pidGone(pod.PIDs[0]) && len(h.pods("db")) == 0 }, waitLong, tick,
		"scaling to zero stops the process")
	require.Eventually(t, func() bool {
		st := h.statefulSetStatus("db")
		return st.Replicas == 0 && st.ReadyReplicas == 0 && st.ObservedGeneration == s.Generation
	}, waitLong, tick)
	assert.NoDirExists(t, emptyDir, "an emptyDir is removed when its pod stops")
	assert.FileExists(t, filepath.Join(h.stateDir, h.ns, "db-0", "data", "hello"), "the claim is kept")

	h.update(s, func() { s.Spec.Replicas = ptr.To[int32](1) })
	pod = h.readyPods("db", 1)[0]
	v, err := get(pod.IP+":8080", "/read?name=hello")
	require.NoError(t, err)
	assert.Equal(t, "kept", v, "data written before scaling to zero is still there")
}

func TestStopOnDeleteAndDeselect(t *testing.T) {
	h := newHarness(t)
	gone := h.deployment("gone", 1, podSpec())
	other := h.deployment("other", 1, podSpec())
	gonePID := h.readyPods("gone", 1)[0].PIDs[0]
	otherPID := h.readyPods("other", 1)[0].PIDs[0]

	require.NoError(t, h.c.Delete(context.Background(), gone))
	require.Eventually(t, func() bool { return pidGone(gonePID) && len(h.pods("gone")) == 0 }, waitLong, tick,
		"deleting the Deployment stops its process")

	h.update(other, func() { delete(other.Labels, managedBy) })
	require.Eventually(t, func() bool { return pidGone(otherPID) && len(h.pods("other")) == 0 }, waitLong, tick,
		"a Deployment that no longer matches the selector is stopped")
}

func TestTemplateChangeRestartsPods(t *testing.T) {
	h := newHarness(t)
	spec := podSpec()
	spec.Containers[0].Env = append(spec.Containers[0].Env, corev1.EnvVar{Name: "VERSION", Value: "1"})
	d := h.deployment("web", 2, spec)
	before := h.readyPods("web", 2)
	for _, p := range before {
		v, err := get(p.IP+":8080", "/env?name=VERSION")
		require.NoError(t, err)
		require.Equal(t, "1", v)
	}

	h.update(d, func() { d.Spec.Template.Spec.Containers[0].Env[2].Value = "2" })
	require.Eventually(t, func() bool {
		pods := h.pods("web")
		if len(pods) != 2 {
			return false
		}
		for _, p := range pods {
			if !p.Ready {
				return false
			}
			if v, err := get(p.IP+":8080", "/env?name=VERSION"); err != nil || v != "2" {
				return false
			}
		}
		return true
	}, waitLong, tick, "every pod should run the new template")
	for _, p := range before {
		assert.True(t, pidGone(p.PIDs[0]), "old process %d of %s should be gone", p.PIDs[0], p.Name)
	}
	require.Eventually(t, func() bool {
		st := h.deploymentStatus("web")
		return st.ObservedGeneration == 2 && st.UpdatedReplicas == 2 && st.ReadyReplicas == 2
	}, waitLong, tick)
}

func TestExitedProcessIsRestarted(t *testing.T) {
	h := newHarness(t)
	h.deployment("web", 1, podSpec())
	pod := h.readyPods("web", 1)[0]

	_, _ = get(pod.IP+":8080", "/exit") // the connection dies with the process
	require.Eventually(t, func() bool {
		pods := h.pods("web")
		return len(pods) == 1 && pods[0].Ready && pods[0].PIDs[0] != 0 && pods[0].PIDs[0] != pod.PIDs[0]
	}, waitLong, tick, "the container should be restarted and become ready again")
	assert.Equal(t, pod.IP, h.pods("web")[0].IP, "a restart keeps the pod's address")
	require.Eventually(t, func() bool { return h.deploymentStatus("web").ReadyReplicas == 1 }, waitLong, tick)
}

func TestManagerStopKillsEverything(t *testing.T) {
	h := newHarness(t)
	h.deployment("web", 2, podSpec())
	h.statefulSet("db", 1, podSpec())
	var pids []int
	for _, p := range append(h.readyPods("web", 2), h.readyPods("db", 1)...) {
		pids = append(pids, p.PIDs[0])
	}

	h.stop()
	for _, pid := range pids {
		assert.True(t, pidGone(pid), "process %d should be gone once the manager stopped", pid)
	}
	assert.Empty(t, h.runner.Pods())
}

// TestPerPodNamesThroughHeadlessService: the pods of a StatefulSet name each other <pod>.<svc>.<ns>.svc, as a
// distributed store lists its servers. Every pod gets the same list, each name the pod's address and, in a URL,
// a path under the claim's mount that pod's claim; a pod reaches its sibling by name; the addresses stay when a
// template change replaces the pods.
func TestPerPodNamesThroughHeadlessService(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	require.NoError(t, h.c.Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "peer"}, // the StatefulSet's serviceName
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			PublishNotReadyAddresses: true, // the servers must find each other before any is ready
			Selector:                 map[string]string{"app": "peer"},
			Ports:                    []corev1.ServicePort{{Name: "http", Port: 8080}},
		},
	}))
	name := func(i int) string { return fmt.Sprintf("peer-%d.peer.%s.svc.cluster.local:8080", i, h.ns) }
	spec := podSpec("--data=/data")
	spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	spec.Containers[0].Env = append(spec.Containers[0].Env,
		corev1.EnvVar{Name: "DRIVES", Value: fmt.Sprintf("http://%s/data http://%s/data/x http://%s/elsewhere", name(0), name(1), name(2))},
		corev1.EnvVar{Name: "FIRST", Value: "http://" + name(0)},
	)
	s := h.statefulSet("peer", 3, spec, "data")

	pods := h.readyPods("peer", 3)
	claim := func(pod string) string { return filepath.Join(h.stateDir, h.ns, pod, "data") }
	want := fmt.Sprintf("http://%s:8080%s http://%s:8080%s/x http://%s:8080/elsewhere",
		pods[0].IP, claim("peer-0"), pods[1].IP, claim("peer-1"), pods[2].IP)
	for _, p := range pods {
		v, err := get(p.IP+":8080", "/env?name=DRIVES")
		require.NoError(t, err)
		assert.Equal(t, want, v, "%s sees every server's address and drive as the others do", p.Name)
	}
	v, err := get(pods[2].IP+":8080", "/fetch?env=FIRST&path=/env%3Fname%3DPOD_NAME")
	require.NoError(t, err)
	assert.Equal(t, "peer-0", v, "peer-2 reaches peer-0 by its name")
	resolved, err := h.runner.ResolveURL("http://" + name(1) + "/x")
	require.NoError(t, err)
	assert.Equal(t, "http://"+pods[1].IP+":8080/x", resolved, "a process on this machine resolves the name too")

	h.update(s, func() { s.Spec.Template.Annotations = map[string]string{"rev": "2"} })
	require.Eventually(t, func() bool {
		for _, p := range pods {
			if !pidGone(p.PIDs[0]) {
				return false
			}
		}
		return true
	}, waitLong, tick, "the template change replaces every pod")
	again := h.readyPods("peer", 3)
	for i := range pods {
		assert.Equal(t, pods[i].IP, again[i].IP, "%s keeps its address, which its siblings were given", pods[i].Name)
	}

	// Only a headless Service names its pods.
	require.NoError(t, h.c.Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "plain"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "peer"}, Ports: []corev1.ServicePort{{Port: 8080}}},
	}))
	_, err = h.runner.ResolveURL(fmt.Sprintf("http://peer-0.plain.%s.svc:8080", h.ns))
	assert.ErrorContains(t, err, "not headless")
	_, err = h.runner.ResolveURL(fmt.Sprintf("http://peer-3.peer.%s.svc:8080", h.ns))
	assert.ErrorContains(t, err, "no such pod", "peer-3 is beyond the replicas")
}
