// Package portal_test runs the self-service path end to end as a business customer meets it: the real portal
// binary on a real control plane whose operator runs tenants with the local workload runner, sign-in through a
// real OpenID provider, in headless Chromium. A customer creates a workspace and watches it become ready, installs
// the agent with the command the portal shows and runs it until its first records are stored; a second customer
// can neither see nor touch the first one's workspace, through the portal or the Kubernetes API.
package portal_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/controllers"
	"github.com/supportstack/supportstack/internal/harness/browsertest"
	"github.com/supportstack/supportstack/internal/harness/localbin"
	"github.com/supportstack/supportstack/internal/harness/localcluster"
	"github.com/supportstack/supportstack/internal/harness/oidcprovider"
	"github.com/supportstack/supportstack/internal/harness/planes"
	"github.com/supportstack/supportstack/internal/harness/procs"
	"github.com/supportstack/supportstack/internal/harness/stored"
	"github.com/supportstack/supportstack/internal/naming"
	"github.com/supportstack/supportstack/internal/portal"
)

var bins procs.Binaries

func TestMain(m *testing.M) { os.Exit(procs.Main(m, &bins)) }

const catalog = `
plans:
- name: starter
  description: up to 50 PCs
  storage: 2Gi
  retentionDays: 30
quota:
  workspaces: 1
`

