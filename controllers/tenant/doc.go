// Package tenant holds the SupportTenant reconciler for one cluster: it renders the tenant's objects (credentials
// Secret, MinIO StatefulSet and Services, ingest and dashboard Deployments with their Services, autoscaler,
// disruption budget, Ingress and NetworkPolicies), applies them with server-side apply under one field owner,
// bootstraps the tenant's bucket once MinIO answers, and derives the tenant's conditions from what it observed.
//
// Rendering (render_*.go) and status derivation (status.go) are pure functions of the tenant and the observed
// state; controller.go only sequences the steps and talks to the API server and MinIO.
package tenant
