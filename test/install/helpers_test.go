package install_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const (
	// operatorNamespace is config/default's namespace and the release namespace of the Helm renders.
	operatorNamespace = "supportstack-system"
	// releaseName is the Helm release name under which the chart's object names equal config/default's.
	releaseName = "supportstack"

	imageRepository   = "ghcr.io/supportstack/supportstack"
	defaultMinIOImage = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"

	managerName        = "supportstack-controller-manager"
	metricsServiceName = "supportstack-controller-manager-metrics"
	clusterRoleName    = "supportstack-manager"
	leaderElectionName = "supportstack-leader-election"
)

// repoRoot is the folder holding go.mod, found by walking up from the test's working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's working directory")
		}
		dir = parent
	}
}

// path joins elements onto the repository root.
func path(t *testing.T, elem ...string) string {
	t.Helper()
	return filepath.Join(append([]string{repoRoot(t)}, elem...)...)
}

// tool returns the path of helm or kustomize: $envVar when set, else bin/<name>-<version> with the version pinned
// in the Makefile (the variable versionVar). A missing binary fails the test.
func tool(t *testing.T, envVar, name, versionVar string) string {
	t.Helper()
	bin := os.Getenv(envVar)
	if bin == "" {
		makefile, err := os.ReadFile(path(t, "Makefile"))
		require.NoError(t, err, "read the Makefile for the %s version", name)
		m := regexp.MustCompile(`(?m)^` + versionVar + `\s*\?=\s*(\S+)\s*$`).FindSubmatch(makefile)
		require.NotNil(t, m, "the Makefile pins no %s", versionVar)
		bin = path(t, "bin", name+"-"+string(m[1]))
	}
	info, err := os.Stat(bin)
	if err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
		t.Fatalf("%s is not installed at %s: run `make tools` (or set %s)", name, bin, envVar)
	}
	return bin
}

func helmBin(t *testing.T) string {
	return tool(t, "SUPPORTSTACK_HELM_BIN", "helm", "HELM_VERSION")
}

func kustomizeBin(t *testing.T) string {
	return tool(t, "SUPPORTSTACK_KUSTOMIZE_BIN", "kustomize", "KUSTOMIZE_VERSION")
}

// run runs a tool in dir and returns its standard output; a failure is returned with the standard error.
func run(t *testing.T, dir, bin string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Dir = dir
	// Keep helm away from the user's configuration, repositories and caches.
	home := t.TempDir()
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// mustRun is run that fails the test on error.
func mustRun(t *testing.T, dir, bin string, args ...string) []byte {
	t.Helper()
	out, err := run(t, dir, bin, args...)
	require.NoError(t, err)
	return out
}

// helmTemplate renders the chart as release "supportstack" in supportstack-system with extra helm arguments.
func helmTemplate(t *testing.T, extra ...string) ([]manifest, error) {
	t.Helper()
	args := append([]string{"template", releaseName, "charts/supportstack", "--namespace", operatorNamespace}, extra...)
	out, err := run(t, repoRoot(t), helmBin(t), args...)
	if err != nil {
		return nil, err
	}
	return decode(t, out), nil
}

// mustHelmTemplate is helmTemplate that fails the test on error.
func mustHelmTemplate(t *testing.T, extra ...string) []manifest {
	t.Helper()
	objs, err := helmTemplate(t, extra...)
	require.NoError(t, err)
	return objs
}

// kustomizeBuild renders a kustomization folder.
func kustomizeBuild(t *testing.T, dir string) []manifest {
	t.Helper()
	return decode(t, mustRun(t, repoRoot(t), kustomizeBin(t), "build", dir))
}

// manifest is one rendered object: its document, for strict decoding into a typed object, and its generic form.
type manifest struct {
	doc []byte
	obj *unstructured.Unstructured
}

// decode splits a multi-document YAML stream into objects, dropping empty documents.
func decode(t *testing.T, stream []byte) []manifest {
	t.Helper()
	var objs []manifest
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "split the rendered YAML into documents")
		var m map[string]any
		require.NoError(t, yaml.Unmarshal(doc, &m), "decode document:\n%s", doc)
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		require.NotEmpty(t, u.GetAPIVersion(), "document without apiVersion:\n%s", doc)
		require.NotEmpty(t, u.GetKind(), "document without kind:\n%s", doc)
		require.NotEmpty(t, u.GetName(), "document without name:\n%s", doc)
		objs = append(objs, manifest{doc: doc, obj: u})
	}
	return objs
}

