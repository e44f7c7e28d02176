package tenant

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/naming"
)

// Config is the operator-wide configuration the rendered objects depend on.
type Config struct {
	// MinIOImage is the default MinIO image; a tenant may override it.
	MinIOImage string
	// SupportstackImage runs the ingest and dashboard subcommands: the operator's own image.
	SupportstackImage string
	// ImagePullPolicy of every container; empty leaves the Kubernetes default.
	ImagePullPolicy corev1.PullPolicy
	// ClusterDomain is the DNS suffix of Services, normally cluster.local.
	ClusterDomain string
	// OperatorNamespace is where the operator runs; its pods may reach tenants' MinIO.
	OperatorNamespace string
}

// Pods run as this non-root user; MinIO and the supportstack image both work under any UID.
const podUser = 65532

// ownerReference makes t the controller of a child, so that garbage collection deletes the child with it.
func ownerReference(t *v1alpha1.SupportTenant) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(v1alpha1.GroupVersion.String()).
		WithKind("SupportTenant").
		WithName(t.Name).
		WithUID(t.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}

// serviceHost is the in-cluster DNS name of one of the tenant's Services.
func (c Config) serviceHost(t *v1alpha1.SupportTenant, service string) string {
	return fmt.Sprintf("%s.%s.svc.%s", service, t.Namespace, c.ClusterDomain)
}

// storageEndpoint is the URL at which the tenant's pods reach its MinIO.
func (c Config) storageEndpoint(t *v1alpha1.SupportTenant) string {
	return fmt.Sprintf("http://%s:%d", c.serviceHost(t, naming.MinIO(t.Name)), naming.MinIOPort)
}

// restrictedPodSecurity satisfies the restricted Pod Security profile at pod level.
func restrictedPodSecurity() *corev1ac.PodSecurityContextApplyConfiguration {
	return corev1ac.PodSecurityContext().
		WithRunAsNonRoot(true).
		WithRunAsUser(podUser).
		WithRunAsGroup(podUser).
		WithFSGroup(podUser).
		WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))
}

// restrictedContainerSecurity satisfies the restricted Pod Security profile at container level.
func restrictedContainerSecurity() *corev1ac.SecurityContextApplyConfiguration {
	return corev1ac.SecurityContext().
		WithAllowPrivilegeEscalation(false).
		WithReadOnlyRootFilesystem(true).
		WithRunAsNonRoot(true).
		WithCapabilities(corev1ac.Capabilities().WithDrop("ALL")).
		WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))
}

// podIPEnv gives the container its pod IP, which it binds to: on one machine without a kubelet the local
// workload runner gives each pod its own loopback address, so binding to the pod IP keeps pods from colliding.
func podIPEnv() *corev1ac.EnvVarApplyConfiguration {
	return corev1ac.EnvVar().WithName("POD_IP").
		WithValueFrom(corev1ac.EnvVarSource().WithFieldRef(corev1ac.ObjectFieldSelector().WithAPIVersion("v1").WithFieldPath("status.podIP")))
}

// secretEnv reads an environment variable from the tenant's credentials Secret.
func secretEnv(t *v1alpha1.SupportTenant, name, key string) *corev1ac.EnvVarApplyConfiguration {
	return corev1ac.EnvVar().WithName(name).
		WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(
			corev1ac.SecretKeySelector().WithName(naming.CredentialsSecret(t.Name)).WithKey(key)))
}

// sharedEnv reads an environment variable from a replicated tenant's shared Secret.
func sharedEnv(t *v1alpha1.SupportTenant, name, key string) *corev1ac.EnvVarApplyConfiguration {
	return corev1ac.EnvVar().WithName(name).
		WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(
			corev1ac.SecretKeySelector().WithName(naming.SharedSecret(t.Name)).WithKey(key)))
}

// resources renders the tenant's override or the given defaults.
func resources(override *corev1.ResourceRequirements, cpu, memory, memoryLimit string) *corev1ac.ResourceRequirementsApplyConfiguration {
	r := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse(cpu),
			corev1.ResourceMemory: resource.MustParse(memory),
		},
		Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(memoryLimit)},
	}
	if override != nil {
		r = *override.DeepCopy()
	}
	// Every container's scratch space is bounded, also under a tenant's own resources: a tenant that fills a
	// node's disk (logs, /tmp) is evicted rather than harming the other tenants on the node.
	if _, ok := r.Requests[corev1.ResourceEphemeralStorage]; !ok {
		if r.Requests == nil {
			r.Requests = corev1.ResourceList{}
		}
		r.Requests[corev1.ResourceEphemeralStorage] = resource.MustParse(ephemeralRequest)
	}
	if _, ok := r.Limits[corev1.ResourceEphemeralStorage]; !ok {
		if r.Limits == nil {
			r.Limits = corev1.ResourceList{}
		}
		r.Limits[corev1.ResourceEphemeralStorage] = resource.MustParse(ephemeralLimit)
	}
	ac := corev1ac.ResourceRequirements()
	if len(r.Requests) > 0 {
		ac.WithRequests(r.Requests)
	}
	if len(r.Limits) > 0 {
		ac.WithLimits(r.Limits)
	}
	return ac
}

// httpProbe probes path on the named container port.
func httpProbe(path, port string, period, failures int32) *corev1ac.ProbeApplyConfiguration {
	return corev1ac.Probe().
		WithHTTPGet(corev1ac.HTTPGetAction().WithPath(path).WithPort(intstr.FromString(port))).
		WithPeriodSeconds(period).
		WithTimeoutSeconds(2).
		WithFailureThreshold(failures)
}

// Bounds of a container's ephemeral storage (its logs and /tmp) unless the tenant's resources set them.
const (
	ephemeralRequest = "64Mi"
	ephemeralLimit   = "1Gi"
	tmpSizeLimit     = "512Mi"
)

// tmpVolume is a writable /tmp for containers whose root filesystem is read-only, bounded in size.
func tmpVolume() *corev1ac.VolumeApplyConfiguration {
	return corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(resource.MustParse(tmpSizeLimit)))
}

func tmpMount() *corev1ac.VolumeMountApplyConfiguration {
	return corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp")
}

// replicasOrZero is the replica count of a data-plane workload, zero while the tenant is suspended.
func replicasOrZero(t *v1alpha1.SupportTenant, n int32) int32 {
	if t.Spec.Suspend {
		return 0
	}
	return n
}

// selector selects one component's pods.
func selector(t *v1alpha1.SupportTenant, component string) *metav1ac.LabelSelectorApplyConfiguration {
	return metav1ac.LabelSelector().WithMatchLabels(naming.SelectorLabels(t.Name, component))
}
