package portal

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/naming"
)

// A workspace is a namespace the portal made for one customer, holding one SupportTenant of the same name.
// Ownership lives on the namespace: a label with a digest of the owner's email (label values cannot hold an
// email) and an annotation with the email itself.

// Labels and annotations of a workspace's namespace.
const (
	LabelOwner           = "supportstack.io/portal-owner"
	LabelPlan            = "supportstack.io/portal-plan"
	AnnotationOwnerEmail = "supportstack.io/portal-owner-email"
	// OwnerBinding lets the owner read their tenant through the Kubernetes API, when platform ops allow it.
	OwnerBinding = "supportstack-portal-owner"
	// PortalBinding lets the portal read the tenant's Secret in this namespace only (the first sign-in and the
	// enrollment token it shows the owner).
	PortalBinding = "supportstack-portal"
)

// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=supportstack.io,resources=supporttenants,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=rolebindings,verbs=create
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=bind,resourceNames=supportstack-tenant-viewer;supportstack-portal-workspace
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get,namespace=supportstack-system

// OwnerLabelValue is the label that marks the workspaces of email.
func OwnerLabelValue(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(email)))
	return hex.EncodeToString(sum[:])[:40]
}

// Workspace is a customer's workspace as the portal shows it.
type Workspace struct {
	Name      string
	Namespace string
	Plan      string
	Created   time.Time
	Tenant    *v1alpha1.SupportTenant
}

// userError is a refusal the customer can act on.
type userError struct{ msg string }

func (e *userError) Error() string { return e.msg }

func refuse(format string, args ...any) error { return &userError{msg: fmt.Sprintf(format, args...)} }

// tenantName is the rule the SupportTenant CRD enforces on names.
var tenantName = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)

// MaxNameLength is the longest name the CRD takes.
const MaxNameLength = 40

// checkName says what is wrong with a workspace name, in the CRD's terms.
func checkName(name string) error {
	switch {
	case name == "":
		return refuse("A workspace needs a name.")
	case len(name) > MaxNameLength:
		return refuse("The name is %d characters long: at most %d.", len(name), MaxNameLength)
	case !tenantName.MatchString(name):
		return refuse("The name must start with a letter and hold only lowercase letters, digits and '-' (not at the end).")
	}
	return nil
}

// workspaces lists the customer's workspaces, oldest first.
func (p *Portal) workspaces(ctx context.Context, email string) ([]Workspace, error) {
	var nss corev1.NamespaceList
	if err := p.client.List(ctx, &nss, client.MatchingLabels{LabelOwner: OwnerLabelValue(email)}); err != nil {
		return nil, err
	}
	var out []Workspace
	for _, ns := range nss.Items {
		// The label is a digest: the annotation says whose it really is.
		if !strings.EqualFold(ns.Annotations[AnnotationOwnerEmail], email) {
			continue
		}
		w := Workspace{Name: strings.TrimPrefix(ns.Name, p.cfg.NamespacePrefix), Namespace: ns.Name, Plan: ns.Labels[LabelPlan],
			Created: ns.CreationTimestamp.Time}
		t := &v1alpha1.SupportTenant{}
		switch err := p.client.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: w.Name}, t); {
		case err == nil:
			w.Tenant = t
		case !apierrors.IsNotFound(err):
			return nil, err
		}
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b Workspace) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// workspace returns one of the customer's workspaces; a workspace of someone else is as absent as one that
// does not exist.
func (p *Portal) workspace(ctx context.Context, email, name string) (Workspace, error) {
	all, err := p.workspaces(ctx, email)
	if err != nil {
		return Workspace{}, err
	}
	for _, w := range all {
		if w.Name == name {
			return w, nil
		}
	}
	return Workspace{}, refuse("You have no workspace %q.", name)
}

// catalog reads the plans and quotas.
func (p *Portal) catalog(ctx context.Context) (Catalog, error) {
	cm := &corev1.ConfigMap{}
	if err := p.client.Get(ctx, client.ObjectKey{Namespace: p.cfg.Namespace, Name: ConfigMapName}, cm); err != nil {
		return Catalog{}, fmt.Errorf("read the plans (ConfigMap %s/%s): %w", p.cfg.Namespace, ConfigMapName, err)
	}
	return ParseCatalog(cm.Data[CatalogKey])
}

// create makes a workspace: its namespace (owned, labelled with the plan, under the restricted Pod Security
// profile), the RoleBindings, and the SupportTenant from the plan. Two creations at once may each pass the quota
// check for the last free workspace.
func (p *Portal) create(ctx context.Context, id Identity, name, planName string) (Workspace, error) {
	if err := checkName(name); err != nil {
		return Workspace{}, err
	}
	cat, err := p.catalog(ctx)
	if err != nil {
		return Workspace{}, err
	}
	plan, ok := cat.Plan(planName)
	if !ok {
		return Workspace{}, refuse("There is no plan %q.", planName)
	}
	have, err := p.workspaces(ctx, id.Email)
	if err != nil {
		return Workspace{}, err
	}
	quota := cat.QuotaOf(id.Email)
	if len(have) >= quota.Workspaces {
		return Workspace{}, refuse("Your quota is %d workspaces and you have %d: delete one, or ask for a larger quota.", quota.Workspaces, len(have))
	}
	if !quota.Storage.IsZero() {
		total := plan.Storage.DeepCopy()
		for _, w := range have {
			if q, ok := planStorage(cat, w); ok {
				total.Add(q)
			}
		}
		if total.Cmp(quota.Storage) > 0 {
			return Workspace{}, refuse("This plan's %s would bring your storage to %s, over your quota of %s.",
				plan.Storage.String(), total.String(), quota.Storage.String())
		}
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: p.cfg.NamespacePrefix + name,
		Labels: map[string]string{LabelOwner: OwnerLabelValue(id.Email), LabelPlan: plan.Name,
			"app.kubernetes.io/managed-by": "supportstack-portal", "pod-security.kubernetes.io/enforce": "restricted"},
		Annotations: map[string]string{AnnotationOwnerEmail: strings.ToLower(id.Email)}}}
	if err := p.client.Create(ctx, ns); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return Workspace{}, refuse("The name %q is taken: choose another.", name)
		}
		return Workspace{}, fmt.Errorf("create namespace %s: %w", ns.Name, err)
	}
	if err := p.bind(ctx, ns.Name, id.Email); err != nil {
		return Workspace{}, err
	}
	t := tenantFor(name, ns.Name, plan)
	if err := p.client.Create(ctx, t); err != nil {
		return Workspace{}, fmt.Errorf("create the workspace's tenant: %w", err)
	}
	return Workspace{Name: name, Namespace: ns.Name, Plan: plan.Name, Created: time.Now(), Tenant: t}, nil
}

