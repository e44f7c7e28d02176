package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SupportTenantSpec is what a business customer's support workspace should be.
//
// +kubebuilder:validation:XValidation:rule="!has(self.failover) || has(self.replication)",message="failover needs replication: without a peer there is nothing to fail over to"
type SupportTenantSpec struct {
	// DisplayName is the customer's name as the dashboard shows it: any script, emoji included, but no control
	// characters and no text-direction overrides (which would make a name read as another in a list).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule=`!self.matches(r'[\x00-\x1f\x7f-\x9f\x{202a}-\x{202e}\x{2066}-\x{2069}]')`,message="displayName must not contain control characters or text-direction overrides"
	DisplayName string `json:"displayName"`

	// Storage configures the tenant's MinIO object storage.
	// +kubebuilder:default={}
	// +optional
	Storage StorageSpec `json:"storage,omitempty"`

	// Ingest configures the service that takes the agents' records.
	// +kubebuilder:default={}
	// +optional
	Ingest IngestSpec `json:"ingest,omitempty"`

	// Dashboard configures the web dashboard.
	// +kubebuilder:default={}
	// +optional
	Dashboard DashboardSpec `json:"dashboard,omitempty"`

	// Replication names the peer cluster that holds a hot standby of this tenant's storage. Absent: the tenant
	// lives in this cluster only.
	// +optional
	Replication *ReplicationSpec `json:"replication,omitempty"`

	// Failover says when traffic moves to the peer's storage.
	// +optional
	Failover *FailoverSpec `json:"failover,omitempty"`

	// Suspend scales the tenant's data plane (storage, ingest, dashboard) to zero. Data, credentials and the
	// bucket are kept; setting it back to false brings the same workspace back.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// ReclaimPolicy says what happens to the storage volumes when a tenant is deleted.
// +kubebuilder:validation:Enum=Retain;Delete
type ReclaimPolicy string

const (
	// ReclaimRetain keeps the volumes (PersistentVolumeClaims) of a deleted tenant.
	ReclaimRetain ReclaimPolicy = "Retain"
	// ReclaimDelete deletes the volumes together with the tenant.
	ReclaimDelete ReclaimPolicy = "Delete"
)

// StorageSpec configures the tenant's MinIO.
//
// +kubebuilder:validation:XValidation:rule="has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)",message="storageClassName is immutable"
// +kubebuilder:validation:XValidation:rule="!has(self.size) || !has(oldSelf.size) || self.size == oldSelf.size",message="size is immutable: volumes cannot be resized by the operator yet"
// +kubebuilder:validation:XValidation:rule="!has(self.servers) || !has(oldSelf.servers) || self.servers == oldSelf.servers",message="servers is immutable: a MinIO erasure set cannot change its server count"
type StorageSpec struct {
	// Size of each MinIO server's volume, from 1Gi to 64Ti (the largest volume the major clouds offer).
	// +kubebuilder:default="10Gi"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('1Gi')) >= 0",message="size must be at least 1Gi"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('64Ti')) <= 0",message="size must be at most 64Ti"
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`

	// StorageClassName of the volumes; absent means the cluster's default class.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule=`self.matches(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')`,message="storageClassName must be a StorageClass's name: lowercase letters, digits, '-' and '.'"
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`

	// Servers is the number of MinIO servers: 1 (single drive) or 4 to 16 (erasure coded).
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16
	// +kubebuilder:validation:XValidation:rule="self == 1 || self >= 4",message="servers must be 1 or between 4 and 16"
	// +optional
	Servers int32 `json:"servers,omitempty"`

	// RetentionDays is how long records are kept before the bucket's lifecycle rule expires them.
	// +kubebuilder:default=365
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=36500
	// +optional
	RetentionDays int32 `json:"retentionDays,omitempty"`

	// Image overrides the operator's default MinIO image for this tenant.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule=`!self.matches(r'[\s\x00-\x1f\x7f]')`,message="image must be an image reference without spaces or control characters"
	// +optional
	Image string `json:"image,omitempty"`

	// ReclaimPolicy says whether the volumes are kept (Retain) or deleted (Delete) with the tenant.
	// +kubebuilder:default=Retain
	// +optional
	ReclaimPolicy ReclaimPolicy `json:"reclaimPolicy,omitempty"`

	// Resources of each MinIO container; absent means the operator's defaults.
	// +kubebuilder:validation:XValidation:rule="!has(self.requests) || !has(self.limits) || ['cpu', 'memory', 'ephemeral-storage'].all(k, !(k in self.requests) || !(k in self.limits) || quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k]))) <= 0)",message="requests must not exceed limits (cpu, memory, ephemeral-storage)"
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
}

// IngestSpec configures the ingest service.
//
// +kubebuilder:validation:XValidation:rule="!has(self.tlsSecretName) || has(self.host)",message="tlsSecretName needs host"
// +kubebuilder:validation:XValidation:rule="!has(self.maxReplicas) || !has(self.replicas) || self.maxReplicas >= self.replicas",message="maxReplicas must be greater than or equal to replicas"
type IngestSpec struct {
	// Replicas is the minimum number of ingest pods.
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// MaxReplicas is the most pods the autoscaler may run.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxReplicas int32 `json:"maxReplicas,omitempty"`

	// TargetCPUUtilizationPercentage is the autoscaler's target average CPU use.
	// +kubebuilder:default=70
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=100
	// +optional
	TargetCPUUtilizationPercentage int32 `json:"targetCPUUtilizationPercentage,omitempty"`

	// Resources of each ingest container; absent means the operator's defaults.
	// +kubebuilder:validation:XValidation:rule="!has(self.requests) || !has(self.limits) || ['cpu', 'memory', 'ephemeral-storage'].all(k, !(k in self.requests) || !(k in self.limits) || quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k]))) <= 0)",message="requests must not exceed limits (cpu, memory, ephemeral-storage)"
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// Exposure publishes ingest to the agents; without a host, agents must reach the in-cluster Service.
	Exposure `json:",inline"`
}

// Exposure publishes a component under a public host name through an Ingress.
type Exposure struct {
	// Host is the public host name; when set, an Ingress routes it to the component.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	Host string `json:"host,omitempty"`

	// TLSSecretName names the Secret with the Ingress's certificate, in the tenant's namespace: a name, never
	// namespace/name (which some Ingress controllers would follow into another namespace).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule=`self.matches(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')`,message="tlsSecretName must name a Secret in the tenant's own namespace: a lowercase name, not namespace/name"
	// +optional
	TLSSecretName string `json:"tlsSecretName,omitempty"`

	// IngressClassName selects the Ingress controller; absent means the cluster's default.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule=`self.matches(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')`,message="ingressClassName must be an IngressClass's name: lowercase letters, digits, '-' and '.'"
	// +optional
	IngressClassName *string `json:"ingressClassName,omitempty"`
}

// DashboardSpec configures the web dashboard.
//
// +kubebuilder:validation:XValidation:rule="!has(self.tlsSecretName) || has(self.host)",message="tlsSecretName needs host"
type DashboardSpec struct {
	// Replicas is the number of dashboard pods.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=20
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	Exposure `json:",inline"`
}

// ReplicationSpec names the peer cluster of a replicated tenant.
//
// A tenant with replication is either a home (created by a human) or the standby of a home (created by the home
// cluster's operator in the peer cluster, with standbyOf set). The home's operator keeps the standby's spec equal
// to the home's; both sides run a full stack and replicate their buckets to each other.
//
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.standbyOf) || has(self.standbyOf)",message="standbyOf cannot be removed: a standby stays a standby"
// +kubebuilder:validation:XValidation:rule="!has(self.standbyOf) || !has(self.keepStandby) || !self.keepStandby",message="keepStandby applies to a home tenant, not to a standby"
type ReplicationSpec struct {
	// Peer is the name of the PeerCluster that holds the other copy: on a home, the cluster of its standby; on a
	// standby, its home cluster.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Peer string `json:"peer"`

	// StandbyOf marks a standby: the name of its home cluster. The home cluster's operator sets it on the tenant
	// it mirrors into this cluster; do not set it by hand.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="standbyOf is immutable"
	// +optional
	StandbyOf string `json:"standbyOf,omitempty"`

	// KeepStandby leaves the standby (and its copy of the data) in the peer cluster when this home tenant is
	// deleted. By default deleting the home deletes its standby.
	// +optional
	KeepStandby bool `json:"keepStandby,omitempty"`
}

// FailoverMode says whether storage failover happens by itself.
// +kubebuilder:validation:Enum=Automatic;Manual
type FailoverMode string

const (
	// FailoverAutomatic moves traffic to the peer when local storage has been unhealthy for UnhealthyAfter.
	FailoverAutomatic FailoverMode = "Automatic"
	// FailoverManual leaves the decision to a human.
	FailoverManual FailoverMode = "Manual"
)

// FailoverSpec configures storage failover.
type FailoverSpec struct {
	// Mode is Automatic or Manual.
	// +kubebuilder:default=Automatic
	// +optional
	Mode FailoverMode `json:"mode,omitempty"`

	// UnhealthyAfter is how long local storage must fail before traffic moves to the peer.
	// +kubebuilder:default="15s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('1h')",message="unhealthyAfter must be between 1s and 1h"
	// +optional
	UnhealthyAfter metav1.Duration `json:"unhealthyAfter,omitempty"`

	// HealthyFor is how long local storage must answer again, without a failure, before failing back begins: a
	// flapping copy does not take the tenant back and forth. Failing back then drives the outage's writes across
	// and verifies both copies before local storage serves again.
	// +kubebuilder:default="60s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('24h')",message="healthyFor must be between 0s and 24h"
	// +optional
	HealthyFor metav1.Duration `json:"healthyFor,omitempty"`
}

// AnnotationActiveSite, set to "peer" on a replicated tenant, asks for its data plane to be served from the
// peer's copy: in Manual mode the way to fail over, in both modes a planned switchover. Removing it fails back
// (after verification).
const AnnotationActiveSite = "supportstack.io/active-site"

// AnnotationDrill starts a disaster-recovery drill on a replicated tenant: each new value names one drill
// (`kubectl annotate st acme supportstack.io/drill=$(date +%s) --overwrite`). Under live traffic the operator
// writes canaries to this copy, refuses this copy's storage to the data plane (it disables the data plane's
// MinIO user here, nothing is stopped), measures how long the data plane took to write through the peer (RTO)
// and which canaries the peer lacked at that moment (RPO), declares the failover as for an outage, restores the
// user and fails back with verification. Removing or changing the annotation during a drill ends it and restores
// access. status.replication.lastDrill has the result.
const AnnotationDrill = "supportstack.io/drill"

// FailoverState is where a replicated tenant is in the failover cycle.
// +kubebuilder:validation:Enum=Normal;LocalFailing;AwaitingSwitch;FailedOver;FailingBack;Unavailable
type FailoverState string

const (
	FailoverNormal         FailoverState = "Normal"
	FailoverLocalFailing   FailoverState = "LocalFailing"
	FailoverAwaitingSwitch FailoverState = "AwaitingSwitch"
	FailoverFailedOver     FailoverState = "FailedOver"
	FailoverFailingBack    FailoverState = "FailingBack"
	FailoverUnavailable    FailoverState = "Unavailable"
)

// FailoverStatus is the operator's declaration of where a replicated tenant serves from, and why.
type FailoverStatus struct {
	// State is Normal, LocalFailing, AwaitingSwitch (Manual mode, waiting for a person), FailedOver,
	// FailingBack (catching up and verifying before local storage serves again) or Unavailable (neither copy
	// answers).
	State FailoverState `json:"state"`
	// Reason is a CamelCase word for the state.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message says why, for humans.
	// +optional
	Message string `json:"message,omitempty"`
	// VerifyFrom is set while the tenant waits for a verification, failing back or draining for a switchover:
	// only one that covers every version written before it counts.
	// +optional
	VerifyFrom *metav1.Time `json:"verifyFrom,omitempty"`
}

// TenantPhase summarises the conditions for print columns. It is never read back as input.
// +kubebuilder:validation:Enum=Provisioning;Ready;Degraded;FailedOver;Suspended
type TenantPhase string

const (
	PhaseProvisioning TenantPhase = "Provisioning"
	PhaseReady        TenantPhase = "Ready"
	PhaseDegraded     TenantPhase = "Degraded"
	PhaseFailedOver   TenantPhase = "FailedOver"
	PhaseSuspended    TenantPhase = "Suspended"
)

// Site names one of the two copies of a tenant's storage.
// +kubebuilder:validation:Enum=local;peer
type Site string

const (
	SiteLocal Site = "local"
	SitePeer  Site = "peer"
)

// SupportTenantStatus is what the operator observed.
type SupportTenantStatus struct {
	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase summarises the conditions for humans.
	// +optional
	Phase TenantPhase `json:"phase,omitempty"`

	// Conditions: Ready, StorageReady, IngestReady, DashboardReady (and, with replication, Replicating and
	// PeerReachable).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// FirstReadyTime is when the tenant first became Ready; until then it is provisioning, afterwards anything
	// short of Ready is degraded.
	// +optional
	FirstReadyTime *metav1.Time `json:"firstReadyTime,omitempty"`

	// Endpoints are the tenant's addresses.
	// +optional
	Endpoints TenantEndpoints `json:"endpoints,omitempty"`

	// CredentialsSecretName names the Secret with the tenant's generated credentials.
	// +optional
	CredentialsSecretName string `json:"credentialsSecretName,omitempty"`

	// Storage is the health of the tenant's storage sites.
	// +optional
	Storage *StorageStatus `json:"storage,omitempty"`

	// Replication reports the state of replication to the peer.
	// +optional
	Replication *ReplicationStatus `json:"replication,omitempty"`

	// Failover is where a replicated tenant serves from, and why.
	// +optional
	Failover *FailoverStatus `json:"failover,omitempty"`
}

// TenantEndpoints are the URLs of a tenant's services.
type TenantEndpoints struct {
	// Ingest is where agents send their records.
	// +optional
	Ingest string `json:"ingest,omitempty"`
	// Dashboard is the web dashboard.
	// +optional
	Dashboard string `json:"dashboard,omitempty"`
	// Status is the tenant's status page.
	// +optional
	Status string `json:"status,omitempty"`
}

// StorageStatus is the health of each storage site.
type StorageStatus struct {
	// Bucket is the name of the tenant's bucket.
	// +optional
	Bucket string `json:"bucket,omitempty"`
	// ActiveSite is the site that takes writes now.
	// +optional
	ActiveSite Site `json:"activeSite,omitempty"`
	// Local is the health of this cluster's storage.
	// +optional
	Local *SiteHealth `json:"local,omitempty"`
	// Peer is the health of the peer cluster's storage.
	// +optional
	Peer *SiteHealth `json:"peer,omitempty"`
}

// SiteHealth is the health of one storage site.
type SiteHealth struct {
	// Healthy is whether the site answered its last health check.
	Healthy bool `json:"healthy"`
	// Since is when Healthy last changed.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
}

// ReplicationStatus reports replication between this cluster's copy and the peer's. Each cluster's operator
// reports what reaches its copy and what leaves it.
type ReplicationStatus struct {
	// LagSeconds is how long the peer's writes take to reach this cluster's copy, measured by the peer's
	// heartbeat (written there every few seconds, read here with MinIO's proxying off). It grows while nothing
	// arrives. It follows the measurement when that moves by more than 2 seconds or crosses the lag threshold;
	// the supportstack_replication_lag_seconds metric has every measurement.
	// +optional
	LagSeconds *int64 `json:"lagSeconds,omitempty"`
	// FailedObjects is the number of versions that failed to replicate to the peer in the last hour, as MinIO
	// counts them.
	// +optional
	FailedObjects int64 `json:"failedObjects,omitempty"`
	// Backlog is the number of versions in this copy that the last diff found not yet on the peer.
	// +optional
	Backlog *int64 `json:"backlog,omitempty"`
	// CatchUp reports the operator driving a backlog across after the peer was unreachable.
	// +optional
	CatchUp *CatchUpStatus `json:"catchUp,omitempty"`
	// LastVerifiedSync is when both sides were last verified to hold the same versions.
	// +optional
	LastVerifiedSync *metav1.Time `json:"lastVerifiedSync,omitempty"`
	// LastFailover records the last time traffic moved to the other site.
	// +optional
	LastFailover *FailoverRecord `json:"lastFailover,omitempty"`
	// LastDrill is the last disaster-recovery drill (annotation supportstack.io/drill), running or done.
	// +optional
	LastDrill *DrillRecord `json:"lastDrill,omitempty"`
}

// DrillPhase is where a disaster-recovery drill is.
// +kubebuilder:validation:Enum=Preparing;Fenced;Verifying;Succeeded;Failed;Refused;Aborted
type DrillPhase string

const (
	// DrillPreparing: canaries are written to this copy.
	DrillPreparing DrillPhase = "Preparing"
	// DrillFenced: this copy refuses the data plane, which writes through the peer.
	DrillFenced DrillPhase = "Fenced"
	// DrillVerifying: access is restored; the tenant fails back, after healthyFor and a verification.
	DrillVerifying DrillPhase = "Verifying"
	// DrillSucceeded: the data plane moved to the peer, the failover was declared, and the tenant failed back
	// after both copies were verified equal.
	DrillSucceeded DrillPhase = "Succeeded"
	// DrillFailed: the drill ran but measured or verified less than it should (the message says what).
	DrillFailed DrillPhase = "Failed"
	// DrillRefused: the drill did not start because the tenant was not in a state to run one safely.
	DrillRefused DrillPhase = "Refused"
	// DrillAborted: the drill ended early (annotation changed, peer failed, operator restarted); access is
	// restored.
	DrillAborted DrillPhase = "Aborted"
)

// DrillRecord is the progress or result of one disaster-recovery drill.
type DrillRecord struct {
	// Name is the value of the supportstack.io/drill annotation that started the drill.
	Name string `json:"name"`
	// Phase is Preparing, Fenced, Verifying, or a result: Succeeded, Failed, Refused, Aborted.
	Phase DrillPhase `json:"phase"`
	// StartedAt is when the drill started (or was refused).
	StartedAt metav1.Time `json:"startedAt"`
	// FencedAt is when this copy began refusing the data plane.
	// +optional
	FencedAt *metav1.Time `json:"fencedAt,omitempty"`
	// WritesResumedAt is when the data plane's writes were acknowledged through the peer, as it recorded it.
	// +optional
	WritesResumedAt *metav1.Time `json:"writesResumedAt,omitempty"`
	// DeclaredAt is when the operator declared the failover the fence caused.
	// +optional
	DeclaredAt *metav1.Time `json:"declaredAt,omitempty"`
	// RestoredAt is when this copy took the data plane again.
	// +optional
	RestoredAt *metav1.Time `json:"restoredAt,omitempty"`
	// FailedBackAt is when the tenant served from this copy again.
	// +optional
	FailedBackAt *metav1.Time `json:"failedBackAt,omitempty"`
	// CompletedAt is when the drill ended.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
	// RTO is the longest time a data-plane server could not write, from its first write this copy refused to
	// the first the peer took, measured by the data plane.
	// +optional
	RTO *metav1.Duration `json:"rto,omitempty"`
	// RPO is how much was not yet on the peer when this copy was fenced: the age of the oldest canary written
	// here that the peer lacked at that moment, zero when it had every canary.
	// +optional
	RPO *metav1.Duration `json:"rpo,omitempty"`
	// Canaries is how many canaries were written to this copy before the fence; CanariesMissing how many of them
	// the peer lacked at the fence.
	// +optional
	Canaries int32 `json:"canaries,omitempty"`
	// +optional
	CanariesMissing int32 `json:"canariesMissing,omitempty"`
	// Verified says the tenant failed back after both copies were verified to hold the same versions.
	// +optional
	Verified bool `json:"verified,omitempty"`
	// Message says what happened, for humans.
	// +optional
	Message string `json:"message,omitempty"`
}

// CatchUpPhase is what the operator does about a replication backlog.
// +kubebuilder:validation:Enum=Idle;Requeueing;Resyncing;Verifying
type CatchUpPhase string

const (
	// CatchUpIdle: no backlog is being driven.
	CatchUpIdle CatchUpPhase = "Idle"
	// CatchUpRequeueing: the operator re-queues each version MinIO has not replicated.
	CatchUpRequeueing CatchUpPhase = "Requeueing"
	// CatchUpResyncing: the backlog did not shrink by re-queueing; MinIO resyncs the whole bucket to the peer.
	CatchUpResyncing CatchUpPhase = "Resyncing"
	// CatchUpVerifying: the backlog is gone; the versioned listings of both copies are being compared.
	CatchUpVerifying CatchUpPhase = "Verifying"
)

// CatchUpStatus is the progress of the last catch-up.
type CatchUpStatus struct {
	// Phase is what the operator does now.
	Phase CatchUpPhase `json:"phase"`
	// StartedAt is when the current or last catch-up started.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// CompletedAt is when the last catch-up ended with both copies verified equal.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
	// Requeued is the number of versions the current or last catch-up re-queued.
	// +optional
	Requeued int64 `json:"requeued,omitempty"`
}

// FailoverRecord is one failover.
type FailoverRecord struct {
	// At is when the failover began: when local storage was first seen failing, or when a switchover was made.
	At metav1.Time `json:"at"`
	// Trigger is LocalStorageFailed (declared automatically), SwitchRequested (Manual mode), SwitchedOver
	// (a planned switchover) or Drill (a drill's fence).
	// +optional
	Trigger string `json:"trigger,omitempty"`
	// DeclaredAt is when the operator declared the failover.
	// +optional
	DeclaredAt *metav1.Time `json:"declaredAt,omitempty"`
	// WritesResumedAt is when the data plane's servers had all moved their writes to the peer's copy, as they
	// recorded it (automatic failovers: the breakers moved them before the failover was declared).
	// +optional
	WritesResumedAt *metav1.Time `json:"writesResumedAt,omitempty"`
	// RTO is the longest time a data-plane server could not take writes, from its first failed write to the
	// first the peer's copy took, measured by the data plane itself.
	// +optional
	RTO *metav1.Duration `json:"rto,omitempty"`
	// FailedBackAt is when local storage served again.
	// +optional
	FailedBackAt *metav1.Time `json:"failedBackAt,omitempty"`
	// Verified says the failback came after both copies were verified equal; false when local storage had to
	// serve again because the peer failed.
	// +optional
	Verified bool `json:"verified,omitempty"`
}

// SupportTenant is a business customer's support workspace: ingest service, MinIO storage and dashboard.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=st,categories=supportstack
// +kubebuilder:printcolumn:name="Display Name",type=string,JSONPath=`.spec.displayName`,priority=1
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Active Site",type=string,JSONPath=`.status.storage.activeSite`
// +kubebuilder:printcolumn:name="Failover",type=string,JSONPath=`.status.failover.state`,priority=1
// +kubebuilder:printcolumn:name="Drill",type=string,JSONPath=`.status.replication.lastDrill.phase`,priority=1
// +kubebuilder:printcolumn:name="Standby Of",type=string,JSONPath=`.spec.replication.standbyOf`
// +kubebuilder:printcolumn:name="Peer",type=string,JSONPath=`.spec.replication.peer`,priority=1
// +kubebuilder:printcolumn:name="Lag",type=integer,JSONPath=`.status.replication.lagSeconds`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 40",message="metadata.name must be at most 40 characters: it prefixes the names of the tenant's objects",fieldPath=".metadata.name",reason=FieldValueInvalid
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must start with a letter and hold only lowercase letters, digits and '-': it names Services",fieldPath=".metadata.name",reason=FieldValueInvalid
type SupportTenant struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec SupportTenantSpec `json:"spec"`
	// +optional
	Status SupportTenantStatus `json:"status,omitempty"`
}

// SupportTenantList is a list of SupportTenants.
//
// +kubebuilder:object:root=true
type SupportTenantList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SupportTenant `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SupportTenant{}, &SupportTenantList{})
}
