package replication

import (
	"context"
	"errors"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/controllers/peer"
	"github.com/supportstack/supportstack/internal/naming"
)

// The home's operator mirrors into the peer cluster: the namespace (created when missing, never deleted), the
// standby tenant and its shared Secret (owned by the standby, so that the peer's garbage collector removes it
// with the standby). The standby's spec is the home's, but for the exposure of ingest and dashboard, which names
// hosts of the peer cluster's own and is left to that cluster's admins; any other edit of the standby's spec is
// reverted.

// standbyLabels mark what this cluster's operator made in a peer.
func (r *Reconciler) standbyLabels(t *v1alpha1.SupportTenant) map[string]string {
	l := naming.Labels(t.Name, "")
	l[naming.LabelStandbyOf] = r.ClusterName
	return l
}

// standbySpec is the standby's spec for home t, keeping the standby's own exposure.
func (r *Reconciler) standbySpec(t *v1alpha1.SupportTenant, current *v1alpha1.SupportTenant) v1alpha1.SupportTenantSpec {
	spec := *t.Spec.DeepCopy()
	spec.Replication = &v1alpha1.ReplicationSpec{Peer: r.ClusterName, StandbyOf: r.ClusterName}
	spec.Ingest.Exposure, spec.Dashboard.Exposure = v1alpha1.Exposure{}, v1alpha1.Exposure{}
	if current != nil {
		spec.Ingest.Exposure, spec.Dashboard.Exposure = current.Spec.Ingest.Exposure, current.Spec.Dashboard.Exposure
	}
	return spec
}

// errConflict: the peer holds a tenant of the same name that is not this home's standby.
var errConflict = errors.New("conflict")

// mirrorStep mirrors a home tenant into its peer cluster.
func (r *Reconciler) mirrorStep(ctx context.Context, st *state) (*ctrl.Result, error) {
	t := st.tenant
	if !isHome(t) || !t.DeletionTimestamp.IsZero() || st.peerCluster == nil || st.shared == nil {
		return nil, nil
	}
	if r.ClusterName == "" {
		st.obs.clusterNameMissing = true
		return nil, nil
	}
	p, err := r.Registry.Get(t.Spec.Replication.Peer)
	if err != nil {
		st.obs.peerAPIErr = err
		return nil, nil
	}
	if err := r.mirror(ctx, p, t, st.shared); err != nil {
		if errors.Is(err, errConflict) {
			st.obs.conflict = true
		}
		st.obs.mirrorErr = err
		var notReady *peer.NotReadyError
		if isTransport(err) || errors.As(err, &notReady) {
			st.obs.peerAPIErr = err
		}
	}
	return nil, nil
}

// isTransport reports whether err means the peer's API server could not be talked to (rather than refused).
func isTransport(err error) bool {
	var status apierrors.APIStatus
	return !errors.As(err, &status) && !errors.Is(err, errConflict)
}

// mirror creates or updates the namespace, the standby and its shared Secret in the peer.
func (r *Reconciler) mirror(ctx context.Context, p peer.Peer, t *v1alpha1.SupportTenant, shared map[string][]byte) error {
	ns := &corev1.Namespace{}
	switch err := p.Reader.Get(ctx, client.ObjectKey{Name: t.Namespace}, ns); {
	case apierrors.IsNotFound(err):
		ns = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: t.Namespace,
			Labels: map[string]string{naming.LabelManagedBy: naming.ManagedBy, naming.LabelStandbyOf: r.ClusterName}}}
		if err := p.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s in peer cluster %s: %w", t.Namespace, p.Name, err)
		}
		r.Recorder.Eventf(t, nil, corev1.EventTypeNormal, "PeerNamespaceCreated", "Mirror",
			"Created namespace %s in peer cluster %s", t.Namespace, p.Name)
	case err != nil:
		return fmt.Errorf("get namespace %s in peer cluster %s: %w", t.Namespace, p.Name, err)
	}

	standby, err := r.mirrorStandby(ctx, p, t)
	if err != nil {
		return err
	}
	return r.mirrorShared(ctx, p, t, standby, shared)
}

