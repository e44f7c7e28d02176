package replication

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/naming"
	"github.com/supportstack/supportstack/internal/objectstore"
)

// The shared Secret holds what both copies of a replicated tenant must agree on. The home's operator makes it
// (copying the enrollment token and signing key from the home's credentials, so enrolled devices keep working
// when replication is turned on) and mirrors it into the peer; the standby's operator only reads it. Each side's
// MinIO keeps its own root credentials, which never leave the cluster.

// Policies of the users the operator makes in each copy's MinIO.
const (
	policyDataPlane   = "supportstack-dataplane"
	policyReplication = "supportstack-replication"
)

// sharedGenerators make the keys of the shared Secret that are not copied from the credentials. They run once per
// key: the users they name exist in both copies' MinIO.
var sharedGenerators = map[string]func() string{
	naming.SharedKeyDataPlaneUser:                           func() string { return "ssdp" + randomHex(8) },
	naming.SharedKeyDataPlanePassword:                       func() string { return randomBase64(30) },
	naming.SharedKeyReplicationUser(naming.RoleHome):        func() string { return "ssrh" + randomHex(8) },
	naming.SharedKeyReplicationPassword(naming.RoleHome):    func() string { return randomBase64(30) },
	naming.SharedKeyReplicationUser(naming.RoleStandby):     func() string { return "ssrs" + randomHex(8) },
	naming.SharedKeyReplicationPassword(naming.RoleStandby): func() string { return randomBase64(30) },
}

// copiedKeys come from the home's credentials Secret.
var copiedKeys = []string{naming.SecretKeyEnrollmentToken, naming.SecretKeySigningKey,
	naming.SecretKeyDashboardAdminPassword, naming.SecretKeyDashboardSessionKey}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomBase64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sharedSecretStep makes the shared Secret on a home and reads it on a standby.
func (r *Reconciler) sharedSecretStep(ctx context.Context, st *state) (*ctrl.Result, error) {
	t := st.tenant
	if !t.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	if !isHome(t) {
		secret := &corev1.Secret{}
		switch err := r.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: naming.SharedSecret(t.Name)}, secret); {
		case apierrors.IsNotFound(err):
			st.obs.waitingForHome = true
		case err != nil:
			return nil, fmt.Errorf("get Secret %s: %w", naming.SharedSecret(t.Name), err)
		default:
			st.shared = secret.Data
		}
		return nil, nil
	}
	data, err := r.ensureShared(ctx, t)
	if err != nil {
		if err == errNoCredentials {
			return &ctrl.Result{RequeueAfter: r.resyncPeriod() / 10}, nil
		}
		return nil, err
	}
	st.shared = data
	return nil, nil
}

// ensureShared creates or completes the home's shared Secret. Generated values never change; the copied ones
// follow the credentials.
func (r *Reconciler) ensureShared(ctx context.Context, t *v1alpha1.SupportTenant) (map[string][]byte, error) {
	creds := &corev1.Secret{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: naming.CredentialsSecret(t.Name)}, creds); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, errNoCredentials
		}
		return nil, fmt.Errorf("get Secret %s: %w", naming.CredentialsSecret(t.Name), err)
	}
	name := naming.SharedSecret(t.Name)
	current := &corev1.Secret{}
	err := r.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: name}, current)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("get Secret %s: %w", name, err)
	}
	exists := err == nil
	desired := current.DeepCopy()
	if !exists {
		desired = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: name,
			Labels: naming.Labels(t.Name, "")}, Type: corev1.SecretTypeOpaque}
	}
	if desired.Data == nil {
		desired.Data = map[string][]byte{}
	}
	for key, generate := range sharedGenerators {
		if len(desired.Data[key]) == 0 {
			desired.Data[key] = []byte(generate())
		}
	}
	for _, key := range copiedKeys {
		if v := creds.Data[key]; len(v) > 0 {
			desired.Data[key] = v
		}
	}
	if err := controllerutil.SetControllerReference(t, desired, r.Scheme()); err != nil {
		return nil, fmt.Errorf("own Secret %s: %w", name, err)
	}
	switch {
	case !exists:
		if err := r.Create(ctx, desired); err != nil {
			return nil, fmt.Errorf("create Secret %s: %w", name, err)
		}
		r.Recorder.Eventf(t, desired, corev1.EventTypeNormal, "SharedSecretCreated", "Replicate",
			"Created Secret %s with what both copies share", name)
	case !maps.EqualFunc(current.Data, desired.Data, bytesEqual) || len(current.OwnerReferences) != len(desired.OwnerReferences):
		if err := r.Patch(ctx, desired, client.MergeFromWithOptions(current, client.MergeFromWithOptimisticLock{})); err != nil {
			return nil, fmt.Errorf("update Secret %s: %w", name, err)
		}
	}
	return desired.Data, nil
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// target is what the monitor needs for the tenant's copy in this cluster.
func (r *Reconciler) target(ctx context.Context, t *v1alpha1.SupportTenant, pc *v1alpha1.PeerCluster, shared map[string][]byte) (Target, error) {
	creds := &corev1.Secret{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: naming.CredentialsSecret(t.Name)}, creds); err != nil {
		return Target{}, fmt.Errorf("get Secret %s: %w", naming.CredentialsSecret(t.Name), err)
	}
	local, err := r.Storage.StorageURL(ctx, t)
	if err != nil {
		return Target{}, fmt.Errorf("resolve this copy's storage: %w", err)
	}
	peerURL, err := r.PeerURL(pc, pc.StorageURL(t.Namespace, t.Name))
	if err != nil {
		return Target{}, fmt.Errorf("resolve the peer's storage: %w", err)
	}
	own, other := role(t)
	get := func(key string) string { return string(shared[key]) }
	for _, key := range []string{naming.SharedKeyDataPlaneUser, naming.SharedKeyReplicationUser(own), naming.SharedKeyReplicationUser(other)} {
		if get(key) == "" {
			return Target{}, fmt.Errorf("Secret %s lacks %s", naming.SharedSecret(t.Name), key)
		}
	}
	return Target{
		Role: own, PeerRole: other, Bucket: naming.BucketName,
		Local: objectstore.Endpoint{URL: local, AccessKey: string(creds.Data[naming.SecretKeyRootUser]),
			SecretKey: string(creds.Data[naming.SecretKeyRootPassword])},
		Users: []objectstore.User{
			{AccessKey: get(naming.SharedKeyDataPlaneUser), SecretKey: get(naming.SharedKeyDataPlanePassword),
				Policy: policyDataPlane, Document: objectstore.DataPlanePolicy(naming.BucketName)},
			{AccessKey: get(naming.SharedKeyReplicationUser(own)), SecretKey: get(naming.SharedKeyReplicationPassword(own)),
				Policy: policyReplication, Document: objectstore.ReplicationPolicy(naming.BucketName)},
		},
		DataPlaneUser: get(naming.SharedKeyDataPlaneUser),
		Remote: objectstore.Remote{URL: peerURL, AccessKey: get(naming.SharedKeyReplicationUser(other)),
			SecretKey: get(naming.SharedKeyReplicationPassword(other)), Bucket: naming.BucketName},
		Peer: objectstore.Endpoint{URL: peerURL, AccessKey: get(naming.SharedKeyDataPlaneUser),
			SecretKey: get(naming.SharedKeyDataPlanePassword)},
		Object: t.DeepCopy(),
	}, nil
}