// planStorage is the storage a workspace's plan gives it.
func planStorage(cat Catalog, w Workspace) (resource.Quantity, bool) {
	if w.Tenant != nil && w.Tenant.Spec.Storage.Size != nil {
		return *w.Tenant.Spec.Storage.Size, true
	}
	if p, ok := cat.Plan(w.Plan); ok {
		return p.Storage, true
	}
	return resource.Quantity{}, false
}

// bind grants, in the workspace's namespace only, the portal read access to the tenant's Secret and — when
// platform ops allow it — the owner read access to their tenant.
func (p *Portal) bind(ctx context.Context, namespace, email string) error {
	bindings := []*rbacv1.RoleBinding{}
	if p.cfg.ServiceAccount != "" {
		saNS, saName, _ := strings.Cut(p.cfg.ServiceAccount, "/")
		bindings = append(bindings, roleBinding(namespace, PortalBinding, "supportstack-portal-workspace",
			rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: saNS, Name: saName}))
	}
	if p.cfg.OwnerUserPrefix != "" {
		bindings = append(bindings, roleBinding(namespace, OwnerBinding, "supportstack-tenant-viewer",
			rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: p.cfg.OwnerUserPrefix + strings.ToLower(email)}))
	}
	for _, b := range bindings {
		if err := p.client.Create(ctx, b); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create RoleBinding %s/%s: %w", b.Namespace, b.Name, err)
		}
	}
	return nil
}

func roleBinding(namespace, name, clusterRole string, subject rbacv1.Subject) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name,
		Labels: map[string]string{"app.kubernetes.io/managed-by": "supportstack-portal"}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		Subjects: []rbacv1.Subject{subject}}
}

// tenantFor is the SupportTenant a plan makes.
func tenantFor(name, namespace string, plan Plan) *v1alpha1.SupportTenant {
	size := plan.Storage.DeepCopy()
	t := &v1alpha1.SupportTenant{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace,
		Labels: map[string]string{LabelPlan: plan.Name}},
		Spec: v1alpha1.SupportTenantSpec{DisplayName: name,
			Storage: v1alpha1.StorageSpec{Size: &size, RetentionDays: plan.RetentionDays},
			Ingest:  v1alpha1.IngestSpec{Replicas: plan.IngestReplicas, MaxReplicas: plan.IngestMaxReplicas}}}
	if plan.Retain {
		t.Spec.Storage.ReclaimPolicy = v1alpha1.ReclaimRetain
	} else {
		t.Spec.Storage.ReclaimPolicy = v1alpha1.ReclaimDelete
	}
	if plan.Peer != "" {
		t.Spec.Replication = &v1alpha1.ReplicationSpec{Peer: plan.Peer}
	}
	return t
}

// remove deletes a workspace's tenant; its namespace goes too unless the plan keeps the volumes, which stay
// there for platform ops.
func (p *Portal) remove(ctx context.Context, email, name string) (kept bool, err error) {
	w, err := p.workspace(ctx, email, name)
	if err != nil {
		return false, err
	}
	if w.Tenant != nil {
		if err := p.client.Delete(ctx, w.Tenant); err != nil && !apierrors.IsNotFound(err) {
			return false, err
		}
	}
	if w.Tenant != nil && w.Tenant.Spec.Storage.ReclaimPolicy == v1alpha1.ReclaimRetain {
		return true, nil
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.Namespace}}
	if err := p.client.Delete(ctx, ns); err != nil && !apierrors.IsNotFound(err) {
		return false, err
	}
	return false, nil
}

// credentials are what the owner needs from the tenant's Secret: the dashboard's first sign-in and the
// workspace's own enrollment token.
type credentials struct {
	AdminPassword, EnrollmentToken string
}

func (p *Portal) credentials(ctx context.Context, w Workspace) (credentials, error) {
	if w.Tenant == nil {
		return credentials{}, errors.New("the workspace has no tenant")
	}
	name := w.Tenant.Status.CredentialsSecretName
	if name == "" {
		name = naming.CredentialsSecret(w.Name)
	}
	s := &corev1.Secret{}
	if err := p.client.Get(ctx, client.ObjectKey{Namespace: w.Namespace, Name: name}, s); err != nil {
		return credentials{}, err
	}
	return credentials{AdminPassword: string(s.Data[naming.SecretKeyDashboardAdminPassword]),
		EnrollmentToken: string(s.Data[naming.SecretKeyEnrollmentToken])}, nil
}
