package tenant

import (
	"fmt"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/naming"
)

// minioDataDir is where each MinIO server keeps its drive.
const minioDataDir = "/data"

// minioStatefulSet runs the tenant's MinIO servers, each with its own volume.
func (c Config) minioStatefulSet(t *v1alpha1.SupportTenant) *appsv1ac.StatefulSetApplyConfiguration {
	name := naming.MinIO(t.Name)
	image := c.MinIOImage
	if t.Spec.Storage.Image != "" {
		image = t.Spec.Storage.Image
	}
	whenDeleted := appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	if t.Spec.Storage.ReclaimPolicy == v1alpha1.ReclaimDelete {
		whenDeleted = appsv1.DeletePersistentVolumeClaimRetentionPolicyType
	}
	// A claim template is not an object of its own: it has no kind or namespace, which the constructor would set.
	pvc := (&corev1ac.PersistentVolumeClaimApplyConfiguration{}).
		WithName("data").
		WithLabels(naming.Labels(t.Name, naming.ComponentStorage)).
		WithSpec(corev1ac.PersistentVolumeClaimSpec().
			WithAccessModes(corev1.ReadWriteOnce).
			WithVolumeMode(corev1.PersistentVolumeFilesystem).
			WithResources(corev1ac.VolumeResourceRequirements().
				WithRequests(corev1.ResourceList{corev1.ResourceStorage: volumeSize(t)})))
	if t.Spec.Storage.StorageClassName != nil {
		pvc.Spec.WithStorageClassName(*t.Spec.Storage.StorageClassName)
	}

	env := []*corev1ac.EnvVarApplyConfiguration{
		podIPEnv(),
		secretEnv(t, "MINIO_ROOT_USER", naming.SecretKeyRootUser),
		secretEnv(t, "MINIO_ROOT_PASSWORD", naming.SecretKeyRootPassword),
		// The console is not exposed; the operator and the tenant's services speak S3 only.
		corev1ac.EnvVar().WithName("MINIO_BROWSER").WithValue("off"),
	}
	if t.Spec.Replication != nil {
		// After an outage the backlog is driven across by re-queueing it: MinIO's "fast" replication priority
		// gives it the most workers to carry it.
		env = append(env, corev1ac.EnvVar().WithName("MINIO_API_REPLICATION_PRIORITY").WithValue("fast"))
	}
	container := corev1ac.Container().
		WithName("minio").
		WithImage(image).
		WithArgs(c.minioArgs(t)...).
		WithEnv(env...).
		WithPorts(corev1ac.ContainerPort().WithName("s3").WithContainerPort(naming.MinIOPort).WithProtocol(corev1.ProtocolTCP)).
		WithReadinessProbe(httpProbe("/minio/health/ready", "s3", 5, 3)).
		WithLivenessProbe(httpProbe("/minio/health/live", "s3", 10, 3).WithInitialDelaySeconds(10)).
		WithResources(resources(t.Spec.Storage.Resources, "250m", "512Mi", "2Gi")).
		WithSecurityContext(restrictedContainerSecurity()).
		WithVolumeMounts(
			corev1ac.VolumeMount().WithName("data").WithMountPath(minioDataDir),
			tmpMount(),
		)
	if c.ImagePullPolicy != "" {
		container.WithImagePullPolicy(c.ImagePullPolicy)
	}

	return appsv1ac.StatefulSet(name, t.Namespace).
		WithLabels(naming.Labels(t.Name, naming.ComponentStorage)).
		WithOwnerReferences(ownerReference(t)).
		WithSpec(appsv1ac.StatefulSetSpec().
			WithReplicas(replicasOrZero(t, t.Spec.Storage.Servers)).
			WithServiceName(naming.MinIOHeadless(t.Name)).
			// Distributed MinIO waits for all its servers; starting them one by one would never finish.
			WithPodManagementPolicy(appsv1.ParallelPodManagement).
			WithSelector(selector(t, naming.ComponentStorage)).
			WithPersistentVolumeClaimRetentionPolicy(appsv1ac.StatefulSetPersistentVolumeClaimRetentionPolicy().
				WithWhenDeleted(whenDeleted).
				WithWhenScaled(appsv1.RetainPersistentVolumeClaimRetentionPolicyType)).
			WithVolumeClaimTemplates(pvc).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(naming.Labels(t.Name, naming.ComponentStorage)).
				WithSpec(corev1ac.PodSpec().
					WithServiceAccountName(naming.ServiceAccount(t.Name)).
					WithAutomountServiceAccountToken(false).
					WithSecurityContext(restrictedPodSecurity()).
					WithTerminationGracePeriodSeconds(30).
					WithContainers(container).
					WithVolumes(tmpVolume()))))
}

