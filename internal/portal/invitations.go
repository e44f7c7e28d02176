package portal

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/internal/websession"
)

// Invitations let platform ops admit a customer without an identity provider: `supportstack invite --email …`
// stores one as a Secret in the portal's namespace (only the SHA-256 of its secret) and prints its link. A link is
// good once, until it expires; opening it shows whom it signs in, and only the confirming POST uses it up, so that
// a mail scanner following the link does not spend it.

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;update,namespace=supportstack-system

// LabelInvitation marks invitation Secrets.
const LabelInvitation = "supportstack.io/portal-invitation"

// Keys and annotations of an invitation Secret.
const (
	invitationEmail   = "email"
	invitationHash    = "hash"
	invitationExpires = "expiresAt"
	annotationUsedAt  = "supportstack.io/used-at"
	invitationPrefix  = "portal-invitation-"
)

var invitationID = regexp.MustCompile(`^[a-z0-9]{24}$`)

// CreateInvitation stores an invitation for email and returns the token its link carries.
func CreateInvitation(ctx context.Context, c client.Client, namespace, email string, validFor time.Duration, now time.Time) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if !strings.Contains(email, "@") || strings.ContainsAny(email, " \r\n<>") {
		return "", fmt.Errorf("%q is not an email address", email)
	}
	if validFor <= 0 {
		return "", fmt.Errorf("an invitation must be valid for some time")
	}
	id := strings.ToLower(hex.EncodeToString([]byte(websession.RandomToken()))[:24])
	secret := websession.RandomToken()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: invitationPrefix + id,
		Labels: map[string]string{LabelInvitation: "true", "app.kubernetes.io/managed-by": "supportstack-portal"}},
		Type: corev1.SecretTypeOpaque,
		StringData: map[string]string{invitationEmail: email, invitationHash: hashSecret(secret),
			invitationExpires: now.Add(validFor).UTC().Format(time.RFC3339)}}
	if err := c.Create(ctx, s); err != nil {
		return "", fmt.Errorf("store the invitation: %w", err)
	}
	return id + "." + secret, nil
}

func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// invitation reads the invitation a token names and checks it; with use set it also uses it up, once.
func (p *Portal) invitation(ctx context.Context, token string, use bool) (string, error) {
	id, secret, ok := strings.Cut(token, ".")
	if !ok || !invitationID.MatchString(id) || secret == "" {
		return "", refuse("This invitation link is not valid: ask for a new one.")
	}
	s := &corev1.Secret{}
	if err := p.client.Get(ctx, client.ObjectKey{Namespace: p.cfg.Namespace, Name: invitationPrefix + id}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return "", refuse("This invitation link is not valid: ask for a new one.")
		}
		return "", err
	}
	if s.Labels[LabelInvitation] != "true" ||
		subtle.ConstantTimeCompare([]byte(hashSecret(secret)), s.Data[invitationHash]) != 1 {
		return "", refuse("This invitation link is not valid: ask for a new one.")
	}
	if s.Annotations[annotationUsedAt] != "" {
		return "", refuse("This invitation was used already (%s): ask for a new one.", s.Annotations[annotationUsedAt])
	}
	expires, err := time.Parse(time.RFC3339, string(s.Data[invitationExpires]))
	if err != nil || !p.now().Before(expires) {
		return "", refuse("This invitation expired: ask for a new one.")
	}
	email := string(s.Data[invitationEmail])
	if !use {
		return email, nil
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[annotationUsedAt] = p.now().UTC().Format(time.RFC3339)
	// The update carries the resourceVersion read: of two uses at once, one fails with a conflict.
	if err := p.client.Update(ctx, s); err != nil {
		if apierrors.IsConflict(err) {
			return "", refuse("This invitation was used already: ask for a new one.")
		}
		return "", err
	}
	return email, nil
}
