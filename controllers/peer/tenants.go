package peer

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/supportstack/supportstack/api/v1alpha1"
)

// TenantIndex indexes SupportTenants by the PeerCluster they replicate to.
const TenantIndex = "spec.replication.peer"

// IndexTenants registers TenantIndex; the manager registers it once for every controller that uses it.
func IndexTenants(ctx context.Context, indexer client.FieldIndexer) error {
	return indexer.IndexField(ctx, &v1alpha1.SupportTenant{}, TenantIndex, func(o client.Object) []string {
		if t := o.(*v1alpha1.SupportTenant); t.Spec.Replication != nil {
			return []string{t.Spec.Replication.Peer}
		}
		return nil
	})
}

// TenantsOf maps a PeerCluster to the tenants that replicate to it, for a controller that follows PeerClusters.
func TenantsOf(c client.Reader) handler.MapFunc {
	return func(ctx context.Context, pc client.Object) []reconcile.Request {
		var list v1alpha1.SupportTenantList
		if err := c.List(ctx, &list, client.MatchingFields{TenantIndex: pc.GetName()}); err != nil {
			log.FromContext(ctx).Error(err, "Cannot list the tenants of a PeerCluster", "peerCluster", pc.GetName())
			return nil
		}
		return TenantRequests(&list)
	}
}

// TenantRequests are reconcile requests for the tenants of a list.
func TenantRequests(list *v1alpha1.SupportTenantList) []reconcile.Request {
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, t := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&t)})
	}
	return out
}
