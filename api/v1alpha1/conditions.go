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
	// ReasonServersUnavailable: some servers of a tenant's MinIO erasure set are down and the set still serves
	// (MinIO reports write quorum); redundancy is reduced until they return.
	ReasonServersUnavailable = "ServersUnavailable"
	// ReasonBucketNotConfigured: MinIO answers but the bucket, versioning or lifecycle could not be set.
	ReasonBucketNotConfigured = "BucketNotConfigured"
	// ReasonApplyFailed: the API server refused one of the tenant's objects.
	ReasonApplyFailed = "ApplyFailed"
	// ReasonSuspended: spec.suspend is true; the data plane is scaled to zero.
	ReasonSuspended = "Suspended"
	// ReasonQuotaExceeded: the tenant's pods or volumes need more than a ResourceQuota of its namespace allows;
	// the message names the quota, the resource and both amounts.
	ReasonQuotaExceeded = "QuotaExceeded"
	// ReasonComponentsNotReady: Ready is false because another condition is.
	ReasonComponentsNotReady = "ComponentsNotReady"
	// ReasonInvalidSpec: the spec passed the API server's validation but cannot be carried out.
	ReasonInvalidSpec = "InvalidSpec"
)

// Reasons of the replication conditions (PeerReachable, Replicating) of a replicated tenant.
const (
	// ReasonPeerClusterNotFound: spec.replication.peer names no PeerCluster in this cluster.
	ReasonPeerClusterNotFound = "PeerClusterNotFound"
	// ReasonPeerAPIUnreachable: the PeerCluster's API server cannot be used (its own Ready condition says why).
	ReasonPeerAPIUnreachable = "PeerAPIUnreachable"
	// ReasonPeerStorageUnreachable: the peer's copy of the tenant's storage does not answer from here.
	ReasonPeerStorageUnreachable = "PeerStorageUnreachable"
	// ReasonStandbyConflict: the peer cluster holds a tenant of the same name that is not this home's standby.
	ReasonStandbyConflict = "StandbyConflict"
	// ReasonWaitingForHome: a standby waits for what its home's operator hands over (the shared Secret).
	ReasonWaitingForHome = "WaitingForHome"
	// ReasonClusterNameMissing: the operator has no --cluster-name, which names this cluster to its peers.
	ReasonClusterNameMissing = "ClusterNameMissing"
	// ReasonReplicationSetupFailed: MinIO refused the users, the remote target or the replication rule.
	ReasonReplicationSetupFailed = "ReplicationSetupFailed"
	// ReasonNoPeerHeartbeat: no heartbeat of the peer has reached this copy yet.
	ReasonNoPeerHeartbeat = "NoPeerHeartbeat"
	// ReasonLagging: the peer's heartbeat arrives later than the lag threshold.
	ReasonLagging = "Lagging"
	// ReasonCatchingUp: the operator drives a backlog of versions to the peer.
	ReasonCatchingUp = "CatchingUp"
	// ReasonInSync: replication runs both ways within the lag threshold.
	ReasonInSync = "InSync"
)

// Condition types of a PeerCluster.
const (
	// PeerConditionReady is true when the peer's API server answers this operator with the supportstack API.
	PeerConditionReady = "Ready"
)

// Reasons of a PeerCluster's Ready condition.
const (
	// ReasonConnected: the peer's API server answered with the supportstack API this operator needs.
	ReasonConnected = "Connected"
	// ReasonSecretMissing: the kubeconfig Secret or its key does not exist.
	ReasonSecretMissing = "SecretMissing"
	// ReasonKubeconfigInvalid: the kubeconfig cannot be parsed or names no usable cluster and user.
	ReasonKubeconfigInvalid = "KubeconfigInvalid"
	// ReasonTLSFailed: the peer's certificate does not verify against the kubeconfig's CA (or the reverse).
	ReasonTLSFailed = "TLSFailed"
	// ReasonUnauthorized: the peer's API server refused the kubeconfig's credentials or its permissions are too
	// narrow.
	ReasonUnauthorized = "Unauthorized"
	// ReasonUnreachable: the peer's API server does not answer.
	ReasonUnreachable = "Unreachable"
	// ReasonCRDMissing: the peer cluster has no supportstack CRDs.
	ReasonCRDMissing = "CRDMissing"
	// ReasonCRDOutdated: the peer's supportstack CRDs lack fields this operator writes.
	ReasonCRDOutdated = "CRDOutdated"
)
