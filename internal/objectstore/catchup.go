package objectstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/replication"
)

// Catching up after the peer was unreachable (FAILOVER.md): MinIO marks what it could not replicate as pending or
// failed and leaves most of it to its scanner, which takes minutes to hours. Any read of such a version on the
// source queues it again, so the operator drives the backlog across itself: it finds what is missing, reads it
// (a HEAD per version for a small backlog, a versioned listing of the bucket for a large one), and as a last
// resort asks MinIO to resync the whole bucket.

// ObjectVersion names one version of an object.
type ObjectVersion struct {
	Key       string
	VersionID string
}

// Unreplicated lists up to limit versions of the bucket that MinIO has not replicated to the target arn, and
// counts all of them: the ones that failed, and the ones still pending that were written before notBefore — a
// version written a moment ago is in flight, not behind. MinIO walks its own copy only. Unversioned prefixes are
// not replicated and not counted.
func Unreplicated(ctx context.Context, adm *madmin.AdminClient, bucket, arn string, limit int, notBefore time.Time) ([]ObjectVersion, int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops MinIO's walk when the caller gives up
	var out []ObjectVersion
	total := 0
	for d := range adm.BucketReplicationDiff(ctx, bucket, madmin.ReplDiffOpts{ARN: arn}) {
		if d.Err != nil {
			return out, total, fmt.Errorf("diff replication of bucket %s: %w", bucket, d.Err)
		}
		if isHeartbeat(d.Object) {
			continue // superseded every few seconds; a missing old one is no backlog
		}
		if d.ReplicationStatus != string(minio.ReplicationStatusFailed) && d.LastModified.After(notBefore) {
			continue
		}
		total++
		if len(out) < limit {
			out = append(out, ObjectVersion{Key: d.Object, VersionID: d.VersionID})
		}
	}
	return out, total, ctx.Err()
}

// Requeue reads the metadata of each version on the source (HEAD), which makes MinIO queue the ones it has not
// replicated, with at most concurrency requests at once. It returns how many it read.
func Requeue(ctx context.Context, c *minio.Client, bucket string, versions []ObjectVersion, concurrency int) (int, error) {
	var done atomic.Int64
	var firstErr error
	var once sync.Once
	sem := make(chan struct{}, max(concurrency, 1))
	var wg sync.WaitGroup
	for _, v := range versions {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return int(done.Load()), ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := c.StatObject(ctx, bucket, v.Key, minio.StatObjectOptions{VersionID: v.VersionID})
			// A delete marker answers 405 and is queued all the same; a version deleted meanwhile needs nothing.
			if err != nil && !isGone(err) {
				once.Do(func() { firstErr = fmt.Errorf("requeue %s: %w", v.Key, err) })
				return
			}
			done.Add(1)
		})
	}
	wg.Wait()
	return int(done.Load()), firstErr
}

func isGone(err error) bool {
	switch minio.ToErrorResponse(err).Code {
	case "NoSuchKey", "NoSuchVersion", "MethodNotAllowed":
		return true
	}
	return minio.ToErrorResponse(err).StatusCode == 405
}

// RequeueByListing lists every version of the bucket, which makes MinIO queue each one it has not replicated: a
// thousand versions a request, where HEADs take one each. It returns how many versions it listed.
func RequeueByListing(ctx context.Context, c *minio.Client, bucket string) (int, error) {
	n := 0
	for v := range c.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
		if v.Err != nil {
			return n, fmt.Errorf("list versions of bucket %s: %w", bucket, v.Err)
		}
		n++
	}
	return n, nil
}

// Resync asks MinIO to replicate every version of the bucket to the target arn again. It needs the target online.
func Resync(ctx context.Context, c *minio.Client, bucket, arn string) error {
	if _, err := c.ResetBucketReplicationOnTarget(ctx, bucket, 0, arn); err != nil {
		return fmt.Errorf("resync bucket %s to %s: %w", bucket, arn, err)
	}
	return nil
}

// ResyncRunning reports whether a resync of the bucket to arn is still under way.
func ResyncRunning(ctx context.Context, c *minio.Client, bucket, arn string) (bool, error) {
	info, err := c.GetBucketReplicationResyncStatus(ctx, bucket, arn)
	if err != nil {
		return false, fmt.Errorf("read resync status of bucket %s: %w", bucket, err)
	}
	for _, t := range info.Targets {
		if t.Arn == arn {
			return t.ResyncStatus == "Ongoing" || t.ResyncStatus == "Pending", nil
		}
	}
	return false, nil
}

// TargetState is what MinIO knows of a remote target.
type TargetState struct {
	// Online is MinIO's view: the peer process answered its liveness check within the last few seconds.
	Online     bool
	LastOnline time.Time
	// FailedLastHour and Queued come from MinIO's replication metrics. FailedLastHour never goes down when a
	// failure is healed, and Queued does not count what MinIO parked for its scanner: only a diff tells what is
	// missing.
	FailedLastHour int64
	Queued         int64
}

// RemoteTarget reads the state of the target arn of the bucket.
func RemoteTarget(ctx context.Context, adm *madmin.AdminClient, c *minio.Client, bucket, arn string) (TargetState, error) {
	targets, err := adm.ListRemoteTargets(ctx, bucket, string(madmin.ReplicationService))
	if err != nil {
		return TargetState{}, fmt.Errorf("list remote targets of bucket %s: %w", bucket, err)
	}
	var st TargetState
	found := false
	for _, t := range targets {
		if t.Arn == arn {
			st.Online, st.LastOnline, found = t.Online, t.LastOnline, true
		}
	}
	if !found {
		return TargetState{}, fmt.Errorf("bucket %s has no remote target %s", bucket, arn)
	}
	m, err := c.GetBucketReplicationMetricsV2(ctx, bucket)
	if err != nil {
		return st, fmt.Errorf("read replication metrics of bucket %s: %w", bucket, err)
	}
	st.FailedLastHour = int64(targetStats(m, arn).Failed.LastHour.Count)
	st.Queued = int64(m.CurrentStats.QStats.Curr.Count)
	return st, nil
}

func targetStats(m replication.MetricsV2, arn string) replication.TargetMetrics {
	return m.CurrentStats.Stats[arn]
}
