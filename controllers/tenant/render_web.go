package tenant

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	autoscalingv2ac "k8s.io/client-go/applyconfigurations/autoscaling/v2"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/dashboard"
	"github.com/supportstack/supportstack/internal/naming"
	"github.com/supportstack/supportstack/internal/webserver"
)

// The ingest and dashboard are both the supportstack binary serving HTTP; they differ in subcommand, flags and
// scaling.

// webDeployment renders the Deployment of the ingest or dashboard component.
func (c Config) webDeployment(t *v1alpha1.SupportTenant, component string, replicas *int32, args []string,
	env []*corev1ac.EnvVarApplyConfiguration, res *corev1ac.ResourceRequirementsApplyConfiguration,
) *appsv1ac.DeploymentApplyConfiguration {
	name := naming.Ingest(t.Name)
	if component == naming.ComponentDashboard {
		name = naming.Dashboard(t.Name)
	}
	container := corev1ac.Container().
		WithName(component).
		WithImage(c.SupportstackImage).
		WithArgs(args...).
		WithEnv(append([]*corev1ac.EnvVarApplyConfiguration{podIPEnv()}, env...)...).
		WithPorts(corev1ac.ContainerPort().WithName("http").WithContainerPort(naming.HTTPPort).WithProtocol(corev1.ProtocolTCP)).
		WithReadinessProbe(httpProbe("/readyz", "http", 5, 2)).
		WithLivenessProbe(httpProbe("/healthz", "http", 10, 3)).
		WithResources(res).
		WithSecurityContext(restrictedContainerSecurity()).
		WithVolumeMounts(tmpMount())
	if c.ImagePullPolicy != "" {
		container.WithImagePullPolicy(c.ImagePullPolicy)
	}
	spec := appsv1ac.DeploymentSpec()
	if replicas != nil {
		spec.WithReplicas(*replicas)
	}
	pod := corev1ac.PodSpec().
		WithServiceAccountName(naming.ServiceAccount(t.Name)).
		WithAutomountServiceAccountToken(false).
		WithSecurityContext(restrictedPodSecurity()).
		WithTerminationGracePeriodSeconds(15).
		WithContainers(container).
		WithVolumes(tmpVolume())
	if component == naming.ComponentIngest {
		// Ingest's replicas spread over nodes when they can: one node's loss leaves the others taking batches.
		pod.WithAffinity(corev1ac.Affinity().WithPodAntiAffinity(corev1ac.PodAntiAffinity().
			WithPreferredDuringSchedulingIgnoredDuringExecution(corev1ac.WeightedPodAffinityTerm().WithWeight(100).
				WithPodAffinityTerm(corev1ac.PodAffinityTerm().WithTopologyKey(corev1.LabelHostname).
					WithLabelSelector(selector(t, component))))))
	}
	return appsv1ac.Deployment(name, t.Namespace).
		WithLabels(naming.Labels(t.Name, component)).
		WithOwnerReferences(ownerReference(t)).
		WithSpec(spec.
			WithSelector(selector(t, component)).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(naming.Labels(t.Name, component)).
				WithSpec(pod)))
}

// storageArgs are the flags with which ingest and dashboard find the tenant's storage: this cluster's MinIO,
// then, for a replicated tenant, the peer's, reached through its PeerCluster's storageURLTemplate.
func (c Config) storageArgs(t *v1alpha1.SupportTenant, peer *v1alpha1.PeerCluster) []string {
	own := c.storageEndpoint(t)
	endpoints := []string{own}
	if replicated(t, peer) {
		endpoints = storageOrder(t, own, peer.StorageURL(t.Namespace, t.Name))
	}
	return webserver.StorageConfig{
		ListenAddress: "$(POD_IP):" + fmt.Sprint(naming.HTTPPort),
		Tenant:        t.Name,
		Bucket:        naming.BucketName,
		Endpoints:     endpoints,
		Local:         own,
	}.Args()
}

