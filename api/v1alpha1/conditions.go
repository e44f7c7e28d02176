package v1alpha1

// Condition types of a SupportTenant. Ready is true when every other condition that applies is true.
const (
	ConditionReady          = "Ready"
	ConditionStorageReady   = "StorageReady"
	ConditionIngestReady    = "IngestReady"
	ConditionDashboardReady = "DashboardReady"
	ConditionReplicating    = "Replicating"
	ConditionPeerReachable  = "PeerReachable"
)

// Condition reasons. They are CamelCase constants so that tools can match on them; the message carries detail.
const (
	// ReasonReconciling: the operator is creating or updating the tenant's objects.
	ReasonReconciling = "Reconciling"
	// ReasonAvailable: everything the condition covers is up.
	ReasonAvailable = "Available"
	// ReasonPodsNotReady: a workload has fewer ready pods than it wants.
	ReasonPodsNotReady = "PodsNotReady"
	// ReasonStorageUnreachable: MinIO does not answer its health check.
	ReasonStorageUnreachable = "StorageUnreachable"
	// ReasonBucketNotConfigured: MinIO answers but the bucket, versioning or lifecycle could not be set.
	ReasonBucketNotConfigured = "BucketNotConfigured"
	// ReasonApplyFailed: the API server refused one of the tenant's objects.
	ReasonApplyFailed = "ApplyFailed"
	// ReasonSuspended: spec.suspend is true; the data plane is scaled to zero.
	ReasonSuspended = "Suspended"
	// ReasonComponentsNotReady: Ready is false because another condition is.
	ReasonComponentsNotReady = "ComponentsNotReady"
	// ReasonInvalidSpec: the spec passed the API server's validation but cannot be carried out.
	ReasonInvalidSpec = "InvalidSpec"
)