// mirrorStandby creates the standby or puts its spec back to the home's. The standby's own operator writes its
// status meanwhile, so an update that loses the race is tried again on a fresh read.
func (r *Reconciler) mirrorStandby(ctx context.Context, p peer.Peer, t *v1alpha1.SupportTenant) (*v1alpha1.SupportTenant, error) {
	var standby *v1alpha1.SupportTenant
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var err error
		standby, err = r.mirrorStandbyOnce(ctx, p, t)
		return err
	})
	return standby, err
}

func (r *Reconciler) mirrorStandbyOnce(ctx context.Context, p peer.Peer, t *v1alpha1.SupportTenant) (*v1alpha1.SupportTenant, error) {
	current := &v1alpha1.SupportTenant{}
	err := p.Reader.Get(ctx, client.ObjectKeyFromObject(t), current)
	if apierrors.IsNotFound(err) {
		standby := &v1alpha1.SupportTenant{
			ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: t.Name, Labels: r.standbyLabels(t)},
			Spec:       r.standbySpec(t, nil),
		}
		if err := p.Client.Create(ctx, standby); err != nil {
			return nil, fmt.Errorf("create standby in peer cluster %s: %w", p.Name, err)
		}
		log.FromContext(ctx).Info("Created the standby in the peer cluster", "peerCluster", p.Name)
		r.Recorder.Eventf(t, nil, corev1.EventTypeNormal, "StandbyCreated", "Mirror",
			"Created the standby %s/%s in peer cluster %s", t.Namespace, t.Name, p.Name)
		return standby, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get standby in peer cluster %s: %w", p.Name, err)
	}
	if current.Spec.Replication == nil || current.Spec.Replication.StandbyOf != r.ClusterName {
		return nil, fmt.Errorf("%w: peer cluster %s already has a SupportTenant %s/%s that is not the standby of %s: "+
			"rename one of them", errConflict, p.Name, t.Namespace, t.Name, r.ClusterName)
	}
	desired := current.DeepCopy()
	desired.Spec = r.standbySpec(t, current)
	if desired.Labels == nil {
		desired.Labels = map[string]string{}
	}
	maps.Copy(desired.Labels, r.standbyLabels(t))
	if equality.Semantic.DeepEqual(current.Spec, desired.Spec) && equality.Semantic.DeepEqual(current.Labels, desired.Labels) {
		return current, nil
	}
	// An update, not an apply: fields someone added by hand must go too.
	if err := p.Client.Update(ctx, desired); err != nil {
		if apierrors.IsConflict(err) {
			return nil, err // retried as it is
		}
		return nil, fmt.Errorf("update standby in peer cluster %s: %w", p.Name, err)
	}
	log.FromContext(ctx).Info("Put the standby's spec back to the home's", "peerCluster", p.Name)
	r.Recorder.Eventf(t, nil, corev1.EventTypeNormal, "StandbyUpdated", "Mirror",
		"Updated the standby in peer cluster %s to the home's spec", p.Name)
	return desired, nil
}

// mirrorShared creates or updates the standby's shared Secret, owned by the standby.
func (r *Reconciler) mirrorShared(ctx context.Context, p peer.Peer, t, standby *v1alpha1.SupportTenant, shared map[string][]byte) error {
	name := naming.SharedSecret(t.Name)
	current := &corev1.Secret{}
	err := p.Reader.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: name}, current)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("get Secret %s in peer cluster %s: %w", name, p.Name, err)
	}
	exists := err == nil
	desired := current.DeepCopy()
	if !exists {
		desired = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: name}, Type: corev1.SecretTypeOpaque}
	}
	desired.Labels = r.standbyLabels(t)
	desired.Data = maps.Clone(shared)
	desired.OwnerReferences = nil
	if err := controllerutil.SetControllerReference(standby, desired, p.Client.Scheme()); err != nil {
		return fmt.Errorf("own Secret %s: %w", name, err)
	}
	switch {
	case !exists:
		if err := p.Client.Create(ctx, desired); err != nil {
			return fmt.Errorf("create Secret %s in peer cluster %s: %w", name, p.Name, err)
		}
	case !maps.EqualFunc(current.Data, desired.Data, bytesEqual) || !equality.Semantic.DeepEqual(current.Labels, desired.Labels) ||
		!equality.Semantic.DeepEqual(current.OwnerReferences, desired.OwnerReferences):
		if err := p.Client.Update(ctx, desired); err != nil {
			return fmt.Errorf("update Secret %s in peer cluster %s: %w", name, p.Name, err)
		}
	}
	return nil
}

