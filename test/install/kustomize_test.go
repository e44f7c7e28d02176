package install_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/supportstack/supportstack/api/v1alpha1"
)

func TestKustomizeDefault(t *testing.T) {
	objs := kustomizeBuild(t, "config/default")

	require.Equal(t, []string{
		"ClusterRole/" + clusterRoleName,
		"ClusterRoleBinding/" + clusterRoleName,
		"CustomResourceDefinition/peerclusters.supportstack.io",
		"CustomResourceDefinition/supporttenants.supportstack.io",
		"Deployment/" + managerName,
		"Namespace/" + operatorNamespace,
		"NetworkPolicy/" + managerName,
		"Role/" + leaderElectionName,
		"RoleBinding/" + leaderElectionName,
		"Service/" + metricsServiceName,
		"ServiceAccount/" + managerName,
	}, kindNames(objs))
	requireNamespaces(t, objs, operatorNamespace)

	ns := into[corev1.Namespace](t, find(t, objs, "Namespace", operatorNamespace))
	require.Equal(t, "restricted", ns.Labels["pod-security.kubernetes.io/enforce"])

	for _, name := range []string{"supporttenants.supportstack.io", "peerclusters.supportstack.io"} {
		crd := into[apiextensionsv1.CustomResourceDefinition](t, find(t, objs, "CustomResourceDefinition", name))
		require.Equal(t, "supportstack.io", crd.Spec.Group)
	}

	dep := into[appsv1.Deployment](t, find(t, objs, "Deployment", managerName))
	requireManagerDeployment(t, dep, managerArgs(defaultImage(t), defaultMinIOImage, "", true))

	role := into[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", clusterRoleName))
	require.Equal(t, generatedRules(t), role.Rules)
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

// TestKustomizeMatchesHelm checks that config/default and the chart with default values (release "supportstack"
// in supportstack-system) install the same operator.
func TestKustomizeMatchesHelm(t *testing.T) {
	k := kustomizeBuild(t, "config/default")
	h := mustHelmTemplate(t)

	kdep := into[appsv1.Deployment](t, find(t, k, "Deployment", managerName))
	hdep := into[appsv1.Deployment](t, find(t, h, "Deployment", managerName))
	requireSemanticEqual(t, kdep.Spec.Replicas, hdep.Spec.Replicas, "replicas")
	requireSemanticEqual(t, kdep.Spec.Template.Spec, hdep.Spec.Template.Spec, "pod spec of the operator (kustomize, then Helm)")
	require.Equal(t, kdep.Spec.Template.Annotations, hdep.Spec.Template.Annotations, "pod annotations")

	kcr := into[rbacv1.ClusterRole](t, find(t, k, "ClusterRole", clusterRoleName))
	hcr := into[rbacv1.ClusterRole](t, find(t, h, "ClusterRole", clusterRoleName))
	require.Equal(t, kcr.Rules, hcr.Rules, "rules of the ClusterRole")
	kle := into[rbacv1.Role](t, find(t, k, "Role", leaderElectionName))
	hle := into[rbacv1.Role](t, find(t, h, "Role", leaderElectionName))
	require.Equal(t, kle.Rules, hle.Rules, "rules of the leader election Role")

	ksvc := into[corev1.Service](t, find(t, k, "Service", metricsServiceName))
	hsvc := into[corev1.Service](t, find(t, h, "Service", metricsServiceName))
	require.Equal(t, ksvc.Spec.Ports, hsvc.Spec.Ports, "ports of the metrics Service")
	require.Equal(t, ksvc.Spec.Type, hsvc.Spec.Type, "type of the metrics Service")
	knp := into[networkingv1.NetworkPolicy](t, find(t, k, "NetworkPolicy", managerName))
	hnp := into[networkingv1.NetworkPolicy](t, find(t, h, "NetworkPolicy", managerName))
	// The selectors differ as the Deployments' do (Helm adds the release); what is allowed must not.
	requireSemanticEqual(t, knp.Spec.PolicyTypes, hnp.Spec.PolicyTypes, "policy types of the operator's NetworkPolicy")
	requireSemanticEqual(t, knp.Spec.Ingress, hnp.Spec.Ingress, "ingress of the operator's NetworkPolicy")
	requireSemanticEqual(t, knp.Spec.Egress, hnp.Spec.Egress, "egress of the operator's NetworkPolicy")
	kdepSel := into[appsv1.Deployment](t, find(t, k, "Deployment", managerName)).Spec.Template.Labels
	for key, v := range knp.Spec.PodSelector.MatchLabels {
		require.Equal(t, v, kdepSel[key], "the kustomize NetworkPolicy selects the operator's pods")
	}

	// Every object of the chart exists in config/default (which also holds the Namespace and the CRDs).
	kinds := kindNames(k)
	for _, o := range kindNames(h) {
		require.Contains(t, kinds, o)
	}
}

// TestKustomizeSetImage checks the documented way of choosing the image, `kustomize edit set image` in
// config/manager: the operator passes the chosen image on with --supportstack-image.
func TestKustomizeSetImage(t *testing.T) {
	config := filepath.Join(t.TempDir(), "config")
	require.NoError(t, os.CopyFS(config, os.DirFS(path(t, "config"))))
	const image = "registry.example.com/ops/supportstack:v2.0.0"
	mustRun(t, filepath.Join(config, "manager"), kustomizeBin(t), "edit", "set", "image", imageRepository+"="+image)

	objs := kustomizeBuild(t, filepath.Join(config, "default"))
	dep := into[appsv1.Deployment](t, find(t, objs, "Deployment", managerName))
	requireManagerDeployment(t, dep, managerArgs(image, defaultMinIOImage, "", true))
	require.Equal(t, image, managerContainer(t, dep).Image)
}

func TestSamples(t *testing.T) {
	objs := kustomizeBuild(t, "config/samples")
	require.Equal(t, []string{"PeerCluster/west", "SupportTenant/acme"}, kindNames(objs))

	tenant := into[v1alpha1.SupportTenant](t, find(t, objs, "SupportTenant", "acme"))
	require.Equal(t, v1alpha1.GroupVersion.String(), tenant.APIVersion)
	require.Empty(t, tenant.Namespace, "the sample takes its namespace from kubectl apply -n")
	require.Equal(t, "Acme IT Services", tenant.Spec.DisplayName)
	require.NotNil(t, tenant.Spec.Storage.Size)
	requireSemanticEqual(t, mustQuantity(t, "1Gi"), *tenant.Spec.Storage.Size, "storage size")
	require.EqualValues(t, 365, tenant.Spec.Storage.RetentionDays)
	require.EqualValues(t, 1, tenant.Spec.Ingest.Replicas)
	require.EqualValues(t, 4, tenant.Spec.Ingest.MaxReplicas)
	require.EqualValues(t, 1, tenant.Spec.Dashboard.Replicas)
	require.Nil(t, tenant.Spec.Replication)

	peer := into[v1alpha1.PeerCluster](t, find(t, objs, "PeerCluster", "west"))
	require.Equal(t, v1alpha1.GroupVersion.String(), peer.APIVersion)
	require.Empty(t, peer.Namespace, "PeerCluster is cluster-scoped")
	require.Equal(t, v1alpha1.SecretKeyReference{Namespace: operatorNamespace, Name: "west-kubeconfig"}, peer.Spec.KubeconfigSecretRef)
	require.Equal(t, "https://{{tenant}}-s3.west.example.com", peer.Spec.StorageURLTemplate)
	require.Equal(t, "https://{{tenant}}-ingest.west.example.com", peer.Spec.IngestURLTemplate)
}
