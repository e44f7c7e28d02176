package objectstore

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/replication"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/harness/miniotest"
)

const replBucket = "supportstack"

// site is one copy: a MinIO server, its root clients and the replication user the other copy uses to reach it.
type site struct {
	srv  *miniotest.Server
	mc   *minio.Client
	adm  *madmin.AdminClient
	into User
}

func startSite(t *testing.T, name string) *site {
	t.Helper()
	srv := miniotest.Start(t, miniotest.Options{})
	ep := Endpoint{URL: srv.URL, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
	mc, err := NewClient(ep)
	require.NoError(t, err)
	adm, err := NewAdminClient(ep)
	require.NoError(t, err)
	_, err = EnsureBucket(context.Background(), mc, replBucket, 30)
	require.NoError(t, err)
	return &site{srv: srv, mc: mc, adm: adm, into: User{AccessKey: "repl-into-" + name, SecretKey: "secret-into-" + name + "-0123456789",
		Policy: "supportstack-replication-into", Document: ReplicationPolicy(replBucket)}}
}

// pair sets up a's replication to b: b's inbound user, a's remote target and rule.
func pair(t *testing.T, a, b *site) string {
	t.Helper()
	ctx := context.Background()
	_, err := EnsureUser(ctx, b.adm, b.srv.URL, replBucket, b.into)
	require.NoError(t, err)
	arn, changes, err := EnsureReplication(ctx, a.adm, a.mc, replBucket, Remote{URL: b.srv.URL, AccessKey: b.into.AccessKey,
		SecretKey: b.into.SecretKey, Bucket: replBucket})
	require.NoError(t, err)
	require.Contains(t, changes, ChangeRemoteTargetSet)
	require.Contains(t, changes, ChangeReplicationRule)
	return arn
}

func put(t *testing.T, s *site, key, body string) {
	t.Helper()
	_, err := s.mc.PutObject(context.Background(), replBucket, key, strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
	require.NoError(t, err)
}

// body reads key from s's copy only.
func body(s *site, key string) (string, error) {
	opts := minio.GetObjectOptions{}
	opts.Internal.ReplicationProxyRequest = "false"
	obj, err := s.mc.GetObject(context.Background(), replBucket, key, opts)
	if err != nil {
		return "", err
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	return string(b), err
}

func listVersions(t *testing.T, s *site) []Version {
	t.Helper()
	v, err := ListVersions(context.Background(), s.mc, replBucket)
	require.NoError(t, err)
	return v
}

func TestTwoWayReplication(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two MinIO servers")
	}
	ctx := context.Background()
	east, west := startSite(t, "east"), startSite(t, "west")
	eastARN := pair(t, east, west)
	westARN := pair(t, west, east)

	t.Run("objects written on either side reach the other", func(t *testing.T) {
		put(t, east, "devices/a/records/1", "from east")
		put(t, west, "devices/b/records/1", "from west")
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			got, err := body(west, "devices/a/records/1")
			assert.NoError(c, err)
			assert.Equal(c, "from east", got)
			got, err = body(east, "devices/b/records/1")
			assert.NoError(c, err)
			assert.Equal(c, "from west", got)
		}, 30*time.Second, 100*time.Millisecond)
	})

	t.Run("the remote target does not proxy reads", func(t *testing.T) {
		targets, err := east.adm.ListRemoteTargets(ctx, replBucket, string(madmin.ReplicationService))
		require.NoError(t, err)
		require.Len(t, targets, 1)
		require.True(t, targets[0].DisableProxy)
		require.Equal(t, eastARN, targets[0].Arn)
	})

	t.Run("heartbeats: written on one side, read on the other, never proxied", func(t *testing.T) {
		at := time.Now().UTC().Truncate(time.Millisecond)
		require.NoError(t, WriteHeartbeat(ctx, east.mc, replBucket, "east", at))
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			hb, err := ReadHeartbeat(ctx, west.mc, replBucket, "east")
			assert.NoError(c, err)
			assert.True(c, hb.At.Equal(at), "heartbeat at %v, want %v", hb.At, at)
		}, 30*time.Second, 100*time.Millisecond)
		_, err := ReadHeartbeat(ctx, east.mc, replBucket, "nowhere")
		require.ErrorIs(t, err, ErrNoHeartbeat)
		for range 5 {
			require.NoError(t, WriteHeartbeat(ctx, east.mc, replBucket, "east", time.Now()))
		}
		removed, err := PruneHeartbeats(ctx, east.mc, replBucket, 2)
		require.NoError(t, err)
		require.GreaterOrEqual(t, removed, 4)
		n := 0
		for v := range east.mc.ListObjectsIter(ctx, replBucket, minio.ListObjectsOptions{Prefix: HeartbeatPrefix, Recursive: true, WithVersions: true}) {
			require.NoError(t, v.Err)
			n++
		}
		require.Equal(t, 2, n)
	})

	t.Run("set-up is idempotent", func(t *testing.T) {
		arn, changes, err := EnsureReplication(ctx, east.adm, east.mc, replBucket, Remote{URL: west.srv.URL,
			AccessKey: west.into.AccessKey, SecretKey: west.into.SecretKey, Bucket: replBucket})
		require.NoError(t, err)
		require.Empty(t, changes)
		require.Equal(t, eastARN, arn)
		userChanges, err := EnsureUser(ctx, west.adm, west.srv.URL, replBucket, west.into)
		require.NoError(t, err)
		require.Empty(t, userChanges)
	})

	t.Run("a rule removed or changed by hand is repaired", func(t *testing.T) {
		// MinIO removes the remote targets with the replication configuration.
		require.NoError(t, east.mc.RemoveBucketReplication(ctx, replBucket))
		arn, changes, err := EnsureReplication(ctx, east.adm, east.mc, replBucket, Remote{URL: west.srv.URL,
			AccessKey: west.into.AccessKey, SecretKey: west.into.SecretKey, Bucket: replBucket})
		require.NoError(t, err)
		require.Contains(t, changes, ChangeReplicationRule)
		eastARN = arn

		cfg, err := east.mc.GetBucketReplication(ctx, replBucket)
		require.NoError(t, err)
		cfg.Rules[0].DeleteMarkerReplication.Status = replication.Disabled
		cfg.Rules[0].ExistingObjectReplication.Status = replication.Disabled
		require.NoError(t, east.mc.SetBucketReplication(ctx, replBucket, cfg))
		_, changes, err = EnsureReplication(ctx, east.adm, east.mc, replBucket, Remote{URL: west.srv.URL,
			AccessKey: west.into.AccessKey, SecretKey: west.into.SecretKey, Bucket: replBucket})
		require.NoError(t, err)
		require.Equal(t, []Change{ChangeReplicationRule}, changes)
		cfg, err = east.mc.GetBucketReplication(ctx, replBucket)
		require.NoError(t, err)
		require.True(t, sameReplicationRule(cfg.Rules[0], ReplicationRule(eastARN)))
	})

	t.Run("a replication user whose secret was changed by hand is repaired", func(t *testing.T) {
		require.NoError(t, west.adm.AddUser(ctx, west.into.AccessKey, "changed-by-hand-0123456789"))
		changes, err := EnsureUser(ctx, west.adm, west.srv.URL, replBucket, west.into)
		require.NoError(t, err)
		require.Equal(t, []Change{ChangeUserRepaired}, changes)
		put(t, east, "devices/a/records/after-repair", "x")
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			got, err := body(west, "devices/a/records/after-repair")
			assert.NoError(c, err)
			assert.Equal(c, "x", got)
		}, 30*time.Second, 100*time.Millisecond)
	})

	t.Run("the data-plane user reads and writes objects and nothing else", func(t *testing.T) {
		dp := User{AccessKey: "dataplane-user", SecretKey: "dataplane-secret-0123456789", Policy: "supportstack-dataplane",
			Document: DataPlanePolicy(replBucket)}
		_, err := EnsureUser(ctx, east.adm, east.srv.URL, replBucket, dp)
		require.NoError(t, err)
		c, err := NewClient(Endpoint{URL: east.srv.URL, AccessKey: dp.AccessKey, SecretKey: dp.SecretKey})
		require.NoError(t, err)
		_, err = c.PutObject(ctx, replBucket, "devices/dp/x", strings.NewReader("dp"), 2, minio.PutObjectOptions{})
		require.NoError(t, err)
		_, err = c.StatObject(ctx, replBucket, "devices/dp/x", minio.StatObjectOptions{})
		require.NoError(t, err)
		err = c.RemoveObject(ctx, replBucket, "devices/dp/x", minio.RemoveObjectOptions{})
		require.Equal(t, "AccessDenied", minio.ToErrorResponse(err).Code)
		err = c.RemoveBucketReplication(ctx, replBucket)
		require.Equal(t, "AccessDenied", minio.ToErrorResponse(err).Code)
	})

	t.Run("a backlog written while the peer was down is driven across and verified", func(t *testing.T) {
		west.srv.Stop()
		const n = 300
		for i := range n {
			put(t, east, fmt.Sprintf("devices/backlog/records/%04d", i), fmt.Sprint(i))
		}
		require.NoError(t, west.srv.Restart())
		// What MinIO could not replicate is listed by the diff; reading it re-queues it.
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			versions, total, err := Unreplicated(ctx, east.adm, replBucket, eastARN, 10000, time.Now())
			if !assert.NoError(c, err) {
				return
			}
			if total > 0 {
				_, err = Requeue(ctx, east.mc, replBucket, versions, 16)
				assert.NoError(c, err)
			}
			d := DiffVersions(listVersions(t, east), listVersions(t, west), time.Now())
			assert.True(c, d.Empty(), "%v", d)
			assert.GreaterOrEqual(c, d.Compared, n)
		}, 60*time.Second, time.Second)
		state, err := RemoteTarget(ctx, east.adm, east.mc, replBucket, eastARN)
		require.NoError(t, err)
		require.True(t, state.Online)
		_ = westARN
	})
}