func TestSelfService(t *testing.T) {
	browsertest.Chromium(t) // skip (or fail in CI) before starting anything
	ctx := context.Background()
	// Ingest serves the agent beside its binary, as the image does from /agents.
	agents := filepath.Join(filepath.Dir(bins.Supportstack), "agents")
	require.NoError(t, os.MkdirAll(agents, 0o755))
	data, err := os.ReadFile(bins.Agent)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(agents, "supportstack-agent-"+runtime.GOOS+"-"+runtime.GOARCH), data, 0o755))

	env := planes.StartPlanes(t, planes.Options{SupportstackBin: bins.Supportstack, Operator: controllers.Options{}}, "east")
	east := env.Plane("east")
	repo, err := localbin.RepoRoot()
	require.NoError(t, err)
	require.NoError(t, localcluster.ApplyRBAC(ctx, east.Admin, filepath.Join(repo, "config", "rbac", "portal", "workspace_roles.yaml")))
	if err := east.Admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: planes.OperatorNamespace}}); err != nil {
		require.True(t, apierrors.IsAlreadyExists(err), "%v", err)
	}
	require.NoError(t, east.Admin.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: planes.OperatorNamespace,
		Name: portal.ConfigMapName}, Data: map[string]string{portal.CatalogKey: catalog}}))

	idp := oidcprovider.Start(t, oidcprovider.Options{})
	addr := procs.FreeAddr(t)
	base := "http://" + addr
	procs.Start(t, "portal", []string{"KUBECONFIG=" + east.Cluster.Kubeconfig, "PORTAL_SESSION_KEY=portal-e2e-session-key-0123456789abcdef",
		"PORTAL_OIDC_CLIENT_SECRET=" + idp.ClientSecret}, bins.Supportstack, "portal", "--listen-address="+addr,
		"--namespace="+planes.OperatorNamespace, "--oidc-issuer="+idp.Issuer, "--oidc-client-id="+idp.ClientID,
		"--oidc-redirect-url="+base+"/auth/oidc/callback", "--owner-user-prefix=oidc:",
		"--service-account="+planes.OperatorNamespace+"/supportstack-portal")
	procs.WaitReady(t, base)

	// Alice signs in with her company account and creates a workspace.
	b := browsertest.New(t)
	idp.SignInAs(oidcprovider.User{Subject: "alice-1", Email: "alice@example.com", EmailVerified: true, Name: "Alice"})
	b.Do(chromedp.Navigate(base + "/"))
	require.Contains(t, b.Location(), "/login")
	b.Shot("portal-login")
	b.Navigating(chromedp.Click(chromedp.ID("oidc")))
	require.Equal(t, base+"/", b.Location())
	require.Equal(t, "alice@example.com", b.Text("header.top span"))
	b.Inert("portal home")

	// A name the CRD would refuse is refused before the form is sent.
	b.Do(chromedp.SendKeys(chromedp.ID("name"), "Alice Co"), chromedp.Click(chromedp.CSS(`#create button`)))
	require.Equal(t, true, b.Eval(`document.querySelector('#name').validity.patternMismatch`))
	require.Equal(t, base+"/", b.Location(), "the browser kept the form")
	b.Do(chromedp.SetValue(chromedp.ID("name"), "alice-co"))
	created := time.Now()
	b.Navigating(chromedp.Submit(chromedp.ID("name")))
	require.Equal(t, base+"/workspaces/alice-co", b.Location(), b.Text("main"))
	b.Shot("portal-provisioning")
	b.Until(base+"/workspaces/alice-co", `!!document.querySelector('#install')`, 2*time.Minute, "the workspace never became ready")
	ready := time.Since(created)
	b.Shot("portal-ready")
	b.Inert("workspace page")
	install := b.Text("#install")
	password := b.Text("#admin-password")
	require.NotEmpty(t, password)
	m := regexp.MustCompile(`--token '([^']+)'`).FindStringSubmatch(install)
	require.NotNil(t, m, install)
	token := m[1]

	// A second workspace is over Alice's quota of one.
	b.Do(chromedp.Navigate(base + "/"))
	b.Do(chromedp.SendKeys(chromedp.ID("name"), "alice-two"))
	b.Navigating(chromedp.Submit(chromedp.ID("name")))
	require.Contains(t, b.Text("#error"), "Your quota is 1 workspaces and you have 1")

	// The agent, installed with the command the portal shows (from ingest, as a PC reaches it), reports.
	ingest, err := env.PublicURL("east", "ws-alice-co", naming.Ingest("alice-co"), 80)
	require.NoError(t, err)
	root := t.TempDir()
	binary, config := filepath.Join(root, "bin", "supportstack-agent"), filepath.Join(root, "agent.conf")
	script := get(t, ingest+"/install.sh")
	cmd := exec.Command("sh", "-s", "--", "--token", token)
	cmd.Stdin = strings.NewReader(script)
	cmd.Env = append(os.Environ(), "SUPPORTSTACK_PREFIX="+filepath.Dir(binary), "SUPPORTSTACK_CONFIG="+config, "SUPPORTSTACK_NO_SERVICE=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "install.sh: %s", out)
	state := t.TempDir()
	procs.Start(t, "agent", nil, binary, "run", "--config", config, "--state-dir", state, "--perf-interval=500ms")
	store, err := east.RootStorage(ctx, client.ObjectKey{Namespace: "ws-alice-co", Name: "alice-co"})
	require.NoError(t, err)
	var device string
	require.Eventually(t, func() bool {
		out, err := exec.Command(binary, "status", "--json", "--config", config, "--state-dir", state).Output()
		var st struct {
			Enrollment struct {
				DeviceID string `json:"deviceId"`
			} `json:"enrollment"`
		}
		if err != nil || json.Unmarshal(out, &st) != nil || st.Enrollment.DeviceID == "" {
			return false
		}
		device = st.Enrollment.DeviceID
		seqs, err := stored.Seqs(ctx, store, naming.BucketName, device)
		return err == nil && len(seqs) > 0
	}, 2*time.Minute, 200*time.Millisecond, "the downloaded agent's first records were never stored")
	firstRecord := time.Since(created)
	t.Logf("create → Ready %s; create → first record of the downloaded agent %s", ready.Round(100*time.Millisecond), firstRecord.Round(100*time.Millisecond))

	// Bob, invited, sees nothing of Alice's, in the portal or through the Kubernetes API.
	link, err := portal.CreateInvitation(ctx, east.Admin, planes.OperatorNamespace, "bob@example.com", time.Hour, time.Now())
	require.NoError(t, err)
	bob := browsertest.New(t)
	bob.Do(chromedp.Navigate(base + "/invite/" + link))
	bob.Navigating(chromedp.Click(chromedp.ID("accept")))
	require.Equal(t, base+"/", bob.Location())
	require.NotContains(t, bob.Text("main"), "alice-co")
	bob.Do(chromedp.Navigate(base + "/workspaces/alice-co"))
	require.Contains(t, bob.Text("main"), `You have no workspace "alice-co"`)
	bob.Do(chromedp.Navigate(base+"/"), chromedp.SendKeys(chromedp.ID("name"), "alice-co"))
	bob.Navigating(chromedp.Submit(chromedp.ID("name")))
	require.Contains(t, bob.Text("#error"), `The name "alice-co" is taken`)
	// The invitation is spent.
	bob.Do(chromedp.Navigate(base + "/invite/" + link))
	require.Contains(t, bob.Text("main"), "used already")

	asUser := func(email string) client.Client {
		cfg, err := east.Cluster.UserConfig("oidc:" + email)
		require.NoError(t, err)
		c, err := client.New(cfg, client.Options{Scheme: controllers.Scheme()})
		require.NoError(t, err)
		return c
	}
	key := client.ObjectKey{Namespace: "ws-alice-co", Name: "alice-co"}
	require.NoError(t, asUser("alice@example.com").Get(ctx, key, &v1alpha1.SupportTenant{}), "the owner reads her tenant")
	err = asUser("bob@example.com").Get(ctx, key, &v1alpha1.SupportTenant{})
	require.True(t, apierrors.IsForbidden(err), "bob read alice's tenant: %v", err)
	err = asUser("bob@example.com").List(ctx, &v1alpha1.SupportTenantList{})
	require.True(t, apierrors.IsForbidden(err), "bob listed tenants: %v", err)
	err = asUser("alice@example.com").Delete(ctx, &v1alpha1.SupportTenant{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}})
	require.True(t, apierrors.IsForbidden(err), "the owner may read, not change: %v", err)

	// Alice deletes her workspace, typing its name.
	b.Do(chromedp.Navigate(base + "/workspaces/alice-co/delete"))
	require.Contains(t, b.Text("#kept"), "Nothing is kept")
	b.Do(chromedp.SendKeys(chromedp.ID("confirm"), "alice-co"))
	b.Navigating(chromedp.Click(chromedp.ID("confirm-delete")))
	require.Contains(t, b.Text("#notice"), "The workspace is deleted.")
	err = east.Admin.Get(ctx, key, &v1alpha1.SupportTenant{})
	require.True(t, err == nil || apierrors.IsNotFound(err))
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", url, body)
	return string(body)
}
