package objectstore

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/minio/minio-go/v7"
)

// DrillPrefix holds the canaries of disaster-recovery drills: small objects written to one copy just before it
// is fenced, whose absence from the other copy at that moment measures what a real outage would have left
// behind (the RPO).
const DrillPrefix = "_drill/"

// CanaryKey is the i-th canary of a drill.
func CanaryKey(drill string, i int) string { return fmt.Sprintf("%s%s/%06d", DrillPrefix, drill, i) }

// WriteCanary writes the i-th canary of a drill, stamped with its write time.
func WriteCanary(ctx context.Context, c *minio.Client, bucket, drill string, i int, at time.Time) error {
	body := []byte(at.UTC().Format(time.RFC3339Nano))
	if _, err := c.PutObject(ctx, bucket, CanaryKey(drill, i), bytes.NewReader(body), int64(len(body)),
		minio.PutObjectOptions{ContentType: "text/plain"}); err != nil {
		return fmt.Errorf("write canary %d: %w", i, err)
	}
	return nil
}

// Canaries lists the keys of a drill's canaries that this copy holds. A listing is never answered from the other
// copy (MinIO proxies reads of single objects only).
func Canaries(ctx context.Context, c *minio.Client, bucket, drill string) (map[string]bool, error) {
	held := map[string]bool{}
	for obj := range c.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Prefix: DrillPrefix + drill + "/", Recursive: true}) {
		if obj.Err != nil {
			return held, fmt.Errorf("list canaries: %w", obj.Err)
		}
		held[obj.Key] = true
	}
	return held, nil
}
