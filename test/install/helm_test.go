package install_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestHelmLint(t *testing.T) {
	tests := map[string][]string{
		"defaults": nil,
		"watched namespaces and ServiceMonitor": {
			"--set", "watchNamespaces={tenant-a,tenant-b}",
			"--set", "metrics.serviceMonitor.enabled=true",
		},
		"without leader election": {"--set", "leaderElection.enabled=false"},
	}
	for name, extra := range tests {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"lint", "--strict", "charts/supportstack"}, extra...)
			mustRun(t, repoRoot(t), helmBin(t), args...)
		})
	}
}

func TestHelmTemplateDefaults(t *testing.T) {
	objs := mustHelmTemplate(t)

	require.Equal(t, []string{
		"ClusterRole/" + clusterRoleName,
		"ClusterRoleBinding/" + clusterRoleName,
		"Deployment/" + managerName,
		"NetworkPolicy/" + managerName,
		"Role/" + leaderElectionName,
		"RoleBinding/" + leaderElectionName,
		"Service/" + metricsServiceName,
		"ServiceAccount/" + managerName,
	}, kindNames(objs), "objects of the default render (no ServiceMonitor, CRDs only with --include-crds)")
	requireNamespaces(t, objs, operatorNamespace)

	dep := into[appsv1.Deployment](t, find(t, objs, "Deployment", managerName))
	require.NotNil(t, dep.Spec.Replicas)
	require.EqualValues(t, 1, *dep.Spec.Replicas)
	requireManagerDeployment(t, dep, managerArgs(defaultImage(t), defaultMinIOImage, "", true))
	c := managerContainer(t, dep)
	require.Equal(t, defaultImage(t), c.Image, "the default image tag is the chart's appVersion")
	require.Equal(t, corev1.PullIfNotPresent, c.ImagePullPolicy)

	role := into[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", clusterRoleName))
	require.Equal(t, generatedRules(t), role.Rules, "the chart's ClusterRole carries the rules generated into config/rbac/role.yaml")
	crb := into[rbacv1.ClusterRoleBinding](t, find(t, objs, "ClusterRoleBinding", clusterRoleName))
	requireBindsManager(t, crb.RoleRef, crb.Subjects, "ClusterRole", clusterRoleName, operatorNamespace)

	le := into[rbacv1.Role](t, find(t, objs, "Role", leaderElectionName))
	require.Equal(t, leaderElectionRules, le.Rules)
	leb := into[rbacv1.RoleBinding](t, find(t, objs, "RoleBinding", leaderElectionName))
	requireBindsManager(t, leb.RoleRef, leb.Subjects, "Role", leaderElectionName, operatorNamespace)

	into[corev1.ServiceAccount](t, find(t, objs, "ServiceAccount", managerName))
	svc := into[corev1.Service](t, find(t, objs, "Service", metricsServiceName))
	requireMetricsService(t, svc, dep)
}

func TestHelmTemplateValues(t *testing.T) {
	tests := map[string]struct {
		set   []string
		check func(t *testing.T, objs []manifest)
	}{
		"watched namespaces": {
			set: []string{"--set", "watchNamespaces={a,b}"},
			check: func(t *testing.T, objs []manifest) {
				dep := into[appsv1.Deployment](t, find(t, objs, "Deployment", managerName))
				requireManagerDeployment(t, dep, managerArgs(defaultImage(t), defaultMinIOImage, "a,b", true))
				// PeerClusters are cluster-scoped: their rules stay cluster-wide, the rest is granted per namespace
				// (TestHelmRBACFollowsWatchedNamespaces).
				find(t, objs, "ClusterRoleBinding", clusterRoleName)
			},
		},
		"image and MinIO image": {
			set: []string{
				"--set", "image.repository=registry.example.com/ops/supportstack",
				"--set", "image.tag=v9.9.9",
				"--set", "image.pullPolicy=Always",
				"--set", "minio.image=registry.example.com/ops/minio:2026-02-12",
			},
			check: func(t *testing.T, objs []manifest) {
				dep := into[appsv1.Deployment](t, find(t, objs, "Deployment", managerName))
				image := "registry.example.com/ops/supportstack:v9.9.9"
				requireManagerDeployment(t, dep, managerArgs(image, "registry.example.com/ops/minio:2026-02-12", "", true))
				c := managerContainer(t, dep)
				require.Equal(t, image, c.Image)
				require.Equal(t, corev1.PullAlways, c.ImagePullPolicy)
			},
		},
		"without leader election": {
			set: []string{"--set", "leaderElection.enabled=false"},
			check: func(t *testing.T, objs []manifest) {
				dep := into[appsv1.Deployment](t, find(t, objs, "Deployment", managerName))
				requireManagerDeployment(t, dep, managerArgs(defaultImage(t), defaultMinIOImage, "", false))
				require.NotContains(t, kindNames(objs), "Role/"+leaderElectionName)
				require.NotContains(t, kindNames(objs), "RoleBinding/"+leaderElectionName)
			},
		},
		"scheduling, replicas and pod annotations": {
			set: []string{
				"--set", "replicaCount=2",
				"--set", "nodeSelector.kubernetes\\.io/os=linux",
				"--set", "tolerations[0].key=dedicated,tolerations[0].operator=Exists,tolerations[0].effect=NoSchedule",
				"--set", "podAnnotations.example\\.com/team=ops",
			},
			check: func(t *testing.T, objs []manifest) {
				dep := into[appsv1.Deployment](t, find(t, objs, "Deployment", managerName))
				require.EqualValues(t, 2, *dep.Spec.Replicas)
				pod := dep.Spec.Template
				require.Equal(t, map[string]string{"kubernetes.io/os": "linux"}, pod.Spec.NodeSelector)
				require.Equal(t, []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}, pod.Spec.Tolerations)
				require.Equal(t, "ops", pod.Annotations["example.com/team"])
				require.Equal(t, "manager", pod.Annotations["kubectl.kubernetes.io/default-container"])
			},
		},
		"ServiceMonitor": {
			set: []string{
				"--set", "metrics.serviceMonitor.enabled=true",
				"--set", "metrics.serviceMonitor.interval=30s",
				"--set", "metrics.serviceMonitor.labels.release=prometheus",
			},
			check: func(t *testing.T, objs []manifest) {
				sm := find(t, objs, "ServiceMonitor", metricsServiceName).obj
				require.Equal(t, "monitoring.coreos.com/v1", sm.GetAPIVersion())
				require.Equal(t, "prometheus", sm.GetLabels()["release"])
				svc := into[corev1.Service](t, find(t, objs, "Service", metricsServiceName))
				selector, _, err := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
				require.NoError(t, err)
				require.NotEmpty(t, selector)
				for k, v := range selector {
					require.Equal(t, v, svc.Labels[k], "Service label %s selected by the ServiceMonitor", k)
				}
				namespaces, _, err := unstructured.NestedStringSlice(sm.Object, "spec", "namespaceSelector", "matchNames")
				require.NoError(t, err)
				require.Equal(t, []string{operatorNamespace}, namespaces)
				endpoints, _, err := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
				require.NoError(t, err)
				require.Equal(t, []any{map[string]any{
					"port": "http-metrics", "path": "/metrics", "scheme": "http", "interval": "30s",
				}}, endpoints)
			},
		},
		"other namespace": {
			set: []string{"--namespace", "ops"},
			check: func(t *testing.T, objs []manifest) {
				requireNamespaces(t, objs, "ops")
				crb := into[rbacv1.ClusterRoleBinding](t, find(t, objs, "ClusterRoleBinding", clusterRoleName))
				requireBindsManager(t, crb.RoleRef, crb.Subjects, "ClusterRole", clusterRoleName, "ops")
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tc.check(t, mustHelmTemplate(t, tc.set...))
		})
	}
}

