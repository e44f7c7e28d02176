package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SecretKeyReference points at one key of a Secret in a named namespace.
type SecretKeyReference struct {
	// Namespace of the Secret.
	// +kubebuilder:validation:MinLength=1
	Namespace string `json:"namespace"`
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Key in the Secret's data.
	// +kubebuilder:default=kubeconfig
	// +optional
	Key string `json:"key,omitempty"`
}

// PeerClusterSpec says how this cluster reaches the other one.
type PeerClusterSpec struct {
	// KubeconfigSecretRef points at a kubeconfig for the peer's API server.
	KubeconfigSecretRef SecretKeyReference `json:"kubeconfigSecretRef"`

	// StorageURLTemplate is the URL of a tenant's MinIO in the peer cluster, as reached from here; {{tenant}} is
	// replaced by the tenant's name and {{namespace}} by its namespace.
	// +kubebuilder:validation:XValidation:rule="self.contains('{{tenant}}')",message="storageURLTemplate must contain {{tenant}}"
	// +kubebuilder:validation:Pattern=`^https?://`
	StorageURLTemplate string `json:"storageURLTemplate"`

	// IngestURLTemplate is the URL of a tenant's ingest service in the peer cluster, as reached by agents.
	// +kubebuilder:validation:XValidation:rule="self.contains('{{tenant}}')",message="ingestURLTemplate must contain {{tenant}}"
	// +kubebuilder:validation:Pattern=`^https?://`
	IngestURLTemplate string `json:"ingestURLTemplate"`

	// Inbound says where the peer's traffic to the tenants' MinIO (replication) enters this cluster. A
	// replicated tenant's MinIO admits it from there and from nowhere else; without it, the peer cannot reach
	// the tenants' MinIO and replication into this cluster stalls.
	// +optional
	Inbound *PeerInbound `json:"inbound,omitempty"`
}

// PeerInbound names where a peer's traffic enters this cluster.
type PeerInbound struct {
	// Namespaces of the ingress controller or gateway that publishes the tenants' MinIO to the peer.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:items:MaxLength=63
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`
	// CIDRs the peer's traffic comes from when it reaches MinIO directly (the peer's egress addresses).
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="every entry of cidrs must be a CIDR such as 203.0.113.0/24"
	// +kubebuilder:validation:items:MaxLength=43
	// +optional
	CIDRs []string `json:"cidrs,omitempty"`
}

// PeerClusterStatus is what the operator observed of the peer.
type PeerClusterStatus struct {
	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Reachable is whether the peer's API server answered the last contact.
	// +optional
	Reachable bool `json:"reachable,omitempty"`
	// LastContact is when the peer last answered.
	// +optional
	LastContact *metav1.Time `json:"lastContact,omitempty"`
	// Conditions: Ready, with a reason a human can act on.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// PeerCluster says how this cluster reaches another cluster that holds replicas of tenants.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=peer,categories=supportstack
// +kubebuilder:printcolumn:name="Reachable",type=boolean,JSONPath=`.status.reachable`
// +kubebuilder:printcolumn:name="Last Contact",type=date,JSONPath=`.status.lastContact`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PeerCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec PeerClusterSpec `json:"spec"`
	// +optional
	Status PeerClusterStatus `json:"status,omitempty"`
}

// PeerClusterList is a list of PeerClusters.
//
// +kubebuilder:object:root=true
type PeerClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PeerCluster `json:"items"`
}

func init() {
	SchemeBuilder.Register(&PeerCluster{}, &PeerClusterList{})
}