// deletionStep deletes the standby with its home (unless the home keeps it) before letting the home go, and
// keeps the finalizer on homes that need it.
func (r *Reconciler) deletionStep(ctx context.Context, st *state) (*ctrl.Result, error) {
	t := st.tenant
	home := isHome(t)
	leaving := !t.DeletionTimestamp.IsZero() || !home
	if !leaving {
		if !controllerutil.ContainsFinalizer(t, Finalizer) || t.Annotations[annotationPeer] != t.Spec.Replication.Peer {
			patch := client.MergeFrom(t.DeepCopy())
			controllerutil.AddFinalizer(t, Finalizer)
			if t.Annotations == nil {
				t.Annotations = map[string]string{}
			}
			t.Annotations[annotationPeer] = t.Spec.Replication.Peer
			if err := r.Patch(ctx, t, patch); err != nil {
				return nil, fmt.Errorf("add finalizer: %w", err)
			}
		}
		return nil, nil
	}
	if !controllerutil.ContainsFinalizer(t, Finalizer) {
		if !t.DeletionTimestamp.IsZero() {
			r.Monitor.Forget(client.ObjectKeyFromObject(t))
			return &ctrl.Result{}, nil
		}
		return nil, nil
	}
	// A home being deleted, or a tenant that stopped being a home (replication removed from its spec).
	if err := r.deleteStandby(ctx, t); err != nil {
		r.Recorder.Eventf(t, nil, corev1.EventTypeWarning, "StandbyNotDeleted", "Delete",
			"Cannot delete the standby yet (%v); it is retried. Remove the finalizer %s to leave the standby in place.", err, Finalizer)
		return &ctrl.Result{RequeueAfter: r.resyncPeriod() / 3}, nil
	}
	patch := client.MergeFrom(t.DeepCopy())
	controllerutil.RemoveFinalizer(t, Finalizer)
	delete(t.Annotations, annotationPeer)
	if err := r.Patch(ctx, t, patch); err != nil {
		return nil, fmt.Errorf("remove finalizer: %w", err)
	}
	if !t.DeletionTimestamp.IsZero() {
		r.Monitor.Forget(client.ObjectKeyFromObject(t))
		return &ctrl.Result{}, nil
	}
	return nil, nil
}

// deleteStandby deletes the home's standby in the peer cluster, unless the home keeps it or the peer is gone.
func (r *Reconciler) deleteStandby(ctx context.Context, t *v1alpha1.SupportTenant) error {
	peerName := ""
	keep := false
	if t.Spec.Replication != nil {
		peerName, keep = t.Spec.Replication.Peer, t.Spec.Replication.KeepStandby
	} else {
		peerName = t.Annotations[annotationPeer]
	}
	if keep || peerName == "" {
		return nil
	}
	if err := r.Get(ctx, client.ObjectKey{Name: peerName}, &v1alpha1.PeerCluster{}); apierrors.IsNotFound(err) {
		r.Recorder.Eventf(t, nil, corev1.EventTypeWarning, "StandbyLeft", "Delete",
			"PeerCluster %s no longer exists: the standby in it, if any, is left in place", peerName)
		return nil
	}
	p, err := r.Registry.Get(peerName)
	if err != nil {
		return err
	}
	standby := &v1alpha1.SupportTenant{}
	switch err := p.Reader.Get(ctx, client.ObjectKeyFromObject(t), standby); {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("get standby in peer cluster %s: %w", peerName, err)
	case standby.Spec.Replication == nil || standby.Spec.Replication.StandbyOf != r.ClusterName:
		return nil // not ours
	}
	if err := p.Client.Delete(ctx, standby, client.Preconditions{UID: &standby.UID}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete standby in peer cluster %s: %w", peerName, err)
	}
	r.Recorder.Eventf(t, nil, corev1.EventTypeNormal, "StandbyDeleted", "Delete",
		"Deleted the standby %s/%s in peer cluster %s", t.Namespace, t.Name, peerName)
	return nil
}

// annotationPeer remembers on a home which peer holds its standby, for when replication is removed from its
// spec and the standby must be deleted all the same.
const annotationPeer = "supportstack.io/standby-peer"