// find returns the one object of a kind and name.
func find(t *testing.T, objs []manifest, kind, name string) manifest {
	t.Helper()
	var found []manifest
	for _, m := range objs {
		if m.obj.GetKind() == kind && m.obj.GetName() == name {
			found = append(found, m)
		}
	}
	require.Len(t, found, 1, "want exactly one %s %q among %v", kind, name, kindNames(objs))
	return found[0]
}

// into decodes a manifest strictly (unknown or duplicate fields fail) into a typed object.
func into[T any](t *testing.T, m manifest) *T {
	t.Helper()
	var v T
	require.NoError(t, yaml.UnmarshalStrict(m.doc, &v), "decode %s %q strictly", m.obj.GetKind(), m.obj.GetName())
	return &v
}

// kindNames lists the objects as "Kind/name", sorted.
func kindNames(objs []manifest) []string {
	var names []string
	for _, m := range objs {
		names = append(names, m.obj.GetKind()+"/"+m.obj.GetName())
	}
	slices.Sort(names)
	return names
}

// namespacedKinds are the namespaced kinds the installs render.
var namespacedKinds = map[string]bool{
	"ServiceAccount": true, "Role": true, "RoleBinding": true, "Deployment": true, "Service": true,
	"ServiceMonitor": true, "Secret": true, "NetworkPolicy": true, "ConfigMap": true, "Ingress": true,
}

// requireNamespaces checks that every namespaced object is in ns and no cluster-scoped one has a namespace.
func requireNamespaces(t *testing.T, objs []manifest, ns string) {
	t.Helper()
	for _, m := range objs {
		if namespacedKinds[m.obj.GetKind()] {
			require.Equal(t, ns, m.obj.GetNamespace(), "namespace of %s %q", m.obj.GetKind(), m.obj.GetName())
		} else {
			require.Empty(t, m.obj.GetNamespace(), "cluster-scoped %s %q has a namespace", m.obj.GetKind(), m.obj.GetName())
		}
	}
}

// requireSemanticEqual compares API objects the way the API server does (quantities by value) and prints a diff
// when they differ.
func requireSemanticEqual(t *testing.T, want, got any, msgAndArgs ...any) {
	t.Helper()
	if equality.Semantic.DeepEqual(want, got) {
		return
	}
	require.Equal(t, want, got, msgAndArgs...)
	t.Fatalf("objects differ semantically: %v", fmt.Sprint(msgAndArgs...))
}

// generatedRules are the rules of the ClusterRole that controller-gen writes to config/rbac/role.yaml.
func generatedRules(t *testing.T) []rbacv1.PolicyRule {
	t.Helper()
	b, err := os.ReadFile(path(t, "config", "rbac", "role.yaml"))
	require.NoError(t, err, "read the generated ClusterRole: run `make manifests`")
	var role rbacv1.ClusterRole
	require.NoError(t, yaml.UnmarshalStrict(b, &role))
	require.Equal(t, clusterRoleName, role.Name, "name of the generated ClusterRole")
	require.NotEmpty(t, role.Rules, "the generated ClusterRole has no rules")
	return role.Rules
}

// chartAppVersion is appVersion of charts/supportstack/Chart.yaml, the default image tag.
func chartAppVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(path(t, "charts", "supportstack", "Chart.yaml"))
	require.NoError(t, err)
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	require.NoError(t, yaml.Unmarshal(b, &chart))
	require.NotEmpty(t, chart.AppVersion, "Chart.yaml has no appVersion")
	return chart.AppVersion
}

