package portal

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/harness/localbin"
	"github.com/supportstack/supportstack/internal/harness/localcluster"
	"github.com/supportstack/supportstack/internal/naming"
)

var (
	cluster *localcluster.Cluster
	admin   client.Client
	scheme  = runtime.NewScheme()
)

const portalNamespace = "supportstack-system"

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	root, err := localbin.RepoRoot()
	if err == nil {
		cluster, err = localcluster.Start(localcluster.Options{CRDDir: filepath.Join(root, "config", "crd", "bases"), WithoutControllerManager: true})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "portal suite:", err)
		return 1
	}
	defer cluster.Stop()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	if admin, err = client.New(cluster.Config, client.Options{Scheme: scheme}); err == nil {
		err = admin.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: portalNamespace}})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "portal suite:", err)
		return 1
	}
	return m.Run()
}

const catalogYAML = `
plans:
- name: small
  description: one office
  storage: 5Gi
  retentionDays: 30
- name: large
  storage: 20Gi
  retentionDays: 365
  ingestReplicas: 2
  ingestMaxReplicas: 4
  retain: true
quota:
  workspaces: 2
  storage: 30Gi
customers:
  big@example.com:
    workspaces: 5
    storage: 1Ti
`

// browser is a customer's browser: a cookie jar, redirects not followed.
type browser struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(path string) (int, string, http.Header) {
	b.t.Helper()
	resp, err := b.hc.Get(b.base + path)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func (b *browser) post(path string, form url.Values) (int, string, http.Header) {
	b.t.Helper()
	resp, err := b.hc.PostForm(b.base+path, form)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

var hiddenField = regexp.MustCompile(`name="(csrf|form)" value="([^"]+)"`)

// field reads a hidden form field of a page.
func (b *browser) field(path, name string) string {
	b.t.Helper()
	_, body, _ := b.get(path)
	for _, m := range hiddenField.FindAllStringSubmatch(body, -1) {
		if m[1] == name {
			return m[2]
		}
	}
	b.t.Fatalf("no %s field on %s: %s", name, path, body)
	return ""
}

// invited signs a customer in with an invitation, as platform ops would issue it.
func invited(t *testing.T, base, email string) *browser {
	t.Helper()
	token, err := CreateInvitation(context.Background(), admin, portalNamespace, email, time.Hour, time.Now())
	require.NoError(t, err)
	b := newBrowser(t, base)
	code, body, hdr := b.post("/invite/"+token, url.Values{"form": {b.field("/invite/"+token, "form")}})
	require.Equal(t, http.StatusSeeOther, code, body)
	require.Equal(t, "/", hdr.Get("Location"))
	return b
}

func startPortal(t *testing.T, c client.Client) string {
	t.Helper()
	p, err := New(context.Background(), Config{Namespace: portalNamespace, SessionKey: "portal-test-session-key-0123456789abcdef",
		ServiceAccount: portalNamespace + "/supportstack-portal", OwnerUserPrefix: "oidc:"}, c)
	require.NoError(t, err)
	srv := httptest.NewServer(p.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func putCatalog(t *testing.T, data string) {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: portalNamespace, Name: ConfigMapName}, Data: map[string]string{CatalogKey: data}}
	err := admin.Create(context.Background(), cm)
	if apierrors.IsAlreadyExists(err) {
		err = admin.Update(context.Background(), cm)
	}
	require.NoError(t, err)
}

// An invitation signs its customer in once: opening the link spends nothing, a form from elsewhere is refused,
// a second use and an expired invitation are refused; without a session every page sends to sign in.
func TestInvitations(t *testing.T) {
	base := startPortal(t, admin)
	ctx := context.Background()
	code, _, hdr := newBrowser(t, base).get("/")
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, "/login?next=%2F", hdr.Get("Location"))

	token, err := CreateInvitation(ctx, admin, portalNamespace, "Alice@Example.com", time.Hour, time.Now())
	require.NoError(t, err)
	b := newBrowser(t, base)
	code, body, _ := b.get("/invite/" + token)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "alice@example.com")
	code, body, _ = b.get("/invite/" + token)
	require.Equal(t, http.StatusOK, code, "opening the link twice spends nothing: %s", body)

	// Login CSRF: a form posted from another site (no form cookie) signs nobody in.
	code, _, _ = newBrowser(t, base).post("/invite/"+token, url.Values{"form": {"forged"}})
	require.Equal(t, http.StatusForbidden, code)

	code, body, _ = b.post("/invite/"+token, url.Values{"form": {b.field("/invite/"+token, "form")}})
	require.Equal(t, http.StatusSeeOther, code, body)
	code, body, _ = b.get("/")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "alice@example.com")

	again := newBrowser(t, base)
	code, body, _ = again.get("/invite/" + token)
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Contains(t, body, "used already")

	expired, err := CreateInvitation(ctx, admin, portalNamespace, "late@example.com", time.Millisecond, time.Now().Add(-time.Minute))
	require.NoError(t, err)
	code, body, _ = newBrowser(t, base).get("/invite/" + expired)
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Contains(t, body, "expired")
	for _, bad := range []string{"x.y", strings.Repeat("a", 24) + ".wrong", strings.SplitN(token, ".", 2)[0] + ".wrong"} {
		code, body, _ = newBrowser(t, base).get("/invite/" + bad)
		require.Equal(t, http.StatusUnprocessableEntity, code, bad)
		require.Contains(t, body, "not valid")
	}
	_, err = CreateInvitation(ctx, admin, portalNamespace, "not an email", time.Hour, time.Now())
	require.Error(t, err)
}