func TestDiffVersions(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v := func(key, id, etag string, at time.Duration) Version {
		return Version{Key: key, VersionID: id, ETag: etag, Size: 1, LastModified: t0.Add(at)}
	}
	cutoff := t0.Add(10 * time.Second)
	tests := map[string]struct {
		a, b                 []Version
		onlyA, onlyB, differ int
		compared             int
	}{
		"equal": {a: []Version{v("k", "1", "e", 0), v("k", "2", "e", 1)}, b: []Version{v("k", "1", "e", 0), v("k", "2", "e", 1)}, compared: 2},
		"missing on b": {a: []Version{v("k", "1", "e", 0), v("k", "2", "e", 1)}, b: []Version{v("k", "1", "e", 0)},
			onlyB: 0, onlyA: 1, compared: 1},
		"missing on a": {a: []Version{v("j", "1", "e", 0)}, b: []Version{v("j", "1", "e", 0), v("z", "1", "e", 2)}, onlyB: 1, compared: 1},
		"newer than the cutoff is not compared": {a: []Version{v("k", "1", "e", 0), v("k", "9", "e", 20*time.Second)},
			b: []Version{v("k", "1", "e", 0)}, compared: 1},
		"same version, other content": {a: []Version{v("k", "1", "e", 0)}, b: []Version{v("k", "1", "f", 0)}, differ: 1, compared: 1},
		"both empty":                  {},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d := DiffVersions(tc.a, tc.b, cutoff)
			require.Len(t, d.OnlyA, tc.onlyA)
			require.Len(t, d.OnlyB, tc.onlyB)
			require.Len(t, d.Differ, tc.differ)
			require.Equal(t, tc.compared, d.Compared)
			require.Equal(t, tc.onlyA+tc.onlyB+tc.differ == 0, d.Empty())
		})
	}
}