// storageOrder is the order in which a replicated tenant's data plane tries the two copies. The breakers move
// requests to the next copy within seconds when one fails, with no help from the operator; the order says which
// copy is preferred while both answer. The site the replication controller declared active comes first: after a
// failover the data plane stays on the peer until the failback was verified, so that nothing is read from a copy
// that may still lack the outage's writes. In Manual mode the data plane never moves to the peer by itself: it
// has only this cluster's copy until a person switches (supportstack.io/active-site=peer).
func storageOrder(t *v1alpha1.SupportTenant, own, peer string) []string {
	switch {
	case activeOnPeer(t):
		return []string{peer, own}
	case manualFailover(t):
		return []string{own}
	default:
		return []string{own, peer}
	}
}

// activeOnPeer reports whether the replication controller declared the peer's copy the active one.
func activeOnPeer(t *v1alpha1.SupportTenant) bool {
	return t.Status.Storage != nil && t.Status.Storage.ActiveSite == v1alpha1.SitePeer
}

func manualFailover(t *v1alpha1.SupportTenant) bool {
	return t.Spec.Failover != nil && t.Spec.Failover.Mode == v1alpha1.FailoverManual
}

// replicated reports whether t's data plane spans both copies: it has replication and its PeerCluster exists.
func replicated(t *v1alpha1.SupportTenant, peer *v1alpha1.PeerCluster) bool {
	return t.Spec.Replication != nil && peer != nil
}

// storageCredentialEnv hands the storage credentials to a pod through the environment, never through args,
// which anyone who can read the Deployment would see. A replicated tenant's pods use the data-plane user of the
// shared Secret, which exists in both copies' MinIO and may only read and write the tenant's objects; the root
// credentials of a MinIO never leave its cluster.
func storageCredentialEnv(t *v1alpha1.SupportTenant) []*corev1ac.EnvVarApplyConfiguration {
	if t.Spec.Replication != nil {
		return []*corev1ac.EnvVarApplyConfiguration{
			sharedEnv(t, webserver.EnvStorageAccessKey, naming.SharedKeyDataPlaneUser),
			sharedEnv(t, webserver.EnvStorageSecretKey, naming.SharedKeyDataPlanePassword),
		}
	}
	return []*corev1ac.EnvVarApplyConfiguration{
		secretEnv(t, webserver.EnvStorageAccessKey, naming.SecretKeyRootUser),
		secretEnv(t, webserver.EnvStorageSecretKey, naming.SecretKeyRootPassword),
	}
}

// agentSecretEnv hands ingest what agents' credentials hang on: the enrollment token and the signing key. Both
// copies of a replicated tenant take them from the shared Secret, so that a device enrolled in one cluster is
// accepted by the other.
func agentSecretEnv(t *v1alpha1.SupportTenant) []*corev1ac.EnvVarApplyConfiguration {
	env := secretEnv
	if t.Spec.Replication != nil {
		env = sharedEnv
	}
	return []*corev1ac.EnvVarApplyConfiguration{
		env(t, "ENROLLMENT_TOKEN", naming.SecretKeyEnrollmentToken),
		env(t, "SIGNING_KEY", naming.SecretKeySigningKey),
	}
}

// dashboardSecretEnv hands the dashboard its admin password and session key; both copies of a replicated tenant
// take them from the shared Secret, so that the same staff sign in on either side and a session survives a
// failover.
func dashboardSecretEnv(t *v1alpha1.SupportTenant) []*corev1ac.EnvVarApplyConfiguration {
	env := secretEnv
	if t.Spec.Replication != nil {
		env = sharedEnv
	}
	return []*corev1ac.EnvVarApplyConfiguration{
		env(t, dashboard.EnvAdminPassword, naming.SecretKeyDashboardAdminPassword),
		env(t, dashboard.EnvSessionKey, naming.SecretKeyDashboardSessionKey),
	}
}