func TestHelmNameOverrides(t *testing.T) {
	// fullnameOverride renames every object consistently.
	objs := mustHelmTemplate(t, "--set", "fullnameOverride=ss")
	dep := into[appsv1.Deployment](t, find(t, objs, "Deployment", "ss-controller-manager"))
	require.Equal(t, "ss-controller-manager", dep.Spec.Template.Spec.ServiceAccountName)
	find(t, objs, "ServiceAccount", "ss-controller-manager")
	crb := into[rbacv1.ClusterRoleBinding](t, find(t, objs, "ClusterRoleBinding", "ss-manager"))
	require.Equal(t, "ss-manager", crb.RoleRef.Name)
	require.Equal(t, "ss-controller-manager", crb.Subjects[0].Name)
	find(t, objs, "ClusterRole", "ss-manager")
	leb := into[rbacv1.RoleBinding](t, find(t, objs, "RoleBinding", "ss-leader-election"))
	require.Equal(t, "ss-leader-election", leb.RoleRef.Name)
	find(t, objs, "Service", "ss-controller-manager-metrics")
}

func TestHelmValuesSchemaRejects(t *testing.T) {
	tests := map[string][]string{
		"replicaCount not a number":         {"--set", "replicaCount=zero"},
		"replicaCount zero":                 {"--set", "replicaCount=0"},
		"replicaCount fraction":             {"--set-json", "replicaCount=1.5"},
		"watchNamespaces a string":          {"--set", "watchNamespaces=tenant-a"},
		"watchNamespaces not strings":       {"--set-json", `watchNamespaces=[1,2]`},
		"watchNamespaces invalid name":      {"--set", "watchNamespaces={Tenant_A}"},
		"leaderElection.enabled a string":   {"--set", "leaderElection.enabled=yes"},
		"unknown pull policy":               {"--set", "image.pullPolicy=Sometimes"},
		"empty MinIO image":                 {"--set", "minio.image="},
		"misspelt top-level key":            {"--set", "replicas=2"},
		"serviceMonitor.enabled a string":   {"--set", "metrics.serviceMonitor.enabled=sure"},
		"resources with a misspelt field":   {"--set", "resources.request.cpu=1"},
		"nodeSelector value not a string":   {"--set-json", `nodeSelector={"disk":1}`},
		"podAnnotations value not a string": {"--set-json", `podAnnotations={"a":true}`},
	}
	for name, set := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := helmTemplate(t, set...)
			require.Error(t, err, "helm template %v must fail", set)
			require.Contains(t, err.Error(), "schema", "the values schema rejects %v", set)
		})
	}
}

func TestHelmTemplateIncludesCRDs(t *testing.T) {
	objs := mustHelmTemplate(t, "--include-crds")
	for _, name := range []string{"supporttenants.supportstack.io", "peerclusters.supportstack.io"} {
		crd := into[apiextensionsv1.CustomResourceDefinition](t, find(t, objs, "CustomResourceDefinition", name))
		require.Equal(t, "supportstack.io", crd.Spec.Group)
	}
}
