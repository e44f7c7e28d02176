// Package v1alpha1 holds the supportstack.io/v1alpha1 API: SupportTenant, a business customer's support
// workspace, and PeerCluster, how this cluster reaches the cluster that holds the tenants' replicas.
//
// +kubebuilder:object:generate=true
// +kubebuilder:ac:generate=true
// +groupName=supportstack.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "supportstack.io", Version: "v1alpha1"}

	// SchemeGroupVersion is GroupVersion under the name the generated apply configurations use.
	SchemeGroupVersion = GroupVersion

	// SchemeBuilder registers the kinds of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