// ingestScale is what the operator knows of the ingest Deployment's spec.replicas.
type ingestScale struct {
	// current is the replica count the Deployment has now, -1 when it does not exist yet.
	current int32
	// operatorOwned says whether the operator's field manager owns spec.replicas; after the autoscaler has
	// scaled the Deployment through /scale, it owns the field.
	operatorOwned bool
}

// ingestDeployment renders the ingest service.
func (c Config) ingestDeployment(t *v1alpha1.SupportTenant, w world) *appsv1ac.DeploymentApplyConfiguration {
	args := append([]string{"ingest"}, c.storageArgs(t, w.peer)...)
	// Agents learn where to send from enrollment and /v1/endpoints: this cluster's public ingest URL, then the
	// peer's, where they go when this whole cluster is unreachable.
	// In Manual mode agents are not sent to the peer either while this cluster serves: moving there is a
	// person's decision.
	ingestURLs := []string{c.publicURL(t, naming.Ingest(t.Name), t.Spec.Ingest.Exposure)}
	if replicated(t, w.peer) && (!manualFailover(t) || activeOnPeer(t)) {
		ingestURLs = append(ingestURLs, w.peer.IngestURL(t.Namespace, t.Name))
	}
	args = append(args, "--ingest-endpoints="+strings.Join(ingestURLs, ","))
	env := append(storageCredentialEnv(t), agentSecretEnv(t)...)
	return c.webDeployment(t, naming.ComponentIngest, ingestReplicas(t, w.scale), args, env,
		resources(t.Spec.Ingest.Resources, "100m", "64Mi", "256Mi"))
}

// ingestReplicas is the spec.replicas the operator applies to ingest, or nil to leave the field to the
// HorizontalPodAutoscaler: within the spec's bounds the autoscaler's choice stands, and once the autoscaler
// owns the field the operator does not apply it at all, so the two never fight and a resync writes nothing.
func ingestReplicas(t *v1alpha1.SupportTenant, s ingestScale) *int32 {
	spec := t.Spec.Ingest
	n := s.current
	switch {
	case t.Spec.Suspend:
		n = 0
	case s.current < spec.Replicas:
		n = spec.Replicas
	case s.current > spec.MaxReplicas:
		n = spec.MaxReplicas
	case !s.operatorOwned:
		return nil
	}
	return &n
}

// dashboardDeployment renders the web dashboard.
func (c Config) dashboardDeployment(t *v1alpha1.SupportTenant, peer *v1alpha1.PeerCluster) *appsv1ac.DeploymentApplyConfiguration {
	args := append([]string{"dashboard"}, c.storageArgs(t, peer)...)
	// The kubelet expands $(VAR) in args from the container's env, which holds the storage credentials: the
	// name is the customer's text and must stay text.
	args = append(args, "--display-name="+strings.ReplaceAll(t.Spec.DisplayName, "$", "$$"))
	// What the install commands point PCs at: this cluster's ingest, then the peer's. Unlike ingest's own list it
	// does not follow the failover state, so that the dashboard's pods do not restart when it changes.
	ingestURLs := []string{c.publicURL(t, naming.Ingest(t.Name), t.Spec.Ingest.Exposure)}
	if replicated(t, peer) {
		ingestURLs = append(ingestURLs, peer.IngestURL(t.Namespace, t.Name))
	}
	args = append(args, "--ingest-endpoints="+strings.Join(ingestURLs, ","))
	replicas := replicasOrZero(t, t.Spec.Dashboard.Replicas)
	env := append(storageCredentialEnv(t), dashboardSecretEnv(t)...)
	return c.webDeployment(t, naming.ComponentDashboard, &replicas, args, env, resources(nil, "50m", "64Mi", "256Mi"))
}

// webService exposes the ingest or dashboard pods on port 80.
func webService(t *v1alpha1.SupportTenant, name, component string) *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(name, t.Namespace).
		WithLabels(naming.Labels(t.Name, component)).
		WithOwnerReferences(ownerReference(t)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(naming.SelectorLabels(t.Name, component)).
			WithPorts(corev1ac.ServicePort().WithName("http").WithPort(80).
				WithTargetPort(intstr.FromString("http")).WithProtocol(corev1.ProtocolTCP)))
}