// defaultImage is the operator image both installs use by default.
func defaultImage(t *testing.T) string {
	return imageRepository + ":" + chartAppVersion(t)
}

// managerArgs are the arguments the manager container should get.
func managerArgs(image, minioImage, watchNamespaces string, leaderElect bool) []string {
	args := []string{"manager"}
	if leaderElect {
		args = append(args, "--leader-elect")
	}
	return append(args,
		"--metrics-bind-address=:8080",
		"--health-probe-bind-address=:8081",
		"--minio-image="+minioImage,
		"--supportstack-image="+image,
		"--watch-namespaces="+watchNamespaces,
	)
}

// managerContainer returns the Deployment's container "manager", its only container.
func managerContainer(t *testing.T, dep *appsv1.Deployment) corev1.Container {
	t.Helper()
	require.Len(t, dep.Spec.Template.Spec.Containers, 1, "containers of the operator Deployment")
	c := dep.Spec.Template.Spec.Containers[0]
	require.Equal(t, "manager", c.Name)
	return c
}

// requireManagerDeployment checks what both installs must render for the operator's Deployment.
func requireManagerDeployment(t *testing.T, dep *appsv1.Deployment, wantArgs []string) {
	t.Helper()
	require.Equal(t, managerName, dep.Name)
	pod := dep.Spec.Template.Spec
	c := managerContainer(t, dep)

	// The selector selects the pod template, with the labels the metrics Service selects on.
	require.NotNil(t, dep.Spec.Selector)
	for k, v := range dep.Spec.Selector.MatchLabels {
		require.Equal(t, v, dep.Spec.Template.Labels[k], "pod template label %s selected by the Deployment", k)
	}
	require.Equal(t, "supportstack", dep.Spec.Selector.MatchLabels["app.kubernetes.io/name"])
	require.Equal(t, "controller-manager", dep.Spec.Selector.MatchLabels["app.kubernetes.io/component"])

	require.Equal(t, wantArgs, c.Args)
	require.Empty(t, c.Command, "the image's entrypoint runs the binary")
	var image string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--supportstack-image="); ok {
			image = v
		}
	}
	require.Equal(t, c.Image, image, "--supportstack-image is the operator's own image")

	require.Equal(t, []corev1.EnvVar{{
		Name:      "POD_NAMESPACE",
		ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}},
	}}, c.Env)
	require.ElementsMatch(t, []corev1.ContainerPort{
		{Name: "metrics", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
		{Name: "health", ContainerPort: 8081, Protocol: corev1.ProtocolTCP},
	}, c.Ports)
	requireHTTPProbe(t, c, c.LivenessProbe, "/healthz", 8081)
	requireHTTPProbe(t, c, c.ReadinessProbe, "/readyz", 8081)
	requireSemanticEqual(t, corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:              mustQuantity(t, "100m"),
			corev1.ResourceMemory:           mustQuantity(t, "128Mi"),
			corev1.ResourceEphemeralStorage: mustQuantity(t, "64Mi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceCPU:              mustQuantity(t, "500m"),
			corev1.ResourceMemory:           mustQuantity(t, "512Mi"),
			corev1.ResourceEphemeralStorage: mustQuantity(t, "256Mi"),
		},
	}, c.Resources, "resources of the manager")

	requireRestricted(t, pod, c)
	require.Equal(t, managerName, pod.ServiceAccountName)
	require.NotNil(t, pod.TerminationGracePeriodSeconds)
	require.EqualValues(t, 10, *pod.TerminationGracePeriodSeconds)
}

// requireHTTPProbe checks that a probe is an HTTP GET of path on the container port numbered port.
func requireHTTPProbe(t *testing.T, c corev1.Container, p *corev1.Probe, path string, port int32) {
	t.Helper()
	require.NotNil(t, p, "probe %s", path)
	require.NotNil(t, p.HTTPGet, "probe %s is an HTTP GET", path)
	require.Equal(t, path, p.HTTPGet.Path)
	got := p.HTTPGet.Port.IntVal
	if name := p.HTTPGet.Port.StrVal; name != "" {
		got = 0
		for _, cp := range c.Ports {
			if cp.Name == name {
				got = cp.ContainerPort
			}
		}
	}
	require.Equal(t, port, got, "port of probe %s", path)
}