// A customer creates workspaces within their quota, each a namespace of their own with a tenant from the plan;
// a taken name, a bad name, an unknown plan, the quota and a form without its token are refused with a clear
// message and create nothing; another customer can neither see nor touch them; deleting needs the name typed and
// keeps the volumes of a plan that retains them.
func TestWorkspaces(t *testing.T) {
	ctx := context.Background()
	putCatalog(t, catalogYAML)
	base := startPortal(t, admin)
	alice, bob := invited(t, base, "alice@example.com"), invited(t, base, "bob@example.com")
	create := func(b *browser, name, plan string) (int, string, http.Header) {
		return b.post("/workspaces", url.Values{"csrf": {b.field("/", "csrf")}, "name": {name}, "plan": {plan}})
	}
	namespaces := func() []string {
		var nss corev1.NamespaceList
		require.NoError(t, admin.List(ctx, &nss, client.HasLabels{LabelOwner}))
		var out []string
		for _, ns := range nss.Items {
			if ns.DeletionTimestamp == nil {
				out = append(out, ns.Name)
			}
		}
		return out
	}

	for _, c := range []struct{ name, plan, want string }{
		{"", "small", "needs a name"},
		{"Acme", "small", "lowercase letters"},
		{"acme-", "small", "lowercase letters"},
		{strings.Repeat("a", 41), "small", "at most 40"},
		{"acme", "gold", `no plan &#34;gold&#34;`},
	} {
		code, body, _ := create(alice, c.name, c.plan)
		require.Equal(t, http.StatusUnprocessableEntity, code, c.name)
		require.Contains(t, body, c.want, c.name)
	}
	code, _, _ := alice.post("/workspaces", url.Values{"name": {"acme"}, "plan": {"small"}})
	require.Equal(t, http.StatusForbidden, code, "no CSRF token")
	require.Empty(t, namespaces(), "refusals create nothing")

	code, body, hdr := create(alice, "acme", "small")
	require.Equal(t, http.StatusSeeOther, code, body)
	require.Equal(t, "/workspaces/acme", hdr.Get("Location"))
	ns := &corev1.Namespace{}
	require.NoError(t, admin.Get(ctx, client.ObjectKey{Name: "ws-acme"}, ns))
	require.Equal(t, OwnerLabelValue("alice@example.com"), ns.Labels[LabelOwner])
	require.Equal(t, "alice@example.com", ns.Annotations[AnnotationOwnerEmail])
	require.Equal(t, "restricted", ns.Labels["pod-security.kubernetes.io/enforce"])
	tenant := &v1alpha1.SupportTenant{}
	require.NoError(t, admin.Get(ctx, client.ObjectKey{Namespace: "ws-acme", Name: "acme"}, tenant))
	require.Equal(t, resource.MustParse("5Gi"), *tenant.Spec.Storage.Size)
	require.EqualValues(t, 30, tenant.Spec.Storage.RetentionDays)
	require.Equal(t, v1alpha1.ReclaimDelete, tenant.Spec.Storage.ReclaimPolicy)
	var owner rbacv1.RoleBinding
	require.NoError(t, admin.Get(ctx, client.ObjectKey{Namespace: "ws-acme", Name: OwnerBinding}, &owner))
	require.Equal(t, "supportstack-tenant-viewer", owner.RoleRef.Name)
	require.Equal(t, []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "oidc:alice@example.com"}}, owner.Subjects)
	var self rbacv1.RoleBinding
	require.NoError(t, admin.Get(ctx, client.ObjectKey{Namespace: "ws-acme", Name: PortalBinding}, &self))
	require.Equal(t, "supportstack-portal-workspace", self.RoleRef.Name)

	// The name is taken, for everyone.
	code, body, _ = create(bob, "acme", "small")
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Contains(t, body, `The name &#34;acme&#34; is taken`)

	// Quotas: alice has 2 workspaces and 30Gi; small is 5Gi, large 20Gi.
	code, body, _ = create(alice, "acme-eu", "large")
	require.Equal(t, http.StatusSeeOther, code, body)
	code, body, _ = create(alice, "acme-us", "small")
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Contains(t, body, "Your quota is 2 workspaces and you have 2")
	code, body, _ = create(bob, "bob-1", "large")
	require.Equal(t, http.StatusSeeOther, code, body)
	code, body, _ = create(bob, "bob-2", "large")
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Contains(t, body, "over your quota of 30Gi")
	big := invited(t, base, "big@example.com")
	code, body, _ = create(big, "big-1", "large")
	require.Equal(t, http.StatusSeeOther, code, "a customer's own quota: %s", body)

	// Each customer sees only their own.
	_, body, _ = alice.get("/")
	require.Contains(t, body, `href="/workspaces/acme"`)
	require.Contains(t, body, `href="/workspaces/acme-eu"`)
	require.NotContains(t, body, "bob-1")
	_, body, _ = bob.get("/")
	require.NotContains(t, body, "acme")
	for _, path := range []string{"/workspaces/acme", "/workspaces/acme/delete"} {
		code, body, _ = bob.get(path)
		require.Equal(t, http.StatusUnprocessableEntity, code, path)
		require.Contains(t, body, "You have no workspace")
	}
	code, _, _ = bob.get("/workspaces/acme/progress.json")
	require.Equal(t, http.StatusNotFound, code)
	code, _, _ = bob.post("/workspaces/acme/delete", url.Values{"csrf": {bob.field("/", "csrf")}, "confirm": {"acme"}})
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.NoError(t, admin.Get(ctx, client.ObjectKey{Namespace: "ws-acme", Name: "acme"}, tenant), "bob deleted alice's workspace")

	// Progress: the page reloads itself until the tenant is Ready, then shows how to use the workspace.
	code, body, _ = alice.get("/workspaces/acme")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `http-equiv="refresh"`)
	require.Contains(t, body, `id="provisioning"`)
	makeReady(t, tenant)
	code, body, _ = alice.get("/workspaces/acme")
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, body, `http-equiv="refresh"`)
	require.Contains(t, body, `href="http://acme-dashboard.example.com"`)
	require.Contains(t, body, `<code id="admin-password">first-sign-in-password</code>`)
	require.Contains(t, body, "curl -fsSL http://acme-ingest.example.com/install.sh | sudo sh -s -- --token &#39;tenant-enrollment-token&#39;")
	_, body, _ = alice.get("/workspaces/acme/progress.json")
	require.Contains(t, body, `"ready":true`)

	// Deleting needs the name; a plan that retains volumes keeps the namespace.
	code, body, _ = alice.get("/workspaces/acme-eu/delete")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "its volumes (its plan retains them)")
	code, _, _ = alice.post("/workspaces/acme-eu/delete", url.Values{"csrf": {alice.field("/", "csrf")}, "confirm": {"acme"}})
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.NoError(t, admin.Get(ctx, client.ObjectKey{Namespace: "ws-acme-eu", Name: "acme-eu"}, &v1alpha1.SupportTenant{}))
	code, _, hdr = alice.post("/workspaces/acme-eu/delete", url.Values{"csrf": {alice.field("/", "csrf")}, "confirm": {"acme-eu"}})
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, "/?notice=deleted-kept", hdr.Get("Location"))
	err := admin.Get(ctx, client.ObjectKey{Namespace: "ws-acme-eu", Name: "acme-eu"}, &v1alpha1.SupportTenant{})
	require.True(t, apierrors.IsNotFound(err), "the tenant is deleted: %v", err)
	require.NoError(t, admin.Get(ctx, client.ObjectKey{Name: "ws-acme-eu"}, ns))
	require.Nil(t, ns.DeletionTimestamp, "the namespace with the retained volumes stays")
	code, _, hdr = alice.post("/workspaces/acme/delete", url.Values{"csrf": {alice.field("/", "csrf")}, "confirm": {"acme"}})
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, "/?notice=deleted", hdr.Get("Location"))
	require.NoError(t, admin.Get(ctx, client.ObjectKey{Name: "ws-acme"}, ns))
	require.NotNil(t, ns.DeletionTimestamp, "the namespace of a plan that keeps nothing is deleted")
}