// ingestAutoscaler scales ingest on CPU between spec.replicas and spec.maxReplicas.
func ingestAutoscaler(t *v1alpha1.SupportTenant) *autoscalingv2ac.HorizontalPodAutoscalerApplyConfiguration {
	return autoscalingv2ac.HorizontalPodAutoscaler(naming.Ingest(t.Name), t.Namespace).
		WithLabels(naming.Labels(t.Name, naming.ComponentIngest)).
		WithOwnerReferences(ownerReference(t)).
		WithSpec(autoscalingv2ac.HorizontalPodAutoscalerSpec().
			WithScaleTargetRef(autoscalingv2ac.CrossVersionObjectReference().
				WithAPIVersion("apps/v1").WithKind("Deployment").WithName(naming.Ingest(t.Name))).
			WithMinReplicas(t.Spec.Ingest.Replicas).
			WithMaxReplicas(t.Spec.Ingest.MaxReplicas).
			WithMetrics(autoscalingv2ac.MetricSpec().
				WithType("Resource").
				WithResource(autoscalingv2ac.ResourceMetricSource().
					WithName(corev1.ResourceCPU).
					WithTarget(autoscalingv2ac.MetricTarget().
						WithType("Utilization").
						WithAverageUtilization(t.Spec.Ingest.TargetCPUUtilizationPercentage)))))
}

// ingestDisruptionBudget lets node drains take at most one ingest pod at a time.
func ingestDisruptionBudget(t *v1alpha1.SupportTenant) *policyv1ac.PodDisruptionBudgetApplyConfiguration {
	return policyv1ac.PodDisruptionBudget(naming.Ingest(t.Name), t.Namespace).
		WithLabels(naming.Labels(t.Name, naming.ComponentIngest)).
		WithOwnerReferences(ownerReference(t)).
		WithSpec(policyv1ac.PodDisruptionBudgetSpec().
			WithMaxUnavailable(intstr.FromInt32(1)).
			WithSelector(selector(t, naming.ComponentIngest)))
}

// ingress routes a component's public host to its Service, with TLS when a certificate Secret is named. It
// returns nil when the component has no host.
func ingress(t *v1alpha1.SupportTenant, name, component string, e v1alpha1.Exposure) *networkingv1ac.IngressApplyConfiguration {
	if e.Host == "" {
		return nil
	}
	spec := networkingv1ac.IngressSpec().
		WithRules(networkingv1ac.IngressRule().
			WithHost(e.Host).
			WithHTTP(networkingv1ac.HTTPIngressRuleValue().
				WithPaths(networkingv1ac.HTTPIngressPath().
					WithPath("/").
					WithPathType(networkingv1.PathTypePrefix).
					WithBackend(networkingv1ac.IngressBackend().
						WithService(networkingv1ac.IngressServiceBackend().
							WithName(name).
							WithPort(networkingv1ac.ServiceBackendPort().WithName("http")))))))
	if e.TLSSecretName != "" {
		spec.WithTLS(networkingv1ac.IngressTLS().WithHosts(e.Host).WithSecretName(e.TLSSecretName))
	}
	if e.IngressClassName != nil {
		spec.WithIngressClassName(*e.IngressClassName)
	}
	return networkingv1ac.Ingress(name, t.Namespace).
		WithLabels(naming.Labels(t.Name, component)).
		WithOwnerReferences(ownerReference(t)).
		WithSpec(spec)
}

// publicURL is where a component answers from outside the cluster, or its in-cluster URL when it has no host.
func (c Config) publicURL(t *v1alpha1.SupportTenant, service string, e v1alpha1.Exposure) string {
	switch {
	case e.Host == "":
		return "http://" + c.serviceHost(t, service)
	case e.TLSSecretName != "":
		return "https://" + e.Host
	default:
		return "http://" + e.Host
	}
}
