package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/supportstack/supportstack/internal/harness/localcluster"
	"github.com/supportstack/supportstack/internal/harness/oidcprovider"
	"github.com/supportstack/supportstack/internal/harness/planes"
	"github.com/supportstack/supportstack/internal/portal"
	"github.com/supportstack/supportstack/internal/websession"
)

// demoCatalog is what the demo's portal offers.
const demoCatalog = `
plans:
- name: starter
  description: up to 50 PCs
  storage: 2Gi
  retentionDays: 30
- name: replicated
  description: copied to the west cluster, fails over
  storage: 2Gi
  retentionDays: 30
  peer: west
quota:
  workspaces: 3
  storage: 20Gi
`

// startDemoPortal runs the self-service portal on east, with a local OpenID provider and an invitation, until
// ctx ends.
func startDemoPortal(ctx context.Context, crds string, east *planes.Plane) error {
	c := east.Admin
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: planes.OperatorNamespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if err := c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: planes.OperatorNamespace, Name: portal.ConfigMapName},
		Data: map[string]string{portal.CatalogKey: demoCatalog}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	// The ClusterRoles the portal binds in each workspace (config/rbac/portal, beside the CRDs' config/crd/bases).
	if err := localcluster.ApplyRBAC(ctx, c, filepath.Join(filepath.Dir(filepath.Dir(crds)), "rbac", "portal", "workspace_roles.yaml")); err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	base := "http://" + l.Addr().String()
	idp, err := oidcprovider.StartServer(oidcprovider.Options{DefaultUser: &oidcprovider.User{Subject: "demo-1",
		Email: "owner@example.com", EmailVerified: true, Name: "Demo Owner"}})
	if err != nil {
		return err
	}
	p, err := portal.New(ctx, portal.Config{Namespace: planes.OperatorNamespace, SessionKey: websession.RandomToken() + websession.RandomToken(),
		OIDC: &portal.OIDCConfig{IssuerURL: idp.Issuer, ClientID: idp.ClientID, ClientSecret: idp.ClientSecret,
			RedirectURL: base + "/auth/oidc/callback"}}, c)
	if err != nil {
		idp.Close()
		return err
	}
	srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
		idp.Close()
	}()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Println("The portal stopped:", err)
		}
	}()
	token, err := portal.CreateInvitation(ctx, c, planes.OperatorNamespace, "customer@example.com", 72*time.Hour, time.Now())
	if err != nil {
		return err
	}
	fmt.Printf("Self-service portal (on east): %s/ — sign in with the local identity provider (as owner@example.com),\n"+
		"  or with this invitation for customer@example.com, good once: %s/invite/%s\n", base, base, token)
	return nil
}
