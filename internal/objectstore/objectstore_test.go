package objectstore

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/lifecycle"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/harness/miniotest"
	"github.com/supportstack/supportstack/internal/protocol"
)

func TestWithOperatorRules(t *testing.T) {
	foreign := lifecycle.Rule{ID: "someone-else", Status: "Enabled", Expiration: lifecycle.Expiration{Days: 3}}
	withPrefix := RetentionRule(30)
	withPrefix.RuleFilter = lifecycle.Filter{Prefix: "devices/"}
	tests := map[string]struct {
		current     *lifecycle.Configuration
		days        int
		wantChanged bool
		wantRules   []lifecycle.Rule
	}{
		"no configuration": {
			current: nil, days: 30, wantChanged: true, wantRules: []lifecycle.Rule{RetentionRule(30)},
		},
		"already set": {
			current: &lifecycle.Configuration{Rules: []lifecycle.Rule{RetentionRule(30)}}, days: 30,
			wantChanged: false, wantRules: []lifecycle.Rule{RetentionRule(30)},
		},
		"other days": {
			current: &lifecycle.Configuration{Rules: []lifecycle.Rule{RetentionRule(7)}}, days: 30,
			wantChanged: true, wantRules: []lifecycle.Rule{RetentionRule(30)},
		},
		"a rule of ours narrowed to a prefix is put right": {
			current: &lifecycle.Configuration{Rules: []lifecycle.Rule{withPrefix}}, days: 30,
			wantChanged: true, wantRules: []lifecycle.Rule{RetentionRule(30)},
		},
		"foreign rules are kept, before and after ours": {
			current: &lifecycle.Configuration{Rules: []lifecycle.Rule{foreign, RetentionRule(7), foreign}}, days: 30,
			wantChanged: true, wantRules: []lifecycle.Rule{foreign, RetentionRule(30), foreign},
		},
		"foreign rule only": {
			current: &lifecycle.Configuration{Rules: []lifecycle.Rule{foreign}}, days: 1,
			wantChanged: true, wantRules: []lifecycle.Rule{foreign, RetentionRule(1)},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, changed := withOperatorRules(tc.current, tc.days)
			require.Equal(t, tc.wantChanged, changed)
			require.Equal(t, tc.wantRules, got.Rules)
		})
	}
}

func TestEnsureBucketAgainstMinIO(t *testing.T) {
	ctx := context.Background()
	srv := miniotest.Start(t, miniotest.Options{})
	c, err := NewClient(Endpoint{URL: srv.URL, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	require.NoError(t, err)

	changes, err := EnsureBucket(ctx, c, "tenant-data", 90)
	require.NoError(t, err)
	require.Equal(t, []Change{ChangeBucketCreated, ChangeVersioningEnabled, ChangeRetentionSet}, changes)

	v, err := c.GetBucketVersioning(ctx, "tenant-data")
	require.NoError(t, err)
	require.True(t, v.Enabled(), "versioning must be on")
	require.Equal(t, []minio.ExcludedPrefix{{Prefix: protocol.LedgerPrefix}, {Prefix: protocol.IndexPrefix}}, v.ExcludedPrefixes, "ledgers and the index snapshot are not versioned")
	lc, err := c.GetBucketLifecycle(ctx, "tenant-data")
	require.NoError(t, err)
	require.Len(t, lc.Rules, 1)
	require.Equal(t, RetentionRuleID, lc.Rules[0].ID)
	require.EqualValues(t, 90, lc.Rules[0].Expiration.Days)
	require.EqualValues(t, 90, lc.Rules[0].NoncurrentVersionExpiration.NoncurrentDays)

	// A ledger is overwritten in place; a batch keeps its versions.
	for range 3 {
		_, err := c.PutObject(ctx, "tenant-data", protocol.LedgerKey("d"), strings.NewReader("{}"), 2, minio.PutObjectOptions{})
		require.NoError(t, err)
		_, err = c.PutObject(ctx, "tenant-data", "devices/d/records/x", strings.NewReader("{}"), 2, minio.PutObjectOptions{})
		require.NoError(t, err)
	}
	versions := map[string]int{}
	for o := range c.ListObjects(ctx, "tenant-data", minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
		require.NoError(t, o.Err)
		versions[o.Key]++
	}
	require.Equal(t, map[string]int{protocol.LedgerKey("d"): 1, "devices/d/records/x": 3}, versions)

	// A bucket versioned before ledgers existed gets the exclusion.
	require.NoError(t, c.SetBucketVersioning(ctx, "tenant-data", minio.BucketVersioningConfiguration{Status: minio.Enabled}))
	changes, err = EnsureBucket(ctx, c, "tenant-data", 90)
	require.NoError(t, err)
	require.Equal(t, []Change{ChangeVersioningExclusions}, changes)

	// A second run on a configured bucket changes nothing.
	changes, err = EnsureBucket(ctx, c, "tenant-data", 90)
	require.NoError(t, err)
	require.Empty(t, changes)

	// A rule somebody else added survives a retention change.
	lc.Rules = append(lc.Rules, lifecycle.Rule{ID: "tmp-cleanup", Status: "Enabled",
		RuleFilter: lifecycle.Filter{Prefix: "tmp/"}, Expiration: lifecycle.Expiration{Days: 1}})
	require.NoError(t, c.SetBucketLifecycle(ctx, "tenant-data", lc))
	changes, err = EnsureBucket(ctx, c, "tenant-data", 30)
	require.NoError(t, err)
	require.Equal(t, []Change{ChangeRetentionSet}, changes)
	lc, err = c.GetBucketLifecycle(ctx, "tenant-data")
	require.NoError(t, err)
	ids := map[string]lifecycle.ExpirationDays{}
	for _, r := range lc.Rules {
		ids[r.ID] = r.Expiration.Days
	}
	require.Equal(t, map[string]lifecycle.ExpirationDays{RetentionRuleID: 30, "tmp-cleanup": 1}, ids)
}

func TestEnsureBucketWrongCredentials(t *testing.T) {
	srv := miniotest.Start(t, miniotest.Options{})
	c, err := NewClient(Endpoint{URL: srv.URL, AccessKey: srv.AccessKey, SecretKey: "not-the-secret"})
	require.NoError(t, err)
	_, err = EnsureBucket(context.Background(), c, "tenant-data", 90)
	require.ErrorContains(t, err, `check bucket "tenant-data"`)
	require.ErrorContains(t, err, "signature")
}

func TestNewClientRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "minio:9000", "ftp://minio:9000", "http://"} {
		_, err := NewClient(Endpoint{URL: u})
		require.Error(t, err, u)
	}
}

func TestHealthFollowsServer(t *testing.T) {
	ctx := context.Background()
	srv := miniotest.Start(t, miniotest.Options{})
	hc := &http.Client{}
	require.NoError(t, Health(ctx, hc, srv.URL))

	srv.Stop()
	start := time.Now()
	err := Health(ctx, hc, srv.URL)
	require.Error(t, err)
	require.True(t, strings.HasPrefix(err.Error(), "storage health check"), err.Error())
	require.Less(t, time.Since(start), healthTimeout+time.Second, "a dead server must be noticed within the timeout")

	require.NoError(t, srv.Restart())
	require.NoError(t, Health(ctx, hc, srv.URL))
}
