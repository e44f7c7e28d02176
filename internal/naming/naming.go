// Package naming holds the names, labels and ports of the objects the operator makes for a tenant, so that the
// operator, the local workload runner and the tests agree on them.
package naming

import (
	"k8s.io/apimachinery/pkg/labels"
)

// Label keys and values on every object the operator makes.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// LabelTenant carries the tenant's name, for NetworkPolicies and for selecting all of a tenant's objects.
	LabelTenant = "supportstack.io/tenant"
	// LabelStandbyOf marks what a home cluster's operator made in a peer cluster (the standby tenant, its
	// namespace and its shared Secret) with the home cluster's name.
	LabelStandbyOf = "supportstack.io/standby-of"

	PartOf    = "supportstack"
	ManagedBy = "supportstack-operator"
)

// Components of a tenant.
const (
	ComponentStorage   = "storage"
	ComponentIngest    = "ingest"
	ComponentDashboard = "dashboard"
)

// Ports the tenant's containers listen on.
const (
	MinIOPort        = 9000
	MinIOConsolePort = 9001
	HTTPPort         = 8080
)

// FieldOwner is the server-side apply field manager of everything the operator writes.
const FieldOwner = "supportstack-operator"

// FieldManagerPrefix starts the name of every field manager of the operator's (FieldOwner and the status owners).
const FieldManagerPrefix = "supportstack-"

// StatusOwnerReplication is the field manager of the replication part of a tenant's status, StatusOwnerPeer of
// a PeerCluster's status.
const (
	StatusOwnerReplication = "supportstack-replication"
	StatusOwnerPeer        = "supportstack-peer"
)

// StatusOwnerTenant is the server-side apply field manager of the part of a tenant's status that the tenant
// controller writes; other controllers write theirs under their own.
const StatusOwnerTenant = "supportstack-tenant"

// BucketName is the name of a tenant's bucket. Each tenant has its own MinIO, so the name needs no tenant part;
// keeping it the same in both clusters lets bucket replication pair the two copies without configuration.
const BucketName = "supportstack"

// Keys of the tenant's credentials Secret.
const (
	SecretKeyRootUser        = "MINIO_ROOT_USER"
	SecretKeyRootPassword    = "MINIO_ROOT_PASSWORD"
	SecretKeyEnrollmentToken = "enrollment-token"
	SecretKeySigningKey      = "signing-key"
	// SecretKeyDashboardAdminPassword is the password of the dashboard's admin account; SecretKeyDashboardSessionKey
	// signs dashboard sessions. A replicated tenant's copies share both (the shared Secret).
	SecretKeyDashboardAdminPassword = "dashboard-admin-password"
	SecretKeyDashboardSessionKey    = "dashboard-session-key"
)

// Keys of a replicated tenant's shared Secret, beside the enrollment token and signing key of the credentials.
const (
	SharedKeyDataPlaneUser     = "dataplane-access-key"
	SharedKeyDataPlanePassword = "dataplane-secret-key"
)

// Roles of the two copies of a replicated tenant. Heartbeats and replication users are named by role, not by
// cluster, so that the two operators need no agreement on each other's names.
const (
	RoleHome    = "home"
	RoleStandby = "standby"
)

// SharedKeyReplicationUser and SharedKeyReplicationPassword are the keys of the user that exists in the MinIO of
// the copy with the given role, through which the other copy replicates into it.
func SharedKeyReplicationUser(role string) string { return "replication-into-" + role + "-access-key" }
func SharedKeyReplicationPassword(role string) string {
	return "replication-into-" + role + "-secret-key"
}

// ManagedSelector selects every object the operator made.
func ManagedSelector() labels.Selector {
	return labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy})
}

// Labels are the labels of a tenant's object of one component ("" for tenant-wide objects).
func Labels(tenant, component string) map[string]string {
	l := SelectorLabels(tenant, component)
	l[LabelPartOf] = PartOf
	l[LabelManagedBy] = ManagedBy
	return l
}

// SelectorLabels are the labels that select a component's pods. They never change after creation, since a
// Deployment's selector is immutable.
func SelectorLabels(tenant, component string) map[string]string {
	l := map[string]string{
		LabelName:     PartOf,
		LabelInstance: tenant,
		LabelTenant:   tenant,
	}
	if component != "" {
		l[LabelComponent] = component
	}
	return l
}

// Names of a tenant's objects.
func CredentialsSecret(tenant string) string { return tenant + "-credentials" }
func ServiceAccount(tenant string) string    { return tenant }
func MinIO(tenant string) string             { return tenant + "-minio" }
func MinIOHeadless(tenant string) string     { return tenant + "-minio-hl" }
func Ingest(tenant string) string            { return tenant + "-ingest" }
func Dashboard(tenant string) string         { return tenant + "-dashboard" }

// SharedSecret holds what both copies of a replicated tenant share: the enrollment token and signing key (so a
// device enrolled in one cluster is accepted by the other), the data-plane user and the replication users.
func SharedSecret(tenant string) string { return tenant + "-shared" }

// NetworkPolicy names the policy that admits traffic to one component's pods.
func NetworkPolicy(tenant, component string) string { return tenant + "-" + component }
