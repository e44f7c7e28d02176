package portal

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// The catalog is what platform ops offer customers: plans and quotas, in the ConfigMap ConfigMapName of the
// portal's namespace (key CatalogKey), so that Kubernetes stays the portal's only store.

// ConfigMapName and CatalogKey locate the catalog.
const (
	ConfigMapName = "supportstack-portal"
	CatalogKey    = "catalog.yaml"
)

// Catalog lists the plans and the quotas.
type Catalog struct {
	Plans []Plan `json:"plans"`
	// Quota applies to every customer without one of their own in Customers (by email).
	Quota     Quota            `json:"quota"`
	Customers map[string]Quota `json:"customers,omitempty"`
}

// Plan is a kind of workspace.
type Plan struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Storage is the MinIO volume's size.
	Storage resource.Quantity `json:"storage"`
	// RetentionDays is how long records are kept.
	RetentionDays int32 `json:"retentionDays,omitempty"`
	// IngestReplicas and IngestMaxReplicas bound ingest's autoscaling.
	IngestReplicas    int32 `json:"ingestReplicas,omitempty"`
	IngestMaxReplicas int32 `json:"ingestMaxReplicas,omitempty"`
	// Peer, when set, replicates the workspace to that PeerCluster.
	Peer string `json:"peer,omitempty"`
	// Retain keeps the volumes (reclaimPolicy Retain) when the workspace is deleted.
	Retain bool `json:"retain,omitempty"`
}

// Quota bounds what one customer may hold.
type Quota struct {
	Workspaces int               `json:"workspaces"`
	Storage    resource.Quantity `json:"storage"`
}

// ParseCatalog reads and checks the catalog.
func ParseCatalog(data string) (Catalog, error) {
	var c Catalog
	if err := yaml.UnmarshalStrict([]byte(data), &c); err != nil {
		return c, fmt.Errorf("%s: %w", CatalogKey, err)
	}
	if len(c.Plans) == 0 {
		return c, fmt.Errorf("%s: no plans", CatalogKey)
	}
	seen := map[string]bool{}
	for i, p := range c.Plans {
		switch {
		case p.Name == "" || seen[p.Name]:
			return c, fmt.Errorf("%s: plans[%d]: a plan needs a name of its own", CatalogKey, i)
		case p.Storage.Cmp(resource.MustParse("1Gi")) < 0:
			return c, fmt.Errorf("%s: plan %q: storage must be at least 1Gi", CatalogKey, p.Name)
		case p.RetentionDays < 0:
			return c, fmt.Errorf("%s: plan %q: retentionDays must not be negative", CatalogKey, p.Name)
		}
		seen[p.Name] = true
	}
	if c.Quota.Workspaces < 0 {
		return c, fmt.Errorf("%s: quota.workspaces must not be negative", CatalogKey)
	}
	lower := map[string]Quota{}
	for email, q := range c.Customers {
		lower[strings.ToLower(email)] = q
	}
	c.Customers = lower
	return c, nil
}

// Plan returns the plan of that name.
func (c Catalog) Plan(name string) (Plan, bool) {
	i := slices.IndexFunc(c.Plans, func(p Plan) bool { return p.Name == name })
	if i < 0 {
		return Plan{}, false
	}
	return c.Plans[i], true
}

// QuotaOf is the customer's quota.
func (c Catalog) QuotaOf(email string) Quota {
	if q, ok := c.Customers[strings.ToLower(email)]; ok {
		return q
	}
	return c.Quota
}