// makeReady plays the operator: the tenant is Ready with its endpoints and its Secret.
func makeReady(t *testing.T, tenant *v1alpha1.SupportTenant) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, admin.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenant.Namespace, Name: naming.CredentialsSecret(tenant.Name)},
		Data: map[string][]byte{naming.SecretKeyDashboardAdminPassword: []byte("first-sign-in-password"),
			naming.SecretKeyEnrollmentToken: []byte("tenant-enrollment-token")}}))
	require.NoError(t, admin.Get(ctx, client.ObjectKeyFromObject(tenant), tenant))
	tenant.Status.Phase = v1alpha1.PhaseReady
	tenant.Status.Endpoints = v1alpha1.TenantEndpoints{Dashboard: "http://acme-dashboard.example.com", Status: "http://acme-dashboard.example.com/status",
		Ingest: "http://acme-ingest.example.com"}
	meta.SetStatusCondition(&tenant.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue,
		Reason: "Available", Message: "all parts ready", ObservedGeneration: tenant.Generation})
	require.NoError(t, admin.Status().Update(ctx, tenant))
}

// The portal works with exactly the RBAC generated from its markers (config/rbac/portal) and no more: it signs a
// customer in, creates a workspace, binds itself in it and reads the workspace's Secret — and cannot read a
// Secret anywhere else or create what it does not need.
func TestPortalWithItsOwnRBAC(t *testing.T) {
	ctx := context.Background()
	root, err := localbin.RepoRoot()
	require.NoError(t, err)
	for _, f := range []string{"role.yaml", "workspace_roles.yaml"} {
		require.NoError(t, localcluster.ApplyRBAC(ctx, admin, filepath.Join(root, "config", "rbac", "portal", f)))
	}
	const user = "system:serviceaccount:" + portalNamespace + ":supportstack-portal"
	subject := rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}
	require.NoError(t, admin.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "supportstack-portal"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "supportstack-portal"}, Subjects: []rbacv1.Subject{subject}}))
	require.NoError(t, admin.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: portalNamespace, Name: "supportstack-portal"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "supportstack-portal"}, Subjects: []rbacv1.Subject{subject}}))
	cfg, err := cluster.UserConfig(user)
	require.NoError(t, err)
	portalClient, err := client.New(cfg, client.Options{Scheme: scheme})
	require.NoError(t, err)
	putCatalog(t, catalogYAML)

	base := startPortal(t, portalClient)
	carol := invited(t, base, "carol@example.com")
	code, body, _ := carol.post("/workspaces", url.Values{"csrf": {carol.field("/", "csrf")}, "name": {"carol-co"}, "plan": {"small"}})
	require.Equal(t, http.StatusSeeOther, code, body)
	tenant := &v1alpha1.SupportTenant{}
	require.NoError(t, admin.Get(ctx, client.ObjectKey{Namespace: "ws-carol-co", Name: "carol-co"}, tenant))
	makeReady(t, tenant)
	code, body, _ = carol.get("/workspaces/carol-co")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "first-sign-in-password", "the portal reads the Secret of a workspace it made")

	// Nothing else: a Secret elsewhere, a Deployment, a ClusterRoleBinding.
	require.NoError(t, admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other-team"}}))
	require.NoError(t, admin.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "other-team", Name: "db"}}))
	err = portalClient.Get(ctx, client.ObjectKey{Namespace: "other-team", Name: "db"}, &corev1.Secret{})
	require.True(t, apierrors.IsForbidden(err), "read a Secret outside its workspaces: %v", err)
	err = portalClient.List(ctx, &corev1.SecretList{})
	require.True(t, apierrors.IsForbidden(err), "list Secrets cluster-wide: %v", err)
	err = portalClient.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "other-team", Name: "escalate"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"}, Subjects: []rbacv1.Subject{subject}})
	require.True(t, apierrors.IsForbidden(err), "bind cluster-admin: %v", err)
	err = portalClient.Get(ctx, client.ObjectKey{Namespace: "kube-system", Name: "anything"}, &corev1.ConfigMap{})
	require.True(t, apierrors.IsForbidden(err), "read ConfigMaps outside its namespace: %v", err)
}

