package objectstore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/lifecycle"

	"github.com/supportstack/supportstack/internal/protocol"
)

// Endpoint is one S3 endpoint and the credentials to use there.
type Endpoint struct {
	// URL is the endpoint's base URL, e.g. http://acme-minio.tenant-acme.svc.cluster.local:9000.
	URL       string
	AccessKey string
	SecretKey string
}

// RetentionRuleID names the lifecycle rule that the operator owns; other rules in the bucket are left alone.
const RetentionRuleID = "supportstack-retention"

// UnversionedPrefixes are excluded from versioning (a MinIO extension): the ingest service's seq ledgers, which
// are rewritten with every batch, and the dashboard's index snapshot, rewritten every few minutes. Versioned, each
// would pile up a version per write, and MinIO rewrites every version's metadata with each write. Unversioned
// objects are not replicated either: a ledger is each site's own and is rebuilt from the replicated batches
// (internal/ingest); so is the snapshot (internal/fleetindex).
var UnversionedPrefixes = []string{protocol.LedgerPrefix, protocol.IndexPrefix}

// healthTimeout bounds a health check whose context has no deadline: a storage outage must be noticed in
// seconds, not after TCP's timeouts.
const healthTimeout = 3 * time.Second

// Health returns nil when the endpoint's MinIO reports that it can serve reads and writes
// (GET /minio/health/cluster answers 200 only when write quorum is available). It waits until ctx's deadline,
// or healthTimeout when ctx has none.
func Health(ctx context.Context, hc *http.Client, endpoint string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, healthTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/minio/health/cluster", nil)
	if err != nil {
		return fmt.Errorf("build health request: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("storage health check: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("storage health check: %s answered %s", endpoint, resp.Status)
	}
	return nil
}

// NewClient returns a minio-go client for ep with minio-go's own retries.
func NewClient(ep Endpoint) (*minio.Client, error) { return newClient(ep, 0) }

// NewFailFastClient returns a minio-go client for ep that tries a request once: minio-go would otherwise retry a
// refused connection ten times with backoff (seconds), where a caller with a second endpoint wants to fall
// through to it at once.
func NewFailFastClient(ep Endpoint) (*minio.Client, error) { return newClient(ep, 1) }

// newClient checks ep's URL and builds the client; maxRetries 0 means minio-go's default.
func newClient(ep Endpoint, maxRetries int) (*minio.Client, error) {
	u, err := parseURL(ep.URL)
	if err != nil {
		return nil, err
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds:      credentials.NewStaticV4(ep.AccessKey, ep.SecretKey, ""),
		Secure:     u.Scheme == "https",
		MaxRetries: maxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("create storage client for %s: %w", ep.URL, err)
	}
	return c, nil
}

// Change is one thing EnsureBucket had to do.
type Change string

const (
	ChangeBucketCreated     Change = "BucketCreated"
	ChangeVersioningEnabled Change = "VersioningEnabled"
	// ChangeVersioningExclusions: the prefixes that must not be versioned were set.
	ChangeVersioningExclusions Change = "VersioningExclusionsSet"
	ChangeRetentionSet         Change = "RetentionSet"
)

// EnsureBucket makes sure the bucket exists, is versioned and expires objects after retentionDays, and reports
// what it changed. It reads before it writes, so calling it on a configured bucket changes nothing.
//
// Versioning is what makes two-way replication and lossless failback possible; the retention rule expires
// current versions after retentionDays and non-current versions after the same time, and removes the delete
// markers that expiry leaves behind.
func EnsureBucket(ctx context.Context, c *minio.Client, bucket string, retentionDays int) ([]Change, error) {
	var changes []Change
	exists, err := c.BucketExists(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("check bucket %q: %w", bucket, err)
	}
	if !exists {
		if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
			var resp minio.ErrorResponse
			// Another replica of the operator may have won the race; that is fine.
			if !errors.As(err, &resp) || resp.Code != "BucketAlreadyOwnedByYou" {
				return nil, fmt.Errorf("create bucket %q: %w", bucket, err)
			}
		}
		changes = append(changes, ChangeBucketCreated)
	}

	versioning, err := c.GetBucketVersioning(ctx, bucket)
	if err != nil {
		return changes, fmt.Errorf("read versioning of bucket %q: %w", bucket, err)
	}
	if !versioning.Enabled() || !excludes(versioning, UnversionedPrefixes) {
		cfg := minio.BucketVersioningConfiguration{Status: minio.Enabled}
		for _, p := range UnversionedPrefixes {
			cfg.ExcludedPrefixes = append(cfg.ExcludedPrefixes, minio.ExcludedPrefix{Prefix: p})
		}
		if err := c.SetBucketVersioning(ctx, bucket, cfg); err != nil {
			return changes, fmt.Errorf("set versioning of bucket %q: %w", bucket, err)
		}
		if versioning.Enabled() {
			changes = append(changes, ChangeVersioningExclusions)
		} else {
			changes = append(changes, ChangeVersioningEnabled)
		}
	}

	current, err := c.GetBucketLifecycle(ctx, bucket)
	if err != nil && minio.ToErrorResponse(err).Code != "NoSuchLifecycleConfiguration" {
		return changes, fmt.Errorf("read lifecycle of bucket %q: %w", bucket, err)
	}
	if desired, changed := withOperatorRules(current, retentionDays); changed {
		if err := c.SetBucketLifecycle(ctx, bucket, desired); err != nil {
			return changes, fmt.Errorf("set lifecycle of bucket %q: %w", bucket, err)
		}
		changes = append(changes, ChangeRetentionSet)
	}
	return changes, nil
}