// volumeSize is the size of each MinIO volume; the API server defaults it, the fallback serves objects that did
// not pass through it (unit tests).
func volumeSize(t *v1alpha1.SupportTenant) resource.Quantity {
	if t.Spec.Storage.Size == nil {
		return resource.MustParse(defaultVolumeSize)
	}
	return *t.Spec.Storage.Size
}

const defaultVolumeSize = "10Gi"

// minioArgs starts one drive per server: a single server serves its local drive, several servers form one
// erasure set of their drives, each named by its server's name under the headless Service. The drives are listed
// one by one rather than with MinIO's {0...n} shorthand: the same set, and each server's name is written out
// where an operator reading the pod (or a DNS stand-in) can see it.
func (c Config) minioArgs(t *v1alpha1.SupportTenant) []string {
	args := []string{"server"}
	if n := t.Spec.Storage.Servers; n > 1 {
		for i := range n {
			args = append(args, fmt.Sprintf("http://%s-%d.%s:%d%s", naming.MinIO(t.Name), i,
				c.serviceHost(t, naming.MinIOHeadless(t.Name)), naming.MinIOPort, minioDataDir))
		}
	} else {
		args = append(args, minioDataDir)
	}
	return append(args, "--address", fmt.Sprintf("$(POD_IP):%d", naming.MinIOPort), "--certs-dir", "/tmp/certs")
}

// minioServices are the S3 Service and the headless Service that gives each server a stable DNS name.
func minioServices(t *v1alpha1.SupportTenant) []*corev1ac.ServiceApplyConfiguration {
	port := corev1ac.ServicePort().WithName("s3").WithPort(naming.MinIOPort).
		WithTargetPort(intstr.FromString("s3")).WithProtocol(corev1.ProtocolTCP)
	s3 := corev1ac.Service(naming.MinIO(t.Name), t.Namespace).
		WithLabels(naming.Labels(t.Name, naming.ComponentStorage)).
		WithOwnerReferences(ownerReference(t)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(naming.SelectorLabels(t.Name, naming.ComponentStorage)).
			WithPorts(port))
	headless := corev1ac.Service(naming.MinIOHeadless(t.Name), t.Namespace).
		WithLabels(naming.Labels(t.Name, naming.ComponentStorage)).
		WithOwnerReferences(ownerReference(t)).
		WithSpec(corev1ac.ServiceSpec().
			WithClusterIP(corev1.ClusterIPNone).
			// Servers of an erasure set must find each other before any of them is ready.
			WithPublishNotReadyAddresses(true).
			WithSelector(naming.SelectorLabels(t.Name, naming.ComponentStorage)).
			WithPorts(port))
	return []*corev1ac.ServiceApplyConfiguration{s3, headless}
}

// minioDisruptionBudget keeps a distributed MinIO's erasure set writable through voluntary disruptions (node
// drains): one server at a time. A single server gets none — a budget that allows no disruption would block every
// drain of its node.
func minioDisruptionBudget(t *v1alpha1.SupportTenant) *policyv1ac.PodDisruptionBudgetApplyConfiguration {
	if t.Spec.Storage.Servers < 4 {
		return nil
	}
	return policyv1ac.PodDisruptionBudget(naming.MinIO(t.Name), t.Namespace).
		WithLabels(naming.Labels(t.Name, naming.ComponentStorage)).
		WithOwnerReferences(ownerReference(t)).
		WithSpec(policyv1ac.PodDisruptionBudgetSpec().
			WithMaxUnavailable(intstr.FromInt32(1)).
			WithSelector(selector(t, naming.ComponentStorage)))
}
