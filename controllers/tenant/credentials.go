package tenant

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
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
	naming.SecretKeyRootUser:        func() (string, error) { return randomHex("st", 10) },
	naming.SecretKeyRootPassword:    func() (string, error) { return randomBase64(30) },
	naming.SecretKeyEnrollmentToken: func() (string, error) { return randomBase64(32) },
	naming.SecretKeySigningKey:      func() (string, error) { return randomBase64(32) },
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
		if err := controllerutil.SetControllerReference(t, secret, r.Scheme()); err != nil {
			return nil, false, fmt.Errorf("set owner of Secret %s: %w", name, err)
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
	if !isControlledBy(secret, t) {
		return nil, false, reconcile.TerminalError(fmt.Errorf(
			"secret %s is not controlled by this SupportTenant: rename or delete it", name))
	}
	missing := secret.DeepCopy()
	if missing.Data == nil {
		missing.Data = map[string][]byte{}
	}
	if err := fillCredentials(missing.Data); err != nil {
		return nil, false, err
	}
	if len(missing.Data) == len(secret.Data) {
		return secret.Data, false, nil
	}
	if err := r.Patch(ctx, missing, client.MergeFromWithOptions(secret, client.MergeFromWithOptimisticLock{})); err != nil {
		return nil, false, fmt.Errorf("add missing keys to Secret %s: %w", name, err)
	}
	return missing.Data, true, nil
}

// existingCredentials reads a credentials Secret that the cache did not show, from the API server. Either the
// cache lags behind the operator's own create (the Secret is the tenant's: use it), or the Secret was made by
// someone else (the cache only holds Secrets with the operator's labels): that is not retried.
func (r *Reconciler) existingCredentials(ctx context.Context, t *v1alpha1.SupportTenant, name string) (map[string][]byte, bool, error) {
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: name}, secret); err != nil {
		return nil, false, fmt.Errorf("get Secret %s: %w", name, err)
	}
	if isControlledBy(secret, t) {
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
