package tenant

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/api/v1alpha1"
)

// quotaStep compares what the tenant's pods and volumes need with the hard limits of its namespace's
// ResourceQuotas. In a cluster a quota refuses the pods in the ReplicaSet and StatefulSet controllers, where the
// tenant's status would show no more than "0/2 ingest pods ready"; a condition that names the quota, the
// resource and both amounts says what to change. The quota is observed state, not a failure to retry: the step
// returns no error, and a change to a quota is watched.
func (r *Reconciler) quotaStep(ctx context.Context, st *state) (*ctrl.Result, error) {
	if st.tenant.Spec.Suspend {
		return nil, nil
	}
	var quotas corev1.ResourceQuotaList
	if err := r.List(ctx, &quotas, client.InNamespace(st.tenant.Namespace)); err != nil {
		return nil, fmt.Errorf("list resource quotas: %w", err)
	}
	st.obs.quotaErr = quotaExceeded(r.Config.needs(st.tenant), quotas.Items)
	return nil, nil
}

// quotaExceeded reports each resource of which need exceeds a quota's hard limit. Quotas with scopes are left
// out: whether they cover the tenant's pods depends on more than their spec.
func quotaExceeded(need corev1.ResourceList, quotas []corev1.ResourceQuota) error {
	var over []string
	for _, q := range quotas {
		if len(q.Spec.Scopes) > 0 || q.Spec.ScopeSelector != nil {
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(q.Spec.Hard)) {
			hard := q.Spec.Hard[name]
			if n, ok := need[name]; ok && n.Cmp(hard) > 0 {
				over = append(over, fmt.Sprintf("ResourceQuota %s allows %s %s, the tenant needs %s", q.Name, name, hard.String(), n.String()))
			}
		}
	}
	if len(over) == 0 {
		return nil
	}
	return fmt.Errorf("%s: lower the tenant's replicas, servers, size or resources, or raise the quota", strings.Join(over, "; "))
}

// needs sums what the tenant's pods request and are limited to, how many pods and claims it has and what its
// volumes claim, under the names ResourceQuotas use; its workloads at their wanted replicas (ingest at its minimum:
// the autoscaler may want more, and the quota will hold it back).
func (c Config) needs(t *v1alpha1.SupportTenant) corev1.ResourceList {
	need := corev1.ResourceList{}
	add := func(name corev1.ResourceName, q resource.Quantity, times int32) {
		sum := need[name]
		for range times {
			sum.Add(q)
		}
		need[name] = sum
	}
	pods := func(replicas int32, spec *corev1ac.PodSpecApplyConfiguration) {
		add(corev1.ResourcePods, resource.MustParse("1"), replicas)
		for _, ctr := range spec.Containers {
			if ctr.Resources == nil {
				continue
			}
			for name, q := range ptr.Deref(ctr.Resources.Requests, nil) {
				add("requests."+name, q, replicas)
				if name == corev1.ResourceCPU || name == corev1.ResourceMemory {
					add(name, q, replicas) // the short names count requests too
				}
			}
			for name, q := range ptr.Deref(ctr.Resources.Limits, nil) {
				add("limits."+name, q, replicas)
			}
		}
	}
	for _, ch := range c.children(t, world{scale: ingestScale{current: -1}}) {
		switch ac := ch.desired.(type) {
		case *appsv1ac.StatefulSetApplyConfiguration:
			n := ptr.Deref(ac.Spec.Replicas, 1)
			pods(n, ac.Spec.Template.Spec)
			for _, claim := range ac.Spec.VolumeClaimTemplates {
				size := ptr.Deref(claim.Spec.Resources.Requests, nil)[corev1.ResourceStorage]
				add(corev1.ResourceRequestsStorage, size, n)
				add(corev1.ResourcePersistentVolumeClaims, resource.MustParse("1"), n)
				if class := claim.Spec.StorageClassName; class != nil {
					add(corev1.ResourceName(*class+".storageclass.storage.k8s.io/requests.storage"), size, n)
					add(corev1.ResourceName(*class+".storageclass.storage.k8s.io/persistentvolumeclaims"), resource.MustParse("1"), n)
				}
			}
		case *appsv1ac.DeploymentApplyConfiguration:
			pods(ptr.Deref(ac.Spec.Replicas, 1), ac.Spec.Template.Spec)
		}
	}
	return need
}
