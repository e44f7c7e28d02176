package v1alpha1

import "strings"

// StorageURL is the URL of the tenant's MinIO in the peer cluster, as reached from this cluster.
func (p *PeerCluster) StorageURL(namespace, tenant string) string {
	return expandTemplate(p.Spec.StorageURLTemplate, namespace, tenant)
}

// IngestURL is the URL of the tenant's ingest service in the peer cluster, as agents reach it.
func (p *PeerCluster) IngestURL(namespace, tenant string) string {
	return expandTemplate(p.Spec.IngestURLTemplate, namespace, tenant)
}

func expandTemplate(tpl, namespace, tenant string) string {
	return strings.TrimRight(strings.NewReplacer("{{tenant}}", tenant, "{{namespace}}", namespace).Replace(tpl), "/")
}
