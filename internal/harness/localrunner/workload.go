package localrunner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// kind is the kind of workload whose pods the runner runs.
type kind string

const (
	kindDeployment  kind = "Deployment"
	kindStatefulSet kind = "StatefulSet"
)

// workloadKey names one workload.
type workloadKey struct {
	Kind      kind
	Namespace string
	Name      string
}

func (k workloadKey) String() string { return fmt.Sprintf("%s %s/%s", k.Kind, k.Namespace, k.Name) }

// workload is what the runner needs of a Deployment or StatefulSet.
type workload struct {
	key      workloadKey
	obj      client.Object
	replicas int32
	template *corev1.PodTemplateSpec
	// claims are a StatefulSet's volumeClaimTemplates, by name.
	claims map[string]bool
	// hash identifies the pod template; a pod started from another hash is
	// replaced.
	hash string
}

func newObject(k kind) client.Object {
	if k == kindStatefulSet {
		return &appsv1.StatefulSet{}
	}
	return &appsv1.Deployment{}
}

// workloadOf extracts the pod-running parts of a fetched Deployment or
// StatefulSet.
func workloadOf(obj client.Object) (*workload, error) {
	w := &workload{obj: obj, claims: map[string]bool{}}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		w.key = workloadKey{Kind: kindDeployment, Namespace: o.Namespace, Name: o.Name}
		w.replicas = ptr.Deref(o.Spec.Replicas, 1)
		w.template = &o.Spec.Template
	case *appsv1.StatefulSet:
		w.key = workloadKey{Kind: kindStatefulSet, Namespace: o.Namespace, Name: o.Name}
		w.replicas = ptr.Deref(o.Spec.Replicas, 1)
		w.template = &o.Spec.Template
		for _, c := range o.Spec.VolumeClaimTemplates {
			w.claims[c.Name] = true
		}
	default:
		return nil, fmt.Errorf("unsupported workload type %T", obj)
	}
	h, err := templateHash(w.template)
	if err != nil {
		return nil, err
	}
	w.hash = h
	return w, nil
}

// templateHash is a short digest of a pod template, like the
// pod-template-hash the controllers use to tell revisions apart.
func templateHash(t *corev1.PodTemplateSpec) (string, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return "", fmt.Errorf("hash pod template: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:5]), nil
}

// podName is the name of replica ordinal of a workload. Deployments get
// stable names too, which keeps state and log paths predictable.
func podName(workload string, ordinal int32) string {
	return fmt.Sprintf("%s-%d", workload, ordinal)
}
