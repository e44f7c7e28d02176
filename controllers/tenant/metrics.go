package tenant

import (
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/supportstack/supportstack/api/v1alpha1"
)

// tenantCondition exports every tenant's conditions the way kube-state-metrics exports Pod conditions: one
// series per status, 1 for the current one, so that alerts can match on type and status.
var tenantCondition = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "supportstack_tenant_condition",
	Help: "Condition of a SupportTenant: 1 for the condition's current status, 0 for the others.",
}, []string{"namespace", "tenant", "type", "status"})

// tenantStorageServers counts a tenant's MinIO servers, wanted and ready: an erasure set serves with some down,
// and the difference is what an alert on reduced redundancy needs.
var tenantStorageServers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "supportstack_tenant_storage_servers",
	Help: "MinIO servers of a SupportTenant in this cluster: state=desired (spec.storage.servers) or ready.",
}, []string{"namespace", "tenant", "state"})

func init() {
	metrics.Registry.MustRegister(tenantCondition, tenantStorageServers)
}

// recordStorageMetrics exports how many of the tenant's MinIO servers are ready.
func recordStorageMetrics(t *v1alpha1.SupportTenant, w workload) {
	tenantStorageServers.WithLabelValues(t.Namespace, t.Name, "desired").Set(float64(w.desired))
	tenantStorageServers.WithLabelValues(t.Namespace, t.Name, "ready").Set(float64(w.ready))
}

// recordConditionMetrics exports the tenant's conditions.
func recordConditionMetrics(t *v1alpha1.SupportTenant, conds []metav1.Condition) {
	for _, c := range conds {
		for _, s := range []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown} {
			v := 0.0
			if c.Status == s {
				v = 1
			}
			tenantCondition.WithLabelValues(t.Namespace, t.Name, c.Type, string(s)).Set(v)
		}
	}
}

// forgetMetrics removes a deleted tenant's series.
func forgetMetrics(namespace, name string) {
	tenantCondition.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "tenant": name})
	tenantStorageServers.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "tenant": name})
}