// excludes reports whether a versioning configuration excludes exactly the given prefixes.
func excludes(v minio.BucketVersioningConfiguration, prefixes []string) bool {
	if len(v.ExcludedPrefixes) != len(prefixes) || v.ExcludeFolders {
		return false
	}
	for _, p := range prefixes {
		if !slices.ContainsFunc(v.ExcludedPrefixes, func(e minio.ExcludedPrefix) bool { return e.Prefix == p }) {
			return false
		}
	}
	return true
}

// RetentionRule is the lifecycle rule that keeps records for days.
func RetentionRule(days int) lifecycle.Rule {
	return lifecycle.Rule{
		ID:                          RetentionRuleID,
		Status:                      "Enabled",
		Expiration:                  lifecycle.Expiration{Days: lifecycle.ExpirationDays(days)},
		NoncurrentVersionExpiration: lifecycle.NoncurrentVersionExpiration{NoncurrentDays: lifecycle.ExpirationDays(days)},
	}
}

// withOperatorRules returns cfg with the operator's rules set (retention for days), and whether that changed it.
// Rules with other IDs are kept as they are, in their place; missing rules of ours are added at the end.
func withOperatorRules(cfg *lifecycle.Configuration, days int) (*lifecycle.Configuration, bool) {
	want := []lifecycle.Rule{RetentionRule(days)}
	out := lifecycle.NewConfiguration()
	found := map[string]bool{}
	changed := false
	if cfg != nil {
		for _, r := range cfg.Rules {
			i := slices.IndexFunc(want, func(w lifecycle.Rule) bool { return w.ID == r.ID })
			if i < 0 {
				out.Rules = append(out.Rules, r)
				continue
			}
			found[r.ID] = true
			if !sameRule(r, want[i]) {
				r, changed = want[i], true
			}
			out.Rules = append(out.Rules, r)
		}
	}
	for _, w := range want {
		if !found[w.ID] {
			out.Rules = append(out.Rules, w)
			changed = true
		}
	}
	return out, changed
}

// sameRule compares the parts of a rule that the operator's rules set.
func sameRule(r, want lifecycle.Rule) bool {
	sameFilter := r.RuleFilter.Prefix == want.RuleFilter.Prefix && r.Prefix == "" &&
		r.RuleFilter.And.IsEmpty() && r.RuleFilter.Tag.IsEmpty()
	return r.Status == want.Status &&
		r.Expiration.Days == want.Expiration.Days &&
		r.NoncurrentVersionExpiration.NoncurrentDays == want.NoncurrentVersionExpiration.NoncurrentDays &&
		sameFilter
}
