package objectstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// The heartbeat canary (FAILOVER.md): each copy of a replicated tenant writes _heartbeat/<site> every few seconds;
// replication carries it to the other copy, where it is read with MinIO's proxying off. How late it arrives is
// the replication lag, and its absence shows a peer that stopped replicating, which MinIO's own counters never
// do.

// HeartbeatPrefix holds the heartbeats; verification of both copies ignores it.
const HeartbeatPrefix = "_heartbeat/"

// HeartbeatKey is the object of one site's heartbeat.
func HeartbeatKey(site string) string { return HeartbeatPrefix + site }

// Heartbeat is the body of a heartbeat object.
type Heartbeat struct {
	Site string    `json:"site"`
	At   time.Time `json:"at"`
}

// ErrNoHeartbeat means the site's heartbeat has not reached this copy.
var ErrNoHeartbeat = errors.New("no heartbeat")

// WriteHeartbeat writes site's heartbeat stamped at.
func WriteHeartbeat(ctx context.Context, c *minio.Client, bucket, site string, at time.Time) error {
	body, _ := json.Marshal(Heartbeat{Site: site, At: at.UTC()})
	_, err := c.PutObject(ctx, bucket, HeartbeatKey(site), bytes.NewReader(body), int64(len(body)),
		minio.PutObjectOptions{ContentType: "application/json"})
	if err != nil {
		return fmt.Errorf("write heartbeat of %s: %w", site, err)
	}
	return nil
}

// ReadHeartbeat reads site's heartbeat from this copy only: a copy that lacks it must not be answered from the
// other copy through MinIO's proxying.
func ReadHeartbeat(ctx context.Context, c *minio.Client, bucket, site string) (Heartbeat, error) {
	opts := minio.GetObjectOptions{}
	opts.Internal.ReplicationProxyRequest = "false"
	obj, err := c.GetObject(ctx, bucket, HeartbeatKey(site), opts)
	if err != nil {
		return Heartbeat{}, fmt.Errorf("read heartbeat of %s: %w", site, err)
	}
	defer obj.Close()
	body, err := io.ReadAll(io.LimitReader(obj, 4096))
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return Heartbeat{}, ErrNoHeartbeat
		}
		return Heartbeat{}, fmt.Errorf("read heartbeat of %s: %w", site, err)
	}
	var hb Heartbeat
	if err := json.Unmarshal(body, &hb); err != nil || hb.At.IsZero() {
		return Heartbeat{}, fmt.Errorf("heartbeat of %s is not a heartbeat: %q", site, body)
	}
	return hb, nil
}

// PruneHeartbeats deletes all but the newest keep versions of each heartbeat in this copy. Heartbeats are
// versioned (they must be, to replicate), and a version every few seconds would otherwise pile up. Version
// deletes are not replicated: each copy prunes its own.
func PruneHeartbeats(ctx context.Context, c *minio.Client, bucket string, keep int) (int, error) {
	seen := map[string]int{}
	removed := 0
	for v := range c.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Prefix: HeartbeatPrefix, Recursive: true, WithVersions: true}) {
		if v.Err != nil {
			return removed, fmt.Errorf("list heartbeats: %w", v.Err)
		}
		// Versions of one key are listed newest first.
		seen[v.Key]++
		if seen[v.Key] <= keep {
			continue
		}
		if err := c.RemoveObject(ctx, bucket, v.Key, minio.RemoveObjectOptions{VersionID: v.VersionID}); err != nil {
			return removed, fmt.Errorf("prune heartbeat %s: %w", v.Key, err)
		}
		removed++
	}
	return removed, nil
}

// isHeartbeat reports whether key is a heartbeat.
func isHeartbeat(key string) bool { return strings.HasPrefix(key, HeartbeatPrefix) }