// requireRestricted checks the settings the restricted Pod Security profile demands, plus a read-only root.
func requireRestricted(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	psc := pod.SecurityContext
	require.NotNil(t, psc, "pod securityContext")
	require.NotNil(t, psc.RunAsNonRoot)
	require.True(t, *psc.RunAsNonRoot, "runAsNonRoot")
	require.NotNil(t, psc.RunAsUser)
	require.EqualValues(t, 65532, *psc.RunAsUser, "runAsUser")
	require.NotNil(t, psc.SeccompProfile)
	require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, psc.SeccompProfile.Type)

	sc := c.SecurityContext
	require.NotNil(t, sc, "container securityContext")
	require.NotNil(t, sc.AllowPrivilegeEscalation)
	require.False(t, *sc.AllowPrivilegeEscalation, "allowPrivilegeEscalation")
	require.NotNil(t, sc.Capabilities)
	require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
	require.Empty(t, sc.Capabilities.Add)
	require.NotNil(t, sc.ReadOnlyRootFilesystem)
	require.True(t, *sc.ReadOnlyRootFilesystem, "readOnlyRootFilesystem")
	require.Nil(t, sc.Privileged, "privileged")
	require.Nil(t, sc.RunAsUser, "the container inherits the pod's runAsUser")
	if sc.RunAsNonRoot != nil {
		require.True(t, *sc.RunAsNonRoot)
	}
}

// requireBindsManager checks that a role binding grants roleKind roleName to the manager's ServiceAccount in ns.
func requireBindsManager(t *testing.T, roleRef rbacv1.RoleRef, subjects []rbacv1.Subject, roleKind, roleName, ns string) {
	t.Helper()
	require.Equal(t, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: roleKind, Name: roleName}, roleRef)
	require.Equal(t, []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: managerName, Namespace: ns}}, subjects)
}

// requireMetricsService checks that the metrics Service exposes the manager pods' metrics port as http-metrics.
func requireMetricsService(t *testing.T, svc *corev1.Service, dep *appsv1.Deployment) {
	t.Helper()
	require.NotEmpty(t, svc.Spec.Selector)
	for k, v := range svc.Spec.Selector {
		require.Equal(t, v, dep.Spec.Template.Labels[k], "pod label %s selected by the metrics Service", k)
	}
	require.Equal(t, "supportstack", svc.Spec.Selector["app.kubernetes.io/name"])
	require.Equal(t, "controller-manager", svc.Spec.Selector["app.kubernetes.io/component"])
	require.Len(t, svc.Spec.Ports, 1)
	p := svc.Spec.Ports[0]
	require.Equal(t, "http-metrics", p.Name)
	require.EqualValues(t, 8080, p.Port)
	c := managerContainer(t, dep)
	target := p.TargetPort.IntVal
	if p.TargetPort.StrVal != "" {
		for _, cp := range c.Ports {
			if cp.Name == p.TargetPort.StrVal {
				target = cp.ContainerPort
			}
		}
	}
	require.EqualValues(t, 8080, target, "the metrics Service targets the metrics port")
}

// mustQuantity parses a resource quantity.
func mustQuantity(t *testing.T, s string) resource.Quantity {
	t.Helper()
	q, err := resource.ParseQuantity(s)
	require.NoError(t, err)
	return q
}

// leaderElectionRules are the rules the manager needs for leader election in its own namespace.
var leaderElectionRules = []rbacv1.PolicyRule{
	{
		APIGroups: []string{"coordination.k8s.io"},
		Resources: []string{"leases"},
		Verbs:     []string{"get", "list", "watch", "create", "update", "patch", "delete"},
	},
	{
		APIGroups: []string{"", "events.k8s.io"},
		Resources: []string{"events"},
		Verbs:     []string{"create", "patch"},
	},
}
