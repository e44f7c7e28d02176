package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/controllers"
	"github.com/supportstack/supportstack/internal/portal"
)

// Environment variables of the portal's secrets.
const (
	envPortalSessionKey   = "PORTAL_SESSION_KEY"
	envPortalClientSecret = "PORTAL_OIDC_CLIENT_SECRET"
)

func runPortal(ctx context.Context, args []string) error {
	var cfg portal.Config
	var oidc portal.OIDCConfig
	fs := flag.NewFlagSet("portal", flag.ContinueOnError)
	fs.StringVar(&cfg.ListenAddress, "listen-address", ":8080", "address to serve HTTP on")
	fs.StringVar(&cfg.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "the portal's namespace: its plans ConfigMap and the invitations")
	fs.StringVar(&cfg.NamespacePrefix, "namespace-prefix", portal.DefaultNamespacePrefix, "prefix of every workspace's namespace")
	fs.StringVar(&cfg.ServiceAccount, "service-account", "", "the portal's ServiceAccount as namespace/name, bound in each workspace to read its Secret")
	fs.StringVar(&cfg.OwnerUserPrefix, "owner-user-prefix", "", "when set, owners may read their tenant through the Kubernetes API as this prefix + their email (the API server's OIDC username prefix)")
	fs.DurationVar(&cfg.SessionTTL, "session-ttl", portal.DefaultSessionTTL, "how long a sign-in lasts")
	fs.StringVar(&oidc.IssuerURL, "oidc-issuer", "", "OpenID Connect issuer URL (empty: invitations only)")
	fs.StringVar(&oidc.ClientID, "oidc-client-id", "", "OpenID Connect client ID")
	fs.StringVar(&oidc.RedirectURL, "oidc-redirect-url", "", "this portal's callback URL: https://<portal>/auth/oidc/callback")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.SessionKey = os.Getenv(envPortalSessionKey)
	if oidc.IssuerURL != "" {
		oidc.ClientSecret = os.Getenv(envPortalClientSecret)
		if oidc.ClientID == "" || oidc.RedirectURL == "" {
			return fmt.Errorf("--oidc-issuer needs --oidc-client-id and --oidc-redirect-url")
		}
		cfg.OIDC = &oidc
	}
	if cfg.SessionKey == "" {
		return fmt.Errorf("$%s must hold the session key (at least 32 characters)", envPortalSessionKey)
	}
	c, err := kubeClient()
	if err != nil {
		return err
	}
	p, err := portal.New(ctx, cfg, c)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

// runInvite issues an invitation: platform ops admit a customer without an identity provider.
func runInvite(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("invite", flag.ContinueOnError)
	email := fs.String("email", "", "the customer's email address")
	namespace := fs.String("namespace", "supportstack-system", "the portal's namespace")
	portalURL := fs.String("portal-url", "", "the portal's address, for the link (e.g. https://portal.example.com)")
	valid := fs.Duration("valid", 72*time.Hour, "how long the invitation may be used")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *email == "" || *portalURL == "" {
		return fmt.Errorf("--email and --portal-url are required")
	}
	c, err := kubeClient()
	if err != nil {
		return err
	}
	token, err := portal.CreateInvitation(ctx, c, *namespace, *email, *valid, time.Now())
	if err != nil {
		return err
	}
	fmt.Printf("Invitation for %s, good once until %s:\n%s/invite/%s\n", strings.ToLower(*email),
		time.Now().Add(*valid).UTC().Format(time.RFC3339), strings.TrimRight(*portalURL, "/"), token)
	return nil
}

// kubeClient is a client of the cluster of $KUBECONFIG (or the pod's ServiceAccount).
func kubeClient() (client.Client, error) {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	return client.New(cfg, client.Options{Scheme: controllers.Scheme()})
}