// Sessions end when they expire; a tampered cookie or one signed by another portal's key is no session; the
// cookie is HttpOnly and SameSite=Strict; signing out ends it.
func TestSessions(t *testing.T) {
	putCatalog(t, catalogYAML)
	clock := time.Now()
	p, err := New(context.Background(), Config{Namespace: portalNamespace, SessionKey: "portal-test-session-key-0123456789abcdef", SessionTTL: time.Hour}, admin)
	require.NoError(t, err)
	p.now = func() time.Time { return clock }
	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	other, err := New(context.Background(), Config{Namespace: portalNamespace, SessionKey: "another-portal-session-key-0123456789ab"}, admin)
	require.NoError(t, err)
	otherSrv := httptest.NewServer(other.Handler())
	defer otherSrv.Close()

	b := invited(t, srv.URL, "dana@example.com")
	u, _ := url.Parse(srv.URL)
	var cookie *http.Cookie
	for _, c := range b.hc.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			cookie = c
		}
	}
	require.NotNil(t, cookie)
	code, _, _ := b.get("/")
	require.Equal(t, http.StatusOK, code)

	signedOut := func(value string) bool {
		c := newBrowser(t, srv.URL)
		c.hc.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: value}})
		code, _, hdr := c.get("/")
		return code == http.StatusSeeOther && strings.HasPrefix(hdr.Get("Location"), "/login")
	}
	require.False(t, signedOut(cookie.Value))
	tampered := []byte(cookie.Value)
	tampered[3] ^= 1
	require.True(t, signedOut(string(tampered)), "a tampered cookie")
	require.True(t, signedOut("garbage"), "a garbage cookie")
	foreign := invited(t, otherSrv.URL, "dana@example.com")
	ou, _ := url.Parse(otherSrv.URL)
	require.True(t, signedOut(foreign.hc.Jar.Cookies(ou)[0].Value), "another portal's session")

	clock = clock.Add(time.Hour + time.Second)
	require.True(t, signedOut(cookie.Value), "an expired session")

	// Cookie flags, read from the Set-Cookie of a fresh sign-in.
	token, err := CreateInvitation(context.Background(), admin, portalNamespace, "erin@example.com", time.Hour, clock)
	require.NoError(t, err)
	e := newBrowser(t, srv.URL)
	form := e.field("/invite/"+token, "form")
	resp, err := e.hc.PostForm(srv.URL+"/invite/"+token, url.Values{"form": {form}})
	require.NoError(t, err)
	resp.Body.Close()
	var set *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			set = c
		}
	}
	require.NotNil(t, set)
	require.True(t, set.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, set.SameSite)

	// Signing out needs the form's token, and ends the session in this browser.
	code, _, _ = e.post("/logout", url.Values{"csrf": {"forged"}})
	require.Equal(t, http.StatusForbidden, code)
	code, _, hdr := e.post("/logout", url.Values{"csrf": {e.field("/", "csrf")}})
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, "/login", hdr.Get("Location"))
	code, _, _ = e.get("/")
	require.Equal(t, http.StatusSeeOther, code)
}