// A drill fences a copy by disabling the data plane's user: MinIO refuses that user's requests while the server
// and its other users go on, and EnsureUser (the set-up an operator that died mid-drill runs when it starts
// again) enables the user again.
func TestDisabledUserIsRefusedAndRepaired(t *testing.T) {
	ctx := context.Background()
	s := startSite(t, "fence")
	u := User{AccessKey: "dataplane-fence", SecretKey: "dataplane-secret-0123456789", Policy: "supportstack-dataplane",
		Document: DataPlanePolicy(replBucket)}
	_, err := EnsureUser(ctx, s.adm, s.srv.URL, replBucket, u)
	require.NoError(t, err)
	dp, err := NewFailFastClient(Endpoint{URL: s.srv.URL, AccessKey: u.AccessKey, SecretKey: u.SecretKey})
	require.NoError(t, err)
	write := func() error {
		_, err := dp.PutObject(ctx, replBucket, "devices/x/fence", strings.NewReader("x"), 1, minio.PutObjectOptions{})
		return err
	}
	require.NoError(t, write())

	require.NoError(t, s.adm.SetUserStatus(ctx, u.AccessKey, madmin.AccountDisabled))
	err = write()
	require.Error(t, err, "a disabled user is refused")
	require.Equal(t, 403, minio.ToErrorResponse(err).StatusCode, "%v", err)
	put(t, s, "root/still-writes", "root is not fenced")

	changes, err := EnsureUser(ctx, s.adm, s.srv.URL, replBucket, u)
	require.NoError(t, err)
	require.Contains(t, changes, ChangeUserRepaired)
	require.NoError(t, write(), "the set-up enabled the user again")
}
