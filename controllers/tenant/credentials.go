package tenant

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/naming"
)

// credentialGenerators make each key of the credentials Secret. They run once per key, ever: rotating a MinIO
// root password or a signing key by accident would lock out the tenant's pods or every enrolled device.
var credentialGenerators = map[string]func() (string, error){
	naming.SecretKeyRootUser:               func() (string, error) { return randomHex("st", 10) },
	naming.SecretKeyRootPassword:           func() (string, error) { return randomBase64(30) },
	naming.SecretKeyEnrollmentToken:        func() (string, error) { return randomBase64(32) },
	naming.SecretKeySigningKey:             func() (string, error) { return randomBase64(32) },
	naming.SecretKeyDashboardAdminPassword: func() (string, error) { return randomBase64(18) },
	naming.SecretKeyDashboardSessionKey:    func() (string, error) { return randomBase64(32) },
}

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("read random bytes: %w", err)
	}
	return b, nil
}

func randomHex(prefix string, n int) (string, error) {
	b, err := randomBytes(n)
	return prefix + hex.EncodeToString(b), err
}

func randomBase64(n int) (string, error) {
	b, err := randomBytes(n)
	return base64.RawURLEncoding.EncodeToString(b), err
}

// ensureCredentials creates the tenant's credentials Secret when it is missing and adds keys that a Secret made
// by an older operator lacks. Existing values are never changed. It returns the Secret's data.
//
// The Secret follows the volumes: with reclaimPolicy Delete the tenant owns it and garbage collection removes
// it with the tenant; with Retain (the default) it has no owner and outlives the tenant, so that a tenant
// recreated on its retained volumes gets its MinIO credentials, signing key and enrollment token back, and its
// enrolled agents keep working. A retained Secret carries the operator's labels and the tenant's name, which is
// how it is adopted.
func (r *Reconciler) ensureCredentials(ctx context.Context, t *v1alpha1.SupportTenant) (map[string][]byte, bool, error) {
	name := naming.CredentialsSecret(t.Name)
	secret := &corev1.Secret{}
	err := r.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: name}, secret)
	if apierrors.IsNotFound(err) {
		secret = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: name, Labels: naming.Labels(t.Name, "")},
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{},
		}
		if err := fillCredentials(secret.Data); err != nil {
			return nil, false, err
		}
		if err := r.setCredentialsOwner(t, secret); err != nil {
			return nil, false, err
		}
		if err := r.Create(ctx, secret); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return r.existingCredentials(ctx, t, name)
			}
			return nil, false, fmt.Errorf("create Secret %s: %w", name, err)
		}
		return secret.Data, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get Secret %s: %w", name, err)
	}
	if !credentialsBelongTo(secret, t) {
		return nil, false, reconcile.TerminalError(fmt.Errorf(
			"secret %s belongs to another owner: rename or delete it", name))
	}
	desired := secret.DeepCopy()
	if desired.Data == nil {
		desired.Data = map[string][]byte{}
	}
	if err := fillCredentials(desired.Data); err != nil {
		return nil, false, err
	}
	if err := r.setCredentialsOwner(t, desired); err != nil {
		return nil, false, err
	}
	added := len(desired.Data) != len(secret.Data)
	if !added && equality.Semantic.DeepEqual(desired.OwnerReferences, secret.OwnerReferences) {
		return secret.Data, false, nil
	}
	if err := r.Patch(ctx, desired, client.MergeFromWithOptions(secret, client.MergeFromWithOptimisticLock{})); err != nil {
		return nil, false, fmt.Errorf("update Secret %s: %w", name, err)
	}
	return desired.Data, added, nil
}

// setCredentialsOwner makes the tenant the Secret's controller with reclaimPolicy Delete, and no owner with
// Retain.
func (r *Reconciler) setCredentialsOwner(t *v1alpha1.SupportTenant, s *corev1.Secret) error {
	if t.Spec.Storage.ReclaimPolicy == v1alpha1.ReclaimDelete {
		if err := controllerutil.SetControllerReference(t, s, r.Scheme()); err != nil {
			return fmt.Errorf("set owner of Secret %s: %w", s.Name, err)
		}
		return nil
	}
	refs := s.OwnerReferences[:0:0]
	for _, ref := range s.OwnerReferences {
		if ref.UID != t.UID {
			refs = append(refs, ref)
		}
	}
	if len(refs) == 0 {
		refs = nil
	}
	s.OwnerReferences = refs
	return nil
}

// credentialsBelongTo reports whether s is t's credentials Secret: controlled by t, or retained from an earlier
// tenant of the same name (the operator's labels, t's name, no controller).
func credentialsBelongTo(s *corev1.Secret, t *v1alpha1.SupportTenant) bool {
	if isControlledBy(s, t) {
		return true
	}
	return metav1.GetControllerOf(s) == nil &&
		s.Labels[naming.LabelManagedBy] == naming.ManagedBy && s.Labels[naming.LabelTenant] == t.Name
}

// existingCredentials reads a credentials Secret that the cache did not show, from the API server. Either the
// cache lags behind the operator's own create (the Secret is the tenant's: use it), or the Secret was made by
// someone else (the cache only holds Secrets with the operator's labels): that is not retried.
func (r *Reconciler) existingCredentials(ctx context.Context, t *v1alpha1.SupportTenant, name string) (map[string][]byte, bool, error) {
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: name}, secret); err != nil {
		return nil, false, fmt.Errorf("get Secret %s: %w", name, err)
	}
	if credentialsBelongTo(secret, t) {
		return secret.Data, false, nil
	}
	return nil, false, reconcile.TerminalError(fmt.Errorf(
		"secret %s exists and is not managed by supportstack: rename or delete it", name))
}

// fillCredentials generates the keys data lacks and leaves the others alone.
func fillCredentials(data map[string][]byte) error {
	for key, generate := range credentialGenerators {
		if len(data[key]) > 0 {
			continue
		}
		v, err := generate()
		if err != nil {
			return fmt.Errorf("generate %s: %w", key, err)
		}
		data[key] = []byte(v)
	}
	return nil
}
